//! The experiment's Python function and arguments, serialized by the executors' Python (the
//! functions live in `loadgen/python/functions.py`).

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::Context;

use crate::experiment::{Function, Workload};

/// The functions (shared with the reference targets), then the serializer.
const SCRIPT: &str = concat!(
    include_str!("../python/reference_tasks.py"),
    "\n",
    include_str!("../python/functions.py")
);

/// A function payload and the arguments every task sends.
#[derive(Debug, Clone)]
pub struct Serialized {
    pub function: String,
    pub params: String,
}

/// The function's name, as the CSVs and the Python side spell it.
#[must_use]
pub fn kind(function: Function) -> &'static str {
    match function {
        Function::Noop => "noop",
        Function::Sleep => "sleep",
        Function::Cpu => "cpu",
        Function::Payload => "payload",
    }
}

/// Serializes `workload`'s function and arguments with dill.
pub fn serialize(workload: &Workload) -> anyhow::Result<Serialized> {
    let env = faas::executor::python_env::resolve(None)?;
    let kind = kind(workload.function);
    let request = serde_json::json!({
        "function": kind,
        "sleep_s": workload.sleep_s,
        "cpu_n": workload.cpu_n,
        "result_bytes": workload.result_bytes,
        "arg_bytes": workload.arg_bytes,
    });
    let mut child = Command::new(&env.python)
        .arg("-c")
        .arg(SCRIPT)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", env.python.display()))?;
    child
        .stdin
        .take()
        .context("python stdin")?
        .write_all(request.to_string().as_bytes())?;
    let out = child.wait_with_output()?;
    anyhow::ensure!(
        out.status.success(),
        "serializing the {kind} function failed: {}",
        String::from_utf8_lossy(&out.stderr).trim()
    );
    let reply: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let field = |k: &str| {
        reply[k]
            .as_str()
            .map(str::to_owned)
            .context("serializer reply")
    };
    Ok(Serialized {
        function: field("function")?,
        params: field("params")?,
    })
}
