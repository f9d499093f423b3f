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


def test_a_bad_configuration_value_is_one_line(tmp_path, capsys):
    """A value calotools refuses (a negative energy) is a user's mistake: one line, status 2."""
    out = tmp_path / "x.root"
    assert cli.main(["simulate", "--sample", "pi0", "--out", str(out), "--e-min", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("calotools simulate: error: SimulationConfig.e_min must be")
    assert "Traceback" not in err
    assert not out.exists()


def test_a_bug_keeps_its_traceback(cluster_file, monkeypatch):
    """Anything that is not a CalotoolsError is a bug: the CLI does not hide it."""
    from calotools import ntuple

    def broken(*args, **kwargs):
        raise ZeroDivisionError("a bug deep inside")

    monkeypatch.setattr(ntuple, "read_clusters", broken)
    with pytest.raises(ZeroDivisionError, match="a bug deep inside"):
        cli.main(["info", str(cluster_file)])


def test_every_calotools_error_is_a_calotools_error():
    from calotools import errors

    classes = [getattr(errors, name) for name in errors.__all__]
    for cls in classes:
        if issubclass(cls, Warning):
            assert issubclass(cls, errors.CalotoolsWarning)
        elif issubclass(cls, KeyboardInterrupt):
            # Ctrl-C stays Ctrl-C: `except Exception` must not swallow it.
            assert not issubclass(cls, Exception), cls
        else:
            assert issubclass(cls, errors.CalotoolsError), cls
    # Each also refines a built-in error, so that `except ValueError` keeps working.
    assert issubclass(errors.NtupleError, ValueError)
    assert issubclass(errors.MissingFileError, FileNotFoundError)
    assert issubclass(errors.MissingExtraError, ImportError)
