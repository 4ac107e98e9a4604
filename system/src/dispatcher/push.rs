//! `push` mode: a ROUTER here, a DEALER at each worker. Workers register their capacity; each
//! task goes to the live worker with the most free executors, never beyond its capacity with
//! `prefetch` more per executor; heartbeats flow both ways, and a worker silent for `misses`
//! intervals is dead.
//!
//! The dispatcher fetches tasks for the workers' credits (see [`Capacity`]): a registration
//! brings its executors and their prefetch, each result gives one back, and a lost worker's
//! credits go with it.

use std::collections::VecDeque;
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

/// Runs a push-mode dispatcher until `shutdown`.
pub async fn run(
    config: DispatcherConfig,
    remote: RemoteConfig,
    shutdown: CancellationToken,
) -> Result<(), DispatcherError> {
    let capacity = Capacity::push(remote.prefetch);
    remote::run(config, remote, capacity, shutdown, |bridge, workers| Push {
        bridge,
        workers,
        backlog: VecDeque::new(),
    })
    .await
}

struct Push<O: Outbox> {
    bridge: O,
    workers: Workers,
    /// Tasks started but not yet sent: no worker had a free credit.
    backlog: VecDeque<Job>,
}

impl<O: Outbox + Send + 'static> RemoteMode for Push<O> {
    fn on_inbound(&mut self, event: Inbound, now: Instant) {
        let (frames, peer) = match event {
            Inbound::Message { frames, peer, .. } => (frames, peer),
            Inbound::SendFailed { frames, error, .. } => {
                // The peer's connection is gone: that worker is dead now, not in a few beats.
                let identity = frames.first().cloned().unwrap_or_default();
                let name = self
                    .workers
                    .registry
                    .iter()
                    .find(|(_, w)| w.identity == identity)
                    .map(|(n, _)| n.to_owned());
                if let Some(name) = name {
                    let reason = format!("worker {name} disconnected");
                    if self.workers.remove(&name, &reason) {
                        tracing::warn!(worker = %name, %error, "worker connection gone");
                    }
                }
                return;
            }
        };
        let [identity, payload] = <[Vec<u8>; 2]>::try_from(frames).unwrap_or_default();
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
                    self.send(identity, &welcome);
                    self.assign(now);
                }
                Err(rejection) => self.send(identity, &rejection),
            },
            ToDispatcher::Results {
                worker, results, ..
            } => {
                if self.workers.registry.heard_from(&worker, now) {
                    let dropped = self.workers.accept_results(&worker, results);
                    if !dropped.is_empty() {
                        self.ack(identity, dropped);
                    }
                    self.assign(now);
                } else {
                    self.reregister(identity, &worker);
                }
            }
            ToDispatcher::Heartbeat { worker, .. } => {
                if !self.workers.registry.heard_from(&worker, now) {
                    self.reregister(identity, &worker);
                }
            }
            ToDispatcher::Ask { worker, .. } => {
                tracing::warn!(%worker, "a pull worker asked a push dispatcher; ignoring it");
            }
        }
    }

    fn enqueue(&mut self, job: Job) {
        self.backlog.push_back(job);
    }

    fn cancel(&mut self, task: TaskId) {
        let Some(worker) = self.workers.cancel(&mut self.backlog, task) else {
            return;
        };
        if let Some(w) = self.workers.registry.get(&worker) {
            let identity = w.identity.clone();
            self.send(identity, &ToWorker::Cancel { tasks: vec![task] });
        }
    }

    fn recorded(&mut self, tasks: Vec<TaskId>) {
        for (worker, tasks) in self.workers.recorded(tasks) {
            if let Some(w) = self.workers.registry.get(&worker) {
                let identity = w.identity.clone();
                self.ack(identity, tasks);
            }
        }
    }

    /// Sends backlog tasks to the workers with the most free executors.
    fn assign(&mut self, now: Instant) {
        while !self.backlog.is_empty() {
            let Some(name) = self
                .workers
                .registry
                .pick(self.workers.config.prefetch)
                .map(str::to_owned)
            else {
                return;
            };
            let job = self.backlog.pop_front().expect("backlog is not empty");
            let task = self.workers.assign(&name, &job, now);
            let identity = self
                .workers
                .registry
                .get(&name)
                .map(|w| w.identity.clone())
                .unwrap_or_default();
            let tasks = vec![task];
            self.send(
                identity,
                &ToWorker::Tasks {
                    tasks,
                    acked: Vec::new(),
                },
            );
        }
    }

    fn on_tick(&mut self, now: Instant) {
        self.workers.check(now);
        let identities: Vec<Vec<u8>> = self
            .workers
            .registry
            .iter()
            .map(|(_, w)| w.identity.clone())
            .collect();
        for identity in identities {
            self.send(identity, &ToWorker::Heartbeat);
        }
        self.assign(now);
    }

    fn tick_every(&self) -> Duration {
        self.workers.config.heartbeat
    }
}

impl<O: Outbox> Push<O> {
    fn send(&self, identity: Vec<u8>, message: &ToWorker) {
        self.bridge
            .send(0, vec![identity, protocol::encode(message)]);
    }

    /// Tells a worker it may forget the results of `tasks`.
    fn ack(&self, identity: Vec<u8>, tasks: Vec<TaskId>) {
        let cancel = Vec::new();
        self.send(identity, &ToWorker::Ack { tasks, cancel });
    }

    fn reregister(&self, identity: Vec<u8>, worker: &str) {
        tracing::info!(%worker, "unknown worker; asking it to register");
        let reason = format!("dispatcher does not know worker {worker}");
        self.send(identity, &ToWorker::Reregister { reason });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::sync::mpsc;

    use super::*;
    use crate::dispatcher::testing::{Recorder, fetch, inbound, job, parts};
    use crate::protocol::Completion;
    use crate::task::FunctionId;
    use crate::task::TaskOutcome;

    fn push() -> (
        Push<Recorder>,
        Arc<Capacity>,
        mpsc::UnboundedReceiver<Completion>,
    ) {
        let (workers, capacity, completions) = parts(1, Capacity::push(1));
        let push = Push {
            bridge: Recorder::default(),
            workers,
            backlog: VecDeque::new(),
        };
        (push, capacity, completions)
    }

    fn register(push: &mut Push<Recorder>, name: &str, capacity: u32, now: Instant) {
        let message = ToDispatcher::Register {
            worker: name.into(),
            capacity,
            secret: None,
        };
        push.on_inbound(inbound(name.as_bytes(), false, &message), now);
        assert!(matches!(
            push.bridge.take()[..],
            [(_, ToWorker::Welcome { .. })]
        ));
    }

    #[test]
    fn credits_follow_registrations_and_results() {
        let t0 = Instant::now();
        let (mut push, capacity, _) = push();
        register(&mut push, "w", 2, t0);
        assert_eq!(
            capacity.available(),
            4,
            "2 executors, each with one prefetch"
        );
        let task = fetch(&capacity, FunctionId::new_random());
        let task_id = task.task_id;
        push.backlog.push_back(task);
        push.assign(t0);
        let sent = push.bridge.take();
        assert!(
            matches!(&sent[..], [(id, ToWorker::Tasks { tasks, .. })] if id == b"w" && tasks.len() == 1)
        );

        let done = Completion {
            task_id,
            outcome: TaskOutcome::Completed("R".into()),
            started_at: Some(1),
            finished_at: 2,
            executor: Some("w/0".into()),
        };
        let message = ToDispatcher::Results {
            worker: "w".into(),
            results: vec![done],
            started: Vec::new(),
        };
        push.on_inbound(inbound(b"w", false, &message), t0);
        assert!(
            push.bridge.take().is_empty(),
            "no acknowledgement before the result is recorded"
        );
        assert_eq!(capacity.available(), 4, "the credit came back");
        push.recorded(vec![task_id]);
        let sent = push.bridge.take();
        assert!(matches!(&sent[..], [(_, ToWorker::Ack { tasks, .. })] if tasks == &vec![task_id]));
    }

    #[test]
    fn tasks_go_to_the_most_free_worker_and_wait_when_none_has_credit() {
        let t0 = Instant::now();
        let (mut push, capacity, _) = push();
        register(&mut push, "big", 3, t0);
        register(&mut push, "small", 1, t0);
        let f = FunctionId::new_random();
        // The fetcher reads once half the credit is free: here all of it, in one read.
        let read = capacity.try_reserve(8).expect("every credit is free");
        assert_eq!(read.count(), 8);
        read.start(8);
        for _ in 0..8 {
            push.backlog.push_back(job(f));
        }
        // One more than the credits, as an over-eager fetch could take.
        push.backlog.push_back(job(f));
        push.assign(t0);
        let mut per_worker = std::collections::HashMap::<Vec<u8>, usize>::new();
        for (identity, _) in push.bridge.take() {
            *per_worker.entry(identity).or_default() += 1;
        }
        assert_eq!(
            per_worker[&b"big".to_vec()],
            6,
            "3 executors, 1 prefetch each"
        );
        assert_eq!(per_worker[&b"small".to_vec()], 2, "1 executor, 1 prefetch");
        assert_eq!(push.backlog.len(), 1, "the rest waits for a credit");
    }

    #[test]
    fn a_worker_that_misses_heartbeats_is_dead_and_its_credits_are_withdrawn() {
        let t0 = Instant::now();
        let (mut push, capacity, mut completions) = push();
        register(&mut push, "w", 2, t0);
        push.backlog
            .push_back(fetch(&capacity, FunctionId::new_random()));
        push.assign(t0);
        push.on_tick(t0 + Duration::from_secs(2));
        let beats = push.bridge.take();
        assert!(
            beats.iter().any(|(_, m)| *m == ToWorker::Heartbeat),
            "heartbeats go out"
        );
        assert!(completions.try_recv().is_err());
        push.on_tick(t0 + Duration::from_millis(3001));
        let lost = completions.try_recv().expect("its task is reported lost");
        assert!(matches!(&lost.outcome, TaskOutcome::Lost(why) if why.contains("worker w")));
        assert_eq!(capacity.available(), 0, "no credits for a dead worker");
        let message = ToDispatcher::Heartbeat {
            worker: "w".into(),
            started: Vec::new(),
        };
        push.on_inbound(inbound(b"w", false, &message), t0 + Duration::from_secs(4));
        assert!(matches!(
            push.bridge.take()[..],
            [(_, ToWorker::Reregister { .. })]
        ));
    }
}
