"""The Python runner of tests/conformance/cases.json (tests/conformance/README.md): every step
through the peer_registry package's own API, raw JSON steps through the ctypes layer beneath it.
Usage: python3 runner.py cases.json (PYTHONPATH=bindings/python/src, PEER_REGISTRY_LIB set)."""

from __future__ import annotations

import json
import os
import sys
import tempfile

CLOCK_DIR = tempfile.mkdtemp(prefix="peerreg-conformance-")
CLOCK_FILE = os.path.join(CLOCK_DIR, "clock")
# Before the library first reads the time (docs/FORMAT.md, "Environment").
os.environ["PEER_REGISTRY_TEST_CLOCK_FILE"] = CLOCK_FILE

import peer_registry  # noqa: E402
from peer_registry import Registry  # noqa: E402

PID = os.getpid()
CODE_NAMES = {
    0: "PEERREG_OK", -1: "PEERREG_EINVAL", -2: "PEERREG_ENOTFOUND", -3: "PEERREG_EEXISTS",
    -4: "PEERREG_ECORRUPT", -5: "PEERREG_EIO", -6: "PEERREG_EPERM", -7: "PEERREG_ETIMEOUT",
    -8: "PEERREG_EAMBIGUOUS", -9: "PEERREG_ELIMIT", -10: "PEERREG_ECLOSED",
}
KINDS = {"tool": "resolve_tool", "resource": "resolve_resource", "prompt": "resolve_prompt"}


def substitute(value):
    """The case's "$pid" placeholders as this process's pid."""
    if value == "$pid":
        return PID
    if isinstance(value, dict):
        return {k: substitute(v) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v) for v in value]
    return value


def matches(expected, actual) -> bool:
    if isinstance(expected, dict):
        return isinstance(actual, dict) and all(
            (actual.get(k) is None) if v is None else (k in actual and matches(v, actual[k]))
            for k, v in expected.items())
    if isinstance(expected, list):
        return isinstance(actual, list) and len(expected) == len(actual) and all(
            matches(e, a) for e, a in zip(expected, actual))
    if isinstance(expected, bool) or isinstance(actual, bool):
        return type(expected) is type(actual) and expected == actual
    return expected == actual


class Mismatch(Exception):
    pass


def check(ok: bool, what: str) -> None:
    if not ok:
        raise Mismatch(what)


class Case:
    def __init__(self, case: dict) -> None:
        self.dir = tempfile.mkdtemp(prefix="case-", dir=CLOCK_DIR)
        self.path = os.path.join(self.dir, "servers.json")
        if "file" in case:
            content = case["file"]
            text = content if isinstance(content, str) else json.dumps(substitute(content))
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        self.handles = {"a": Registry(self.path)}
        self.mark = 0

    def close(self) -> None:
        for handle in self.handles.values():
            handle.close()

    def run(self, step: dict):
        """Performs one step; returns what it gave (checked by the caller)."""
        reg = self.handles.get(step.get("handle", "a"))
        op = step["op"]
        if op == "register":
            if "json" in step:
                return json.loads(reg._string_call(reg.lib.peerreg_register, step["json"].encode()))
            return reg.register(step["entry"])
        if op == "get":
            return reg.get(step["id"])
        if op == "list":
            if "filter_json" in step:
                return json.loads(reg._string_call(reg.lib.peerreg_list, step["filter_json"].encode()))
            listing = reg.list_with_generation(**step.get("filter", {}))
            return {"generation": listing.generation, "servers": listing.servers}
        if op == "resolve":
            return getattr(reg, KINDS[step["kind"]])(step["name"])
        if op == "set_health":
            return reg.set_health(step["id"], step["status"], step.get("message"))
        if op == "heartbeat":
            return reg.heartbeat(step["id"])
        if op == "unregister":
            return reg.unregister(step["id"])
        if op == "prune":
            return reg.prune()
        if op == "clock":
            with open(CLOCK_FILE + ".tmp", "w") as f:
                f.write(str(step["ms"]))
            os.replace(CLOCK_FILE + ".tmp", CLOCK_FILE)
            return None
        if op == "open":
            self.handles[step["handle"]] = Registry(self.path)
            return None
        if op == "close":
            return reg.close()
        if op == "mark":
            self.mark = reg.list_with_generation().generation
            return None
        if op == "read_file":
            with open(self.path) as f:
                return f.read()
        raise Mismatch(f"unknown op {op!r}")

    def verify(self, step: dict, result) -> None:
        op = step["op"]
        if "expect" in step and op != "read_file":
            check(matches(substitute(step["expect"]), result), f"expected {step['expect']}, got {result}")
        if op == "list":
            if "ids" in step:
                got = [s["id"] for s in result["servers"]]
                check(got == step["ids"], f"expected ids {step['ids']}, got {got}")
            if "generation_since_mark" in step:
                delta = result["generation"] - self.mark
                check(delta == step["generation_since_mark"],
                      f"expected generation mark+{step['generation_since_mark']}, got mark+{delta}")
        if op == "resolve" and "id" in step:
            check(result["id"] == step["id"], f"expected {step['id']}, got {result['id']}")
        if op == "prune":
            check(result == step["removed"], f"expected {step['removed']} removed, got {result}")
        if op == "read_file":
            if "text" in step:
                check(result == step["text"], f"expected the file {step['text']!r}, got {result!r}")
            if "expect" in step:
                check(matches(substitute(step["expect"]), json.loads(result)), f"expected file {step['expect']}, got {result}")


def run_case(case: dict) -> tuple[list[str], str | None]:
    outcomes: list[str] = []
    failure = None
    try:
        os.unlink(CLOCK_FILE)
    except FileNotFoundError:
        pass
    runner = Case(case)
    try:
        for index, step in enumerate(case["steps"], 1):
            try:
                try:
                    result = runner.run(step)
                except peer_registry.RegistryError as e:
                    name = CODE_NAMES.get(e.code, str(e.code))
                    outcomes.append(name)
                    check(step.get("error") == name, f"expected {step.get('error', 'success')}, got {name}: {e.message}")
                    for word in step.get("message_contains", []):
                        check(word in e.message, f"message {e.message!r} does not name {word!r}")
                    continue
                outcomes.append("ok")
                check("error" not in step, f"expected {step.get('error')}, got success")
                runner.verify(step, result)
            except Mismatch as m:
                failure = failure or f"step {index} ({step['op']}): {m}"
    finally:
        runner.close()
    return outcomes, failure


def main() -> int:
    with open(sys.argv[1]) as f:
        cases = json.load(f)["cases"]
    failed = 0
    for case in cases:
        outcomes, failure = run_case(case)
        failed += failure is not None
        print(f"{case['name']}: {' '.join(outcomes)} => {'pass' if failure is None else 'FAIL ' + failure}")
    print(f"{len(cases)} cases, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
