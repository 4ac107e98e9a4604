//! The push worker: a DEALER that registers its capacity, runs what the dispatcher sends,
//! reports results as they finish, and exchanges heartbeats (see `dispatcher::push`).

use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::runner::Runner;
use super::{Session, SessionEnd, WorkerError, await_welcome, decode};
use crate::bridge::{Bridge, Inbound};
use crate::protocol::{self, ToDispatcher, ToWorker};
use crate::task::TaskId;

/// One connection to the dispatcher, from registration until it is lost or shutdown.
pub(super) async fn session(
    session: &Session<'_>,
    runner: &mut Runner,
    shutdown: &CancellationToken,
) -> Result<SessionEnd, WorkerError> {
    let dealer = session.connect(zmq::DEALER)?;
    let (inbox_tx, mut inbox) = mpsc::unbounded_channel();
    let bridge = Bridge::spawn(vec![dealer], inbox_tx)?;
    let send = |message: &ToDispatcher| bridge.send(0, vec![protocol::encode(message)]);
    let config = session.config;
    let worker = config.name.clone();

    send(&ToDispatcher::Register {
        worker: worker.clone(),
        capacity: runner.capacity(),
        secret: config.secret.clone(),
    });
    let (heartbeat, liveness) = match await_welcome(&mut inbox, shutdown).await? {
        Ok(timing) => timing,
        Err(end) => return Ok(end),
    };
    runner.new_registration();
    tracing::info!(%worker, endpoint = %session.endpoint, executors = runner.capacity(), "registered with the dispatcher");
    crate::readiness::notify(crate::readiness::Ready::WorkerRegistered);

    let mut last_heard = Instant::now();
    let mut last_sent = Instant::now();
    // The last results report, while any of its results is unacknowledged, and when it was
    // sent. Results that finish meanwhile wait for its acknowledgement (or a heartbeat
    // interval, should it not come) and then go together: under load one report, and one
    // recording at the dispatcher, carries several, as pull's lockstep results socket does.
    let mut report: Option<(Instant, Vec<TaskId>)> = None;
    loop {
        let now = Instant::now();
        if runner.drained(now) {
            return Ok(SessionEnd::Shutdown);
        }
        let held = report
            .as_ref()
            .is_some_and(|(sent, _)| now < *sent + heartbeat);
        if runner.has_pending() && !held {
            let results = runner.take_pending();
            let tasks = results.iter().map(|r| r.task_id).collect();
            send(&ToDispatcher::Results {
                worker: worker.clone(),
                results,
                started: runner.take_started(),
            });
            last_sent = now;
            report = Some((now, tasks));
        } else if (runner.has_started() && !runner.has_pending()) || now >= last_sent + heartbeat {
            send(&ToDispatcher::Heartbeat {
                worker: worker.clone(),
                started: runner.take_started(),
            });
            last_sent = now;
        }
        let mut wake = (last_sent + heartbeat).min(last_heard + liveness);
        if let Some((sent, _)) = report.as_ref().filter(|_| runner.has_pending()) {
            wake = wake.min(*sent + heartbeat);
        }
        if let Some(until) = runner.drain_deadline() {
            wake = wake.min(until);
        }
        tokio::select! {
            biased;
            () = shutdown.cancelled(), if !runner.draining() => runner.begin_drain(),
            event = inbox.recv() => {
                let Some(event) = event else {
                    return Ok(SessionEnd::Reconnect("the connection's task stopped".into()));
                };
                if let Inbound::SendFailed { error, .. } = &event {
                    return Ok(SessionEnd::Reconnect(format!("send failed: {error}")));
                }
                last_heard = Instant::now();
                match decode(&event) {
                    // While draining, new tasks are left to the dispatcher to requeue.
                    Some(ToWorker::Tasks { tasks, .. }) if !runner.draining() => runner.accept(tasks).await,
                    Some(ToWorker::Ack { tasks, cancel }) => {
                        runner.acknowledged(tasks);
                        if report.as_ref().is_some_and(|(_, tasks)| runner.all_acknowledged_of(tasks)) {
                            report = None;
                        }
                        runner.cancel(cancel);
                    }
                    Some(ToWorker::Cancel { tasks }) => runner.cancel(tasks),
                    Some(ToWorker::Reregister { reason }) => return Ok(SessionEnd::Reconnect(reason)),
                    Some(ToWorker::Rejected { reason }) => return Err(WorkerError::Rejected(reason)),
                    Some(ToWorker::Heartbeat | ToWorker::Tasks { .. } | ToWorker::Welcome { .. }) => {}
                    None => tracing::warn!("malformed message from the dispatcher"),
                }
            }
            Some(done) = runner.completions.recv() => runner.finished(done).await,
            () = tokio::time::sleep_until(wake.into()) => {
                if Instant::now() >= last_heard + liveness {
                    return Ok(SessionEnd::Reconnect(format!("the dispatcher was silent for {liveness:?}")));
                }
            }
        }
    }
}
