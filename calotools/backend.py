"""Keras on TensorFlow, imported once, with TensorFlow's start-up lines under its log level.

When TensorFlow's C++ libraries load they log a few lines (oneDNN is on, no CUDA
driver, cuInit failed) through absl before absl is initialised, and absl prints
those whatever ``TF_CPP_MIN_LOG_LEVEL`` says (abseil/abseil-cpp#1718, #1957). A
Jupyter kernel forwards the process's stderr, so they would land in every
notebook that trains a model. `keras` imports TensorFlow and Keras with the
C-level stderr sent to a temporary file, then writes back every line that
``TF_CPP_MIN_LOG_LEVEL`` lets through and everything that is not a log line,
unchanged. Every calotools function that needs Keras gets it from here.

`predict` runs a network in whole batches only, so that Keras traces its
predict step once per network, whatever the number of clusters.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import threading
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import numpy as np

from calotools import extras
from calotools.errors import InvalidValueError

__all__ = ["DEFAULT_TF_LOG_LEVEL", "kept_startup_lines", "keras", "predict", "predict_outputs"]

#: ``TF_CPP_MIN_LOG_LEVEL`` when the user has not set one: 2 shows errors only
#: (0 all, 1 no INFO, 3 no errors either), as ``make`` and the Dask workers use.
DEFAULT_TF_LOG_LEVEL = "2"

# absl's prefix, e.g. "I0000 00:00:1796161051.836514    9687 port.cc:153] ".
_LOG_LINE = re.compile(r"^([IWEF])\d{4} [\d:.]+\s+\d+ \S+:\d+\] ")
_SEVERITY = {"I": 0, "W": 1, "E": 2, "F": 3}
# absl's own notice that it is not initialised yet: a warning.
_NOT_INITIALISED = "WARNING: All log messages before absl::InitializeLog() is called"
# On a machine without an NVIDIA driver TensorFlow says so at INFO level, then
# logs the consequence, the failed cuInit, as an error: the same fact, so it
# counts as INFO when the first was said.
_NO_CUDA_DRIVER = "Could not find cuda drivers on your machine"
_CUINIT_FAILED = "failed call to cuInit"

_lock = threading.Lock()


def kept_startup_lines(text: str, min_level: int) -> str:
    """The part of TensorFlow's start-up output ``text`` that log level ``min_level`` shows.

    A log line below ``min_level`` is dropped together with the lines that
    continue its message (lines that follow it and are no log line
    themselves); fatal lines and output that follows no log line are kept.
    """
    no_driver = _NO_CUDA_DRIVER in text
    kept, keeping = [], True
    for line in text.splitlines(keepends=True):
        match = _LOG_LINE.match(line)
        if match:
            severity = _SEVERITY[match.group(1)]
            if no_driver and _CUINIT_FAILED in line:
                severity = _SEVERITY["I"]
            keeping = severity >= min_level or severity == _SEVERITY["F"]
        elif line.startswith(_NOT_INITIALISED):
            keeping = _SEVERITY["W"] >= min_level
        if keeping:
            kept.append(line)
    return "".join(kept)


def _log_level() -> int:
    value = os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", DEFAULT_TF_LOG_LEVEL)
    try:
        return int(value)
    except ValueError:
        msg = f"TF_CPP_MIN_LOG_LEVEL must be 0, 1, 2 or 3, got {value!r}"
        raise InvalidValueError(msg) from None


class _StandInStderr:
    """``sys.stderr`` while descriptor 2 is captured, and where it points afterwards.

    It writes to ``target``: a duplicate of the original descriptor during the
    capture, then the user's own ``sys.stderr``. TensorFlow binds its logger's
    handler to the ``sys.stderr`` of the moment it is imported, so this object
    must keep working after the capture ends, or every later TensorFlow
    warning would be a "--- Logging error ---" about a closed file.
    """

    def __init__(self, target: Any) -> None:
        self.target = target

    def write(self, text: str) -> int:
        return self.target.write(text)

    def flush(self) -> None:
        self.target.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.target, name)


def _load_tensorflow(min_level: int) -> None:
    """Import TensorFlow and find its devices, C-level stderr filtered meanwhile.

    What C libraries write to descriptor 2 goes to a temporary file and is
    written back filtered once TensorFlow is loaded (or failed to load).
    Python's own ``sys.stderr`` keeps writing where it did, so a warning raised
    meanwhile is not caught up in the filter.
    """
    python_stderr = sys.stderr
    python_stderr.flush()
    saved = os.dup(2)
    stand_in = None
    with tempfile.TemporaryFile() as captured:
        if python_stderr is sys.__stderr__:  # a terminal or a log, not a Jupyter kernel
            stand_in = _StandInStderr(open(saved, "w", closefd=False))  # noqa: SIM115 - closed below
            sys.stderr = stand_in
        os.dup2(captured.fileno(), 2)
        try:
            tf = extras.tensorflow()
            # Device discovery (cuInit) logs too: do it now, inside the capture.
            tf.config.list_physical_devices()
        finally:
            os.dup2(saved, 2)
            if stand_in is not None:
                stand_in.target.close()
                stand_in.target = python_stderr
                sys.stderr = python_stderr
            os.close(saved)
            captured.seek(0)
            text = captured.read().decode(errors="replace")
            os.write(2, kept_startup_lines(text, min_level).encode())


def keras() -> ModuleType:
    """The ``keras`` module, with TensorFlow loaded and its devices found."""
    with _lock:
        if "tensorflow" not in sys.modules:
            _load_tensorflow(_log_level())
    return extras.require("keras", "training and running the networks")


def _padded(array: np.ndarray, length: int) -> np.ndarray:
    """``array`` with zero rows appended up to ``length`` rows."""
    padding = np.zeros((length - len(array), *array.shape[1:]), dtype=array.dtype)
    return np.concatenate([np.asarray(array), padding])


def _in_whole_batches(network: Any, inputs: Mapping[str, np.ndarray], batch_size: int) -> list[Any]:
    """``network.predict`` of the whole batches, then of the rest padded to one, cut again.

    Keras traces its predict step once per batch shape, so a short last batch
    is a second trace for every new number of clusters, and TensorFlow's
    "frequent retracing" warning counts the traces of all Keras networks
    together. The whole batches are passed as views, without a copy.
    """
    inputs = dict(inputs)
    n = len(next(iter(inputs.values())))
    whole = n - n % batch_size
    parts = []
    if whole:
        head = {key: value[:whole] for key, value in inputs.items()}
        parts.append(network.predict(head, batch_size=batch_size, verbose=0))
    if whole < n or n == 0:  # no clusters: one padded batch gives the empty output's shape
        tail = {key: _padded(value[whole:], batch_size) for key, value in inputs.items()}
        out = network.predict(tail, batch_size=batch_size, verbose=0)
        if isinstance(out, Mapping):
            parts.append({name: value[: n - whole] for name, value in out.items()})
        else:
            parts.append(out[: n - whole])
    return parts


def predict(network: Any, inputs: Mapping[str, np.ndarray], *, batch_size: int) -> np.ndarray:
    """``network.predict(inputs)`` in whole batches: the rest is padded to one, then cut off.

    One trace per network whatever the number of clusters (`_in_whole_batches`).
    """
    parts = _in_whole_batches(network, inputs, batch_size)
    return np.concatenate(parts) if len(parts) > 1 else parts[0]


def predict_outputs(
    network: Any, inputs: Mapping[str, np.ndarray], *, batch_size: int
) -> dict[str, np.ndarray]:
    """As `predict`, for a network whose outputs are a dict of named arrays."""
    parts = _in_whole_batches(network, inputs, batch_size)
    return {name: np.concatenate([np.asarray(part[name]) for part in parts]) for name in parts[0]}
