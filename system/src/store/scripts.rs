//! The one way to call a Lua script. Every script in `scripts/*.lua` is a transition over a
//! batch of tasks with the same shape: its shared keys and arguments first, then one key (the
//! task hash) and a fixed number of arguments per task, and one reply per task. A single
//! task is a batch of one, so each script has one argument builder.

use std::sync::LazyLock;

use redis::{FromRedisValue, Script, ScriptInvocation, ToRedisArgs};

use super::{Store, StoreError};

/// A task state transition, one Lua script.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transition {
    Submit,
    Start,
    Finish,
    Cancel,
    Requeue,
    /// Not a task's transition: removing dead dispatchers' empty consumers, batched the same
    /// way (one consumer per "task").
    DropConsumers,
}

impl Transition {
    fn script(self) -> &'static Script {
        static SUBMIT: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!("scripts/submit_task.lua")));
        static START: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!("scripts/start_task.lua")));
        static FINISH: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!("scripts/finish_task.lua")));
        static CANCEL: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!("scripts/cancel_task.lua")));
        static REQUEUE: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!("scripts/requeue_task.lua")));
        static DROP_CONSUMERS: LazyLock<Script> =
            LazyLock::new(|| Script::new(include_str!("scripts/drop_consumers.lua")));
        match self {
            Self::Submit => &SUBMIT,
            Self::Start => &START,
            Self::Finish => &FINISH,
            Self::Cancel => &CANCEL,
            Self::Requeue => &REQUEUE,
            Self::DropConsumers => &DROP_CONSUMERS,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Submit => "submit_task",
            Self::Start => "start_task",
            Self::Finish => "finish_task",
            Self::Cancel => "cancel_task",
            Self::Requeue => "requeue_task",
            Self::DropConsumers => "drop_consumers",
        }
    }
}

/// One call of a transition script over a batch of tasks, built up before it is run with
/// [`Store::run_script`].
pub(super) struct ScriptCall {
    transition: Transition,
    invocation: ScriptInvocation<'static>,
    /// Tasks added with [`Self::task`]: the number of replies to expect.
    tasks: usize,
}

impl ScriptCall {
    /// A call of `transition` with the keys and arguments every task of the batch shares.
    pub(super) fn new(transition: Transition, keys: &[&str], args: impl ToRedisArgs) -> Self {
        let mut invocation = transition.script().prepare_invoke();
        for key in keys {
            invocation.key(*key);
        }
        invocation.arg(args);
        Self {
            transition,
            invocation,
            tasks: 0,
        }
    }

    /// Adds a task: its hash key and its own arguments (a tuple for several).
    pub(super) fn task(&mut self, key: String, args: impl ToRedisArgs) -> &mut Self {
        self.invocation.key(key).arg(args);
        self.tasks += 1;
        self
    }
}

impl Store {
    /// Runs `call` (loading its script first if Redis lost it: a restarted server has an
    /// empty script cache) and returns its replies, one per task, checking there are that many.
    /// An empty batch answers at once, without a round trip.
    pub(super) async fn run_script<T: FromRedisValue>(
        &self,
        call: &ScriptCall,
    ) -> Result<Vec<T>, StoreError> {
        invoke(&mut self.conn(), call).await
    }

    /// [`Self::run_script`], and with [`Store::with_replicas`], only confirmed once the
    /// replicas have what it wrote.
    pub(super) async fn run_replicated<T: FromRedisValue>(
        &self,
        call: &ScriptCall,
    ) -> Result<Vec<T>, StoreError> {
        match &self.replicated {
            Some(replicated) => replicated.run(call).await,
            None => self.run_script(call).await,
        }
    }
}

/// Runs `call` on `conn`: see [`Store::run_script`].
pub(super) async fn invoke<T: FromRedisValue>(
    conn: &mut impl redis::aio::ConnectionLike,
    call: &ScriptCall,
) -> Result<Vec<T>, StoreError> {
    if call.tasks == 0 {
        return Ok(Vec::new());
    }
    let replies: Vec<T> = call.invocation.invoke_async(conn).await?;
    if replies.len() != call.tasks {
        return Err(StoreError::Script {
            script: call.transition.name(),
            reason: format!("answered {} of {} tasks", replies.len(), call.tasks),
        });
    }
    Ok(replies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::keys;
    use crate::store::testing::TestRedis;
    use crate::task::{FunctionId, TaskId, now_micros};

    /// A finish call for `tasks` unknown tasks: each answers -1, so the batch is well formed.
    fn finish_unknown(tasks: usize) -> ScriptCall {
        let mut call = ScriptCall::new(
            Transition::Finish,
            &[keys::QUEUE],
            (keys::QUEUE_GROUP, keys::DONE_CHANNEL, 0),
        );
        for _ in 0..tasks {
            let id = TaskId::new_random();
            call.task(
                keys::task(id),
                ("COMPLETED", "r", now_micros(), "", id.to_string(), "", ""),
            );
        }
        call
    }

    #[tokio::test]
    async fn a_batch_answers_once_per_task() {
        let redis = TestRedis::start().await;
        let store = redis.store().await;
        let replies: Vec<i64> = store.run_script(&finish_unknown(3)).await.unwrap();
        assert_eq!(replies, [-1, -1, -1]);
    }

    #[tokio::test]
    async fn a_reply_of_the_wrong_length_is_an_error() {
        let redis = TestRedis::start().await;
        let store = redis.store().await;
        let mut call = finish_unknown(2);
        call.tasks = 3;
        let error = store.run_script::<i64>(&call).await.unwrap_err();
        assert!(
            error.to_string() == "script finish_task: answered 2 of 3 tasks",
            "{error}"
        );
    }

    #[tokio::test]
    async fn an_empty_batch_makes_no_call() {
        let redis = TestRedis::start().await;
        let store = redis.store().await;
        let call = ScriptCall::new(Transition::Start, &[keys::QUEUE], keys::QUEUE_GROUP);
        assert!(store.run_script::<i64>(&call).await.unwrap().is_empty());
        let stats = redis.info("commandstats").await;
        assert!(!stats.contains("cmdstat_evalsha"), "{stats}");
    }

    #[tokio::test]
    async fn scripts_are_loaded_again_after_redis_lost_them() {
        let redis = TestRedis::start().await;
        let store = redis.store().await;
        let function = FunctionId::new_random();
        store
            .register_function(function, "f", "Zm4=")
            .await
            .unwrap();
        assert!(
            store
                .submit_task(TaskId::new_random(), function, "p")
                .await
                .unwrap()
        );
        let () = redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut redis.conn().await)
            .await
            .unwrap();
        assert!(
            store
                .submit_task(TaskId::new_random(), function, "p")
                .await
                .unwrap()
        );
    }
}
