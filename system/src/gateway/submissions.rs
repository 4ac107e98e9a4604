//! Group commit of single submissions (`POST /execute_function`): requests that arrive while a
//! submission is on its way to Redis wait for it and then go together, one script call per
//! function, so under load each call (and its round trip) carries many tasks; an idle gateway
//! submits a request at once, with no timer. Each request still gets its own answer, and the
//! script creates all or none of a function's tasks, so a group answers as one request would.

use std::collections::HashMap;

use futures_util::future::join_all;
use tokio::sync::{mpsc, oneshot};

use crate::store::{Store, StoreError};
use crate::task::{FunctionId, TaskId};

/// Parameter bytes one call carries at most (a first request is never held back, whatever
/// its size): large payloads go alone rather than in one huge script call.
const MAX_GROUP_BYTES: usize = 1 << 20;

/// Tasks one call carries at most.
const MAX_GROUP_TASKS: usize = 1000;

/// Whether the function was registered (and the task created), or why Redis could not say.
type Answer = Result<bool, StoreError>;

struct Request {
    function: FunctionId,
    task: TaskId,
    params: String,
    answer: oneshot::Sender<Answer>,
}

/// The handle requests submit through. Cheap to clone; the group loop ends with the last one.
#[derive(Clone)]
pub struct Submissions {
    requests: mpsc::UnboundedSender<Request>,
}

impl Submissions {
    /// Starts the group loop on the current runtime.
    #[must_use]
    pub fn start(store: Store) -> Self {
        let (requests, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(store, queue));
        Self { requests }
    }

    /// Creates and queues `task` of `function` with `params`; `false` if the function is not
    /// registered (nothing is created).
    pub async fn submit(
        &self,
        function: FunctionId,
        task: TaskId,
        params: String,
    ) -> Result<bool, StoreError> {
        let (answer, answered) = oneshot::channel();
        let request = Request {
            function,
            task,
            params,
            answer,
        };
        if self.requests.send(request).is_err() {
            return Err(closed());
        }
        answered.await.unwrap_or_else(|_| Err(closed()))
    }
}

/// The loop went away (only while the gateway stops).
fn closed() -> StoreError {
    StoreError::Script {
        script: "submit_task",
        reason: "the gateway is stopping".into(),
    }
}

async fn run(store: Store, mut queue: mpsc::UnboundedReceiver<Request>) {
    let mut held: Option<Request> = None;
    loop {
        let first = match held.take() {
            Some(request) => request,
            None => match queue.recv().await {
                Some(request) => request,
                None => return,
            },
        };
        let mut bytes = first.params.len();
        let mut group = vec![first];
        while group.len() < MAX_GROUP_TASKS
            && let Ok(request) = queue.try_recv()
        {
            bytes += request.params.len();
            if bytes > MAX_GROUP_BYTES {
                held = Some(request);
                break;
            }
            group.push(request);
        }
        submit_group(&store, group).await;
    }
}

/// Submits `group`, one call per function, the calls pipelined, and answers each request.
async fn submit_group(store: &Store, group: Vec<Request>) {
    let mut by_function: HashMap<FunctionId, Vec<Request>> = HashMap::new();
    for request in group {
        by_function
            .entry(request.function)
            .or_default()
            .push(request);
    }
    join_all(
        by_function
            .into_iter()
            .map(|(function, mut requests)| async move {
                let tasks: Vec<(TaskId, String)> = requests
                    .iter_mut()
                    .map(|r| (r.task, std::mem::take(&mut r.params)))
                    .collect();
                let answer = store.submit_tasks(function, &tasks).await;
                for request in requests {
                    let _ = request.answer.send(answer.clone());
                }
            }),
    )
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::testing::{TestRedis, registered_function};

    /// How many script calls Redis has run.
    async fn script_calls(redis: &TestRedis) -> u64 {
        redis
            .info("commandstats")
            .await
            .lines()
            .find_map(|line| line.strip_prefix("cmdstat_evalsha:calls="))
            .and_then(|rest| rest.split(',').next())
            .map_or(0, |calls| calls.parse().unwrap())
    }

    #[tokio::test]
    async fn concurrent_submissions_share_script_calls_and_each_gets_its_answer() {
        let redis = TestRedis::start().await;
        let store = redis.store().await;
        let function = registered_function(&store).await;
        let unknown = FunctionId::new_random();
        let submissions = Submissions::start(store.clone());
        let before = script_calls(&redis).await;

        let requests = (0..200).map(|i| {
            let submissions = submissions.clone();
            let target = if i % 10 == 0 { unknown } else { function };
            async move {
                let task = TaskId::new_random();
                let created = submissions.submit(target, task, format!("p{i}")).await;
                (task, target, created.unwrap())
            }
        });
        let answers = join_all(requests).await;

        for (task, target, created) in answers {
            assert_eq!(created, target == function, "task {task}");
            let status = store.task_status(task).await.unwrap();
            assert_eq!(status.is_some(), created, "task {task}");
        }
        let calls = script_calls(&redis).await - before;
        assert!(calls < 100, "200 submissions took {calls} script calls");
    }
}
