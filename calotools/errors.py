"""The errors and warnings calotools raises, in one family.

Every error calotools raises for something the user can fix (a file, a branch,
an argument, a configuration value, a missing optional dependency) is a
`CalotoolsError`, so that a program, the command line above all, can tell a
user's mistake from a bug: ``calotools ...`` prints a `CalotoolsError` as one
line and lets anything else keep its traceback. Each class also derives from
the built-in error it refines (`ValueError`, `FileNotFoundError`, …), so that
``except ValueError`` keeps working.

The errors of one stage are named after it (`NtupleError`, `DataError`, …);
the modules of those stages offer them under the same names.

Examples
--------
>>> from calotools import geometry
>>> try:
...     geometry.layer("EMB4")
... except CalotoolsError as err:
...     print(type(err).__name__)
UnknownNameError
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "BaselineError",
    "CalibrationFileError",
    "CalibrationInputError",
    "CalotoolsError",
    "CalotoolsWarning",
    "ChainError",
    "CutError",
    "DataChangedError",
    "DataError",
    "Interrupted",
    "InvalidTypeError",
    "InvalidValueError",
    "LoaderWarning",
    "MissingExtraError",
    "MissingFileError",
    "ModelError",
    "NonFiniteWarning",
    "NtupleError",
    "OutOfRangeError",
    "OutputPathError",
    "PreprocessingError",
    "TrainingError",
    "UnknownNameError",
    "UntrustedFileError",
    "VersionMismatchWarning",
]


class CalotoolsError(Exception):
    """Something the user can fix: the message says what, where and what was expected."""


# ---------------------------------------------------------------------------- generic


class InvalidValueError(CalotoolsError, ValueError):
    """An argument or configuration value outside what calotools can use."""


class InvalidTypeError(CalotoolsError, TypeError):
    """An argument of the wrong kind (e.g. text where numbers are needed)."""


class OutOfRangeError(CalotoolsError, IndexError):
    """An index past the end (a cluster, a batch, a bin)."""


class UnknownNameError(CalotoolsError, KeyError):
    """A name calotools does not know (a layer, a part of a split)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class MissingFileError(CalotoolsError, FileNotFoundError):
    """A file or folder that does not exist, or a folder without the files it needs."""


class OutputPathError(CalotoolsError, ValueError):
    """An output calotools will not write: not its own, a wrong suffix, a read-only folder."""


class MissingExtraError(CalotoolsError, ImportError):
    """An optional dependency that is not installed; the message gives the pip command."""


# ---------------------------------------------------------------------------- by stage


class NtupleError(CalotoolsError, ValueError):
    """A file that is not a readable cluster ntuple, with the reason."""


class CutError(CalotoolsError, ValueError):
    """A cut or feature expression that cannot be parsed or names an unknown branch."""


class DataError(CalotoolsError, ValueError):
    """Samples or selections that cannot make a data set, with the reason and the place."""


class PreprocessingError(CalotoolsError, ValueError):
    """Inputs a model cannot take (non-finite values, missing branches) or a bad recipe."""


class ModelError(CalotoolsError, ValueError):
    """An unknown model, a task a model does not do, or inputs a model cannot take."""


class ArtifactError(CalotoolsError, ValueError):
    """A folder that is not (or not a complete) calotools model, with the reason."""


class UntrustedFileError(ArtifactError):
    """A file that could run code when read (a pickle), refused unless the caller trusts it."""


class BaselineError(CalotoolsError, ValueError):
    """Inputs a baseline cannot use, with the reason."""


class ChainError(CalotoolsError, ValueError):
    """Members that cannot form a chain, or a bad cutoff or mode."""


class TrainingError(CalotoolsError, ValueError):
    """A training run that cannot start or resume, with the reason."""


class DataChangedError(TrainingError):
    """A model folder made from other data than the data given now (a file was remade)."""


class CalibrationInputError(CalotoolsError, ValueError):
    """Cluster or cell tables the LCW calibration cannot use, with the reason."""


class CalibrationFileError(CalotoolsError, ValueError):
    """A file that is not a readable LCW calibration, with the reason."""


# ---------------------------------------------------------------------------- interruptions


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during a long run; the message says what was kept and how to go on.

    Still a `KeyboardInterrupt` (so it stops a script or a notebook cell as
    Ctrl-C does), and ``calotools ...`` prints it as one line, exit status 130.
    """


# ---------------------------------------------------------------------------- warnings


class CalotoolsWarning(UserWarning):
    """Something calotools did that the user may not expect, and why."""


class NonFiniteWarning(CalotoolsWarning):
    """NaN or infinite values found while reading (they are kept, not dropped)."""


class LoaderWarning(CalotoolsWarning):
    """A loader used in a way that defeats its design (e.g. batches asked for out of order)."""


class VersionMismatchWarning(CalotoolsWarning):
    """A saved model made with other versions of calotools or its stack than are installed."""
