"""Host functions: ``ameide.host_log``, ``ameide.host_call``, ``ameide.host_config``
and the WASI replacements; for components, the ``ameide:extension/host`` interface
and the WASI preview 2 replacements (``_component``).

For wasi-stdio, ``poll_oneoff`` is always replaced by one bounded by the
deadline (``_poll``); in deterministic mode (the default) ``clock_time_get``,
``clock_res_get`` and ``random_get`` are replaced by virtual clocks and a
seeded random source (``_clocks``, state in ``app.sandbox._state``).

They are defined once per engine on a store-independent ``Linker``
(``_linker``) and find their invocation with :func:`app.sandbox._state.current`.
None of them ever raises into wasmtime (see ``_state`` for why): a fault is
recorded on the invocation and the guest is stopped through its fuel. Bytes
cross between host and guest memory in one place (``_marshal``).
"""

from app.sandbox._hostfuncs._clocks import RANDOM_BUDGET, RANDOM_MAX_CALL
from app.sandbox._hostfuncs._component import define_component
from app.sandbox._hostfuncs._linker import define

__all__ = ["RANDOM_BUDGET", "RANDOM_MAX_CALL", "define", "define_component"]
