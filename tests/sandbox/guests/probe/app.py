"""A hostile Python component for the sandbox tests: ``{"do": ...}`` picks the attack.

Built with componentize-py against ``wit/extension`` by the ``probe`` fixture.
Each attack reports what the guest saw (``{"refused": ...}``) when the sandbox
stops it inside the guest, or does not return when the runtime must end it.
"""

import json
import os
import socket
import sys
import time

import wit_world
from wit_world.imports import host, types

CALLS = [0]


def _attempt(action):
    try:
        return json.dumps({"done": action()}).encode()
    except Exception as exc:  # the point: the guest sees a refusal
        return json.dumps({"refused": type(exc).__name__}).encode()


def _connect(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.connect(("127.0.0.1", port))
    return "connected"


def _recurse(depth):
    return _recurse(depth + 1) + 1


class WitWorld(wit_world.WitWorld):
    def handle(self, input: bytes) -> bytes:
        request = json.loads(input or b"{}")
        do = request.get("do")
        CALLS[0] += 1
        if do == "calls":
            return json.dumps({"calls": CALLS[0]}).encode()
        if do == "print":
            print("to stdout")
            print("to stderr", file=sys.stderr)
            return b"{}"
        if do == "say":
            print(request["text"], file=sys.stderr)
            return b"{}"
        if do == "crash":
            raise RuntimeError("not a memory problem")
        if do == "env":
            return json.dumps({"environ": dict(os.environ), "argv": sys.argv}).encode()
        if do == "read":
            return _attempt(lambda: open(request["path"]).read())
        if do == "listdir":
            return _attempt(lambda: os.listdir("/"))
        if do == "connect":
            return _attempt(lambda: _connect(request["port"]))
        if do == "resolve":
            return _attempt(lambda: str(socket.getaddrinfo(request["name"].encode(), 80)))
        if do == "clock":
            return json.dumps({"time": time.time(), "urandom": os.urandom(8).hex()}).encode()
        if do == "sleep":
            time.sleep(request["seconds"])
            return b"{}"
        if do == "loop":
            while True:
                pass
        if do == "bomb":
            hoard = []
            while True:
                hoard.append(bytearray(1 << 20))
        if do == "bomb-caught":
            hoard = []
            try:
                while True:
                    hoard.append(bytearray(1 << 20))
            except MemoryError:
                got = len(hoard)
                hoard.clear()
                return json.dumps({"refused": "MemoryError", "mib": got}).encode()
        if do == "recurse":
            sys.setrecursionlimit(10**8)
            return str(_recurse(0)).encode()
        if do == "output":
            return b"x" * request["bytes"]
        if do == "logs":
            for n in range(request["lines"]):
                host.log(types.Level.INFO, f"line {n}")
            return b"{}"
        if do == "config":
            return host.config().encode()
        if do == "fail":
            raise wit_world.Err(types.GuestError(code="bad-input", message="no such thing"))
        if do == "call":
            try:
                return host.call(request["service"], request["method"], b"{}")
            except wit_world.Err as err:
                return json.dumps(
                    {"kind": err.value.kind.name, "message": err.value.message}
                ).encode()
        return input
