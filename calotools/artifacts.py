"""The folder a trained model lives in: its manifest, provenance and atomic writing.

Every trained object of calotools (a Keras network, a boosted decision tree, a
classify-then-calibrate chain) is a folder with a ``model.json`` manifest that
says what it is, next to the files that make it up and say how it was made
(``versions.json``, the preprocessing, the split). `calotools.models.load`
reads the manifest and hands the folder to the class that knows its kind.

Folders are written under a temporary name beside their final one and renamed
when complete, so a folder with the final name is always whole.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "MANIFEST",
    "ArtifactError",
    "FolderInfo",
    "commit_folder",
    "partial_folder",
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


class ArtifactError(ValueError):
    """A folder that is not (or not a complete) calotools model, with the reason."""


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
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(to_json_ready(value), indent=2) + "\n")
    tmp.replace(path)
    return path


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
    def split(self) -> Any:
        """The `calotools.data.Split` the model was trained on, or None."""
        from calotools.data import Split

        path = self._file("split")
        return None if path is None else Split.load(path)


def partial_folder(folder: str | os.PathLike) -> Path:
    """Where a folder is written before it is complete: ``.NAME.partial`` beside it."""
    folder = Path(folder)
    return folder.with_name(f".{folder.name}.partial")


def commit_folder(partial: str | os.PathLike, folder: str | os.PathLike) -> Path:
    """Give a complete folder its final name, replacing an older version if there is one.

    The older version is moved aside before the rename and deleted after it, so
    that an interruption leaves either the old or the new folder under the
    final name (and never a mixture).
    """
    partial, folder = Path(partial), Path(folder)
    old = folder.with_name(f".{folder.name}.old")
    if old.exists():
        shutil.rmtree(old)
    if folder.exists():
        folder.replace(old)
    partial.replace(folder)
    if old.exists():
        shutil.rmtree(old)
    return folder
