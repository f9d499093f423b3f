"""The command line, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from calotools import cli


def test_info_prints_the_summary(cluster_file, capsys):
    """`calotools info FILE` prints counts, images and a table of the scalars."""
    assert cli.main(["info", str(cluster_file), "--cut", "cluster_E > 1"]) == 0
    out = capsys.readouterr().out
    assert "clusters passing 'cluster_E > 1'" in out
    assert "EMB1[128, 4]" in out
    assert "cluster_ENG_CALIB_TOT" in out


def test_bad_input_is_one_line_without_traceback(tmp_path, capsys):
    """A missing file exits with status 2 and a one-line message."""
    assert cli.main(["info", str(tmp_path / "missing.root")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("calotools info: error:")
    assert "missing.root: no such file" in err
    assert "Traceback" not in err


def test_python_dash_m_runs_the_same_command():
    """`python -m calotools --version` works (the console script is the same function)."""
    result = subprocess.run(
        [sys.executable, "-m", "calotools", "--version"], capture_output=True, text=True, check=True
    )
    assert result.stdout.startswith("calotools ")


@pytest.mark.parametrize(
    ("workers", "message"),
    [
        ("0", "must be at least 1, got 0"),
        ("two", "expected a whole number of at least 1, got 'two'"),
    ],
)
def test_simulate_rejects_a_bad_worker_count(capsys, workers, message):
    """`--workers 0` or `--workers two` is refused by name before any work starts."""
    with pytest.raises(SystemExit) as stopped:
        cli.main(["simulate", "--sample", "pi0", "--out", "never.root", "--workers", workers])
    assert stopped.value.code == 2
    assert f"--workers: {message}" in capsys.readouterr().err
