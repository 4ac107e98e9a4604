//! How many tasks this dispatcher may hold, owned in one place: the fetcher reads the queue
//! only for free *places*, and every other part reports the events that make places come and
//! go. Nothing else counts them.
//!
//! A place is room for one task. At any time each place is exactly one of
//!
//! - *available*: the fetcher may take it;
//! - *held*: the fetcher took it for a queue read in progress;
//! - *in use*: a task fetched into it has not finished (local, push) or, in pull mode, has
//!   not been sent to a worker yet;
//!
//! so available + held + in use is the number of places there are. How many there *should*
//! be (the target) follows the mode:
//!
//! - local: the pool's executors and the tasks waiting for them, fixed. A task's place comes
//!   back with its completion.
//! - push: each registration is a credit of its executors and their prefetch
//!   ([`registry::slots`]); a task sent to a worker keeps its place until the worker reports
//!   it (or it is overdue), and a lost worker's places go with it. The fetcher waits for half
//!   the workers' prefetch places to be free, never more than one worker's.
//! - pull: each worker has a grant, the most room its asks named less the tasks it was sent
//!   since. Asks only ever raise it (a worker asks for its idle executors first, so its asks
//!   are not monotonic) and it is withdrawn when the worker goes. A task sent to a worker takes
//!   its place along: the worker's next ask gives the room back.
//!
//! When the target drops while places are held or in use, the difference is *owed*: places
//! coming back pay it off before any becomes available again. A withdrawal can thus never
//! miss places the fetcher holds in a blocking read (with a semaphore's `forget_permits` it
//! did, and the surplus started tasks no worker had asked for). Places a worker brings pay
//! off what is owed first too.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::Notify;

use super::registry;

/// The most places a push fetcher waits for before it reads (a read takes at most this many
/// more than asked).
const MAX_REFILL: usize = 256;

/// How places come and go (see the module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    Local,
    Push { prefetch: u32 },
    Pull,
}

/// A remote worker's places.
#[derive(Debug)]
struct Share {
    /// Push: its credit; pull: its grant.
    places: usize,
    /// Push: tasks sent to it and not yet reported, whose places are in use.
    holding: usize,
}

/// The counts, kept under one lock so every event moves places atomically.
#[derive(Debug)]
struct Ledger {
    policy: Policy,
    /// The fetcher waits until this many places are available.
    refill_at: usize,
    /// Places the fetcher may take.
    available: usize,
    /// Places taken for queue reads in progress.
    held: usize,
    /// Places of fetched tasks (see the module comment for when they come back).
    in_use: usize,
    /// Places to remove as they come back; while anything is owed, nothing is available.
    owed: usize,
    workers: HashMap<String, Share>,
    /// Set at shutdown: places that come back are gone, none is available again.
    closed: bool,
}

/// What a reservation attempt found.
enum Reserved {
    Places(usize),
    TooFew,
    Closed,
}

impl Ledger {
    /// A ledger whose `places` (local mode's; none for the remote modes) are all available.
    fn new(policy: Policy, places: usize, refill_at: usize) -> Self {
        Self {
            policy,
            refill_at: refill_at.max(1),
            available: places,
            held: 0,
            in_use: 0,
            owed: 0,
            workers: HashMap::new(),
            closed: false,
        }
    }

    /// Places coming back (from held or in use) or newly offered: they pay what is owed
    /// first, the rest is available.
    fn add(&mut self, n: usize) {
        let paid = n.min(self.owed);
        self.owed -= paid;
        if !self.closed {
            self.available += n - paid;
        }
    }

    /// Places no longer offered: the available ones go at once, the rest is owed.
    fn withdraw(&mut self, n: usize) {
        if self.closed {
            return;
        }
        let now = n.min(self.available);
        self.available -= now;
        self.owed += n - now;
    }

    fn reserve(&mut self, most: usize) -> Reserved {
        if self.closed {
            return Reserved::Closed;
        }
        if self.available < self.refill_at {
            return Reserved::TooFew;
        }
        let n = self.available.min(most.max(self.refill_at));
        self.available -= n;
        self.held += n;
        Reserved::Places(n)
    }

    fn start(&mut self, n: usize) {
        self.held -= n;
        self.in_use += n;
    }

    fn unhold(&mut self, n: usize) {
        self.held -= n;
        self.add(n);
    }

    fn task_done(&mut self) {
        self.in_use -= 1;
        self.add(1);
    }

    fn task_sent(&mut self, worker: &str) {
        match self.policy {
            Policy::Local => {}
            Policy::Push { .. } => match self.workers.get_mut(worker) {
                Some(share) => share.holding += 1,
                // Never the case (tasks go to registered workers); were it, no report would
                // ever free the place.
                None => self.task_done(),
            },
            Policy::Pull => {
                self.in_use -= 1;
                self.take_grant(worker);
            }
        }
    }

    /// A place left with a task sent to `worker`: it came out of that worker's grant, else out
    /// of what is owed, else out of the largest other grant (every in-use place is one of
    /// these).
    fn take_grant(&mut self, worker: &str) {
        if let Some(share) = self.workers.get_mut(worker).filter(|s| s.places > 0) {
            share.places -= 1;
        } else if self.owed > 0 {
            self.owed -= 1;
        } else if let Some((_, share)) = self
            .workers
            .iter_mut()
            .filter(|(_, s)| s.places > 0)
            .max_by(|(an, a), (bn, b)| a.places.cmp(&b.places).then_with(|| bn.cmp(an)))
        {
            share.places -= 1;
        }
    }

    fn task_done_at(&mut self, worker: &str) {
        if let Policy::Push { .. } = self.policy
            && let Some(share) = self.workers.get_mut(worker)
            && share.holding > 0
        {
            share.holding -= 1;
            self.in_use -= 1;
            self.add(1);
        }
    }

    fn worker_joined(&mut self, worker: &str, executors: u32) {
        self.worker_lost(worker);
        let places = match self.policy {
            Policy::Local => return,
            Policy::Push { prefetch } => registry::slots(executors, prefetch),
            Policy::Pull => 0,
        };
        self.workers
            .insert(worker.to_owned(), Share { places, holding: 0 });
        self.add(places);
        self.follow_credit();
    }

    /// Push: the fetcher refills once half of all workers' prefetch places are free, as
    /// local mode does with its pool's queue, so that under load the queue is read (and tasks
    /// started) in batches while the rest keeps the workers busy; an idle dispatcher still
    /// reads at once. Unlike local mode's one queue, each worker has its own: the threshold
    /// is never more than the smallest worker's prefetch places, so a worker whose queue has
    /// drained (its executors about to idle) always brings a refill, and with no prefetch
    /// every free place does. Pull grants are too small and short-lived for a threshold: a
    /// worker's parked ask would wait on others' asks.
    fn follow_credit(&mut self) {
        if let Policy::Push { prefetch } = self.policy {
            // A worker's places are its executors times (1 + prefetch).
            let queue = |s: &Share| s.places / (1 + prefetch as usize) * prefetch as usize;
            let total: usize = self.workers.values().map(queue).sum();
            let smallest = self.workers.values().map(queue).min().unwrap_or(0);
            self.refill_at = (total / 2).min(smallest).clamp(1, MAX_REFILL);
        }
    }

    fn worker_asked(&mut self, worker: &str, room: usize) {
        if self.policy != Policy::Pull {
            return;
        }
        if let Some(share) = self.workers.get_mut(worker)
            && room > share.places
        {
            let more = room - share.places;
            share.places = room;
            self.add(more);
        }
    }

    fn worker_lost(&mut self, worker: &str) {
        if let Some(share) = self.workers.remove(worker) {
            // Its tasks are reported lost and requeued: their places go with the worker.
            self.in_use -= share.holding;
            self.withdraw(share.places.saturating_sub(share.holding));
        }
        self.follow_credit();
    }

    fn shutdown(&mut self) {
        self.closed = true;
        self.available = 0;
        self.owed = 0;
    }
}

/// The places of one dispatcher, shared by its fetcher, core and transport.
#[derive(Debug)]
pub struct Capacity {
    ledger: Mutex<Ledger>,
    /// Wakes the fetcher when enough places are available, or at shutdown.
    ready: Notify,
}

impl Capacity {
    /// Local mode: `places` executor slots and tasks waiting for them. The fetcher refills
    /// once half of them are free: under load the queue is read in batches while the other
    /// half keeps the executors busy, and an idle pool still reads at once.
    #[must_use]
    pub fn local(places: usize) -> Self {
        Self::with(Ledger::new(Policy::Local, places, places / 2))
    }

    /// Push mode: each worker's credit is its executors and `prefetch` more per executor; the
    /// fetcher refills once half the prefetch places are free (see `Ledger::follow_credit`).
    #[must_use]
    pub fn push(prefetch: u32) -> Self {
        Self::with(Ledger::new(Policy::Push { prefetch }, 0, 1))
    }

    /// Pull mode: places follow what workers ask for.
    #[must_use]
    pub fn pull() -> Self {
        Self::with(Ledger::new(Policy::Pull, 0, 1))
    }

    fn with(ledger: Ledger) -> Self {
        Self {
            ledger: Mutex::new(ledger),
            ready: Notify::new(),
        }
    }

    fn update<T>(&self, event: impl FnOnce(&mut Ledger) -> T) -> T {
        let mut ledger = self.ledger.lock().expect("capacity lock");
        let out = event(&mut ledger);
        if ledger.closed || ledger.available >= ledger.refill_at {
            // A stored wake-up at most makes the fetcher look once more.
            self.ready.notify_one();
        }
        out
    }

    /// The fetcher: waits until enough places are available and takes up to `most` of them
    /// (or all the refill threshold asks for, if more); `None` once shut down.
    pub async fn reserve(&self, most: usize) -> Option<Reservation<'_>> {
        loop {
            match self.update(|l| l.reserve(most)) {
                Reserved::Places(count) => {
                    return Some(Reservation {
                        capacity: self,
                        count,
                    });
                }
                Reserved::Closed => return None,
                Reserved::TooFew => self.ready.notified().await,
            }
        }
    }

    /// [`Self::reserve`] without waiting: `None` if too few places are available.
    #[cfg(test)]
    pub fn try_reserve(&self, most: usize) -> Option<Reservation<'_>> {
        match self.update(|l| l.reserve(most)) {
            Reserved::Places(count) => Some(Reservation {
                capacity: self,
                count,
            }),
            Reserved::TooFew | Reserved::Closed => None,
        }
    }

    /// A task in use ended without being at a remote worker: its completion came back from
    /// the local pool, it never reached the transport (dropped at start, function missing),
    /// or it was cancelled through the API while waiting in a remote transport's backlog.
    pub fn task_done(&self) {
        self.update(Ledger::task_done);
    }

    /// A task was sent to remote `worker` (push: it holds the place until it reports; pull:
    /// the place leaves with it).
    pub fn task_sent(&self, worker: &str) {
        self.update(|l| l.task_sent(worker));
    }

    /// A task `worker` held was reported, or taken back from it as overdue (push: its place
    /// is free again; pull: nothing, the worker's next ask says how much room it has).
    pub fn task_done_at(&self, worker: &str) {
        self.update(|l| l.task_done_at(worker));
    }

    /// `worker` registered with `executors` (push: its credit; pull: an empty grant). A
    /// previous registration of the same name is lost first.
    pub fn worker_joined(&self, worker: &str, executors: u32) {
        self.update(|l| l.worker_joined(worker, executors));
    }

    /// Pull: `worker` asked with room for `room` tasks; its grant rises to it, never falls.
    /// Ignored for a worker that has not joined.
    pub fn worker_asked(&self, worker: &str, room: usize) {
        self.update(|l| l.worker_asked(worker, room));
    }

    /// `worker` is gone (dead, disconnected, or replaced by a new registration): its places
    /// are withdrawn, including those of the tasks it held.
    pub fn worker_lost(&self, worker: &str) {
        self.update(|l| l.worker_lost(worker));
    }

    /// The dispatcher is stopping: the fetcher takes no more places, and places that come back
    /// from tasks still finishing are gone.
    pub fn shutdown(&self) {
        self.update(Ledger::shutdown);
    }

    /// Places available to the fetcher now.
    #[cfg(test)]
    pub fn available(&self) -> usize {
        self.ledger.lock().expect("capacity lock").available
    }
}

/// Places the fetcher holds for one queue read; those not used by [`Self::start`] go back
/// when it is dropped.
#[derive(Debug)]
pub struct Reservation<'a> {
    capacity: &'a Capacity,
    count: usize,
}

impl Reservation<'_> {
    /// How many places are held.
    #[must_use]
    pub fn count(&self) -> usize {
        self.count
    }

    /// `n` tasks were fetched into held places: those places are in use.
    pub fn start(mut self, n: usize) {
        assert!(n <= self.count, "more tasks started than places held");
        self.capacity.update(|l| l.start(n));
        self.count -= n;
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.count > 0 {
            let n = self.count;
            self.capacity.update(|l| l.unhold(n));
        }
    }
}

#[cfg(test)]
mod tests;
