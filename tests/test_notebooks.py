"""The notebooks are documents: stored without outputs, each with a title and parameters,
and their parameters take effect.

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


def test_the_selection_parameter_takes_effect(tmp_path, monkeypatch):
    """Notebook 03 run with another SELECTION trains, keeps and tests its model on that cut.

    The notebook runs from a copy in ``tmp_path/notebooks`` (so that its models and
    figures go under ``tmp_path``), on small pion files, with the BDT as classifier.
    """
    papermill = pytest.importorskip("papermill")
    monkeypatch.delenv("CALOTOOLS_FIGURES", raising=False)  # figures under tmp_path/outputs
    from pion_factory import write_pion_samples

    from calotools import loading, study

    data = tmp_path / "pions"
    data.mkdir()
    write_pion_samples(data, 400, 400, seed=5)
    folder = tmp_path / "notebooks"
    folder.mkdir()
    source = next(p for p in NOTEBOOKS if p.name.startswith("03_"))
    selection = f"{study.DEFAULT_SELECTION} and cluster_E > 5"
    papermill.execute_notebook(
        source,
        folder / source.name,
        parameters={"QUICK": True, "DATA": str(data), "SELECTION": selection, "CLASSIFIER": "bdt"},
        cwd=str(folder),
        kernel_name="python3",
        progress_bar=False,
    )
    trained = tmp_path / "models" / "quick"
    expected = study.model_folder(
        "bdt", "classify", base=tmp_path / "models", quick=True, selection=selection
    )
    assert [p.name for p in trained.iterdir()] == [expected.name]
    model = loading.load(expected)
    assert model.split["test"].cut == selection
    assert (tmp_path / "outputs" / "figures" / "03_cutoff_scan.png").is_file()
