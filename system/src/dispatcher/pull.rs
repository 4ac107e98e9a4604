//! `pull` mode: workers ask for work over ZeroMQ REQ sockets; a ROUTER here serves them.
//!
//! An ask names how many executors are free and is *parked* until work arrives, so an idle
//! worker gets a newly queued task as soon as the dispatcher has it, with no polling cycle.
//! Parked asks are answered empty after a heartbeat interval, which makes the worker ask again
//! and proves it alive. REQ is lockstep, so each worker has a second REQ socket for results
//! and heartbeats: a parked ask never holds a finished result hostage. Results also ride on
//! the next ask when there is one to send.
//!
//! Fetch permits follow what workers ask for: each worker holds a grant, the most room its
//! asks named less what it was given since. An ask naming more room raises the grant by the
//! difference; one naming less leaves it (a worker asks for its idle executors first, so its
//! asks are not monotonic). Permits are thus never withdrawn while the worker lives: a
//! withdrawal can miss permits the fetcher holds in a blocking read, and the surplus would
//! grow with every burst. What a grant may fetch beyond the worker's current ask waits in the
//! backlog for its next ask, at most the worker's capacity and prefetch. The grant is
//! withdrawn when the worker is gone.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use super::remote::{self, RemoteConfig, RemoteMode, Workers};
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
    remote::run(config, remote, shutdown, |bridge, workers| Pull {
        bridge,
        workers,
        backlog: VecDeque::new(),
        parked: VecDeque::new(),
        cancels: HashMap::new(),
        granted: HashMap::new(),
    })
    .await
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
    /// Per worker, the fetch permits its asks stand for (see the module comment).
    granted: HashMap<String, usize>,
}

impl<O: Outbox + Send + 'static> RemoteMode for Pull<O> {
    fn on_inbound(&mut self, event: Inbound, now: Instant) {
        let frames = match event {
            Inbound::Message { frames, .. } => frames,
            Inbound::SendFailed { frames, error, .. } => {
                self.on_send_failed(frames, &error);
                return;
            }
        };
        let [identity, _, payload] = <[Vec<u8>; 3]>::try_from(frames).unwrap_or_default();
        let Some(message) = remote::decode(&payload) else {
            return;
        };
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
                now,
            ) {
                Ok((_, welcome)) => {
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
            } => {
                let known = self.workers.registry.heard_from(&worker, now);
                self.workers.accept_results(results);
                if !known {
                    self.reregister(identity, &worker);
                    return;
                }
                self.grant(&worker, free as usize);
                self.parked.push_back(Parked {
                    identity,
                    worker,
                    free,
                    since: now,
                });
                self.assign(now);
            }
            ToDispatcher::Results { worker, results } => {
                let known = self.workers.registry.heard_from(&worker, now);
                let (ids, _) = self.workers.accept_results(results);
                if known {
                    let cancel = self.cancels.remove(&worker).unwrap_or_default();
                    self.reply(identity, &ToWorker::Ack { tasks: ids, cancel });
                } else {
                    self.reregister(identity, &worker);
                }
            }
            ToDispatcher::Heartbeat { worker } => {
                if self.workers.registry.heard_from(&worker, now) {
                    let cancel = self.cancels.remove(&worker).unwrap_or_default();
                    self.reply(
                        identity,
                        &ToWorker::Ack {
                            tasks: Vec::new(),
                            cancel,
                        },
                    );
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
            self.reply(ask.identity, &ToWorker::Tasks { tasks });
            if let Some(grant) = self.granted.get_mut(&ask.worker) {
                *grant = grant.saturating_sub(take);
            }
        }
    }

    fn on_tick(&mut self, now: Instant) {
        let (dead, _) = self.workers.check(now);
        for worker in &dead {
            self.unpark_worker(&worker.name);
        }
        // Keep-alive: answer asks parked for a heartbeat interval, so their workers ask again.
        let heartbeat = self.workers.config.heartbeat;
        while self
            .parked
            .front()
            .is_some_and(|p| now.saturating_duration_since(p.since) >= heartbeat)
        {
            let ask = self.parked.pop_front().expect("front exists");
            self.reply(ask.identity, &ToWorker::Tasks { tasks: Vec::new() });
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

    fn reregister(&self, identity: Vec<u8>, worker: &str) {
        tracing::info!(%worker, "unknown worker; asking it to register");
        let reason = format!("dispatcher does not know worker {worker}");
        self.reply(identity, &ToWorker::Reregister { reason });
    }

    /// A reply could not be delivered: the asking socket is gone. Tasks in it are lost.
    fn on_send_failed(&mut self, frames: Vec<Vec<u8>>, error: &zmq::Error) {
        let Some(ToWorker::Tasks { tasks }) = frames.get(2).and_then(|f| protocol::decode(f).ok())
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

    /// Raises `worker`'s grant to the room its ask names, adding the difference to the fetch
    /// permits; a smaller ask leaves the grant as it is (see the module comment).
    fn grant(&mut self, worker: &str, free: usize) {
        let grant = self.granted.entry(worker.to_owned()).or_insert(0);
        if free > *grant {
            self.workers.freed(free - *grant);
            *grant = free;
        }
    }

    /// Drops the parked asks and the grant of `worker` (its sockets were replaced or it died).
    fn unpark_worker(&mut self, worker: &str) {
        self.parked.retain(|p| p.worker != worker);
        self.cancels.remove(worker);
        self.workers
            .vanished(self.granted.remove(worker).unwrap_or(0));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use std::sync::Arc;

    use tokio::sync::{Semaphore, mpsc};

    use super::*;
    use crate::dispatcher::remote::testing::{HEARTBEAT, Recorder, fetch, inbound, parts};
    use crate::task::FunctionId;
    use crate::task::TaskOutcome;

    fn pull() -> (
        Pull<Recorder>,
        Arc<Semaphore>,
        mpsc::UnboundedReceiver<crate::protocol::Completion>,
    ) {
        let (workers, capacity, completions) = parts(0);
        let pull = Pull {
            bridge: Recorder::default(),
            workers,
            backlog: VecDeque::new(),
            parked: VecDeque::new(),
            cancels: HashMap::new(),
            granted: HashMap::new(),
        };
        (pull, capacity, completions)
    }

    fn register(pull: &mut Pull<Recorder>, name: &str, now: Instant) {
        let message = ToDispatcher::Register {
            worker: name.into(),
            capacity: 2,
            secret: None,
        };
        pull.on_inbound(inbound(name.as_bytes(), true, &message), now);
        assert!(matches!(
            pull.bridge.take()[..],
            [(_, ToWorker::Welcome { .. })]
        ));
    }

    fn ask(worker: &str, free: u32) -> ToDispatcher {
        ToDispatcher::Ask {
            worker: worker.into(),
            free,
            results: Vec::new(),
        }
    }

    #[test]
    fn a_parked_ask_gets_work_the_moment_it_arrives_and_keeps_its_room() {
        let t0 = Instant::now();
        let (mut pull, capacity, _) = pull();
        register(&mut pull, "w", t0);
        pull.on_inbound(inbound(b"w-ask", true, &ask("w", 2)), t0);
        assert!(
            pull.bridge.take().is_empty(),
            "no work yet: the ask is parked"
        );
        assert_eq!(
            capacity.available_permits(),
            2,
            "the fetcher may take two tasks"
        );

        let f = FunctionId::new_random();
        pull.backlog.push_back(fetch(&capacity, f));
        pull.assign(t0);
        let sent = pull.bridge.take();
        let [(identity, ToWorker::Tasks { tasks })] = &sent[..] else {
            panic!("{sent:?}")
        };
        assert_eq!(identity, b"w-ask");
        assert_eq!(tasks.len(), 1);
        assert_eq!(
            tasks[0].function.as_deref(),
            Some("BODY"),
            "first time: body sent"
        );
        assert_eq!(
            capacity.available_permits(),
            1,
            "the worker still has room for one, until its next ask says otherwise"
        );

        pull.on_inbound(inbound(b"w-ask", true, &ask("w", 1)), t0);
        assert_eq!(capacity.available_permits(), 1, "the same room: no change");
        pull.backlog.push_back(fetch(&capacity, f));
        pull.assign(t0);
        let sent = pull.bridge.take();
        let [(_, ToWorker::Tasks { tasks })] = &sent[..] else {
            panic!("{sent:?}")
        };
        assert_eq!(tasks[0].function, None, "the worker already has the body");
    }

    #[test]
    fn a_cancelled_task_is_dropped_from_the_backlog_or_named_in_its_workers_next_ack() {
        let t0 = Instant::now();
        let (mut pull, capacity, mut completions) = pull();
        register(&mut pull, "w", t0);
        let f = FunctionId::new_random();

        // Still in the backlog (no ask parked): dropped, its place and completion returned.
        capacity.add_permits(1);
        let waiting = fetch(&capacity, f);
        let waiting_id = waiting.task_id;
        pull.backlog.push_back(waiting);
        pull.cancel(waiting_id);
        assert!(pull.backlog.is_empty());
        assert_eq!(capacity.available_permits(), 1, "the place came back");
        let done = completions.try_recv().expect("a completion for the core");
        assert_eq!(done.task_id, waiting_id);
        assert!(
            matches!(done.outcome, TaskOutcome::WorkerFailure(ref m) if m.contains("cancelled"))
        );

        // Held by the worker: named in the answer to its next heartbeat, once.
        pull.on_inbound(inbound(b"w-ask", true, &ask("w", 1)), t0);
        pull.backlog.push_back(fetch(&capacity, f));
        pull.assign(t0);
        let [(_, ToWorker::Tasks { tasks })] = &pull.bridge.take()[..] else {
            panic!("the task was not handed out")
        };
        let held = tasks[0].task_id;
        pull.cancel(held);
        assert!(
            pull.bridge.take().is_empty(),
            "a REQ worker hears only answers"
        );
        let heartbeat = ToDispatcher::Heartbeat { worker: "w".into() };
        pull.on_inbound(inbound(b"w-results", true, &heartbeat), t0);
        let sent = pull.bridge.take();
        assert!(
            matches!(&sent[..], [(_, ToWorker::Ack { cancel, .. })] if cancel == &vec![held]),
            "{sent:?}"
        );
        pull.on_inbound(inbound(b"w-results", true, &heartbeat), t0);
        let sent = pull.bridge.take();
        assert!(
            matches!(&sent[..], [(_, ToWorker::Ack { cancel, .. })] if cancel.is_empty()),
            "{sent:?}"
        );
    }

    #[test]
    fn a_worker_with_idle_executors_is_served_before_an_older_prefetch_ask() {
        let t0 = Instant::now();
        let (mut pull, capacity, _) = pull();
        register(&mut pull, "busy", t0);
        register(&mut pull, "idle", t0);
        let f = FunctionId::new_random();
        pull.on_inbound(inbound(b"busy-ask", true, &ask("busy", 2)), t0);
        for _ in 0..2 {
            pull.backlog.push_back(fetch(&capacity, f));
        }
        pull.assign(t0);
        pull.bridge.take();
        // Both executors of "busy" run; it asks for prefetch before "idle" asks at all.
        pull.on_inbound(inbound(b"busy-ask", true, &ask("busy", 2)), t0);
        pull.on_inbound(inbound(b"idle-ask", true, &ask("idle", 2)), t0);
        pull.backlog.push_back(fetch(&capacity, f));
        pull.assign(t0);
        let sent = pull.bridge.take();
        assert!(
            matches!(&sent[..], [(identity, ToWorker::Tasks { tasks })] if identity == b"idle-ask" && tasks.len() == 1),
            "{sent:?}"
        );
    }

    #[test]
    fn parked_asks_are_kept_alive_once_per_heartbeat() {
        let t0 = Instant::now();
        let (mut pull, capacity, _) = pull();
        register(&mut pull, "w", t0);
        pull.on_inbound(inbound(b"w-ask", true, &ask("w", 2)), t0);
        pull.on_tick(t0 + HEARTBEAT / 2);
        assert!(pull.bridge.take().is_empty());
        pull.on_tick(t0 + HEARTBEAT);
        let sent = pull.bridge.take();
        assert!(
            matches!(&sent[..], [(_, ToWorker::Tasks { tasks })] if tasks.is_empty()),
            "{sent:?}"
        );
        assert_eq!(
            capacity.available_permits(),
            2,
            "the grant outlives the keep-alive"
        );
        pull.on_inbound(inbound(b"w-ask", true, &ask("w", 2)), t0 + HEARTBEAT);
        assert_eq!(capacity.available_permits(), 2, "asking again adds nothing");
        pull.on_inbound(inbound(b"w-ask", true, &ask("w", 1)), t0 + HEARTBEAT);
        assert_eq!(
            capacity.available_permits(),
            2,
            "a smaller ask leaves the grant: nothing is withdrawn while the worker lives"
        );
        pull.on_inbound(inbound(b"w-ask", true, &ask("w", 3)), t0 + HEARTBEAT);
        assert_eq!(capacity.available_permits(), 3, "a larger one raises it");
    }

    #[test]
    fn an_unknown_worker_is_told_to_register_but_its_results_count() {
        let t0 = Instant::now();
        let (mut pull, _, mut completions) = pull();
        let done = crate::protocol::Completion {
            task_id: crate::task::TaskId::new_random(),
            outcome: TaskOutcome::Completed("R".into()),
            started_at: None,
            finished_at: 1,
            executor: None,
        };
        let message = ToDispatcher::Ask {
            worker: "ghost".into(),
            free: 1,
            results: vec![done.clone()],
        };
        pull.on_inbound(inbound(b"g", true, &message), t0);
        assert!(matches!(
            pull.bridge.take()[..],
            [(_, ToWorker::Reregister { .. })]
        ));
        assert_eq!(completions.try_recv().unwrap(), done);
    }

    #[test]
    fn a_silent_worker_dies_with_its_tasks_and_parked_asks() {
        let t0 = Instant::now();
        let (mut pull, capacity, mut completions) = pull();
        register(&mut pull, "w", t0);
        pull.on_inbound(inbound(b"w-ask", true, &ask("w", 2)), t0);
        pull.backlog
            .push_back(fetch(&capacity, FunctionId::new_random()));
        pull.assign(t0);
        pull.bridge.take();
        pull.on_inbound(inbound(b"w-ask", true, &ask("w", 1)), t0);
        pull.on_tick(t0 + Duration::from_secs(3));
        assert!(
            completions.try_recv().is_err(),
            "alive at exactly the window"
        );
        pull.on_tick(t0 + Duration::from_millis(3001));
        let lost = completions.try_recv().expect("its task is reported");
        assert!(matches!(&lost.outcome, TaskOutcome::Lost(why) if why.contains("worker w")));
        assert!(pull.parked.is_empty());
        assert_eq!(capacity.available_permits(), 0);
    }
}
