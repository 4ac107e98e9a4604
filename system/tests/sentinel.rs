//! Redis without a single point of failure: the gateway and the dispatcher are given a
//! Sentinel address, the primary is killed mid-run, and the platform follows the replica the
//! Sentinels promote by itself. The gateway acknowledges a submission only once a replica has
//! it (`--replicas 1`), so every task it accepted, before or during the failover, completes.

mod common;

use std::time::{Duration, Instant};

use common::{SentinelSet, TestSystem, mode, spec};
use faas::cluster::{ClusterSpec, RedisSpec};

const DOUBLE: &str = "def double(x):\n    return x * 2\n";

#[tokio::test(flavor = "multi_thread")]
async fn the_platform_follows_a_failover_and_keeps_every_task_it_accepted() {
    let mut set = SentinelSet::start().await;
    let system = TestSystem::from_spec(ClusterSpec {
        redis: RedisSpec::External(set.url()),
        gateway_args: vec!["--replicas".into(), "1".into()],
        ..spec(mode("local"), &[2])
    })
    .await;
    let f = system.register(DOUBLE, "double").await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        tasks.push((i, system.execute(&f, &format!("(({i},), {{}})")).await));
    }

    let old = set.kill_primary();
    // Submissions go on through the failover; refusals (503) are retried, as a client would.
    let params = common::serialize_params_many(
        &(20..40)
            .map(|i| format!("(({i},), {{}})"))
            .collect::<Vec<_>>(),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut refused = 0;
    for (i, payload) in (20..40).zip(params) {
        let mut pause = Duration::from_millis(50);
        loop {
            let body = serde_json::json!({"function_id": f, "payload": payload});
            let (status, answer) = system.post("/execute_function", body).await;
            if status == 201 {
                tasks.push((i, answer["task_id"].as_str().expect("an id").to_owned()));
                break;
            }
            assert_eq!(status, 503, "{answer}");
            refused += 1;
            assert!(Instant::now() < deadline, "still refused: {answer}");
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
    let new = set.primary_port().await.expect("a primary");
    assert_ne!(new, old, "the Sentinels promoted a replica");
    assert!(refused > 0, "the failover was never seen by a client");

    for (i, task) in &tasks {
        let (status, result) = system.wait_final(task, Duration::from_secs(60)).await;
        assert_eq!(
            (status.as_str(), common::describe(&result).1),
            ("COMPLETED", (2 * i).to_string()),
            "task {i} ({task})"
        );
    }
}
