"""Deprecated aliases of renamed public names: kept for one release, with a warning.

0.2.0 moved the Studio (classic) clients into :mod:`amlretrain.studio`; the old module
paths (``amlretrain.arm``, ``amlretrain.classic``, ...) still import, warn with a
``DeprecationWarning`` and are removed in 0.3.0. The package root's names
(``from amlretrain import ClassicClient``) did not move and do not warn.
"""

from __future__ import annotations

import importlib
import sys
import warnings

__all__ = ["moved_module", "moved_name"]

REMOVED_IN = "0.3.0"


def moved_module(old: str, new: str) -> None:
    """Make the module ``old`` (being imported) an alias of ``new``, with a warning."""
    warnings.warn(
        f"{old} moved to {new}; the old path is removed in {REMOVED_IN}",
        DeprecationWarning,
        stacklevel=3,
    )
    sys.modules[old] = importlib.import_module(new)


def moved_name(old_module: str, name: str, new_module: str) -> object:
    """``name`` of ``new_module``, asked for by its old module path, with a warning."""
    warnings.warn(
        f"{old_module}.{name} moved to {new_module}.{name}; the old path is removed in "
        f"{REMOVED_IN}",
        DeprecationWarning,
        stacklevel=3,
    )
    return getattr(importlib.import_module(new_module), name)
