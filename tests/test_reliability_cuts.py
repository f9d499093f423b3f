"""Selections are data, not code: a cut from a command line, a split or a sidecar runs nothing.

Each malicious expression would create a marker file if it were executed; the
tests check that it is refused by name and that the marker never appears.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from sample_factory import write_samples

from calotools import cuts, data
from calotools.cuts import CutError

COLUMNS = {
    "cluster_E": np.array([0.3, 2.0, 50.0]),
    "cluster_Eta": np.array([0.1, -0.8, 0.5]),
}


def _escape(marker) -> str:
    """The classic sandbox escape: reach `os.system` through a class hierarchy.

    Its loop variable is named like a branch, so that a check of names alone
    does not catch it.
    """
    return (
        "[cluster_Eta for cluster_Eta in ().__class__.__mro__[1].__subclasses__()"
        " if cluster_Eta.__name__ == 'catch_warnings'][0]()._module.__builtins__"
        f"['__import__']('os').system('touch {marker}') == 0"
    )


ATTACKS = {
    "attribute": "cluster_E.__class__ == cluster_E",
    "subscript": "cluster_E[0] > 1",
    "comprehension": "[x for x in cluster_E] == cluster_E",
    "lambda": "(lambda: 1)() == cluster_E",
    "dunder name": "__builtins__ == cluster_E",
    "keyword argument": "where(cluster_E > 1, x=1) > 0",
    "string": "'a' == cluster_E",
    "unlisted function": "getattr(cluster_E, 'size') > 0",
    "walrus": "(x := cluster_E) > 1",
}


@pytest.mark.parametrize("expression", ATTACKS.values(), ids=ATTACKS.keys())
def test_constructs_outside_the_language_are_refused(expression):
    """Attributes, subscripts, comprehensions, lambdas, dunders … are refused, saying what is allowed."""
    with pytest.raises(CutError, match="allowed"):
        cuts.evaluate_cut(expression, COLUMNS)
    with pytest.raises(CutError, match="allowed"):
        cuts.branches_in(expression)


def test_the_escape_does_not_run(tmp_path):
    """The expression that ran a shell command through eval creates no marker."""
    marker = tmp_path / "pwned"
    with pytest.raises(CutError):
        cuts.evaluate_cut(_escape(marker), COLUMNS)
    assert not marker.exists()


def test_the_command_line_cut_does_not_run(tmp_path):
    """`calotools info FILE --cut EXPRESSION` refuses the escape in one line."""
    files = write_samples(tmp_path, n_pi0=50, n_pipm=50)
    marker = tmp_path / "pwned"
    result = subprocess.run(
        [sys.executable, "-m", "calotools", "info", str(files["pi0"]), "--cut", _escape(marker)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    assert "allowed" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not marker.exists()


def test_a_cut_read_back_from_a_split_is_refused_on_load(tmp_path):
    """A split file (as in a model folder) planted with the escape as its cut is refused."""
    files = write_samples(tmp_path, n_pi0=200, n_pipm=200)
    marker = tmp_path / "pwned"
    path = data.split(data.select(files), seed=0).save(tmp_path / "split.npz")
    with np.load(path, allow_pickle=False) as stored:
        arrays = dict(stored)
    cut = data.SelectionConfig().cut
    assert cut is not None
    meta = str(arrays["meta"])
    assert json.dumps(cut) in meta
    arrays["meta"] = np.asarray(meta.replace(json.dumps(cut), json.dumps(_escape(marker))))
    np.savez(path, **arrays)
    with pytest.raises(CutError, match="allowed"):
        data.Split.load(path)
    assert not marker.exists()


def test_the_language_still_reads_like_physics():
    """What the studies write keeps working: logic, chained comparisons, arithmetic, functions."""
    cut = "0.5 < cluster_E < 100 and not abs(cluster_Eta) > 0.7 or -cluster_E ** 2 < -1e3"
    assert cuts.evaluate_cut(cut, COLUMNS).tolist() == [False, False, True]
    cut = "where(cluster_E > 1, log10(cluster_E), 0) >= 0.3 and True"
    assert cuts.evaluate_cut(cut, COLUMNS).tolist() == [False, True, True]
    arithmetic = "cluster_E / 2 % 3 >= 1 and cluster_E // 1 != 0"  # 0.15, 1.0, 1.0 and 0, 2, 50
    assert cuts.evaluate_cut(arithmetic, COLUMNS).tolist() == [False, True, True]
