"""{{name}}: an extension in Python, a component of ameide:extension/extension.

Implement ``handle``: bytes in (the caller's JSON), bytes out. ``wit_world`` is
generated from ``wit/`` by ``extensions-runtime build``; see README.md.
"""

import json

import wit_world
from wit_world.imports import host, types


def _invalid(message: str) -> wit_world.Err[types.GuestError]:
    # A guest error reaches the caller as GUEST_ERROR "invalid_input: <message>".
    return wit_world.Err(types.GuestError(code="invalid_input", message=message))


class WitWorld(wit_world.WitWorld):
    def handle(self, input: bytes) -> bytes:
        try:
            request = json.loads(input or b"{}")
        except ValueError as exc:
            raise _invalid(f"input is not JSON: {exc}") from None
        if not isinstance(request, dict):
            raise _invalid("input must be a JSON object")
        config = json.loads(host.config())  # the definition's "config"
        greeting = config.get("greeting", "Hello")
        name = request.get("name", "World")
        host.log(types.Level.INFO, f"greeting {name}")
        return json.dumps({"message": f"{greeting}, {name}!"}).encode()
