//! The state machine behind one `POST /results` answer: a line per task as soon as the task is
//! final, the current state of the rest once the wait runs out, and an error line per task
//! left when the store fails mid-stream.

use std::collections::HashSet;
use std::convert::Infallible;

use axum::body::{Body, Bytes};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::waiters::{Waiting, Wake};
use crate::api::{ResultLine, ResultResponse};
use crate::store::{Store, StoreError};
use crate::task::TaskId;

/// Chunks sent to the response body, waiting to be written to the client.
type Chunks = mpsc::Sender<Result<Bytes, Infallible>>;

/// The state of one `POST /results` stream.
pub struct ResultStream {
    store: Store,
    /// Tasks whose line has not been written.
    pending: HashSet<TaskId>,
    /// Lines written and not yet sent.
    out: Vec<u8>,
}

impl ResultStream {
    /// Reads `ids` (distinct) once and answers with a body that streams their lines:
    /// following completions through `waiting` until `deadline`, or, without `waiting`, at
    /// once. The first read happens before answering, so an unreachable store is an error
    /// (503), not a broken stream.
    pub async fn open(
        store: Store,
        ids: &[TaskId],
        waiting: Option<Waiting>,
        deadline: Instant,
    ) -> Result<Body, StoreError> {
        let mut stream = Self {
            store,
            pending: ids.iter().copied().collect(),
            out: Vec::new(),
        };
        stream.read(ids, false).await?;
        let first = Bytes::from(std::mem::take(&mut stream.out));
        let (tx, rx) = mpsc::channel(16);
        if !first.is_empty() {
            let _ = tx.try_send(Ok(first));
        }
        if let Some(waiting) = waiting
            && !stream.pending.is_empty()
        {
            tokio::spawn(stream.follow(waiting, deadline, tx));
        } else {
            stream.finish(&tx).await;
        }
        Ok(Body::from_stream(futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) },
        )))
    }

    /// Reads `ids` and writes a line for each that is final (or for all, when `last`).
    async fn read(&mut self, ids: &[TaskId], last: bool) -> Result<(), StoreError> {
        let found = self.store.task_results(ids).await?;
        for (id, task) in ids.iter().zip(found) {
            let line = match task {
                None => ResultLine::Error {
                    task_id: *id,
                    error: format!("no task with id {id}"),
                },
                Some(task) if task.status.is_final() || last => ResultLine::Task(ResultResponse {
                    task_id: *id,
                    status: task.status,
                    result: task.result,
                }),
                Some(_) => continue,
            };
            self.write(&line);
        }
        Ok(())
    }

    /// Writes `line` unless its task has had its line already.
    fn write(&mut self, line: &ResultLine) {
        if self.pending.remove(&line.task_id()) {
            // Serializing these plain structs cannot fail.
            let _ = serde_json::to_writer(&mut self.out, line);
            self.out.push(b'\n');
        }
    }

    /// Sends what was written; `false` once the client has gone.
    async fn flush(&mut self, tx: &Chunks) -> bool {
        if self.out.is_empty() {
            return true;
        }
        let chunk = Bytes::from(std::mem::take(&mut self.out));
        tx.send(Ok(chunk)).await.is_ok()
    }

    /// Writes lines as tasks finish, until every task has its line or `deadline` passes.
    async fn follow(mut self, mut waiting: Waiting, deadline: Instant, tx: Chunks) {
        while !self.pending.is_empty() {
            let Some(first) = waiting
                .next(deadline.saturating_duration_since(Instant::now()))
                .await
            else {
                break;
            };
            let (mut done, mut reread, mut closing) = (Vec::new(), false, false);
            let mut next = Some(first);
            while let Some(wake) = next {
                match wake {
                    Wake::Done(id) => done.push(id),
                    Wake::Reread => reread = true,
                    Wake::Closing => closing = true,
                }
                next = waiting.try_next();
            }
            if closing {
                break;
            }
            if reread {
                done = self.pending.iter().copied().collect();
            } else {
                // A task that finished during the first read was answered there already.
                done.retain(|id| self.pending.contains(id));
            }
            if done.is_empty() {
                continue;
            }
            if let Err(e) = self.read(&done, false).await {
                self.fail(&e);
                break;
            }
            if !self.flush(&tx).await {
                return;
            }
        }
        self.finish(&tx).await;
    }

    /// Writes the current state of every task still pending and sends the rest.
    async fn finish(mut self, tx: &Chunks) {
        let left: Vec<TaskId> = self.pending.iter().copied().collect();
        if !left.is_empty()
            && let Err(e) = self.read(&left, true).await
        {
            self.fail(&e);
        }
        self.flush(tx).await;
    }

    /// Ends every pending task's line with the store error that stopped the stream.
    fn fail(&mut self, error: &StoreError) {
        let left: Vec<TaskId> = self.pending.iter().copied().collect();
        for task_id in left {
            self.write(&ResultLine::Error {
                task_id,
                error: format!("store unavailable: {error}"),
            });
        }
    }
}
