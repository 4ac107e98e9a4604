//! The messages between workers and the dispatcher (pull and push modes), one JSON object per
//! ZeroMQ frame.
//!
//! | from | message | when | answer |
//! |---|---|---|---|
//! | worker | `register {worker, capacity, secret?}` | on start, after `reregister`, after losing the dispatcher | `welcome` |
//! | worker | `ask {worker, free, results, started?}` | pull: it has room for `free` tasks (its idle executors, or its prefetch places once every executor is busy); carries finished results | `tasks` (parked until work arrives, or empty after a heartbeat interval as a keep-alive) |
//! | worker | `results {worker, results, started?}` | finished tasks (push; pull's second socket while its ask is parked) | `ack` once they are recorded (pull: or a heartbeat interval later, with those recorded by then) |
//! | worker | `heartbeat {worker, started?}` | nothing else sent for a heartbeat interval; push: also as soon as a task starts | pull: `ack`; push: none |
//! | dispatcher | `welcome {heartbeat_ms, misses}` | after `register` | — |
//! | dispatcher | `tasks {tasks, acked?}` | work for the worker; pull: results recorded since the last answer ride along | — |
//! | dispatcher | `ack {tasks, cancel?}` | results recorded in Redis (only then the worker forgets them); pull: tasks to stop ride along | — |
//! | dispatcher | `cancel {tasks}` | push: tasks cancelled through the API (the worker stops them and reports them as usual) | — |
//! | dispatcher | `heartbeat` | push: nothing else sent for a heartbeat interval | — |
//! | dispatcher | `reregister {reason}` | a message from a worker it does not know | `register` |
//! | dispatcher | `rejected {reason}` | a `register` without the right secret | — (the worker stops) |
//!
//! `started` names the tasks an executor began since the worker's last message: a task's
//! deadline runs from then, not from when it was handed out (it may wait behind others in the
//! worker's queue).
//!
//! A worker keeps each result until an `ack` (or pull's `acked`) names it, and sends what it
//! still keeps again after registering anew: a dispatcher that dies with a result it has not
//! recorded gets it again from the worker, so the task is not run a second time.
//!
//! Each task carries its function body only when the worker does not have it: both sides keep
//! the same least-recently-used cache of [`WORKER_FUNCTION_CACHE`] function ids per worker
//! registration, touched in the same order (the order tasks are sent), so the dispatcher knows
//! what the worker evicted without being told.

use std::num::NonZeroUsize;

use serde::{Deserialize, Serialize};

use crate::task::{FunctionId, TaskId, TaskOutcome};

/// Function bodies a worker keeps per registration (see the module's description).
pub const WORKER_FUNCTION_CACHE: NonZeroUsize = NonZeroUsize::new(256).expect("not zero");

/// Worker → dispatcher.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToDispatcher {
    Register {
        worker: String,
        capacity: u32,
        /// The shared secret, when the dispatcher requires one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
    },
    Ask {
        worker: String,
        free: u32,
        results: Vec<Completion>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        started: Vec<TaskId>,
    },
    Results {
        worker: String,
        results: Vec<Completion>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        started: Vec<TaskId>,
    },
    Heartbeat {
        worker: String,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        started: Vec<TaskId>,
    },
}

impl ToDispatcher {
    /// The tasks the message says an executor began.
    #[must_use]
    pub fn started(&self) -> &[TaskId] {
        match self {
            Self::Register { .. } => &[],
            Self::Ask { started, .. }
            | Self::Results { started, .. }
            | Self::Heartbeat { started, .. } => started,
        }
    }

    /// The sending worker's name.
    #[must_use]
    pub fn worker(&self) -> &str {
        match self {
            Self::Register { worker, .. }
            | Self::Ask { worker, .. }
            | Self::Results { worker, .. }
            | Self::Heartbeat { worker, .. } => worker,
        }
    }
}

/// Dispatcher → worker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ToWorker {
    Welcome {
        heartbeat_ms: u64,
        misses: u32,
    },
    Tasks {
        tasks: Vec<WireTask>,
        /// Pull: results now recorded, which the worker may forget (a REQ worker hears only
        /// answers, so acknowledgements ride on whichever it gets next).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        acked: Vec<TaskId>,
    },
    /// Results recorded: the worker may forget them.
    Ack {
        tasks: Vec<TaskId>,
        /// Pull: tasks cancelled through the API, to stop (a REQ worker hears only answers).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        cancel: Vec<TaskId>,
    },
    /// Push: tasks cancelled through the API, to stop.
    Cancel {
        tasks: Vec<TaskId>,
    },
    Heartbeat,
    Reregister {
        reason: String,
    },
    /// The registration was refused (wrong or missing secret); the worker must stop.
    Rejected {
        reason: String,
    },
}

/// A finished task: what an executor pool reports and a worker carries to the dispatcher in
/// `ask` and `results` (the local mode's pool reports the same to its dispatcher in-process).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Completion {
    pub task_id: TaskId,
    pub outcome: TaskOutcome,
    /// When an executor started it (µs since the epoch), if one did.
    pub started_at: Option<u64>,
    pub finished_at: u64,
    /// The executor that ran it (`worker/slot`), when one did.
    pub executor: Option<String>,
}

/// A task on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireTask {
    pub task_id: TaskId,
    pub function_id: FunctionId,
    /// The serialized function, unless this worker registration was already sent it.
    pub function: Option<String>,
    pub params: String,
    /// The task's deadline on the executor, in milliseconds.
    pub timeout_ms: Option<u64>,
}

/// A frame that is not a message of this protocol.
#[derive(Debug, thiserror::Error)]
#[error("malformed protocol message: {0}")]
pub struct ProtocolError(#[from] serde_json::Error);

/// Encodes a message as one frame.
#[must_use]
pub fn encode<T: Serialize>(message: &T) -> Vec<u8> {
    serde_json::to_vec(message).expect("protocol messages always serialize")
}

/// Decodes one frame.
pub fn decode<T: for<'de> Deserialize<'de>>(frame: &[u8]) -> Result<T, ProtocolError> {
    Ok(serde_json::from_slice(frame)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_and_are_tagged() {
        let ask = ToDispatcher::Ask {
            worker: "w1".into(),
            free: 3,
            results: vec![Completion {
                task_id: TaskId::new_random(),
                outcome: TaskOutcome::Raised("abc".into()),
                started_at: Some(1),
                finished_at: 2,
                executor: Some("w1/0".into()),
            }],
            started: vec![TaskId::new_random()],
        };
        let frame = encode(&ask);
        assert!(String::from_utf8_lossy(&frame).contains("\"type\":\"ask\""));
        assert_eq!(decode::<ToDispatcher>(&frame).unwrap(), ask);
        let tasks = ToWorker::Tasks {
            tasks: vec![],
            acked: vec![TaskId::new_random()],
        };
        assert_eq!(decode::<ToWorker>(&encode(&tasks)).unwrap(), tasks);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(decode::<ToDispatcher>(b"\xff\x00").is_err());
        assert!(decode::<ToDispatcher>(b"{\"type\":\"nope\"}").is_err());
    }
}
