//! The Redis key schema, in one place.
//!
//! | key | type | contents |
//! |---|---|---|
//! | `faas:function:{id}` | hash | `name`, `payload` (base64 dill of the function), `created_at` |
//! | `faas:task:{id}` | hash (expires its retention after it became final) | `function_id`, `params` (base64 dill of `(args, kwargs)`, dropped once final), `status`, `result`, `attempts`, `dispatcher` (consumer name of the dispatcher that started it last), `executor` (`worker/slot` that ran it), `queue_entry` (id of the task's live stream entry, removed once final), and the timestamps `cancelled_at` (when cancelled through the API), `submitted_at`, `dispatched_at`, `started_at`, `finished_at` (µs since the epoch) |
//! | `faas:queue` | stream | one entry `{task: id}` per task waiting for or held by a dispatcher (deleted once its task is final or requeued under a new entry); consumer group [`QUEUE_GROUP`] |
//! | `faas:dispatcher:{consumer}` | string with TTL | present while the dispatcher that reads the queue as `consumer` is alive |
//! | `tasks` | pub/sub channel | every new task id (public contract) |
//! | `faas:done` | pub/sub channel | every task id that became final (one message may name several, separated by spaces) |
//! | `faas:cancel` | pub/sub channel | every running task id cancelled through the API, for the dispatcher running it |

use crate::task::{FunctionId, TaskId};

/// The durable queue stream.
pub const QUEUE: &str = "faas:queue";
/// The consumer group all dispatchers share, so each entry goes to exactly one of them.
pub const QUEUE_GROUP: &str = "dispatchers";
/// The contract's channel announcing new task ids.
pub const TASKS_CHANNEL: &str = "tasks";
/// Announces task ids that became final, for clients waiting on results.
pub const DONE_CHANNEL: &str = "faas:done";
/// Announces running tasks cancelled through the API, for the dispatchers running them.
pub const CANCEL_CHANNEL: &str = "faas:cancel";

/// What every function's key starts with.
pub const FUNCTION_PREFIX: &str = "faas:function:";

/// The hash of a registered function.
#[must_use]
pub fn function(id: FunctionId) -> String {
    format!("{FUNCTION_PREFIX}{id}")
}

/// The hash of a task.
#[must_use]
pub fn task(id: TaskId) -> String {
    format!("faas:task:{id}")
}

/// The liveness marker of a dispatcher reading the queue as `consumer`.
#[must_use]
pub fn dispatcher(consumer: &str) -> String {
    format!("faas:dispatcher:{consumer}")
}
