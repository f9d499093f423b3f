"""Optional dependencies: imported where they are needed, or an error with the pip command.

The core install (``pip install calotools``) reads, writes and simulates
ntuples, selects and splits data and computes metrics and plots. Heavier parts
come with extras:

=================  ==================================================  ============================
extra              what it brings                                      what needs it
=================  ==================================================  ============================
``[ml]``           TensorFlow and Keras                                networks: models, training,
                                                                       loaders, interpret
``[dask]``         Dask, distributed, dask-awkward                     `calotools.dask_tools`
``[notebooks]``    JupyterLab, ipywidgets, papermill, nbconvert        widgets, ``calotools demo``
``[events]``       Pythia 8 (``pythia8mc``), FastJet                   collision events:
                                                                       `calotools.sim.generator`
``[all]``          all of the above
=================  ==================================================  ============================

Each function below imports one optional package and returns it, or raises
`MissingExtraError` naming the exact ``pip install "calotools[...]"`` command.

Examples
--------
>>> EXTRA_OF["tensorflow"]
'ml'
>>> install_command("dask")
'pip install "calotools[dask]"'
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import MappingProxyType, ModuleType

from calotools.errors import MissingExtraError

__all__ = [
    "EXTRA_OF",
    "MissingExtraError",
    "dask",
    "distributed",
    "fastjet",
    "install_command",
    "ipywidgets",
    "nbconvert",
    "nbformat",
    "papermill",
    "pythia8mc",
    "require",
    "tensorflow",
]

#: Importable name of each optional package → the extra that installs it.
EXTRA_OF: Mapping[str, str] = MappingProxyType(
    {
        "tensorflow": "ml",
        "keras": "ml",
        "dask": "dask",
        "distributed": "dask",
        "dask_awkward": "dask",
        "ipywidgets": "notebooks",
        "papermill": "notebooks",
        "nbconvert": "notebooks",
        "nbformat": "notebooks",
        "pythia8mc": "events",
        "fastjet": "events",
    }
)


def install_command(extra: str) -> str:
    """The pip command that installs calotools with ``extra``."""
    return f'pip install "calotools[{extra}]"'


def require(module: str, purpose: str) -> ModuleType:
    """Import the optional package ``module`` (a key of `EXTRA_OF`), needed for ``purpose``.

    Raises
    ------
    MissingExtraError
        If it is not installed (or fails to import), with the install command.
    """
    extra = EXTRA_OF[module]
    try:
        return importlib.import_module(module)
    except ImportError as err:
        msg = (
            f"{purpose} needs {module}, which is not installed ({err}); "
            f"install it with: {install_command(extra)}"
        )
        raise MissingExtraError(msg, name=module) from err


def tensorflow() -> ModuleType:
    """TensorFlow, for the networks (extra ``[ml]``)."""
    return require("tensorflow", "training and running the networks")


def dask() -> ModuleType:
    """Dask, for `calotools.dask_tools` (extra ``[dask]``)."""
    require("dask_awkward", "reading ntuples with Dask")
    return require("dask", "scaling out with Dask")


def distributed() -> ModuleType:
    """``dask.distributed``, for the clusters of `calotools.dask_tools` (extra ``[dask]``)."""
    return require("distributed", "a Dask cluster")


def ipywidgets() -> ModuleType:
    """ipywidgets, for the explorers of `calotools.widgets` (extra ``[notebooks]``)."""
    return require("ipywidgets", "the interactive explorers")


def papermill() -> ModuleType:
    """papermill, for running the study's notebooks (extra ``[notebooks]``)."""
    return require("papermill", "running the notebooks (calotools demo)")


def nbconvert() -> ModuleType:
    """nbconvert, for the HTML pages of the study (extra ``[notebooks]``)."""
    return require("nbconvert", "exporting the notebooks to HTML")


def nbformat() -> ModuleType:
    """nbformat, for reading executed notebooks (extra ``[notebooks]``)."""
    return require("nbformat", "reading the notebooks")


def pythia8mc() -> ModuleType:
    """Pythia 8's Python bindings, for collision events (extra ``[events]``)."""
    return require("pythia8mc", "generating collision events with Pythia 8")


def fastjet() -> ModuleType:
    """FastJet's Python bindings, for jets (extra ``[events]``)."""
    return require("fastjet", "finding jets with FastJet")
