//! Everything a function can do wrong, one row each with its expected outcome, run through
//! the real system; the system still serves afterwards.

mod common;

use std::time::Duration;

use common::{TestSystem, serialize_params};

/// One misbehaviour: Python source defining `f`, its arguments, and what must come back.
struct Case {
    what: &'static str,
    src: &'static str,
    params: &'static str,
    status: &'static str,
    /// Acceptable result types (the first is the usual one).
    types: &'static [&'static str],
    /// Text the result's `str()` must contain.
    contains: &'static str,
}

const CASES: &[Case] = &[
    Case {
        what: "raises",
        src: "def f():\n    raise ValueError('no good')\n",
        params: "((), {})",
        status: "FAILED",
        types: &["ValueError"],
        contains: "no good",
    },
    Case {
        what: "sys.exit()",
        src: "def f():\n    import sys\n    sys.exit(3)\n",
        params: "((), {})",
        status: "FAILED",
        types: &["SystemExit"],
        contains: "3",
    },
    Case {
        what: "os._exit()",
        src: "def f():\n    import os\n    os._exit(1)\n",
        params: "((), {})",
        status: "FAILED",
        types: &["WorkerFailure"],
        contains: "exited with status 1",
    },
    Case {
        what: "segfault",
        src: "def f():\n    import ctypes\n    return ctypes.string_at(0)\n",
        params: "((), {})",
        status: "FAILED",
        types: &["WorkerFailure"],
        contains: "SIGSEGV",
    },
    Case {
        what: "infinite loop",
        src: "def f():\n    while True:\n        pass\n",
        params: "((), {})",
        status: "FAILED",
        types: &["WorkerFailure"],
        contains: "deadline of 2s",
    },
    Case {
        what: "memory bomb",
        src: "def f():\n    chunks = []\n    while True:\n        chunks.append(bytearray(50 * 1024 * 1024))\n",
        params: "((), {})",
        status: "FAILED",
        types: &["MemoryError", "WorkerFailure"],
        contains: "",
    },
    Case {
        what: "recursion overflow",
        src: "def f(n):\n    return f(n + 1)\n",
        params: "((0,), {})",
        status: "FAILED",
        types: &["RecursionError"],
        contains: "recursion",
    },
    Case {
        what: "unpicklable result",
        src: "def f():\n    return (i for i in range(3))\n",
        params: "((), {})",
        status: "FAILED",
        types: &["TypeError"],
        contains: "cannot be serialized",
    },
    Case {
        what: "50 MB result",
        src: "def f():\n    return b'x' * (50 * 1024 * 1024)\n",
        params: "((), {})",
        status: "COMPLETED",
        types: &["bytes"],
        contains: "",
    },
    Case {
        what: "print flood",
        src: "def f():\n    import os, sys\n    for i in range(20000):\n        print('out', i)\n        print('err', i, file=sys.stderr)\n    os.write(1, b'raw fd 1\\n' * 1000)\n    os.write(2, b'raw fd 2\\n' * 1000)\n    return 'quiet'\n",
        params: "((), {})",
        status: "COMPLETED",
        types: &["str"],
        contains: "quiet",
    },
    Case {
        what: "leaves a child process",
        src: "def f():\n    import subprocess\n    subprocess.Popen(['sleep', '30'])\n    return 7\n",
        params: "((), {})",
        status: "COMPLETED",
        types: &["int"],
        contains: "7",
    },
    Case {
        what: "forks and the child exits",
        src: "def f():\n    import os\n    pid = os.fork()\n    if pid == 0:\n        os._exit(0)\n    os.waitpid(pid, 0)\n    return 'parent'\n",
        params: "((), {})",
        status: "COMPLETED",
        types: &["str"],
        contains: "parent",
    },
    Case {
        what: "exception that does not survive pickling",
        src: "class Picky(Exception):\n    def __init__(self, a, b):\n        super().__init__(a + b)\n\ndef f():\n    raise Picky('x', 'y')\n",
        params: "((), {})",
        status: "FAILED",
        types: &["RuntimeError"],
        contains: "Picky",
    },
    Case {
        what: "params not an (args, kwargs) pair",
        src: "def f(*a):\n    return a\n",
        params: "[1, 2, 3]",
        status: "FAILED",
        types: &["TypeError"],
        contains: "(args, kwargs) pair",
    },
    Case {
        what: "wrong arguments",
        src: "def f(a):\n    return a\n",
        params: "((1, 2), {})",
        status: "FAILED",
        types: &["TypeError"],
        contains: "positional argument",
    },
    Case {
        what: "function from a module the executor cannot import",
        src: "import sys, types\nmod = types.ModuleType('nosuchmod')\nexec('def f():\\n    return 1\\n', mod.__dict__)\nsys.modules['nosuchmod'] = mod\nf = mod.f\n",
        params: "((), {})",
        status: "FAILED",
        types: &["ModuleNotFoundError"],
        contains: "nosuchmod",
    },
];

#[tokio::test(flavor = "multi_thread")]
async fn every_misbehaviour_gets_its_outcome_and_the_system_keeps_serving() {
    let args = ["--task-timeout", "2", "--memory-limit-mb", "1024"];
    let system = TestSystem::with_mode("local", &[2], &args).await;
    let mut failures = Vec::new();
    for case in CASES {
        let f = system.register(case.src, "f").await;
        let task = system
            .execute_serialized(&f, &serialize_params(case.params))
            .await;
        let (status, result) = system.wait_final(&task, Duration::from_secs(60)).await;
        let described = common::describe_full(&result);
        let ok = status == case.status
            && case.types.contains(&described.kind.as_str())
            && described.text.contains(case.contains);
        if !ok {
            failures.push(format!(
                "{}: got {status} {} {:?}",
                case.what, described.kind, described.text
            ));
        }
        if case.what == "50 MB result" {
            assert_eq!(described.len, Some(50 * 1024 * 1024));
        }
        if case.what == "raises" {
            assert!(
                described.notes.contains("Remote traceback"),
                "{}",
                described.notes
            );
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases wrong:\n{}",
        failures.len(),
        CASES.len(),
        failures.join("\n")
    );

    let f = system
        .register("def double(x):\n    return x * 2\n", "double")
        .await;
    let task = system.execute(&f, "((21,), {})").await;
    let (status, result) = system.wait_final(&task, Duration::from_secs(30)).await;
    assert_eq!(
        (status.as_str(), common::describe(&result).1.as_str()),
        ("COMPLETED", "42")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registered_object_that_is_not_callable_fails_the_task_with_a_type_error() {
    let system = TestSystem::with_mode("local", &[1], &[]).await;
    let payload = serialize_params("42");
    let (status, body) = system
        .post(
            "/register_function",
            serde_json::json!({"name": "n", "payload": payload}),
        )
        .await;
    assert_eq!(
        status, 201,
        "a valid pickle is accepted at registration: {body}"
    );
    let f = body["function_id"].as_str().unwrap().to_owned();
    let task = system.execute(&f, "((), {})").await;
    let (status, result) = system.wait_final(&task, Duration::from_secs(30)).await;
    let (kind, text) = common::describe(&result);
    assert_eq!((status.as_str(), kind.as_str()), ("FAILED", "TypeError"));
    assert!(text.contains("not callable"), "{text}");
}
