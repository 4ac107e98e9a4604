//! The gateway's contract and input checks, against a real Redis, with no dispatcher running
//! (so tasks stay QUEUED and the queue can be inspected).

mod common;

use std::time::Duration;

use common::{TestSystem, serialize_function, serialize_params};
use faas::cluster::MemberId;
use faas::store::{FinalOutcome, FinishOutcome, Store};
use faas::task::{FunctionId, TaskId, TaskStatus, now_micros};

#[tokio::test(flavor = "multi_thread")]
async fn bad_requests_get_4xx_with_a_json_error() {
    let system = TestSystem::without_dispatcher(&["--max-body-bytes", "100000"]).await;
    let f = system.register("def f():\n    return 1\n", "f").await;
    let good = serialize_params("((), {})");
    let json_b64 = faas::payload::encode_payload(b"{\"a\": 1}");
    let random_b64 = faas::payload::encode_payload(&[0x13, 0x99, 0x02, 0xfe, 0x44, 0x00, 0x7f]);
    let cases: Vec<(&str, serde_json::Value, u16)> = vec![
        (
            "/register_function",
            serde_json::json!({"name": "f", "payload": "payload"}),
            400,
        ),
        (
            "/register_function",
            serde_json::json!({"name": "f", "payload": ""}),
            400,
        ),
        (
            "/register_function",
            serde_json::json!({"name": "f", "payload": json_b64}),
            400,
        ),
        (
            "/register_function",
            serde_json::json!({"name": "f", "payload": random_b64}),
            400,
        ),
        ("/register_function", serde_json::json!({"name": "f"}), 400),
        (
            "/register_function",
            serde_json::json!({"name": "", "payload": good}),
            400,
        ),
        (
            "/register_function",
            serde_json::json!({"name": 5, "payload": good}),
            400,
        ),
        (
            "/register_function",
            serde_json::json!({"name": "f", "payload": good, "x": 1}),
            400,
        ),
        ("/register_function", serde_json::json!([1, 2]), 400),
        ("/register_function", serde_json::json!(null), 400),
        ("/register_function", serde_json::json!("payload"), 400),
        (
            "/register_function",
            serde_json::json!({"name": "f", "payload": 12}),
            400,
        ),
        (
            "/register_function",
            serde_json::json!({"name": "f", "payload": [good]}),
            400,
        ),
        (
            "/register_function",
            serde_json::json!({"name": "f", "payload": good[..good.len() / 2]}),
            400,
        ),
        (
            "/execute_function",
            serde_json::json!({"function_id": 5, "payload": good}),
            400,
        ),
        (
            "/execute_function",
            serde_json::json!({"function_id": null, "payload": good}),
            400,
        ),
        (
            "/execute_function",
            serde_json::json!({"function_id": f, "payload": good, "extra": true}),
            400,
        ),
        (
            "/execute_function",
            serde_json::json!({"function_id": f, "payload": json_b64}),
            400,
        ),
        (
            "/execute_function",
            serde_json::json!({"function_id": "nope", "payload": good}),
            400,
        ),
        (
            "/execute_function",
            serde_json::json!({"function_id": f, "payload": "%%%"}),
            400,
        ),
        (
            "/execute_function",
            serde_json::json!({"function_id": f}),
            400,
        ),
        (
            "/execute_function",
            serde_json::json!({"function_id": TaskId::new_random().to_string(), "payload": good}),
            404,
        ),
        (
            "/execute_function",
            serde_json::json!({"function_id": f, "payload": "A".repeat(200_000)}),
            413,
        ),
    ];
    for (path, body, want) in cases {
        let (status, reply) = system.post(path, body.clone()).await;
        assert_eq!(status, want, "{path} {body}: {reply}");
        assert!(
            reply["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{path} {body}: no error text in {reply}"
        );
    }

    for raw in ["", "{", "not json", "{\"name\": \"f\", \"payload\": }"] {
        let r = system
            .http
            .post(format!("{}/register_function", system.url))
            .body(raw)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400, "body {raw:?}");
        let reply: serde_json::Value = r.json().await.expect("JSON error body");
        assert!(reply["error"].is_string(), "{reply}");
    }

    for (path, want) in [
        ("/status/not-a-uuid", 400),
        ("/result/123", 400),
        (&*format!("/status/{}", TaskId::new_random()), 404),
        (&*format!("/result/{}", TaskId::new_random()), 404),
        ("/no/such/endpoint", 404),
        ("/register_function", 405),
    ] {
        let (status, reply) = system.get(path).await;
        assert_eq!(status, want, "GET {path}: {reply}");
        assert!(reply["error"].is_string(), "GET {path}: {reply}");
    }

    // Still serving after all that.
    let task = system.execute_serialized(&f, &good).await;
    assert_eq!(
        system.get(&format!("/status/{task}")).await.1["status"],
        "QUEUED"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_task_is_recorded_queued_and_announced() {
    let system = TestSystem::without_dispatcher(&[]).await;
    let f = system.register("def f(x):\n    return x\n", "f").await;
    let client = redis::Client::open(system.cluster.redis_url()).unwrap();
    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe("tasks").await.unwrap();

    let task = system.execute(&f, "((1,), {})").await;

    let message = tokio::time::timeout(Duration::from_secs(5), async {
        use futures_util::StreamExt;
        pubsub.on_message().next().await
    })
    .await
    .expect("announcement on `tasks`")
    .expect("message");
    assert_eq!(message.get_payload::<String>().unwrap(), task);
    let (status, body) = system.get(&format!("/result/{task}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        serde_json::json!({"task_id": task, "status": "QUEUED", "result": null})
    );
    let entry = system
        .task_field(&task, "queue_entry")
        .await
        .expect("queue entry");
    let mut conn = system.redis().await;
    let len: usize = redis::cmd("XLEN")
        .arg("faas:queue")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 1, "entry {entry} not on the queue");
    assert!(system.task_field(&task, "submitted_at").await.is_some());
}

#[tokio::test(flavor = "multi_thread")]
async fn final_writes_are_first_wins() {
    let system = TestSystem::without_dispatcher(&[]).await;
    let store = Store::connect(system.cluster.redis_url()).await.unwrap();
    let function_id = FunctionId::new_random();
    store
        .register_function(
            function_id,
            "f",
            &serialize_function("def f():\n    return 1\n", "f"),
        )
        .await
        .unwrap();
    let task_id = TaskId::new_random();
    assert!(
        store
            .submit_task(task_id, function_id, &serialize_params("((), {})"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .submit_task(TaskId::new_random(), FunctionId::new_random(), "x")
            .await
            .unwrap()
    );

    let outcome = |status, result: &str| FinalOutcome {
        task_id,
        status,
        result: result.to_owned(),
        started_at: None,
        finished_at: now_micros(),
        executor: None,
        claim: None,
    };
    let first = store
        .finish_tasks(&[outcome(TaskStatus::Completed, "first")])
        .await
        .unwrap();
    let late = store
        .finish_tasks(&[outcome(TaskStatus::Failed, "late")])
        .await
        .unwrap();
    assert_eq!(
        (first, late),
        (
            vec![FinishOutcome::Recorded],
            vec![FinishOutcome::AlreadyFinal]
        )
    );
    let recorded = store.task_result(task_id).await.unwrap().unwrap();
    assert_eq!(
        (recorded.status, recorded.result.as_deref()),
        (TaskStatus::Completed, Some("first"))
    );
    let mut conn = system.redis().await;
    let len: usize = redis::cmd("XLEN")
        .arg("faas:queue")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 0, "a final task's queue entry must be removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_a_token_every_request_needs_it() {
    let system = TestSystem::without_dispatcher_authenticated("s3cret").await;
    let payload = serialize_function("def f():\n    return 1\n", "f");
    let body = serde_json::json!({"name": "f", "payload": payload});
    for auth in [
        None,
        Some("Bearer wrong"),
        Some("s3cret"),
        Some("Basic s3cret"),
    ] {
        let mut request = system
            .http
            .post(format!("{}/register_function", system.url))
            .json(&body);
        if let Some(auth) = auth {
            request = request.header("Authorization", auth);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status().as_u16(), 401, "{auth:?}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let reply: serde_json::Value = response.json().await.unwrap();
        assert!(
            reply["error"].as_str().unwrap().contains("unauthorized"),
            "{reply}"
        );
    }
    for path in [
        "/health",
        &format!("/status/{}", TaskId::new_random()),
        "/nowhere",
    ] {
        let response = system
            .http
            .get(format!("{}{path}", system.url))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 401, "{path}");
    }
    let mut conn = system.redis().await;
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("faas:function:*")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(
        keys.is_empty(),
        "an unauthenticated request touched the store: {keys:?}"
    );

    let response = system
        .http
        .post(format!("{}/register_function", system.url))
        .bearer_auth("s3cret")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_submits_one_task_per_payload() {
    let system = TestSystem::without_dispatcher(&[]).await;
    let f = system.register("def f(x):\n    return x\n", "f").await;
    let good = serialize_params("((1,), {})");
    let (status, body) = system
        .post(
            "/execute_batch",
            serde_json::json!({"function_id": f, "payloads": [good, good, good]}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let ids = body["task_ids"].as_array().expect("task_ids");
    assert_eq!(ids.len(), 3);
    for id in ids {
        let (_, status) = system
            .get(&format!("/status/{}", id.as_str().unwrap()))
            .await;
        assert_eq!(status["status"], "QUEUED");
    }
    let unknown = TaskId::new_random().to_string();
    for (body, want, mentions) in [
        (
            serde_json::json!({"function_id": f, "payloads": []}),
            400,
            "1 to 10000",
        ),
        (
            serde_json::json!({"function_id": f, "payloads": [good, "nope"]}),
            400,
            "payloads[1]",
        ),
        (
            serde_json::json!({"function_id": unknown, "payloads": [good]}),
            404,
            "not registered",
        ),
        (serde_json::json!({"function_id": f}), 400, "payloads"),
    ] {
        let (status, reply) = system.post("/execute_batch", body.clone()).await;
        assert_eq!(status, want, "{body}: {reply}");
        assert!(
            reply["error"]
                .as_str()
                .unwrap_or_default()
                .contains(mentions),
            "{reply}"
        );
    }
    let mut conn = system.redis().await;
    let len: usize = redis::cmd("XLEN")
        .arg("faas:queue")
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 3, "rejected batches queue nothing");
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_the_gateway_even_with_a_long_poll_open() {
    let system = TestSystem::without_dispatcher(&[]).await;
    let f = system.register("def f():\n    return 1\n", "f").await;
    let task = system.execute(&f, "((), {})").await;
    let (http, url) = (
        system.http.clone(),
        format!("{}/result/{task}?wait=60", system.url),
    );
    let waiting = tokio::spawn(async move {
        let response = http.get(url).send().await?;
        Ok::<_, reqwest::Error>((
            response.status(),
            response.json::<serde_json::Value>().await?,
        ))
    });
    // The poll is open: the gateway counts it among the requests waiting for results.
    let metrics = format!("{}/metrics", system.url);
    system
        .wait_sample(&metrics, "faas_gateway_result_waiters", 1.0)
        .await;
    assert!(!waiting.is_finished(), "the long poll was answered early");

    let exit = system
        .terminate(MemberId::Gateway, Duration::from_secs(5))
        .await;
    assert!(
        exit.is_some_and(|s| s.success()),
        "gateway did not stop cleanly: {exit:?}"
    );
    // Answered at shutdown with what was known then, not left to run out its 60 s.
    let (status, body) = waiting
        .await
        .expect("the poll's task")
        .expect("the long poll is answered before the gateway exits");
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"task_id": task, "status": "QUEUED", "result": null})
    );
}
