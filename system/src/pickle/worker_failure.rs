//! The `WorkerFailure` exception as a hand-assembled pickle, so the platform can report a
//! failure (deadline passed, worker lost, ...) in the same form as a Python-side exception.

/// A pickle (protocol 2) that, loaded by plain `pickle`/`dill` with none of this project's code,
/// yields an instance of an exception class named `WorkerFailure` (built at load time with
/// `builtins.type("WorkerFailure", (builtins.Exception,), {"__module__": "builtins"})` through
/// GLOBAL/REDUCE opcodes) constructed with the single argument `message`, so
/// `str(exc) == message`, `type(exc).__name__ == "WorkerFailure"` and
/// `isinstance(exc, Exception)`.
#[must_use]
pub fn worker_failure_pickle(message: &str) -> Vec<u8> {
    exception_pickle("WorkerFailure", message)
}

/// Like [`worker_failure_pickle`], for a task cancelled through the API: a `TaskCancelled`.
#[must_use]
pub fn task_cancelled_pickle(message: &str) -> Vec<u8> {
    exception_pickle("TaskCancelled", message)
}

/// An exception of a class named `class` (made at load time, see [`worker_failure_pickle`])
/// carrying `message`.
fn exception_pickle(class: &str, message: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(message.len() + 96);
    // PROTO 2, GLOBAL builtins.type
    out.extend_from_slice(b"\x80\x02cbuiltins\ntype\n");
    push_str(&mut out, class);
    // GLOBAL builtins.Exception, TUPLE1, EMPTY_DICT
    out.extend_from_slice(b"cbuiltins\nException\n\x85}");
    push_str(&mut out, "__module__");
    push_str(&mut out, "builtins");
    // SETITEM, TUPLE3, REDUCE: the class is now on the stack.
    out.extend_from_slice(b"s\x87R");
    push_str(&mut out, message);
    // TUPLE1, REDUCE: the instance; STOP.
    out.extend_from_slice(b"\x85R.");
    out
}

/// Pushes a BINUNICODE (or, past 4 GiB, BINUNICODE8) string opcode.
fn push_str(out: &mut Vec<u8>, text: &str) {
    match u32::try_from(text.len()) {
        Ok(len) => {
            out.push(b'X');
            out.extend_from_slice(&len.to_le_bytes());
        }
        Err(_) => {
            out.push(0x8d);
            out.extend_from_slice(&(text.len() as u64).to_le_bytes());
        }
    }
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pickle::validate;
    use std::io::ErrorKind;
    use std::process::Command;

    const MESSAGE: &str = "deadline of 5s passed: “x”\n'single' \"double\"\n";

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn layout_is_a_valid_protocol_2_pickle() {
        let bytes = worker_failure_pickle(MESSAGE);
        assert!(bytes.starts_with(b"\x80\x02cbuiltins\ntype\nX\x0d\x00\x00\x00WorkerFailure"));
        let mut tail = vec![b'X'];
        tail.extend_from_slice(&u32::try_from(MESSAGE.len()).unwrap().to_le_bytes());
        tail.extend_from_slice(MESSAGE.as_bytes());
        tail.extend_from_slice(b"\x85R.");
        assert!(bytes.ends_with(&tail));
        assert_eq!(validate(&bytes), Ok(()));
        assert_eq!(validate(&worker_failure_pickle("")), Ok(()));
        assert_eq!(validate(&worker_failure_pickle(&"é".repeat(300))), Ok(()));
    }

    #[test]
    fn plain_python_pickle_loads_a_worker_failure() {
        // -I -S: isolated mode without site-packages, so neither dill nor project code is importable.
        let script = r#"
import pickle, sys
exc = pickle.loads(bytes.fromhex(sys.argv[1]))
expected = bytes.fromhex(sys.argv[2]).decode("utf-8")
assert type(exc).__name__ == "WorkerFailure", type(exc)
assert isinstance(exc, Exception), type(exc).__mro__
assert str(exc) == expected, (str(exc), expected)
assert exc.args == (expected,), exc.args
assert "dill" not in sys.modules
"#;
        let output = match Command::new("python3")
            .args(["-I", "-S", "-c", script])
            .arg(hex(&worker_failure_pickle(MESSAGE)))
            .arg(hex(MESSAGE.as_bytes()))
            .output()
        {
            Ok(output) => output,
            Err(err) if err.kind() == ErrorKind::NotFound => {
                eprintln!("skipped: python3 is not on PATH");
                return;
            }
            Err(err) => panic!("running python3: {err}"),
        };
        assert!(
            output.status.success(),
            "python3 rejected the pickle: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}
