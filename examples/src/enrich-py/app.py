"""enrich-py: ``{"id": "n1"}`` -> ``{"input": ..., "enriched": ...}`` through a host call.

The Python form of the ``enrich`` pattern: one typed ``host.call`` to
``graph/GetNode`` (granted by the definition's ``host_calls``, tier ``read``).
A failed call is a value the guest handles, not an exception that ends it:
``enriched`` is then ``{"error": {"kind", "message"}}``.
"""

import json

import wit_world
from wit_world.imports import host, types


class WitWorld(wit_world.WitWorld):
    def handle(self, input: bytes) -> bytes:
        try:
            request = json.loads(input or b"{}")
        except ValueError as exc:
            raise wit_world.Err(
                types.GuestError(code="invalid_input", message=f"input is not JSON: {exc}")
            ) from None
        node_id = request.get("id") if isinstance(request, dict) else None
        body = json.dumps({"id": node_id}).encode()
        try:
            enriched = json.loads(host.call("graph", "GetNode", body))
        except wit_world.Err as failed:
            error = failed.value
            host.log(types.Level.WARN, f"graph/GetNode failed: {error.kind.name}")
            enriched = {"error": {"kind": error.kind.name.lower(), "message": error.message}}
        return json.dumps({"input": request, "enriched": enriched}).encode()
