"""Authoring: from nothing to a component, with the toolchains the project pins.

``new`` scaffolds an extension directory (:func:`scaffold`), ``build`` turns it
into a component of ``wit/extension`` with the right toolchain
(:func:`build`), and ``invoke`` / ``publish`` read the same directory
(:class:`Project`). The examples under ``examples/src`` are built by the same
code, so what an author runs is what the project's own examples prove.
"""

from app.authoring._build import BuildError, Toolchain, build
from app.authoring._languages import Language, detect
from app.authoring._project import Project
from app.authoring._scaffold import scaffold

__all__ = ["BuildError", "Language", "Project", "Toolchain", "build", "detect", "scaffold"]
