//! The pull worker: asks the dispatcher for work over one REQ socket and reports results and
//! heartbeats over a second one, so a parked ask never holds a result back (see
//! `dispatcher::pull` for the other side).

use std::time::Instant;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::runner::Runner;
use super::{Session, SessionEnd, WorkerError, await_welcome, decode};
use crate::bridge::{Bridge, Inbound};
use crate::protocol::{self, ToDispatcher, ToWorker};

const WORK: usize = 0;
const RESULTS: usize = 1;

/// One connection to the dispatcher, from registration until it is lost or shutdown.
pub(super) async fn session(
    session: &Session<'_>,
    runner: &mut Runner,
    shutdown: &CancellationToken,
) -> Result<SessionEnd, WorkerError> {
    let work = session.connect(zmq::REQ)?;
    let results = session.connect(zmq::REQ)?;
    let (inbox_tx, mut inbox) = mpsc::unbounded_channel();
    let bridge = Bridge::spawn(vec![work, results], inbox_tx)?;
    let send = |socket: usize, message: &ToDispatcher| {
        bridge.send(socket, vec![protocol::encode(message)]);
    };
    let config = session.config;
    let worker = config.name.clone();

    send(
        RESULTS,
        &ToDispatcher::Register {
            worker: worker.clone(),
            capacity: runner.capacity(),
            secret: config.secret.clone(),
        },
    );
    let (heartbeat, liveness) = match await_welcome(&mut inbox, shutdown).await? {
        Ok(timing) => timing,
        Err(end) => return Ok(end),
    };
    runner.new_registration();
    tracing::info!(%worker, endpoint = %session.endpoint, executors = runner.capacity(), "registered with the dispatcher");
    crate::readiness::notify(crate::readiness::Ready::WorkerRegistered);

    // When the ask in flight was sent.
    let mut ask: Option<Instant> = None;
    let mut report: Option<Instant> = None;
    let mut last_sent = Instant::now();
    loop {
        let now = Instant::now();
        if runner.drained(now) {
            return Ok(SessionEnd::Shutdown);
        }
        if ask.is_none() && !runner.draining() && runner.free() > 0 {
            send(
                WORK,
                &ToDispatcher::Ask {
                    worker: worker.clone(),
                    free: runner.free(),
                    results: runner.take_pending(),
                    started: runner.take_started(),
                },
            );
            ask = Some(now);
            last_sent = now;
        }
        if report.is_none() && runner.has_pending() {
            send(
                RESULTS,
                &ToDispatcher::Results {
                    worker: worker.clone(),
                    results: runner.take_pending(),
                    started: runner.take_started(),
                },
            );
            report = Some(now);
            last_sent = now;
        } else if report.is_none() && now >= last_sent + heartbeat {
            send(
                RESULTS,
                &ToDispatcher::Heartbeat {
                    worker: worker.clone(),
                    started: runner.take_started(),
                },
            );
            report = Some(now);
            last_sent = now;
        }

        // A parked ask is answered within 1.5 heartbeats; anything slower means trouble.
        let mut wake = last_sent + heartbeat;
        if let Some(sent) = ask {
            wake = wake.min(sent + heartbeat + liveness);
        }
        if let Some(sent) = report {
            wake = wake.min(sent + liveness);
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
                let socket = match &event {
                    Inbound::Message { socket, .. } => *socket,
                    Inbound::SendFailed { error, .. } => {
                        return Ok(SessionEnd::Reconnect(format!("send failed: {error}")));
                    }
                };
                match decode(&event) {
                    Some(ToWorker::Tasks { tasks, acked }) if socket == WORK => {
                        ask = None;
                        runner.acknowledged(acked);
                        runner.accept(tasks).await;
                    }
                    Some(ToWorker::Ack { tasks, cancel }) if socket == RESULTS => {
                        runner.acknowledged(tasks);
                        runner.cancel(cancel);
                        report = None;
                    }
                    Some(ToWorker::Reregister { reason }) => return Ok(SessionEnd::Reconnect(reason)),
                    Some(ToWorker::Rejected { reason }) => return Err(WorkerError::Rejected(reason)),
                    other => tracing::warn!(?other, socket, "unexpected message from the dispatcher"),
                }
            }
            Some(done) = runner.completions.recv() => runner.finished(done).await,
            () = tokio::time::sleep_until(wake.into()) => {
                let now = Instant::now();
                let ask_overdue = ask.is_some_and(|sent| now >= sent + heartbeat + liveness);
                let report_overdue = report.is_some_and(|sent| now >= sent + liveness);
                if ask_overdue || report_overdue {
                    return Ok(SessionEnd::Reconnect(format!("the dispatcher did not answer within {liveness:?}")));
                }
            }
        }
    }
}
