//! `pull` mode: workers ask for work over ZeroMQ REQ sockets; a ROUTER here serves them.
//!
//! An ask names how many executors are free and is *parked* until work arrives, so an idle
//! worker gets a newly queued task as soon as the dispatcher has it, with no polling cycle.
//! Parked asks are answered empty after a heartbeat interval, which makes the worker ask again
//! and proves it alive. REQ is lockstep, so each worker has a second REQ socket for results
//! and heartbeats: a parked ask never holds a finished result hostage. Results also ride on
//! the next ask when there is one to send.
//!
//! Results are acknowledged only once recorded: a `results` report is answered when the core
//! has recorded all it carried (or after a heartbeat interval with those it has), and the
//! acknowledgements of results recorded later ride on the worker's next answer of any kind.
//!
//! The dispatcher fetches tasks for what workers ask: each ask raises its worker's grant in
//! the [`Capacity`] (never lowers it, see there), and a task handed out takes its place out
//! of the grant. What a grant may fetch beyond the worker's current ask waits in the backlog
//! for its next ask, at most the worker's capacity and prefetch.

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::capacity::Capacity;
use super::remote::{self, RemoteConfig, RemoteMode};
use super::workers::Workers;
use super::{DispatcherConfig, DispatcherError};
use crate::bridge::{Inbound, Outbox};
use crate::executor::Job;
use crate::protocol::{self, ToDispatcher, ToWorker};
use crate::task::TaskId;

/// Runs a pull-mode dispatcher until `shutdown`.
pub async fn run(
    config: DispatcherConfig,
    remote: RemoteConfig,
    shutdown: CancellationToken,
) -> Result<(), DispatcherError> {
    remote::run(
        config,
        remote,
        Capacity::pull(),
        shutdown,
        |bridge, workers| Pull {
            bridge,
            workers,
            backlog: VecDeque::new(),
            parked: VecDeque::new(),
            cancels: HashMap::new(),
            acks: HashMap::new(),
            reports: HashMap::new(),
        },
    )
    .await
}

/// A `results` report waiting for its results to be recorded.
struct Report {
    identity: Vec<u8>,
    /// Its results the core has not recorded yet.
    unrecorded: HashSet<TaskId>,
    since: Instant,
}

/// An ask waiting for work.
struct Parked {
    identity: Vec<u8>,
    worker: String,
    free: u32,
    since: Instant,
}

struct Pull<O: Outbox> {
    bridge: O,
    workers: Workers,
    /// Tasks started but not yet handed out: no ask was waiting.
    backlog: VecDeque<Job>,
    parked: VecDeque<Parked>,
    /// Per worker, cancelled tasks to name in its next `ack`.
    cancels: HashMap<String, Vec<TaskId>>,
    /// Per worker, recorded results to acknowledge in its next answer.
    acks: HashMap<String, Vec<TaskId>>,
    /// Per worker, its `results` report waiting for its results to be recorded.
    reports: HashMap<String, Report>,
}

impl<O: Outbox + Send + 'static> RemoteMode for Pull<O> {
    fn on_inbound(&mut self, event: Inbound, now: Instant) {
        let (frames, peer) = match event {
            Inbound::Message { frames, peer, .. } => (frames, peer),
            Inbound::SendFailed { frames, error, .. } => {
                self.on_send_failed(frames, &error);
                return;
            }
        };
        let [identity, _, payload] = <[Vec<u8>; 3]>::try_from(frames).unwrap_or_default();
        let Some(message) = remote::decode(&payload) else {
            return;
        };
        if !self.workers.accepts(&message, peer.as_deref()) {
            return;
        }
        self.workers
            .started(message.worker(), message.started(), now);
        match message {
            ToDispatcher::Register {
                worker,
                capacity,
                secret,
            } => match self.workers.register(
                &worker,
                capacity,
                secret.as_deref(),
                identity.clone(),
                peer.as_deref(),
                now,
            ) {
                Ok(welcome) => {
                    // Asks parked on the old registration's sockets will never be answered.
                    self.unpark_worker(&worker);
                    self.reply(identity, &welcome);
                }
                Err(rejection) => self.reply(identity, &rejection),
            },
            ToDispatcher::Ask {
                worker,
                free,
                results,
                ..
            } => {
                if !self.workers.registry.heard_from(&worker, now) {
                    self.reregister(identity, &worker);
                    return;
                }
                let dropped = self.workers.accept_results(&worker, results);
                self.ack_later(&worker, dropped);
                // A worker never has room for more than its executors: a larger ask (a
                // buggy or hostile peer) would take places no executor can fill.
                let capacity = self.workers.registry.get(&worker).map_or(0, |w| w.capacity);
                let free = free.min(capacity);
                self.workers.capacity.worker_asked(&worker, free as usize);
                self.parked.push_back(Parked {
                    identity,
                    worker,
                    free,
                    since: now,
                });
                self.assign(now);
            }
            ToDispatcher::Results {
                worker, results, ..
            } => {
                if self.workers.registry.heard_from(&worker, now) {
                    let sent: Vec<TaskId> = results.iter().map(|r| r.task_id).collect();
                    let dropped = self.workers.accept_results(&worker, results);
                    let unrecorded = sent.into_iter().filter(|t| !dropped.contains(t)).collect();
                    self.ack_later(&worker, dropped);
                    let report = Report {
                        identity,
                        unrecorded,
                        since: now,
                    };
                    if report.unrecorded.is_empty() {
                        self.answer_report(&worker, report.identity);
                    } else {
                        self.reports.insert(worker, report);
                    }
                } else {
                    self.reregister(identity, &worker);
                }
            }
            ToDispatcher::Heartbeat { worker, .. } => {
                if self.workers.registry.heard_from(&worker, now) {
                    self.answer_report(&worker, identity);
                } else {
                    self.reregister(identity, &worker);
                }
            }
        }
    }

    fn enqueue(&mut self, job: Job) {
        self.backlog.push_back(job);
    }

    /// A REQ worker hears only answers: the cancellation rides on its next `ack` (it sends a
    /// heartbeat or results at least once per heartbeat interval).
    fn cancel(&mut self, task: TaskId) {
        if let Some(worker) = self.workers.cancel(&mut self.backlog, task) {
            self.cancels.entry(worker).or_default().push(task);
        }
    }

    fn recorded(&mut self, tasks: Vec<TaskId>) {
        for (worker, tasks) in self.workers.recorded(tasks) {
            let complete = self.reports.get_mut(&worker).is_some_and(|report| {
                for task in &tasks {
                    report.unrecorded.remove(task);
                }
                report.unrecorded.is_empty()
            });
            self.ack_later(&worker, tasks);
            if complete {
                let report = self.reports.remove(&worker).expect("just seen");
                self.answer_report(&worker, report.identity);
            }
        }
    }

    /// Answers parked asks, with as many backlog tasks as each has room for.
    fn assign(&mut self, now: Instant) {
        while !self.backlog.is_empty() {
            // The worker with the most idle executors first (the oldest ask among equals):
            // an ask for prefetch never takes a task while another worker has an idle
            // executor waiting.
            let idle = |p: &Parked| {
                self.workers
                    .registry
                    .get(&p.worker)
                    .map_or(0, super::registry::WorkerEntry::free)
            };
            let Some(next) = (0..self.parked.len())
                .max_by_key(|&i| (idle(&self.parked[i]), std::cmp::Reverse(i)))
            else {
                return;
            };
            let ask = self.parked.remove(next).expect("index in range");
            let take = (ask.free as usize).min(self.backlog.len());
            let tasks = self
                .backlog
                .drain(..take)
                .collect::<Vec<_>>()
                .iter()
                .map(|job| self.workers.assign(&ask.worker, job, now))
                .collect();
            let acked = self.acks.remove(&ask.worker).unwrap_or_default();
            self.reply(ask.identity, &ToWorker::Tasks { tasks, acked });
        }
    }

    fn on_tick(&mut self, now: Instant) {
        for worker in self.workers.check(now) {
            self.unpark_worker(&worker);
        }
        // Keep-alive: answer asks parked for a heartbeat interval, so their workers ask again.
        let heartbeat = self.workers.config.heartbeat;
        while self
            .parked
            .front()
            .is_some_and(|p| now.saturating_duration_since(p.since) >= heartbeat)
        {
            let ask = self.parked.pop_front().expect("front exists");
            let acked = self.acks.remove(&ask.worker).unwrap_or_default();
            let tasks = Vec::new();
            self.reply(ask.identity, &ToWorker::Tasks { tasks, acked });
        }
        // Reports waiting as long are answered with what is recorded, so that their workers
        // do not take the dispatcher for gone; the rest is acknowledged in later answers.
        let late: Vec<String> = self
            .reports
            .iter()
            .filter(|(_, r)| now.saturating_duration_since(r.since) >= heartbeat)
            .map(|(worker, _)| worker.clone())
            .collect();
        for worker in late {
            let report = self.reports.remove(&worker).expect("just seen");
            self.answer_report(&worker, report.identity);
        }
    }

    fn tick_every(&self) -> Duration {
        self.workers.config.heartbeat / 2
    }
}

impl<O: Outbox> Pull<O> {
    /// Answers a REQ peer (the empty frame is REQ's envelope delimiter).
    fn reply(&self, identity: Vec<u8>, message: &ToWorker) {
        self.bridge
            .send(0, vec![identity, Vec::new(), protocol::encode(message)]);
    }

    /// Notes `tasks` to acknowledge in `worker`'s next answer.
    fn ack_later(&mut self, worker: &str, tasks: Vec<TaskId>) {
        if !tasks.is_empty() {
            self.acks
                .entry(worker.to_owned())
                .or_default()
                .extend(tasks);
        }
    }

    /// Answers a worker's `results` or `heartbeat` with the acknowledgements and
    /// cancellations waiting for it.
    fn answer_report(&mut self, worker: &str, identity: Vec<u8>) {
        let tasks = self.acks.remove(worker).unwrap_or_default();
        let cancel = self.cancels.remove(worker).unwrap_or_default();
        self.reply(identity, &ToWorker::Ack { tasks, cancel });
    }

    fn reregister(&self, identity: Vec<u8>, worker: &str) {
        tracing::info!(%worker, "unknown worker; asking it to register");
        let reason = format!("dispatcher does not know worker {worker}");
        self.reply(identity, &ToWorker::Reregister { reason });
    }

    /// A reply could not be delivered: the asking socket is gone. Tasks in it are lost.
    fn on_send_failed(&mut self, frames: Vec<Vec<u8>>, error: &zmq::Error) {
        let Some(ToWorker::Tasks { tasks, .. }) =
            frames.get(2).and_then(|f| protocol::decode(f).ok())
        else {
            return;
        };
        tracing::warn!(%error, tasks = tasks.len(), "could not deliver tasks to a pull worker");
        for task in &tasks {
            if let Some(worker) = self.workers.registry.complete(task.task_id) {
                self.workers
                    .lost([task.task_id], &format!("worker {worker} disconnected"));
            }
        }
    }

    /// Drops the parked asks and reports, pending cancellations and acknowledgements of
    /// `worker` (its sockets were replaced or it died; its grant went with its registration,
    /// and it sends again what was not acknowledged).
    fn unpark_worker(&mut self, worker: &str) {
        self.parked.retain(|p| p.worker != worker);
        self.cancels.remove(worker);
        self.acks.remove(worker);
        self.reports.remove(worker);
    }
}

#[cfg(test)]
mod tests;
