//! `/metrics` (Prometheus) and `/health` on the gateway and the dispatcher, read from real
//! processes after real tasks: queue depth, tasks in flight, workers alive, outcomes by status,
//! requests by route, and the per-phase latency histograms. A sample the processes update
//! after answering (a counter bumped once the result is recorded) is scraped until it shows.

mod common;

use std::time::Duration;

use common::{Fifo, TestSystem, free_port, nap_args, sample, signalling};

const MAYBE_RAISE: &str =
    "def maybe(x):\n    if x < 0:\n        raise ValueError('negative')\n    return x\n";

#[tokio::test(flavor = "multi_thread")]
async fn gateway_and_dispatcher_expose_outcomes_phases_workers_and_requests() {
    let http = format!("127.0.0.1:{}", free_port());
    let system = TestSystem::with_mode("push", &[2], &["--http", &http]).await;
    let dispatcher = format!("http://{http}");
    let f = system.register(MAYBE_RAISE, "maybe").await;
    let mut tasks = Vec::new();
    for x in ["1", "2", "-1"] {
        tasks.push(system.execute(&f, &format!("(({x},), {{}})")).await);
    }
    for task in &tasks {
        system.wait_final(task, Duration::from_secs(30)).await;
    }

    let page = system
        .wait_sample(
            &format!("{dispatcher}/metrics"),
            "faas_dispatcher_tasks_finished_total{status=\"COMPLETED\"}",
            2.0,
        )
        .await;
    assert_eq!(
        sample(
            &page,
            "faas_dispatcher_tasks_finished_total{status=\"FAILED\"}"
        ),
        Some(1.0),
        "{page}"
    );
    for phase in ["queue", "dispatch", "run", "record"] {
        let count = format!("faas_task_phase_seconds_count{{phase=\"{phase}\"}}");
        assert_eq!(sample(&page, &count), Some(3.0), "{count}\n{page}");
        let inf = format!("faas_task_phase_seconds_bucket{{phase=\"{phase}\",le=\"+Inf\"}}");
        assert_eq!(sample(&page, &inf), Some(3.0), "{inf}");
    }
    assert_eq!(sample(&page, "faas_dispatcher_tasks_in_flight"), Some(0.0));
    let page = system
        .wait_sample(
            &format!("{dispatcher}/metrics"),
            "faas_dispatcher_workers_alive",
            1.0,
        )
        .await;
    assert_eq!(
        sample(&page, "faas_dispatcher_executors"),
        Some(2.0),
        "{page}"
    );

    let health: serde_json::Value = system
        .http
        .get(format!("{dispatcher}/health"))
        .send()
        .await
        .expect("GET /health")
        .json()
        .await
        .expect("json");
    assert_eq!(health["status"], "ok", "{health}");
    assert_eq!(health["workers_alive"], 1, "{health}");

    let page = system.scrape(&format!("{}/metrics", system.url)).await;
    assert_eq!(
        sample(
            &page,
            "faas_http_requests_total{route=\"POST /execute_function\",status=\"201\"}"
        ),
        Some(3.0),
        "{page}"
    );
    assert_eq!(
        sample(
            &page,
            "faas_http_request_duration_seconds_count{route=\"POST /register_function\"}"
        ),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "faas_queue_waiting_tasks"),
        Some(0.0),
        "{page}"
    );
    assert_eq!(sample(&page, "faas_queue_held_tasks"), Some(0.0), "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_depth_and_tasks_in_flight_follow_the_queue() {
    let http = format!("127.0.0.1:{}", free_port());
    let system = TestSystem::with_mode("local", &[1], &["--prefetch", "0", "--http", &http]).await;
    let mut fifo = Fifo::new();
    let f = system.register(&signalling(common::NAP), "nap").await;
    let mut tasks = Vec::new();
    for i in 0..5 {
        tasks.push(
            system
                .execute(&f, &nap_args(&fifo, &i.to_string(), 30.0))
                .await,
        );
    }
    // One runs on the one executor; with no prefetch, the dispatcher holds no other.
    fifo.next(Duration::from_secs(30)).await;
    let gateway = format!("{}/metrics", system.url);
    let page = system.scrape(&gateway).await;
    assert_eq!(sample(&page, "faas_queue_held_tasks"), Some(1.0), "{page}");
    assert_eq!(
        sample(&page, "faas_queue_waiting_tasks"),
        Some(4.0),
        "{page}"
    );
    let page = system.scrape(&format!("http://{http}/metrics")).await;
    assert_eq!(
        sample(&page, "faas_dispatcher_tasks_in_flight"),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        sample(&page, "faas_queue_waiting_tasks"),
        Some(4.0),
        "{page}"
    );
    assert_eq!(sample(&page, "faas_dispatcher_workers_alive"), Some(0.0));
    assert_eq!(sample(&page, "faas_dispatcher_executors"), Some(1.0));

    // A cancellation takes the task off the queue as it answers.
    for task in &tasks {
        let (code, body) = system
            .post(&format!("/cancel/{task}"), serde_json::json!({}))
            .await;
        assert_eq!(code, 200, "{body}");
    }
    let page = system.scrape(&gateway).await;
    assert_eq!(sample(&page, "faas_queue_held_tasks"), Some(0.0), "{page}");
    assert_eq!(
        sample(&page, "faas_queue_waiting_tasks"),
        Some(0.0),
        "{page}"
    );
}
