"""The ``extensions-runtime`` command line: ``serve``, ``new``, ``build``, ``invoke``, ``publish``.

One private module per subcommand (``_serve``, ``_new``, ``_build``, ``_invoke``,
``_publish``), each declaring its own arguments; ``_main`` puts them together.
Exit statuses follow one rule everywhere: 0 success, 1 the work failed, 2 the command line or its
inputs were unusable.
"""

from app.cli._main import main

__all__ = ["main"]
