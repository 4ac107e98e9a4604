//! Pull mode's decisions, driven by worker messages and a clock the tests control.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::*;
use crate::dispatcher::testing::{HEARTBEAT, Recorder, fetch, inbound, parts};
use crate::task::{FunctionId, TaskOutcome};

fn pull() -> (
    Pull<Recorder>,
    Arc<Capacity>,
    mpsc::UnboundedReceiver<crate::protocol::Completion>,
) {
    let (workers, capacity, completions) = parts(0, Capacity::pull());
    let pull = Pull {
        bridge: Recorder::default(),
        workers,
        backlog: VecDeque::new(),
        parked: VecDeque::new(),
        cancels: HashMap::new(),
        acks: HashMap::new(),
        reports: HashMap::new(),
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
        started: Vec::new(),
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
    assert_eq!(capacity.available(), 2, "the fetcher may take two tasks");

    let f = FunctionId::new_random();
    pull.backlog.push_back(fetch(&capacity, f));
    pull.assign(t0);
    let sent = pull.bridge.take();
    let [(identity, ToWorker::Tasks { tasks, .. })] = &sent[..] else {
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
        capacity.available(),
        1,
        "the worker still has room for one, until its next ask says otherwise"
    );

    pull.on_inbound(inbound(b"w-ask", true, &ask("w", 1)), t0);
    assert_eq!(capacity.available(), 1, "the same room: no change");
    pull.backlog.push_back(fetch(&capacity, f));
    pull.assign(t0);
    let sent = pull.bridge.take();
    let [(_, ToWorker::Tasks { tasks, .. })] = &sent[..] else {
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

    // Still in the backlog (no ask parked: its keep-alive was answered, the grant stays):
    // dropped, its place and completion returned.
    capacity.worker_asked("w", 1);
    let waiting = fetch(&capacity, f);
    let waiting_id = waiting.task_id;
    pull.backlog.push_back(waiting);
    pull.cancel(waiting_id);
    assert!(pull.backlog.is_empty());
    assert_eq!(capacity.available(), 1, "the place came back");
    let done = completions.try_recv().expect("a completion for the core");
    assert_eq!(done.task_id, waiting_id);
    assert!(matches!(done.outcome, TaskOutcome::WorkerFailure(ref m) if m.contains("cancelled")));

    // Held by the worker: named in the answer to its next heartbeat, once.
    pull.on_inbound(inbound(b"w-ask", true, &ask("w", 1)), t0);
    pull.backlog.push_back(fetch(&capacity, f));
    pull.assign(t0);
    let [(_, ToWorker::Tasks { tasks, .. })] = &pull.bridge.take()[..] else {
        panic!("the task was not handed out")
    };
    let held = tasks[0].task_id;
    pull.cancel(held);
    assert!(
        pull.bridge.take().is_empty(),
        "a REQ worker hears only answers"
    );
    let heartbeat = ToDispatcher::Heartbeat {
        worker: "w".into(),
        started: Vec::new(),
    };
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
        matches!(&sent[..], [(identity, ToWorker::Tasks { tasks, .. })] if identity == b"idle-ask" && tasks.len() == 1),
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
        matches!(&sent[..], [(_, ToWorker::Tasks { tasks, .. })] if tasks.is_empty()),
        "{sent:?}"
    );
    assert_eq!(capacity.available(), 2, "the grant outlives the keep-alive");
    pull.on_inbound(inbound(b"w-ask", true, &ask("w", 2)), t0 + HEARTBEAT);
    assert_eq!(capacity.available(), 2, "asking again adds nothing");
    pull.on_inbound(inbound(b"w-ask", true, &ask("w", 1)), t0 + HEARTBEAT);
    assert_eq!(
        capacity.available(),
        2,
        "a smaller ask leaves the grant: nothing is withdrawn while the worker lives"
    );
    pull.on_inbound(inbound(b"w-ask", true, &ask("w", 1000)), t0 + HEARTBEAT);
    assert_eq!(
        capacity.available(),
        2,
        "an ask beyond the worker's executors is capped at them"
    );
}

#[test]
fn an_unknown_worker_is_told_to_register_and_its_results_wait_for_it() {
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
        started: Vec::new(),
    };
    pull.on_inbound(inbound(b"g", true, &message), t0);
    assert!(matches!(
        pull.bridge.take()[..],
        [(_, ToWorker::Reregister { .. })]
    ));
    assert!(
        completions.try_recv().is_err(),
        "an unregistered worker's result counted"
    );
    // Registered, it sends them again (they were never acknowledged), and they count.
    register(&mut pull, "ghost", t0);
    pull.on_inbound(inbound(b"g", true, &message), t0);
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
    assert_eq!(capacity.available(), 0);
}

#[test]
fn results_are_acknowledged_only_once_recorded() {
    let t0 = Instant::now();
    let (mut pull, _, mut completions) = pull();
    register(&mut pull, "w", t0);
    let result = |task_id| crate::protocol::Completion {
        task_id,
        outcome: TaskOutcome::Completed("R".into()),
        started_at: Some(1),
        finished_at: 2,
        executor: Some("w/0".into()),
    };
    let (reported, carried) = (TaskId::new_random(), TaskId::new_random());

    // A report is answered once what it carried is recorded.
    let report = ToDispatcher::Results {
        worker: "w".into(),
        results: vec![result(reported)],
        started: Vec::new(),
    };
    pull.on_inbound(inbound(b"w-results", true, &report), t0);
    assert_eq!(completions.try_recv().unwrap().task_id, reported);
    assert!(pull.bridge.take().is_empty(), "not recorded yet");
    pull.recorded(vec![reported]);
    let sent = pull.bridge.take();
    assert!(
        matches!(&sent[..], [(_, ToWorker::Ack { tasks, .. })] if tasks == &vec![reported]),
        "{sent:?}"
    );

    // A result carried by an ask is acknowledged in the worker's next answer.
    let ask = ToDispatcher::Ask {
        worker: "w".into(),
        free: 1,
        results: vec![result(carried)],
        started: Vec::new(),
    };
    pull.on_inbound(inbound(b"w-ask", true, &ask), t0);
    pull.recorded(vec![carried]);
    assert!(pull.bridge.take().is_empty(), "the ask stays parked");
    pull.on_tick(t0 + HEARTBEAT);
    let sent = pull.bridge.take();
    assert!(
        matches!(&sent[..], [(_, ToWorker::Tasks { tasks, acked })] if tasks.is_empty() && acked == &vec![carried]),
        "{sent:?}"
    );

    // A report whose results stay unrecorded is answered after a heartbeat, acknowledging
    // nothing: the worker keeps them.
    let late = TaskId::new_random();
    let report = ToDispatcher::Results {
        worker: "w".into(),
        results: vec![result(late)],
        started: Vec::new(),
    };
    pull.on_inbound(inbound(b"w-results", true, &report), t0 + HEARTBEAT);
    pull.on_tick(t0 + HEARTBEAT * 2);
    let sent = pull.bridge.take();
    assert!(
        matches!(&sent[..], [(_, ToWorker::Ack { tasks, .. })] if tasks.is_empty()),
        "{sent:?}"
    );
}
