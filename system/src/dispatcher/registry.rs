//! The dispatcher's view of its remote workers: capacity, tasks in hand, functions already
//! sent, and liveness. Pure decisions: every method that depends on time takes `now`, so the
//! tests drive a clock instead of sleeping.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use lru::LruCache;

use crate::protocol::WORKER_FUNCTION_CACHE;
use crate::task::{FunctionId, TaskId};

/// One registered worker.
#[derive(Debug)]
pub struct WorkerEntry {
    /// Executors it runs.
    pub capacity: u32,
    /// The ROUTER routing id tasks are sent to (push mode).
    pub identity: Vec<u8>,
    /// The CURVE key it registered with, when the transport has keys: every message naming
    /// it must come with the same key.
    pub key: Option<String>,
    /// When it was last heard from.
    pub last_seen: Instant,
    /// Tasks handed to it and not reported, with the time past which they count as lost.
    in_flight: HashMap<TaskId, Deadline>,
    /// Functions whose bodies this registration has, as the worker's own cache has them
    /// (the same LRU, touched in the same order).
    functions: LruCache<FunctionId, ()>,
}

impl WorkerEntry {
    /// Executors not busy with a task of ours.
    #[must_use]
    pub fn free(&self) -> u32 {
        self.capacity
            .saturating_sub(u32::try_from(self.in_flight.len()).unwrap_or(u32::MAX))
    }

    /// Tasks handed to it and not yet reported.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }
}

/// When a task handed to a worker counts as lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deadline {
    /// Past this the task is overdue.
    pub at: Instant,
    /// How long it may take once an executor starts it: [`WorkerRegistry::started`] moves
    /// `at` to then plus this, once.
    pub run: Duration,
}

impl Deadline {
    /// A deadline `run` after its task's start, which is at most `wait` from `now`.
    #[must_use]
    pub fn new(now: Instant, wait: Duration, run: Duration) -> Self {
        Self {
            at: now + wait + run,
            run,
        }
    }
}

/// A worker declared dead, with the tasks it held.
#[derive(Debug, PartialEq, Eq)]
pub struct DeadWorker {
    pub name: String,
    pub tasks: Vec<TaskId>,
}

/// Tasks a worker of `capacity` executors may hold: one running and `prefetch` waiting per
/// executor.
#[must_use]
pub fn slots(capacity: u32, prefetch: u32) -> usize {
    capacity as usize * (1 + prefetch as usize)
}

impl WorkerEntry {
    fn slots(&self, prefetch: u32) -> usize {
        slots(self.capacity, prefetch)
    }
}

/// All workers of one dispatcher.
#[derive(Debug)]
pub struct WorkerRegistry {
    workers: HashMap<String, WorkerEntry>,
    /// Which worker holds each task.
    holders: HashMap<TaskId, String>,
    /// A worker silent for longer than this is dead.
    liveness: Duration,
}

impl WorkerRegistry {
    #[must_use]
    pub fn new(liveness: Duration) -> Self {
        Self {
            workers: HashMap::new(),
            holders: HashMap::new(),
            liveness,
        }
    }

    /// Registers `name` (again). A previous registration is returned: that worker restarted
    /// or reconnected, and whatever it held may never be reported.
    pub fn register(
        &mut self,
        name: &str,
        capacity: u32,
        identity: Vec<u8>,
        key: Option<String>,
        now: Instant,
    ) -> Option<DeadWorker> {
        let previous = self.remove(name);
        self.workers.insert(
            name.to_owned(),
            WorkerEntry {
                capacity,
                identity,
                key,
                last_seen: now,
                in_flight: HashMap::new(),
                functions: LruCache::new(WORKER_FUNCTION_CACHE),
            },
        );
        previous
    }

    /// Notes that `name` spoke; `false` if it is not registered (it must register again).
    pub fn heard_from(&mut self, name: &str, now: Instant) -> bool {
        match self.workers.get_mut(name) {
            Some(worker) => {
                worker.last_seen = now;
                true
            }
            None => false,
        }
    }

    #[must_use]
    pub fn get(&self, name: &str) -> Option<&WorkerEntry> {
        self.workers.get(name)
    }

    /// Records that `task` went to `name`, to be reported before `deadline`. Returns whether
    /// the function's body must be sent with it (this registration does not have it: never
    /// sent, or evicted from its cache since).
    pub fn assign(
        &mut self,
        name: &str,
        task: TaskId,
        function: FunctionId,
        deadline: Deadline,
    ) -> bool {
        let Some(worker) = self.workers.get_mut(name) else {
            return true;
        };
        worker.in_flight.insert(task, deadline);
        self.holders.insert(task, name.to_owned());
        worker.functions.put(function, ()).is_none()
    }

    /// `name` says an executor started `task` at `now`: its deadline runs from then. Only
    /// the first report counts, so a worker cannot postpone a deadline by saying it again.
    pub fn started(&mut self, name: &str, task: TaskId, now: Instant) {
        if let Some(deadline) = self
            .workers
            .get_mut(name)
            .and_then(|w| w.in_flight.get_mut(&task))
            .filter(|d| !d.run.is_zero())
        {
            deadline.at = now + deadline.run;
            deadline.run = Duration::ZERO;
        }
    }

    /// The worker holding `task`, if any.
    #[must_use]
    pub fn holder(&self, task: TaskId) -> Option<&str> {
        self.holders.get(&task).map(String::as_str)
    }

    /// A task was reported (by anyone): the worker holding it, if one still does.
    pub fn complete(&mut self, task: TaskId) -> Option<String> {
        let name = self.holders.remove(&task)?;
        if let Some(worker) = self.workers.get_mut(&name) {
            worker.in_flight.remove(&task);
        }
        Some(name)
    }

    /// The live worker to push a task to: the one with the most free executors, among those
    /// holding fewer than `capacity × (1 + prefetch)` tasks (prefetch is per executor, so every
    /// worker's queue is in proportion to its size). Ties go to the lexically first name, so
    /// the choice is deterministic.
    #[must_use]
    pub fn pick(&self, prefetch: u32) -> Option<&str> {
        self.workers
            .iter()
            .filter(|(_, w)| w.in_flight.len() < w.slots(prefetch))
            .max_by(|(an, a), (bn, b)| {
                let load = |w: &WorkerEntry| w.in_flight.len() as i64 - i64::from(w.capacity);
                load(b).cmp(&load(a)).then_with(|| bn.cmp(an))
            })
            .map(|(name, _)| name.as_str())
    }

    /// Removes every worker silent for longer than the liveness window.
    pub fn expire(&mut self, now: Instant) -> Vec<DeadWorker> {
        let dead: Vec<String> = self
            .workers
            .iter()
            .filter(|(_, w)| now.saturating_duration_since(w.last_seen) > self.liveness)
            .map(|(name, _)| name.clone())
            .collect();
        dead.into_iter()
            .filter_map(|name| self.remove(&name))
            .collect()
    }

    /// Tasks past their reporting deadline, taken from their workers (which stay registered).
    pub fn overdue(&mut self, now: Instant) -> Vec<(String, TaskId)> {
        let mut late = Vec::new();
        for (name, worker) in &mut self.workers {
            worker.in_flight.retain(|task, deadline| {
                let keep = deadline.at > now;
                if !keep {
                    late.push((name.clone(), *task));
                }
                keep
            });
        }
        for (_, task) in &late {
            self.holders.remove(task);
        }
        late
    }

    /// Unregisters `name`, returning what it held.
    pub fn remove(&mut self, name: &str) -> Option<DeadWorker> {
        let worker = self.workers.remove(name)?;
        let tasks: Vec<TaskId> = worker.in_flight.into_keys().collect();
        for task in &tasks {
            self.holders.remove(task);
        }
        Some(DeadWorker {
            name: name.to_owned(),
            tasks,
        })
    }

    /// Registered workers.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &WorkerEntry)> {
        self.workers.iter().map(|(n, w)| (n.as_str(), w))
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.workers.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.workers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIVENESS: Duration = Duration::from_secs(3);

    /// A deadline at `at` for a task allowed a minute once started.
    fn by(at: Instant) -> Deadline {
        Deadline {
            at,
            run: Duration::from_secs(60),
        }
    }

    fn registry_with(workers: &[(&str, u32)], now: Instant) -> WorkerRegistry {
        let mut r = WorkerRegistry::new(LIVENESS);
        for (name, capacity) in workers {
            r.register(name, *capacity, name.as_bytes().to_vec(), None, now);
        }
        r
    }

    #[test]
    fn pushes_go_to_the_worker_with_most_free_executors_in_proportion() {
        let t0 = Instant::now();
        let mut r = registry_with(&[("big", 4), ("small", 1)], t0);
        let far = by(t0 + Duration::from_secs(60));
        let mut sent = HashMap::<String, u32>::new();
        // Fill every executor: 5 tasks, no prefetch.
        for _ in 0..5 {
            let name = r.pick(0).expect("a worker with room").to_owned();
            r.assign(&name, TaskId::new_random(), FunctionId::new_random(), far);
            *sent.entry(name).or_default() += 1;
        }
        assert_eq!(sent["big"], 4);
        assert_eq!(sent["small"], 1);
        assert_eq!(
            r.pick(0),
            None,
            "no worker beyond capacity without prefetch"
        );
        assert!(r.pick(1).is_some(), "prefetch allows one more per executor");
    }

    #[test]
    fn prefetch_is_bounded() {
        let t0 = Instant::now();
        let mut r = registry_with(&[("w", 2)], t0);
        let far = by(t0 + Duration::from_secs(60));
        for _ in 0..4 {
            let name = r.pick(1).unwrap().to_owned();
            r.assign(&name, TaskId::new_random(), FunctionId::new_random(), far);
        }
        assert_eq!(r.pick(1), None, "2 executors, 1 prefetch each");
    }

    #[test]
    fn a_function_body_is_sent_once_per_registration() {
        let t0 = Instant::now();
        let mut r = registry_with(&[("w", 2)], t0);
        let f = FunctionId::new_random();
        let far = by(t0 + Duration::from_secs(60));
        assert!(r.assign("w", TaskId::new_random(), f, far));
        assert!(!r.assign("w", TaskId::new_random(), f, far));
        r.register("w", 2, b"w2".to_vec(), None, t0);
        assert!(
            r.assign("w", TaskId::new_random(), f, far),
            "a new registration has an empty cache"
        );
    }

    #[test]
    fn the_workers_cache_is_mirrored_least_recently_used_first() {
        let t0 = Instant::now();
        let mut r = registry_with(&[("w", 1)], t0);
        let far = by(t0 + Duration::from_secs(60));
        let first = FunctionId::new_random();
        assert!(r.assign("w", TaskId::new_random(), first, far));
        for _ in 1..WORKER_FUNCTION_CACHE.get() {
            assert!(r.assign("w", TaskId::new_random(), FunctionId::new_random(), far));
        }
        assert!(
            !r.assign("w", TaskId::new_random(), first, far),
            "a full cache still has the first, which is now the most recent"
        );
        let newest = FunctionId::new_random();
        assert!(r.assign("w", TaskId::new_random(), newest, far));
        assert!(!r.assign("w", TaskId::new_random(), first, far));
        assert!(!r.assign("w", TaskId::new_random(), newest, far));
    }

    #[test]
    fn silent_workers_die_with_their_tasks_after_the_liveness_window() {
        let t0 = Instant::now();
        let mut r = registry_with(&[("quiet", 1), ("chatty", 1)], t0);
        let task = TaskId::new_random();
        r.assign(
            "quiet",
            task,
            FunctionId::new_random(),
            by(t0 + Duration::from_secs(60)),
        );
        assert!(
            r.expire(t0 + LIVENESS).is_empty(),
            "exactly the window is still alive"
        );
        assert!(r.heard_from("chatty", t0 + Duration::from_secs(2)));
        let dead = r.expire(t0 + LIVENESS + Duration::from_millis(1));
        assert_eq!(
            dead,
            vec![DeadWorker {
                name: "quiet".into(),
                tasks: vec![task]
            }]
        );
        assert_eq!(r.len(), 1);
        assert!(
            !r.heard_from("quiet", t0),
            "a dead worker must register again"
        );
        assert_eq!(r.complete(task), None, "its tasks are no longer held");
    }

    #[test]
    fn re_registering_returns_the_previous_registrations_tasks() {
        let t0 = Instant::now();
        let mut r = registry_with(&[("w", 1)], t0);
        let task = TaskId::new_random();
        r.assign(
            "w",
            task,
            FunctionId::new_random(),
            by(t0 + Duration::from_secs(60)),
        );
        let previous = r
            .register("w", 1, b"new".to_vec(), None, t0)
            .expect("was registered");
        assert_eq!(previous.tasks, vec![task]);
        assert_eq!(r.get("w").unwrap().free(), 1);
    }

    #[test]
    fn overdue_tasks_are_taken_from_their_worker() {
        let t0 = Instant::now();
        let mut r = registry_with(&[("w", 2)], t0);
        let (soon, later) = (TaskId::new_random(), TaskId::new_random());
        r.assign(
            "w",
            soon,
            FunctionId::new_random(),
            by(t0 + Duration::from_secs(5)),
        );
        r.assign(
            "w",
            later,
            FunctionId::new_random(),
            by(t0 + Duration::from_secs(50)),
        );
        assert!(r.overdue(t0 + Duration::from_secs(4)).is_empty());
        assert_eq!(
            r.overdue(t0 + Duration::from_secs(5)),
            vec![("w".to_owned(), soon)]
        );
        assert_eq!(r.get("w").unwrap().in_flight(), 1);
        assert_eq!(r.complete(later).as_deref(), Some("w"));
        assert_eq!(r.complete(soon), None);
    }

    #[test]
    fn a_deadline_runs_from_the_reported_start() {
        let t0 = Instant::now();
        let mut r = registry_with(&[("w", 1)], t0);
        let task = TaskId::new_random();
        r.assign(
            "w",
            task,
            FunctionId::new_random(),
            by(t0 + Duration::from_secs(5)),
        );
        r.started("w", task, t0 + Duration::from_secs(4));
        r.started("w", task, t0 + Duration::from_secs(30));
        assert!(
            r.overdue(t0 + Duration::from_secs(63)).is_empty(),
            "a minute from its start"
        );
        assert_eq!(
            r.overdue(t0 + Duration::from_secs(64)),
            vec![("w".to_owned(), task)]
        );
    }
}
