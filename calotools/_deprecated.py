"""Import paths of calotools 0.1 that keep working for one release, with a DeprecationWarning.

calotools 0.2 moved the detector simulation and reconstruction into
`calotools.sim` and a few functions into the module of their concern. Old code
keeps running: ``import calotools.simulation`` gives `calotools.sim.simulation`,
and ``calotools.models.load`` gives `calotools.loading.load`, each saying once
where the name now lives. Both kinds of forwarding end with calotools 0.3.

Only the standard library is imported here, so that every module may use it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

__all__ = ["MOVED_MODULES", "forward", "install"]

#: The release in which the old paths stop working.
REMOVED_IN = "0.3"

#: Old module path → new module path.
MOVED_MODULES: Mapping[str, str] = {
    f"calotools.{name}": f"calotools.sim.{name}"
    for name in (
        "calibration",
        "cells",
        "clustering",
        "images",
        "moments",
        "reconstruction",
        "samples",
        "showers",
        "simulation",
    )
}


def _warn(old: str, new: str) -> None:
    # stacklevel 3: past this helper and its caller, to the line that used the old name
    # (the import system's own frames are skipped by the warnings module).
    warnings.warn(
        f"{old} is now {new}; the old name stops working in calotools {REMOVED_IN}",
        DeprecationWarning,
        stacklevel=3,
    )


class _AliasLoader(importlib.abc.Loader):
    """Hands out the module at the new path under the old one."""

    def __init__(self, new: str) -> None:
        self.new = new
        self._spec: importlib.machinery.ModuleSpec | None = None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        _warn(spec.name, self.new)
        module = importlib.import_module(self.new)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # The import system stamps the alias's spec on the module; give it back its own.
        module.__spec__ = self._spec


class _AliasFinder(importlib.abc.MetaPathFinder):
    """Finds the old paths of `MOVED_MODULES`, and nothing else."""

    def find_spec(
        self, fullname: str, path: Any = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        new = MOVED_MODULES.get(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _AliasLoader(new))


def install() -> None:
    """Make the old module paths importable (called once by ``calotools/__init__.py``)."""
    if not any(isinstance(finder, _AliasFinder) for finder in sys.meta_path):
        sys.meta_path.append(_AliasFinder())


def forward(module: str, moved: Mapping[str, str]) -> Callable[[str], Any]:
    """A module ``__getattr__`` that serves names moved elsewhere, with a DeprecationWarning.

    Parameters
    ----------
    module
        The module that used to define the names (its ``__name__``).
    moved
        Old name → ``"new.module:new_name"``.
    """

    def __getattr__(name: str) -> Any:
        if name not in moved:
            msg = f"module {module!r} has no attribute {name!r}"
            raise AttributeError(msg)
        target, _, new_name = moved[name].partition(":")
        _warn(f"{module}.{name}", f"{target}.{new_name}")
        return getattr(importlib.import_module(target), new_name)

    return __getattr__
