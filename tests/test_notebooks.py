"""The notebooks are documents: stored without outputs, each with a title and parameters.

They are executed by `make test` (pytest --nbval-lax notebooks/, quick mode);
these checks keep the stored files clean.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_there_are_numbered_notebooks():
    """The study is in notebooks/NN_name.ipynb."""
    assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_stored_without_outputs(path):
    """No outputs or execution counts in git: they belong to executed copies."""
    notebook = nbformat.read(path, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: a code cell has outputs"
            assert cell.execution_count is None, f"{path.name}: a code cell has a count"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_has_a_title_and_a_quick_mode_parameters_cell(path):
    """A markdown title first, and a papermill `parameters` cell reading CALOTOOLS_QUICK."""
    notebook = nbformat.read(path, as_version=4)
    assert notebook.cells[0].cell_type == "markdown"
    assert notebook.cells[0].source.startswith("# ")
    parameters = [c for c in notebook.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(parameters) == 1
    assert "CALOTOOLS_QUICK" in parameters[0].source
