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
elif op == "describe":
    value = dill.loads(codecs.decode(request["b64"].encode(), "base64"))
    print(json.dumps({"type": type(value).__name__, "str": str(value)}))
else:
    sys.exit("unknown op " + op)
