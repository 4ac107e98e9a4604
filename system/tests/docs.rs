//! The API description and docs: `GET /openapi.json` covers every route of the router with its
//! bodies and error answers, every live answer is exactly its `faas::api` type, and `GET /docs`
//! (Swagger UI, served by the gateway itself) renders in a real headless browser on a machine
//! without internet access.

mod common;

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestSystem;
use faas::api;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

const CHROMIUM: &str = "/usr/bin/chromium";
const TITLE: &str = "FaaS gateway API";
/// How long chromium may take to render the page before the test gives up.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(25);

/// `(method, path)` of every `.route("PATH", get(..).post(..))` in the gateway's sources: what
/// the router serves, read from the code so a new route without documentation fails here.
fn router_routes() -> BTreeSet<(String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/gateway");
    let mut routes = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).expect("read src/gateway") {
        let path = entry.expect("dir entry").path();
        if path.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).expect("read source");
        let mut rest = source.as_str();
        while let Some(at) = rest.find(".route(") {
            rest = rest[at + ".route(".len()..].trim_start();
            let Some(quoted) = rest.strip_prefix('"') else {
                continue;
            };
            rest = quoted;
            let end = rest.find('"').expect("closing quote of a route path");
            let route = rest[..end].to_owned();
            // The method routers up to the `.route(` call's closing parenthesis.
            let mut depth = 1;
            let close = rest
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '(' => depth += 1,
                        ')' => depth -= 1,
                        _ => {}
                    }
                    depth == 0
                })
                .map_or(rest.len(), |(i, _)| i);
            let args = &rest[end..close];
            let mut found = false;
            for method in ["get", "post", "put", "delete", "patch"] {
                let called = args.match_indices(&format!("{method}(")).any(|(i, _)| {
                    let before = if i == 0 { b' ' } else { args.as_bytes()[i - 1] };
                    !(before.is_ascii_alphanumeric() || before == b'_')
                });
                if called {
                    routes.insert((method.to_owned(), route.clone()));
                    found = true;
                }
            }
            assert!(found, "{}: no method router for {route}", path.display());
            rest = &rest[close..];
        }
    }
    assert!(routes.len() >= 9, "found too few routes: {routes:?}");
    routes
}

/// `(method, path)` of every operation in the document.
fn documented_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "post", "put", "delete", "patch"].contains(&method.as_str()) {
                ops.insert((method.clone(), path.clone()));
            }
        }
    }
    ops
}

/// Follows a local `$ref` (`#/components/...`).
fn resolve<'a>(doc: &'a Value, value: &'a Value) -> &'a Value {
    match value["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.strip_prefix('#').expect("local $ref");
            resolve(
                doc,
                doc.pointer(pointer)
                    .unwrap_or_else(|| panic!("dangling {reference}")),
            )
        }
        None => value,
    }
}

/// The properties and required properties of an object schema (through `$ref` and `allOf`).
fn object_shape(doc: &Value, schema: &Value) -> (BTreeSet<String>, BTreeSet<String>) {
    let schema = resolve(doc, schema);
    let mut properties: BTreeSet<String> = schema["properties"]
        .as_object()
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    let mut required: BTreeSet<String> = schema["required"]
        .as_array()
        .map(|r| {
            r.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let (p, r) = object_shape(doc, part);
        properties.extend(p);
        required.extend(r);
    }
    (properties, required)
}

/// The declared response for `status` of an operation, `$ref`s resolved.
fn declared<'a>(doc: &'a Value, method: &str, path: &str, status: u16) -> Option<&'a Value> {
    doc["paths"][path][method]["responses"]
        .get(status.to_string())
        .map(|r| resolve(doc, r))
}

/// Checks a live answer against the document: its status is declared for the operation, an
/// error has the error body, and a JSON success body has the documented shape.
fn check_answer(doc: &Value, method: &str, path: &str, status: u16, body: &Value) {
    let response = declared(doc, method, path, status).unwrap_or_else(|| {
        panic!("{method} {path} answered {status} ({body}), which the document does not declare")
    });
    let Some(schema) = response["content"]["application/json"].get("schema") else {
        return;
    };
    let (properties, required) = object_shape(doc, schema);
    let keys: BTreeSet<String> = body
        .as_object()
        .unwrap_or_else(|| panic!("{method} {path} {status}: body {body} is not an object"))
        .keys()
        .cloned()
        .collect();
    assert!(
        required.is_subset(&keys) && keys.is_subset(&properties),
        "{method} {path} {status}: body {body} does not fit the documented schema \
         (properties {properties:?}, required {required:?})"
    );
    check_api_type(path, status, body);
}

/// Checks that `body` parses as the `faas::api` type `T` and serializes back to the same JSON:
/// the types the handlers, the document and the client share are exactly the wire form.
fn round_trip<T: DeserializeOwned + Serialize>(what: &str, body: &Value) {
    let typed: T = serde_json::from_value(body.clone()).unwrap_or_else(|e| {
        panic!(
            "{what}: {body} is not a {}: {e}",
            std::any::type_name::<T>()
        )
    });
    assert_eq!(serde_json::to_value(&typed).unwrap(), *body, "{what}");
}

/// Checks a live JSON answer against the `faas::api` type of its route.
fn check_api_type(path: &str, status: u16, body: &Value) {
    let check: fn(&str, &Value) = if status >= 400 {
        round_trip::<api::ErrorBody>
    } else {
        match path {
            "/register_function" => round_trip::<api::RegisterResponse>,
            "/execute_function" => round_trip::<api::ExecuteResponse>,
            "/execute_batch" => round_trip::<api::BatchResponse>,
            "/status/{task_id}" => round_trip::<api::StatusResponse>,
            "/result/{task_id}" => round_trip::<api::ResultResponse>,
            "/task/{task_id}" => round_trip::<api::TimelineResponse>,
            "/cancel/{task_id}" => round_trip::<api::CancelResponse>,
            "/functions/{function_id}" => round_trip::<api::DeleteFunctionResponse>,
            "/health" => round_trip::<api::Health>,
            other => panic!("no faas::api type is known for the answers of {other}"),
        }
    };
    check(&format!("{path} {status}"), body);
}

/// Sends a request to the gateway; the status and the body (JSON, or `Null`).
async fn call(system: &TestSystem, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
    let url = format!("{}{path}", system.url);
    let request = match method {
        "get" => system.http.get(url),
        "post" => system.http.post(url),
        "delete" => system.http.delete(url),
        other => panic!("no {other} here"),
    };
    let request = match body {
        Some(body) => request.json(&body),
        None => request,
    };
    let response = request.send().await.expect("request");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn fetch_document(system: &TestSystem) -> Value {
    let (status, doc) = system.get("/openapi.json").await;
    assert_eq!(status, 200, "GET /openapi.json: {doc}");
    doc
}

#[tokio::test]
async fn openapi_json_documents_every_route_with_its_models_and_errors() {
    let system = TestSystem::without_dispatcher(&[]).await;
    let doc = fetch_document(&system).await;

    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with('3'), "openapi is {version}");
    assert_eq!(doc["info"]["title"], TITLE);

    // Every route of the router is documented with its methods, and nothing else is.
    let routes = router_routes();
    let documented = documented_operations(&doc);
    let missing: Vec<_> = routes.difference(&documented).collect();
    assert!(
        missing.is_empty(),
        "routes without documentation: {missing:?}"
    );
    let extra: Vec<_> = documented.difference(&routes).collect();
    assert!(
        extra.is_empty(),
        "documented operations the router lacks: {extra:?}"
    );

    // Error answers are declared where they occur, each with the `{"error"}` body.
    let error_schema = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error_schema["required"], json!(["error"]), "{error_schema}");
    let mut expected: BTreeMap<(&str, &str), &[u16]> = BTreeMap::new();
    expected.insert(("post", "/register_function"), &[201, 400, 413]);
    expected.insert(("post", "/execute_function"), &[201, 400, 404, 413]);
    expected.insert(("post", "/execute_batch"), &[201, 400, 404, 413]);
    expected.insert(("get", "/status/{task_id}"), &[200, 400, 404]);
    expected.insert(("get", "/result/{task_id}"), &[200, 400, 404]);
    expected.insert(("post", "/results"), &[200, 400, 413]);
    expected.insert(("get", "/task/{task_id}"), &[200, 400, 404]);
    expected.insert(("post", "/cancel/{task_id}"), &[200, 400, 404, 409]);
    expected.insert(("delete", "/functions/{function_id}"), &[200, 400, 404]);
    expected.insert(("get", "/health"), &[200]);
    for (method, path) in &documented {
        let own = expected
            .get(&(method.as_str(), path.as_str()))
            .copied()
            .unwrap_or(&[200]);
        // Every route sits behind the optional token and reads Redis.
        for &status in own.iter().chain(&[401, 503]) {
            let response = declared(&doc, method, path, status)
                .unwrap_or_else(|| panic!("{method} {path} does not declare {status}"));
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{method} {path} {status} has no description"
            );
            if status >= 400 {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status} is not the error body"
                );
            }
        }
    }
    if documented.contains(&("get".to_owned(), "/metrics".to_owned())) {
        let ok = declared(&doc, "get", "/metrics", 200).expect("metrics 200");
        assert!(ok["content"].get("text/plain").is_some(), "{ok}");
    }

    // Models: path parameters, the long-poll query, payloads, statuses, the NDJSON stream.
    for path in documented
        .iter()
        .map(|(_, p)| p)
        .filter(|p| p.contains("{task_id}"))
    {
        let params = doc["paths"][path]
            .as_object()
            .unwrap()
            .values()
            .flat_map(|op| op["parameters"].as_array().cloned().unwrap_or_default())
            .collect::<Vec<_>>();
        assert!(
            params.iter().any(|p| p["name"] == "task_id"
                && p["in"] == "path"
                && p["required"] == true
                && p["schema"]["format"] == "uuid"),
            "{path} lacks its task_id parameter: {params:?}"
        );
    }
    let result_params = &doc["paths"]["/result/{task_id}"]["get"]["parameters"];
    assert!(
        result_params
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["name"] == "wait" && p["in"] == "query" && p["required"] == false),
        "{result_params}"
    );
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [
        ("RegisterRequest", "payload"),
        ("ExecuteRequest", "payload"),
        ("ResultResponse", "result"),
    ] {
        let property = &schemas[schema]["properties"][field];
        let description = property["description"].as_str().unwrap_or_default();
        assert!(
            description.contains("dill") && description.contains("base64"),
            "{schema}.{field} does not say it is base64 of a dill pickle: {property}"
        );
        assert_eq!(property["contentEncoding"], "base64", "{schema}.{field}");
    }
    assert_eq!(
        schemas["TaskStatus"]["enum"],
        json!(["QUEUED", "RUNNING", "COMPLETED", "FAILED"])
    );
    let stream = declared(&doc, "post", "/results", 200).unwrap();
    assert!(
        stream["content"].get("application/x-ndjson").is_some(),
        "{stream}"
    );

    // The bearer scheme, optional (`{}`) as the gateway runs without a token by default.
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(bearer["type"], "http", "{bearer}");
    assert_eq!(bearer["scheme"], "bearer", "{bearer}");
    assert_eq!(doc["security"], json!([{}, {"bearer": []}]));

    // The live gateway answers every documented operation with statuses and bodies the
    // document declares; the request examples it gives are accepted.
    let register_example = &schemas["RegisterRequest"]["properties"]["payload"]["example"];
    let params_example = &schemas["ExecuteRequest"]["properties"]["payload"]["example"];
    let absent = "0b5c8a52-3f7e-4c8e-9d55-2a1f4c9e7b10";
    let answered = RefCell::new(BTreeSet::new());
    let probe = async |method: &str, path: &str, concrete: &str, body: Option<Value>| {
        let (status, answer) = call(&system, method, concrete, body).await;
        check_answer(&doc, method, path, status, &answer);
        answered
            .borrow_mut()
            .insert((method.to_owned(), path.to_owned()));
        (status, answer)
    };

    let (s, _) = probe(
        "post",
        "/register_function",
        "/register_function",
        Some(json!({})),
    )
    .await;
    assert_eq!(s, 400);
    let register = json!({"name": "abs", "payload": register_example});
    let (s, body) = probe(
        "post",
        "/register_function",
        "/register_function",
        Some(register),
    )
    .await;
    assert_eq!(s, 201, "the documented example payload is accepted: {body}");
    let function_id = body["function_id"]
        .as_str()
        .expect("function_id")
        .to_owned();

    let execute = |id: &str| json!({"function_id": id, "payload": params_example});
    let (s, _) = probe(
        "post",
        "/execute_function",
        "/execute_function",
        Some(execute("x")),
    )
    .await;
    assert_eq!(s, 400);
    let (s, _) = probe(
        "post",
        "/execute_function",
        "/execute_function",
        Some(execute(absent)),
    )
    .await;
    assert_eq!(s, 404);
    let (s, body) = probe(
        "post",
        "/execute_function",
        "/execute_function",
        Some(execute(&function_id)),
    )
    .await;
    assert_eq!(s, 201, "{body}");
    let task_id = body["task_id"].as_str().expect("task_id").to_owned();

    let batch = |id: &str| json!({"function_id": id, "payloads": [params_example, params_example]});
    let (s, _) = probe(
        "post",
        "/execute_batch",
        "/execute_batch",
        Some(batch(absent)),
    )
    .await;
    assert_eq!(s, 404);
    let (s, body) = probe(
        "post",
        "/execute_batch",
        "/execute_batch",
        Some(batch(&function_id)),
    )
    .await;
    assert_eq!(s, 201, "{body}");

    for path in ["/status/{task_id}", "/result/{task_id}", "/task/{task_id}"] {
        let (s, _) = probe("get", path, &path.replace("{task_id}", "not-a-uuid"), None).await;
        assert_eq!(s, 400, "{path}");
        let (s, _) = probe("get", path, &path.replace("{task_id}", absent), None).await;
        assert_eq!(s, 404, "{path}");
        let (s, body) = probe("get", path, &path.replace("{task_id}", &task_id), None).await;
        assert_eq!(s, 200, "{path}: {body}");
    }
    let (s, _) = probe(
        "get",
        "/result/{task_id}",
        &format!("/result/{task_id}?wait=soon"),
        None,
    )
    .await;
    assert_eq!(s, 400);

    let (s, _) = probe(
        "post",
        "/results",
        "/results",
        Some(json!({"task_ids": []})),
    )
    .await;
    assert_eq!(s, 400);
    let response = system
        .http
        .post(format!("{}/results", system.url))
        .json(&json!({"task_ids": [task_id, absent]}))
        .send()
        .await
        .expect("POST /results");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/x-ndjson");
    let lines = response.text().await.expect("stream");
    let line_schema = &schemas["ResultLine"]["oneOf"];
    for line in lines.lines() {
        let line: Value = serde_json::from_str(line).expect("one JSON object per line");
        let fits = line_schema.as_array().unwrap().iter().any(|variant| {
            let (properties, required) = object_shape(&doc, variant);
            let keys: BTreeSet<String> = line.as_object().unwrap().keys().cloned().collect();
            required.is_subset(&keys) && keys.is_subset(&properties)
        });
        assert!(fits, "stream line {line} fits no documented ResultLine");
        round_trip::<api::ResultLine>("POST /results line", &line);
    }
    answered
        .borrow_mut()
        .insert(("post".to_owned(), "/results".to_owned()));

    let cancel = |id: &str| format!("/cancel/{id}");
    for (id, want) in [("x", 400), (absent, 404), (&task_id, 200), (&task_id, 409)] {
        let (s, body) = probe("post", "/cancel/{task_id}", &cancel(id), None).await;
        assert_eq!(s, want, "cancel {id}: {body}");
    }

    let delete = |id: &str| format!("/functions/{id}");
    for (id, want) in [
        ("x", 400),
        (absent, 404),
        (&function_id, 200),
        (&function_id, 404),
    ] {
        let path = "/functions/{function_id}";
        let (s, body) = probe("delete", path, &delete(id), None).await;
        assert_eq!(s, want, "delete {id}: {body}");
    }

    let (s, _) = probe("get", "/health", "/health", None).await;
    assert_eq!(s, 200);
    if documented.contains(&("get".to_owned(), "/metrics".to_owned())) {
        let response = system
            .http
            .get(format!("{}/metrics", system.url))
            .send()
            .await
            .expect("GET /metrics");
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        answered
            .borrow_mut()
            .insert(("get".to_owned(), "/metrics".to_owned()));
    }
    assert_eq!(
        answered.into_inner(),
        documented,
        "every documented operation was exercised"
    );

    // With a token, the description sits behind it like every route (401, declared above).
    let guarded = TestSystem::without_dispatcher_authenticated("docs-secret").await;
    let (status, body) = guarded.get("/openapi.json").await;
    assert_eq!(status, 401, "{body}");
    let response = guarded
        .http
        .get(format!("{}/openapi.json", guarded.url))
        .bearer_auth("docs-secret")
        .send()
        .await
        .expect("GET /openapi.json with the token");
    assert_eq!(response.status(), 200);
}

/// A headless chromium run, killed (with its process group) and its profile directory removed
/// when dropped, whatever happened.
struct Browser {
    child: Child,
    profile: PathBuf,
    /// Set once the process group has been killed (its id may be reused afterwards).
    killed: bool,
}

impl Browser {
    /// Starts chromium dumping the DOM of `url` once the page has settled.
    fn dump_dom(url: &str) -> Self {
        let profile = std::env::temp_dir().join(format!(
            "faas-docs-chromium-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&profile).expect("chromium profile dir");
        let child = Command::new(CHROMIUM)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ])
            .arg(format!("--user-data-dir={}", profile.display()))
            .args(["--virtual-time-budget=10000", "--dump-dom", url])
            // Nothing written outside the profile directory.
            .env("HOME", &profile)
            .env("XDG_CONFIG_HOME", profile.join("config"))
            .env("XDG_CACHE_HOME", profile.join("cache"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Its own process group, so the renderer and helpers go with it.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {CHROMIUM}: {e}"));
        Self {
            child,
            profile,
            killed: false,
        }
    }

    /// Waits for chromium to finish; its stdout (the DOM) and stderr.
    fn output(&mut self, timeout: Duration) -> (String, String) {
        let mut stdout = self.child.stdout.take().expect("stdout piped");
        let mut stderr = self.child.stderr.take().expect("stderr piped");
        // Read while it runs: the DOM is larger than a pipe's buffer.
        let out = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stdout.read_to_string(&mut text);
            text
        });
        let err = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = stderr.read_to_string(&mut text);
            text
        });
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for chromium") {
                break status;
            }
            if Instant::now() > deadline {
                self.kill();
                let err = err.join().unwrap_or_default();
                panic!("chromium did not finish within {timeout:?}; stderr:\n{err}");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        // Helpers left in the group would hold the pipes open.
        self.kill();
        let (out, err) = (
            out.join().unwrap_or_default(),
            err.join().unwrap_or_default(),
        );
        assert!(
            status.success(),
            "chromium failed ({status}); stderr:\n{err}"
        );
        (out, err)
    }

    fn kill(&mut self) {
        if std::mem::replace(&mut self.killed, true) {
            return;
        }
        if let Ok(pgid) = i32::try_from(self.child.id()) {
            // SAFETY: signals only the process group this test started.
            unsafe {
                libc::kill(-pgid, libc::SIGKILL);
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

#[tokio::test]
async fn docs_page_renders_offline_in_headless_chromium() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: run scripts/prerequisites --tests (it installs Debian's chromium)"
    );
    let system = TestSystem::without_dispatcher(&[]).await;
    let doc = fetch_document(&system).await;

    let started = Instant::now();
    let mut browser = Browser::dump_dom(&format!("{}/docs", system.url));
    let (dom, stderr) = tokio::task::spawn_blocking(move || browser.output(BROWSER_TIMEOUT))
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
    eprintln!(
        "chromium rendered /docs in {:?} ({} bytes of DOM)",
        started.elapsed(),
        dom.len()
    );

    // Swagger UI's JavaScript built these from /openapi.json: the assets and the document
    // loaded from the gateway alone.
    let context = || format!("DOM:\n{dom}\nchromium stderr:\n{stderr}");
    assert!(
        dom.contains(&format!("<h1 class=\"title\">{TITLE}")),
        "the API title is not rendered; {}",
        context()
    );
    assert!(
        !dom.contains("Failed to load API definition"),
        "Swagger UI could not load the document; {}",
        context()
    );
    let mut paths: BTreeSet<&str> = doc["paths"]
        .as_object()
        .expect("paths")
        .keys()
        .map(String::as_str)
        .collect();
    paths.extend([
        "/register_function",
        "/execute_function",
        "/result/{task_id}",
        "/cancel/{task_id}",
    ]);
    for path in paths {
        assert!(
            dom.contains(&format!("data-path=\"{path}\"")),
            "{path} is not listed on the page; {}",
            context()
        );
    }
    assert!(
        dom.contains("btn authorize"),
        "no Authorize button for the bearer token; {}",
        context()
    );
}
