//! The in-flight table: tasks handed to the transport and not yet recorded, with what their
//! record needs (the queue entry to requeue them by, their timestamps). It keeps the
//! `tasks_in_flight` gauge.

use std::collections::HashMap;
use std::sync::Arc;

use super::DispatcherMetrics;
use crate::store::QueueEntry;
use crate::task::TaskId;

/// A task handed to the transport.
pub(super) struct InFlight {
    pub entry: QueueEntry,
    /// When the gateway queued it (µs), if the store knew.
    pub submitted_at: Option<u64>,
    /// When it was handed to the transport (µs).
    pub dispatched_at: u64,
}

/// Every task in hand, by id.
pub(super) struct InFlightTable {
    tasks: HashMap<TaskId, InFlight>,
    metrics: Arc<DispatcherMetrics>,
}

impl InFlightTable {
    pub fn new(metrics: Arc<DispatcherMetrics>) -> Self {
        Self {
            tasks: HashMap::new(),
            metrics,
        }
    }

    pub fn insert(&mut self, task: TaskId, held: InFlight) {
        self.tasks.insert(task, held);
        self.metrics.in_flight.set(self.tasks.len() as u64);
    }

    /// Takes `task` out of the table; `None` if this dispatcher does not hold it (any more).
    pub fn remove(&mut self, task: TaskId) -> Option<InFlight> {
        let held = self.tasks.remove(&task)?;
        self.metrics.in_flight.set(self.tasks.len() as u64);
        Some(held)
    }

    /// Moves the claim on a task this dispatcher holds to `entry` (the task was requeued
    /// under it and this dispatcher took it again): the execution in hand answers for it.
    pub fn move_claim(&mut self, entry: QueueEntry) {
        if let Some(held) = self.tasks.get_mut(&entry.task_id) {
            held.entry = entry;
        }
    }

    /// The queue entry `task` was started from, if this dispatcher holds it: its claim.
    pub fn claim(&self, task: TaskId) -> Option<String> {
        self.tasks
            .get(&task)
            .map(|held| held.entry.entry_id.clone())
    }

    pub fn contains(&self, task: TaskId) -> bool {
        self.tasks.contains_key(&task)
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}
