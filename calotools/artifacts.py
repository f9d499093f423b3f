"""The folder a trained model lives in: its manifest, provenance and atomic writing.

Every trained object of calotools (a Keras network, a boosted decision tree, a
classify-then-calibrate chain) is a folder with a ``model.json`` manifest that
says what it is, next to the files that make it up and say how it was made
(``versions.json``, the preprocessing, the split). `calotools.loading.load`
reads the manifest and hands the folder to the class that knows its kind.

Folders are written under a temporary name beside their final one and renamed
when complete (`calotools.atomic`), so a folder with the final name is always whole.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from calotools import atomic
from calotools.atomic import partial_folder
from calotools.errors import ArtifactError

if TYPE_CHECKING:
    from calotools.data import Split

__all__ = [
    "MANIFEST",
    "ArtifactError",
    "FolderInfo",
    "read_json",
    "read_manifest",
    "software_versions",
    "to_json_ready",
    "write_json",
    "write_manifest",
]

#: Name of the manifest file in every model folder.
MANIFEST = "model.json"
_FORMAT = "calotools.Model/1"
#: Distributions whose versions are recorded with every model.
_PACKAGES = (
    "calotools",
    "numpy",
    "pandas",
    "uproot",
    "scikit-learn",
    "tensorflow",
    "keras",
)


def to_json_ready(value: Any) -> Any:
    """``value`` with NumPy scalars and arrays as Python numbers and lists, NaN as None."""
    if isinstance(value, Mapping):
        return {str(k): to_json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_json_ready(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        # JSON has no NaN; an empty response bin reads back as None.
        return None
    if isinstance(value, Path):
        return str(value)
    return value


def write_json(path: str | os.PathLike, value: Any) -> Path:
    """Write ``value`` as indented JSON, atomically (temporary file, then rename)."""
    return atomic.write_text(path, json.dumps(to_json_ready(value), indent=2) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file written by `write_json`."""
    return json.loads(Path(path).read_text())


def software_versions() -> dict[str, str]:
    """Python, platform and the versions of the packages a model depends on."""
    versions = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def write_manifest(folder: str | os.PathLike, kind: str, **fields: Any) -> Path:
    """Write ``model.json``: the kind of model (``"keras"``, ``"bdt"``, …) and its fields."""
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    return write_json(
        Path(folder) / MANIFEST, {"format": _FORMAT, "kind": kind, "created": created, **fields}
    )


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """The manifest of a model folder; raises `ArtifactError` saying what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        partial = partial_folder(folder)
        hint = (
            f"; an unfinished training run is in {partial} (run the training again to resume)"
            if partial.is_dir()
            else ""
        )
        msg = f"{folder}: no such model folder{hint}"
        raise ArtifactError(msg)
    path = folder / MANIFEST
    if not path.is_file():
        msg = f"{folder} is not a calotools model folder: it has no {MANIFEST}"
        raise ArtifactError(msg)
    manifest = read_json(path)
    if manifest.get("format") != _FORMAT:
        msg = f"{path}: unknown model format {manifest.get('format')!r} (expected {_FORMAT!r})"
        raise ArtifactError(msg)
    return manifest


class FolderInfo:
    """What a model folder records, for the classes of models loaded from one."""

    folder: Path | None = None

    def _file(self, key: str) -> Path | None:
        if self.folder is None:
            return None
        name = read_manifest(self.folder).get(key)
        path = None if name is None else self.folder / name
        return path if path is not None and path.exists() else None

    @property
    def history(self) -> pd.DataFrame | None:
        """Loss, metrics and learning rate per epoch (None without a folder or history)."""
        path = self._file("history")
        return None if path is None else pd.read_csv(path)

    @property
    def test_metrics(self) -> dict[str, Any] | None:
        """The test-set summary written after training (`calotools.evaluation.evaluate`)."""
        path = self._file("metrics")
        return None if path is None else read_json(path)

    @property
    def split(self) -> Split | None:
        """The `calotools.data.Split` the model was trained on, or None."""
        from calotools import data

        path = self._file("split")
        return None if path is None else data.Split.load(path)
