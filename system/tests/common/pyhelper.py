"""Serializes test functions and arguments with dill, and describes results, for the Rust
integration tests. Reads one JSON request on stdin, prints one line."""
import codecs
import json
import sys

import dill

request = json.load(sys.stdin)
op = request["op"]
if op == "function":
    namespace = {"__name__": "__faas_test__"}
    exec(request["src"], namespace)
    fn = namespace[request["name"]]
    print(codecs.encode(dill.dumps(fn, recurse=True), "base64").decode().replace("\n", "\\n"))
elif op == "params":
    print(codecs.encode(dill.dumps(eval(request["expr"])), "base64").decode().replace("\n", "\\n"))
elif op == "params_many":
    out = [codecs.encode(dill.dumps(eval(e)), "base64").decode() for e in request["exprs"]]
    print(json.dumps(out))
elif op == "describe":
    value = dill.loads(codecs.decode(request["b64"].encode(), "base64"))
    notes = "\n".join(getattr(value, "__notes__", []))
    print(json.dumps({"type": type(value).__name__, "str": str(value)[:2000],
                      "len": len(value) if hasattr(value, "__len__") else None, "notes": notes}))
elif op == "describe_many":
    out = []
    for b64 in request["b64s"]:
        value = dill.loads(codecs.decode(b64.encode(), "base64"))
        out.append({"type": type(value).__name__, "str": str(value)})
    print(json.dumps(out))
else:
    sys.exit("unknown op " + op)
