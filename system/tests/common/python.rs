//! Python on the test's side: serializing functions and parameters with dill, and loading
//! results with plain dill, through `pyhelper.py` in the executors' environment.

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use faas::executor::python_env;

/// The Python the executors use (created on first use), for serializing test payloads.
pub fn python() -> PathBuf {
    python_env::resolve(None)
        .unwrap_or_else(|e| panic!("{e}"))
        .python
}

fn py_request(request: serde_json::Value) -> String {
    let mut child = Command::new(python())
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/common/pyhelper.py"
        ))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run pyhelper");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(request.to_string().as_bytes())
        .expect("write request");
    let out = child.wait_with_output().expect("pyhelper output");
    assert!(
        out.status.success(),
        "pyhelper failed on {request}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_owned()
}

/// `base64(dill.dumps(fn))` for the function `name` defined by `src`.
pub fn serialize_function(src: &str, name: &str) -> String {
    // The helper prints the codecs form's newlines escaped, to keep to one line.
    py_request(serde_json::json!({"op": "function", "src": src, "name": name})).replace("\\n", "\n")
}

/// `base64(dill.dumps(eval(expr)))`, e.g. `"((21,), {})"`.
pub fn serialize_params(expr: &str) -> String {
    py_request(serde_json::json!({"op": "params", "expr": expr})).replace("\\n", "\n")
}

/// [`serialize_params`] for many expressions, in one Python run.
pub fn serialize_params_many(exprs: &[String]) -> Vec<String> {
    serde_json::from_str(&py_request(
        serde_json::json!({"op": "params_many", "exprs": exprs}),
    ))
    .expect("params_many json")
}

/// A serialized result, loaded with plain dill.
pub struct Described {
    pub kind: String,
    /// `str()` of the value, cut at 2,000 characters.
    pub text: String,
    pub len: Option<usize>,
    /// An exception's `__notes__`, joined.
    pub notes: String,
}

/// Loads a serialized result with plain dill and describes it.
pub fn describe_full(result: &str) -> Described {
    let out: serde_json::Value = serde_json::from_str(&py_request(
        serde_json::json!({"op": "describe", "b64": result}),
    ))
    .expect("describe json");
    let text = |key: &str| out[key].as_str().unwrap_or_default().to_owned();
    Described {
        kind: text("type"),
        text: text("str"),
        len: out["len"].as_u64().map(|n| n as usize),
        notes: text("notes"),
    }
}

/// The type name and `str()` of a serialized result, loaded with plain dill.
pub fn describe(result: &str) -> (String, String) {
    let out: serde_json::Value = serde_json::from_str(&py_request(
        serde_json::json!({"op": "describe", "b64": result}),
    ))
    .expect("describe json");
    (
        out["type"].as_str().unwrap_or_default().to_owned(),
        out["str"].as_str().unwrap_or_default().to_owned(),
    )
}

/// The type name and `str()` of many serialized results, in one Python run.
pub fn describe_many(results: &[String]) -> Vec<(String, String)> {
    let out: Vec<serde_json::Value> = serde_json::from_str(&py_request(
        serde_json::json!({"op": "describe_many", "b64s": results}),
    ))
    .expect("describe_many json");
    out.iter()
        .map(|v| {
            (
                v["type"].as_str().unwrap_or_default().to_owned(),
                v["str"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}
