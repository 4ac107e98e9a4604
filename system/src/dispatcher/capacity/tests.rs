//! The capacity's rules on examples, and property tests: random sequences of events checked
//! against a model that knows where every task is and how many places each mode offers.

use std::collections::{HashMap, VecDeque};

use proptest::prelude::*;

use super::*;

impl Capacity {
    /// (available, held, in use).
    fn counts(&self) -> (usize, usize, usize) {
        let l = self.ledger.lock().expect("capacity lock");
        (l.available, l.held, l.in_use)
    }
}

#[test]
fn a_withdrawal_while_the_fetcher_holds_places_is_owed_not_lost() {
    let capacity = Capacity::push(0);
    capacity.worker_joined("w", 2);
    let read = capacity.try_reserve(8).expect("two places");
    assert_eq!(read.count(), 2);
    capacity.worker_lost("w");
    assert_eq!(capacity.counts(), (0, 2, 0));
    capacity.worker_joined("v", 1);
    assert_eq!(
        capacity.available(),
        0,
        "the newcomer's place pays what is owed"
    );
    read.start(1);
    assert_eq!(
        capacity.counts(),
        (0, 0, 1),
        "the unused place paid the rest"
    );
    capacity.task_sent("v");
    capacity.task_done_at("v");
    assert_eq!(
        capacity.counts(),
        (1, 0, 0),
        "exactly the newcomer's credit"
    );
}

#[test]
fn push_places_refill_once_half_the_prefetch_is_free() {
    let capacity = Capacity::push(3);
    // 8 places, 6 of them prefetch: the fetcher waits for 3.
    capacity.worker_joined("w", 2);
    capacity.try_reserve(256).expect("all eight").start(8);
    for _ in 0..8 {
        capacity.task_sent("w");
    }
    capacity.task_done_at("w");
    capacity.task_done_at("w");
    assert!(capacity.try_reserve(256).is_none(), "two free places");
    capacity.task_done_at("w");
    assert_eq!(capacity.try_reserve(256).map(|r| r.count()), Some(3));
}

#[test]
fn a_push_worker_whose_queue_drained_brings_a_refill() {
    let capacity = Capacity::push(2);
    let workers = ["a", "b", "c", "d"];
    // Each has 3 places, 2 of them prefetch: half of all prefetch is 4, one worker's is 2.
    for worker in workers {
        capacity.worker_joined(worker, 1);
    }
    capacity.try_reserve(256).expect("all twelve").start(12);
    for worker in workers {
        for _ in 0..3 {
            capacity.task_sent(worker);
        }
    }
    capacity.task_done_at("a");
    assert!(
        capacity.try_reserve(256).is_none(),
        "a still has one waiting"
    );
    capacity.task_done_at("a");
    assert_eq!(
        capacity.try_reserve(256).map(|r| r.count()),
        Some(2),
        "a's queue is empty: its executor is about to idle"
    );
}

#[test]
fn without_prefetch_every_free_push_place_is_read() {
    let capacity = Capacity::push(0);
    for worker in ["a", "b", "c", "d"] {
        capacity.worker_joined(worker, 1);
        capacity.try_reserve(256).expect("its place").start(1);
        capacity.task_sent(worker);
    }
    capacity.task_done_at("a");
    assert_eq!(capacity.try_reserve(256).map(|r| r.count()), Some(1));
}

#[test]
fn a_pull_task_sent_beyond_its_workers_grant_takes_a_place_from_another() {
    let capacity = Capacity::pull();
    capacity.worker_joined("a", 2);
    capacity.worker_joined("b", 2);
    capacity.worker_asked("a", 1);
    capacity.worker_asked("b", 1);
    capacity.try_reserve(8).expect("two places").start(2);
    capacity.task_sent("a");
    capacity.task_sent("a");
    assert_eq!(capacity.counts(), (0, 0, 0));
    capacity.worker_asked("b", 1);
    assert_eq!(
        capacity.available(),
        1,
        "b's grant was used for a, b's ask renews it"
    );
}

#[test]
fn local_places_refill_once_half_are_free() {
    let capacity = Capacity::local(4);
    capacity.try_reserve(256).expect("all four").start(4);
    capacity.task_done();
    assert!(
        capacity.try_reserve(256).is_none(),
        "one free place of four"
    );
    capacity.task_done();
    assert_eq!(capacity.try_reserve(256).map(|r| r.count()), Some(2));
    capacity.shutdown();
    assert!(capacity.try_reserve(256).is_none());
}

/// Which rules the places follow.
#[derive(Debug, Clone, Copy)]
enum Mode {
    Local(usize),
    Push(u32),
    Pull,
}

/// One event; indices pick among what exists at that point and are taken modulo its size.
#[derive(Debug, Clone)]
enum Op {
    /// The fetcher takes places for a read.
    Reserve {
        most: usize,
    },
    /// The oldest read returns `read` entries (at most what it held).
    Read {
        read: usize,
    },
    /// A task not at a worker ends (local completion, dropped or failed at start).
    Done,
    /// A task in a remote backlog is cancelled.
    Cancel,
    /// A task not at a worker is sent to a worker that has room for it.
    Send {
        worker: usize,
    },
    /// A task at a worker is reported, or taken back as overdue.
    Report {
        pick: usize,
    },
    Join {
        worker: usize,
        executors: u32,
    },
    Ask {
        worker: usize,
        room: usize,
    },
    Lose {
        worker: usize,
    },
    Shutdown,
}

fn op() -> impl Strategy<Value = Op> {
    // Shutdown is rare so that most sequences run long before it (a test forces one).
    prop_oneof![
        30 => (1..8usize).prop_map(|most| Op::Reserve { most }),
        30 => (0..8usize).prop_map(|read| Op::Read { read }),
        20 => Just(Op::Done),
        10 => Just(Op::Cancel),
        30 => (0..3usize).prop_map(|worker| Op::Send { worker }),
        30 => any::<usize>().prop_map(|pick| Op::Report { pick }),
        20 => (0..3usize, 0..4u32).prop_map(|(worker, executors)| Op::Join { worker, executors }),
        30 => (0..3usize, 0..6usize).prop_map(|(worker, room)| Op::Ask { worker, room }),
        10 => (0..3usize).prop_map(|worker| Op::Lose { worker }),
        1 => Just(Op::Shutdown),
    ]
}

fn mode() -> impl Strategy<Value = Mode> {
    prop_oneof![
        (1..12usize).prop_map(Mode::Local),
        (0..3u32).prop_map(Mode::Push),
        Just(Mode::Pull),
    ]
}

/// What a worker stands for in the model: push its credit, pull its grant.
#[derive(Debug, Default)]
struct Worker {
    registration: u64,
    places: usize,
    holding: usize,
}

/// The model: which tasks exist where, and how many places each mode's rules offer.
struct Model<'a> {
    mode: Mode,
    capacity: &'a Capacity,
    reads: VecDeque<Reservation<'a>>,
    /// Tasks in use and not at a worker.
    in_core: usize,
    /// Tasks at workers: (worker, registration).
    at_workers: Vec<(usize, u64)>,
    workers: HashMap<usize, Worker>,
    registrations: u64,
    closed: bool,
}

fn name(worker: usize) -> String {
    format!("w{worker}")
}

impl<'a> Model<'a> {
    fn new(mode: Mode, capacity: &'a Capacity) -> Self {
        Self {
            mode,
            capacity,
            reads: VecDeque::new(),
            in_core: 0,
            at_workers: Vec::new(),
            workers: HashMap::new(),
            registrations: 0,
            closed: false,
        }
    }

    /// The places the rules offer now.
    fn target(&self) -> usize {
        match self.mode {
            _ if self.closed => 0,
            Mode::Local(places) => places,
            Mode::Push(_) | Mode::Pull => self.workers.values().map(|w| w.places).sum(),
        }
    }

    fn in_use(&self) -> usize {
        let at_workers = match self.mode {
            Mode::Push(_) => self.workers.values().map(|w| w.holding).sum(),
            Mode::Local(_) | Mode::Pull => 0,
        };
        self.in_core + at_workers
    }

    fn apply(&mut self, op: &Op) {
        let remote = !matches!(self.mode, Mode::Local(_));
        match *op {
            Op::Reserve { most } => {
                let (available, _, _) = self.capacity.counts();
                let refill = match self.mode {
                    Mode::Local(places) => (places / 2).max(1),
                    Mode::Push(prefetch) => {
                        let prefetch = prefetch as usize;
                        let queue = |w: &Worker| w.places / (1 + prefetch) * prefetch;
                        let total: usize = self.workers.values().map(queue).sum();
                        let smallest = self.workers.values().map(queue).min().unwrap_or(0);
                        (total / 2).min(smallest).clamp(1, 256)
                    }
                    Mode::Pull => 1,
                };
                match self.capacity.try_reserve(most) {
                    Some(read) => {
                        assert!(!self.closed, "places taken after shutdown");
                        assert!(available >= refill, "read below the refill threshold");
                        assert!(read.count() >= refill && read.count() <= available);
                        assert!(read.count() <= most.max(refill));
                        self.reads.push_back(read);
                    }
                    None => assert!(self.closed || available < refill),
                }
            }
            Op::Read { read } => {
                if let Some(places) = self.reads.pop_front() {
                    let read = read.min(places.count());
                    places.start(read);
                    self.in_core += read;
                }
            }
            Op::Done if self.in_core > 0 => {
                self.capacity.task_done();
                self.in_core -= 1;
            }
            Op::Cancel if remote && self.in_core > 0 => {
                self.capacity.task_done();
                self.in_core -= 1;
            }
            Op::Send { worker } if remote && self.in_core > 0 => {
                let Some(w) = self.workers.get_mut(&worker) else {
                    return;
                };
                // As the modes decide: push within the worker's credit (the registry's
                // pick), pull within the room its parked ask named (at most its grant).
                let room = match self.mode {
                    Mode::Push(_) => w.holding < w.places,
                    _ => w.places > 0,
                };
                if !room {
                    return;
                }
                match self.mode {
                    Mode::Push(_) => w.holding += 1,
                    _ => w.places -= 1,
                }
                let registration = w.registration;
                self.capacity.task_sent(&name(worker));
                self.in_core -= 1;
                self.at_workers.push((worker, registration));
            }
            Op::Report { pick } if !self.at_workers.is_empty() => {
                let (worker, registration) =
                    self.at_workers.swap_remove(pick % self.at_workers.len());
                // Only the registration that was sent the task frees its place: the
                // registry no longer knows the holder otherwise.
                if let Some(w) = self.workers.get_mut(&worker)
                    && w.registration == registration
                {
                    self.capacity.task_done_at(&name(worker));
                    if let Mode::Push(_) = self.mode {
                        w.holding -= 1;
                    }
                }
            }
            Op::Join { worker, executors } if remote => {
                self.lose(worker);
                self.capacity.worker_joined(&name(worker), executors);
                self.registrations += 1;
                let places = match self.mode {
                    Mode::Push(prefetch) => registry::slots(executors, prefetch),
                    _ => 0,
                };
                self.workers.insert(
                    worker,
                    Worker {
                        registration: self.registrations,
                        places,
                        holding: 0,
                    },
                );
            }
            Op::Ask { worker, room } if remote => {
                self.capacity.worker_asked(&name(worker), room);
                if let (Mode::Pull, Some(w)) = (self.mode, self.workers.get_mut(&worker)) {
                    w.places = w.places.max(room);
                }
            }
            Op::Lose { worker } if remote => {
                self.capacity.worker_lost(&name(worker));
                self.lose(worker);
            }
            Op::Shutdown => {
                self.capacity.shutdown();
                self.closed = true;
            }
            _ => {}
        }
    }

    /// A registration ends: the tasks it held are reported lost, not done.
    fn lose(&mut self, worker: usize) {
        if self.workers.remove(&worker).is_some() {
            self.at_workers.retain(|&(w, _)| w != worker);
        }
    }

    /// Every place is available, held or in use, and there are as many as the rules
    /// offer, or more while the surplus is held or in use (it goes as it comes back).
    fn check(&self) {
        let (available, held, in_use) = self.capacity.counts();
        let reads: usize = self.reads.iter().map(Reservation::count).sum();
        assert_eq!(held, reads, "held places are the fetcher's reads");
        assert_eq!(in_use, self.in_use(), "places in use are the tasks in hand");
        let total = available + held + in_use;
        let target = self.target();
        assert!(total >= target, "places lost: {total} for {target} offered");
        if total > target {
            assert_eq!(available, 0, "a surplus place is available");
        }
        if self.closed {
            assert_eq!(available, 0, "a place available after shutdown");
        }
    }

    /// Everything in hand comes back: the places are exactly those offered, then none once
    /// every worker is gone (remote) or the dispatcher shut down.
    fn drain(&mut self) {
        self.reads.clear();
        while self.in_core > 0 {
            self.apply(&Op::Done);
        }
        while !self.at_workers.is_empty() {
            self.apply(&Op::Report { pick: 0 });
        }
        self.check();
        let (available, held, in_use) = self.capacity.counts();
        assert_eq!((held, in_use), (0, 0));
        assert_eq!(available, self.target(), "places left over or missing");
        let workers: Vec<usize> = self.workers.keys().copied().collect();
        for worker in workers {
            self.apply(&Op::Lose { worker });
        }
        self.apply(&Op::Shutdown);
        assert_eq!(
            self.capacity.counts(),
            (0, 0, 0),
            "places left after shutdown"
        );
    }
}

fn capacity_for(mode: Mode) -> Capacity {
    match mode {
        Mode::Local(places) => Capacity::local(places),
        Mode::Push(prefetch) => Capacity::push(prefetch),
        Mode::Pull => Capacity::pull(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Places are conserved across every path: task done, cancelled, sent and reported,
    /// workers joining, asking and lost (also while the fetcher holds places), shutdown.
    #[test]
    fn places_are_conserved(mode in mode(), ops in prop::collection::vec(op(), 0..120)) {
        let capacity = capacity_for(mode);
        let mut model = Model::new(mode, &capacity);
        model.check();
        for op in &ops {
            model.apply(op);
            model.check();
        }
        model.drain();
    }

    /// After shutdown nothing is available again, and every place in hand goes away as it
    /// comes back.
    #[test]
    fn nothing_is_left_after_shutdown(
        mode in mode(),
        before in prop::collection::vec(op(), 0..60),
        after in prop::collection::vec(op(), 0..60),
    ) {
        let capacity = capacity_for(mode);
        let mut model = Model::new(mode, &capacity);
        for op in before.iter().chain([&Op::Shutdown]).chain(&after) {
            model.apply(op);
            model.check();
        }
        model.drain();
    }
}
