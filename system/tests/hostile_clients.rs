//! Hostile HTTP clients against the gateway: each tries to hold its resources for free
//! (a slowloris, a trickled body, connections or long polls beyond the caps) and gets a
//! closed connection or a JSON error, while an ordinary client is still served.

mod common;

use std::time::Duration;

use common::TestSystem;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Long enough for any answer on a loaded machine; far shorter than a stuck connection.
const ANSWER: Duration = Duration::from_secs(15);

async fn connect(system: &TestSystem) -> TcpStream {
    let addr = system.url.trim_start_matches("http://");
    TcpStream::connect(addr)
        .await
        .expect("connect to the gateway")
}

/// Everything the server sends until it closes the connection (within [`ANSWER`]).
async fn read_until_closed(tcp: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let read = tokio::time::timeout(ANSWER, tcp.read_to_end(&mut seen)).await;
    assert!(
        read.is_ok(),
        "the gateway kept the connection open: {:?}",
        String::from_utf8_lossy(&seen)
    );
    String::from_utf8_lossy(&seen).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slowloris_is_dropped_while_others_are_served() {
    let system = TestSystem::without_dispatcher(&["--header-timeout", "1"]).await;
    let mut slow = connect(&system).await;
    slow.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        .await
        .expect("write");
    // One more header byte every 200 ms, never the blank line that ends them.
    let trickle = async {
        loop {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if slow.write_all(b"X").await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        () = trickle => {}
        () = tokio::time::sleep(ANSWER) => panic!("the slowloris was never dropped"),
    }
    assert_eq!(system.get("/health").await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_trickled_body_gets_408() {
    let system = TestSystem::without_dispatcher(&["--body-timeout", "1"]).await;
    let mut slow = connect(&system).await;
    slow.write_all(
        b"POST /register_function HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\"",
    )
    .await
    .expect("write");
    let answer = read_until_closed_or_answered(&mut slow).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"error\""), "{answer}");
}

/// Reads until the server has sent a whole answer head and some body, or closed.
async fn read_until_closed_or_answered(tcp: &mut TcpStream) -> String {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + ANSWER;
    loop {
        let n = tokio::time::timeout_at(deadline, tcp.read(&mut buf))
            .await
            .expect("an answer in time")
            .expect("read");
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen).into_owned();
        if n == 0 || text.ends_with('}') {
            return text;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn connections_beyond_the_cap_get_503_and_are_closed() {
    let system = TestSystem::without_dispatcher(&["--max-connections", "3"]).await;
    // Three connections that say nothing hold every place (until the header timeout).
    let mut idle = Vec::new();
    for _ in 0..3 {
        idle.push(connect(&system).await);
    }
    let answer = health(&system).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("too many open connections"), "{answer}");
    // Their places come back when they go (once the gateway has seen them close).
    drop(idle);
    let deadline = tokio::time::Instant::now() + ANSWER;
    while !health(&system).await.starts_with("HTTP/1.1 200") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "places never came back"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// `GET /health` on a connection of its own, written by hand (a refused connection is
/// answered before the request is read, which HTTP clients take for a broken server).
async fn health(system: &TestSystem) -> String {
    let mut tcp = connect(system).await;
    // The refused side may close before this is written: what it sent is the answer.
    let _ = tcp
        .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await;
    read_until_closed(&mut tcp).await
}

#[tokio::test(flavor = "multi_thread")]
async fn waiting_requests_beyond_the_cap_get_503() {
    let system = TestSystem::without_dispatcher(&["--max-waiting", "2"]).await;
    let f = system.register("def one():\n    return 1\n", "one").await;
    // No dispatcher: it stays queued, and every wait for it lasts.
    let task = system.execute(&f, "((), {})").await;
    let mut waiting = Vec::new();
    for _ in 0..2 {
        let (http, url) = (
            system.http.clone(),
            format!("{}/result/{task}?wait=30", system.url),
        );
        waiting.push(tokio::spawn(async move { http.get(url).send().await }));
    }
    let metrics = format!("{}/metrics", system.url);
    system
        .wait_sample(&metrics, "faas_gateway_result_waiters", 2.0)
        .await;
    let (code, body) = system.get(&format!("/result/{task}?wait=30")).await;
    assert_eq!(code, 503, "{body}");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.contains("too many requests are waiting")),
        "{body}"
    );
    let (code, body) = system
        .post(
            "/results",
            serde_json::json!({"task_ids": [task], "wait": 30}),
        )
        .await;
    assert_eq!(code, 503, "{body}");
    // Without a wait, the same request is served.
    let (code, body) = system.get(&format!("/result/{task}")).await;
    assert_eq!(
        (code, body["status"].as_str()),
        (200, Some("QUEUED")),
        "{body}"
    );
    for request in waiting {
        request.abort();
    }
}
