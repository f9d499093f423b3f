"""The folder a trained model lives in: its manifest, provenance and atomic writing.

Every trained object of calotools (a Keras network, a boosted decision tree, a
classify-then-calibrate chain) is a folder with a ``model.json`` manifest that
says what it is, next to the files that make it up and say how it was made
(``versions.json``, the preprocessing, the split). `calotools.loading.load`
reads the manifest and hands the folder to the class that knows its kind.

Folders are written under a temporary name beside their final one and renamed
when complete (`calotools.atomic`), so a folder with the final name is always whole.

A model folder is data, also when someone else made it: loading one runs no
code and reads nothing outside it. Every file its manifest names must resolve
(symbolic links and ``..`` followed) to a path inside the folder
(`member_path`); networks load in Keras' safe mode and decision trees from
LightGBM's text format, and a pickle is read only when the caller trusts the
folder (`calotools.loading.load`). Its ``versions.json`` is compared with the
installed versions on load (`check_versions`).
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import sys
import warnings
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from calotools import atomic
from calotools.atomic import partial_folder
from calotools.errors import ArtifactError, VersionMismatchWarning

if TYPE_CHECKING:
    from calotools.data import Split

__all__ = [
    "MANIFEST",
    "VERSIONS",
    "ArtifactError",
    "FolderInfo",
    "check_versions",
    "member_path",
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
    "lightgbm",
    "tensorflow",
    "keras",
)
#: Name of the file of recorded versions (`software_versions`) in every model folder.
VERSIONS = "versions.json"


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
    """Read a JSON file written by `write_json`.

    Raises
    ------
    ArtifactError
        If the file is not JSON, naming the file and the place:
        ``PATH: not valid JSON (line L column C: what)``.
    """
    path = Path(path)
    try:
        return json.loads(path.read_bytes().decode("utf-8"))
    except json.JSONDecodeError as err:
        msg = f"{path}: not valid JSON (line {err.lineno} column {err.colno}: {err.msg})"
        raise ArtifactError(msg) from None
    except UnicodeDecodeError as err:
        msg = f"{path}: not valid JSON (not UTF-8 text at byte {err.start})"
        raise ArtifactError(msg) from None


def _read_object(path: Path, expected: str) -> dict[str, Any]:
    value = read_json(path)
    if not isinstance(value, dict):
        msg = (
            f"{path}: expected a JSON object ({expected}), got {type(value).__name__} {value!r:.60}"
        )
        raise ArtifactError(msg)
    return value


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
    manifest = _read_object(path, f"{{'format': {_FORMAT!r}, 'kind': …}}")
    if manifest.get("format") != _FORMAT:
        msg = f"{path}: unknown model format {manifest.get('format')!r} (expected {_FORMAT!r})"
        raise ArtifactError(msg)
    if not isinstance(manifest.get("kind"), str):
        msg = f"{path}: no kind of model (expected a text field 'kind', e.g. 'keras' or 'bdt')"
        raise ArtifactError(msg)
    return manifest


def member_path(folder: str | os.PathLike, name: Any, *, key: str) -> Path:
    """The file or folder ``name`` of the model folder ``folder``, checked to lie inside it.

    Parameters
    ----------
    folder
        The model folder.
    name
        What its manifest records under ``key``: a path relative to ``folder``.
    key
        The manifest's key, for the message (e.g. ``"network"``, ``"members.pi0"``).

    Raises
    ------
    ArtifactError
        If ``name`` is not text, is absolute, or resolves (``..`` and symbolic
        links followed) to ``folder`` itself or to anything outside it: a
        folder received from someone else must not make calotools read other
        files (another model's network, say).

    Examples
    --------
    >>> member_path("models/bdt", "model.txt", key="estimator").as_posix()
    'models/bdt/model.txt'
    >>> member_path("models/bdt", "../other/model.txt", key="estimator")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    calotools.errors.ArtifactError: models/bdt/model.json: 'estimator' is '../other/model.txt', ...
    """
    folder = Path(folder)
    where = f"{folder / MANIFEST}: {key!r} is {name!r}"
    if not isinstance(name, str) or not name:
        msg = f"{where}; expected the name of a file inside the folder"
        raise ArtifactError(msg)
    if Path(name).anchor:  # "/x" (or "C:\\x" on Windows)
        msg = f"{where}, an absolute path; a model folder's files must be named relative to it"
        raise ArtifactError(msg)
    root = folder.resolve()
    target = (root / name).resolve()
    if target == root or not target.is_relative_to(root):
        msg = f"{where}, which lies outside the folder {folder}; a model's files must be inside it"
        raise ArtifactError(msg)
    return folder / name


def _release(version: str) -> tuple[int, ...] | None:
    """Major and minor release of a version string, or None if it has none (e.g. "not installed")."""
    match = re.match(r"(\d+)(?:\.(\d+))?", version)
    return None if match is None else tuple(int(g or 0) for g in match.groups())


def _version_mismatches(folder: str | os.PathLike, packages: Sequence[str]) -> list[str]:
    """``"numpy 1.26.4 (saved) vs 2.3.1 (installed)"`` for each of ``packages`` that differs.

    Only the major and minor releases are compared: patch releases fix bugs and
    should not change what a model predicts. A package missing on either side
    is skipped (a model that needs it fails to load with its own message), and
    so is a folder without ``versions.json``: there is nothing to compare, and
    older folders (a BDT saved outside training, say) have none.
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    path = member_path(folder, manifest.get("versions", VERSIONS), key="versions")
    if not path.exists():
        return []
    saved = _read_object(path, "package → version, as artifacts.software_versions() writes")
    installed = software_versions()
    found = []
    for package in packages:
        was, now = str(saved.get(package, "not installed")), installed.get(package, "not installed")
        old, new = _release(was), _release(now)
        if old is not None and new is not None and old != new:
            found.append(f"{package} {was} (saved) vs {now} (installed)")
    return found


def check_versions(
    sources: Mapping[str | os.PathLike, Sequence[str]], *, stacklevel: int = 2
) -> None:
    """Warn once if the model folders in ``sources`` were made with other versions.

    Parameters
    ----------
    sources
        Folder → the packages whose versions can change what its model
        predicts (e.g. calotools, NumPy, Keras and TensorFlow for a network).
        Python and the platform are not compared.
    stacklevel
        Of the `calotools.errors.VersionMismatchWarning`, as for `warnings.warn`.
    """
    lines = [
        f"{folder}: {', '.join(found)}"
        for folder, packages in sources.items()
        if (found := _version_mismatches(folder, packages))
    ]
    if lines:
        msg = (
            "a model was saved with other versions than are installed, so its predictions "
            f"may differ: {'; '.join(lines)}. Retrain it, or install the saved versions "
            "(its versions.json)"
        )
        warnings.warn(msg, VersionMismatchWarning, stacklevel=stacklevel + 1)


class FolderInfo:
    """What a model folder records, for the classes of models loaded from one."""

    folder: Path | None = None

    def _file(self, key: str) -> Path | None:
        if self.folder is None:
            return None
        name = read_manifest(self.folder).get(key)
        path = None if name is None else member_path(self.folder, name, key=key)
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
