//! Helpers for the remote modes' decision tests: a recording outbox, ready-made worker state,
//! and jobs fetched the way the core's fetcher takes them.

use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::capacity::Capacity;
use super::registry::WorkerRegistry;
use super::remote::RemoteConfig;
use super::workers::Workers;
use crate::bridge::{Inbound, Outbox};
use crate::executor::Job;
use crate::protocol::{self, Completion, ToDispatcher, ToWorker};
use crate::task::{FunctionId, TaskId};

/// Records what a mode sends instead of sending it.
#[derive(Default)]
pub struct Recorder(RefCell<Vec<Vec<Vec<u8>>>>);

impl Outbox for Recorder {
    fn send(&self, _socket: usize, frames: Vec<Vec<u8>>) {
        self.0.borrow_mut().push(frames);
    }
}

impl Recorder {
    /// Everything sent since the last call: (routing id, message).
    pub fn take(&self) -> Vec<(Vec<u8>, ToWorker)> {
        self.0
            .borrow_mut()
            .drain(..)
            .map(|frames| {
                let message = protocol::decode(frames.last().expect("a payload")).expect("valid");
                (frames[0].clone(), message)
            })
            .collect()
    }
}

pub const HEARTBEAT: Duration = Duration::from_secs(1);

/// Worker state for a mode with push `prefetch` whose places follow `capacity`, with the
/// capacity and the core's end of the completions channel.
pub fn parts(
    prefetch: u32,
    capacity: Capacity,
) -> (Workers, Arc<Capacity>, mpsc::UnboundedReceiver<Completion>) {
    let config = RemoteConfig {
        bind: "127.0.0.1".into(),
        port: 0,
        heartbeat: HEARTBEAT,
        misses: 3,
        prefetch,
        secret: None,
        curve: None,
        max_message_bytes: super::remote::DEFAULT_MAX_MESSAGE_BYTES,
    };
    let capacity = Arc::new(capacity);
    let (tx, rx) = mpsc::unbounded_channel();
    let workers = Workers {
        registry: WorkerRegistry::new(config.liveness()),
        capacity: capacity.clone(),
        completions: tx,
        config,
        report_grace: Duration::from_secs(1),
        metrics: Arc::default(),
        bound: std::collections::HashMap::new(),
        reporters: std::collections::HashMap::new(),
    };
    (workers, capacity, rx)
}

/// What the core's fetcher does for each task it takes: put it in a free place.
pub fn fetch(capacity: &Capacity, function_id: FunctionId) -> Job {
    capacity
        .try_reserve(1)
        .expect("fetched without a free place")
        .start(1);
    job(function_id)
}

pub fn job(function_id: FunctionId) -> Job {
    Job {
        task_id: TaskId::new_random(),
        function_id,
        function: "BODY".into(),
        params: "PARAMS".into(),
        timeout: Some(Duration::from_secs(10)),
    }
}

/// A message from `identity` as the ROUTER delivers it (`envelope`: REQ's empty frame).
pub fn inbound(identity: &[u8], envelope: bool, message: &ToDispatcher) -> Inbound {
    let mut frames = vec![identity.to_vec()];
    if envelope {
        frames.push(Vec::new());
    }
    frames.push(protocol::encode(message));
    Inbound::Message {
        socket: 0,
        frames,
        peer: None,
    }
}
