"""Bad values refused by name, clear messages, Ctrl-C in training, TensorFlow's warnings shown.

Each test is one case of the reliability review (issue 13): the value or fault
a careful user could give, and the one clear message (or the right behaviour)
that must follow, with the real command line, real files and real training.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from pion_factory import write_pion_samples

from calotools import atomic, models, ntuple, training
from calotools.errors import (
    ArtifactError,
    Interrupted,
    InvalidValueError,
    PreprocessingError,
    TrainingError,
)
from calotools.sim import samples
from calotools.testing import random_clusters

CALOTOOLS = [sys.executable, "-m", "calotools"]
#: A small dense network on all layers (as in test_training): seconds per run.
SMALL = {"model": "dense3_all", "model_kwargs": {"units": (16, 8)}, "batch_size": 128}


def run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    return subprocess.run(
        [*CALOTOOLS, *args], check=False, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.fixture(scope="module")
def pions(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pions")
    write_pion_samples(folder, 600, 600, seed=1)
    return folder


# ---------------------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--learning-rate", "-1"),
        ("--learning-rate", "0"),
        ("--learning-rate", "nan"),
        ("--patience", "0"),
        ("--epochs", "0"),
        ("--batch-size", "-5"),
    ],
)
def test_calotools_train_refuses_a_non_positive_setting_by_name(pions, tmp_path, option, value):
    """Refused by argparse, before any work: exit 2, the option named, nothing written."""
    out = tmp_path / "model"
    result = run("train", "--model", "bdt", "--data", str(pions), "--out", str(out), option, value)
    assert result.returncode == 2
    assert f"argument {option}:" in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert not atomic.partial_folder(out).exists()


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ({"learning_rate": -1.0}, "learning_rate must be a finite number above 0"),
        ({"learning_rate": float("inf")}, "learning_rate must be a finite number above 0"),
        ({"patience": 0}, "patience must be at least 1, got 0"),
        ({"lr_patience": 0}, "lr_patience must be at least 1, got 0"),
        ({"lr_factor": 1.5}, "lr_factor must lie between 0 and 1"),
        ({"max_clusters": 0}, "max_clusters must be at least 1"),
    ],
)
def test_the_training_configuration_refuses_a_useless_value(setting, message):
    """The Python API refuses what the command line refuses, naming the field."""
    with pytest.raises(TrainingError, match=message):
        training.TrainingConfig(model="dense_emb2", **setting)


def test_calotools_simulate_refuses_zero_events(tmp_path):
    """``--n 0`` is refused at once; before, it silently simulated the default size."""
    out = tmp_path / "pi0.root"
    result = run("simulate", "--sample", "pi0", "--n", "0", "--out", str(out), timeout=60)
    assert result.returncode == 2
    assert "argument --n: must be at least 1, got 0" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_the_default_data_set_refuses_zero_events_before_any_simulation(tmp_path):
    """Before, ``n_events=0`` meant the default size and ``n_calibration=0`` too."""
    for counts in ({"n_events": 0}, {"n_calibration": 0}):
        name = next(iter(counts))
        with pytest.raises(InvalidValueError, match=f"{name} must be at least 1, got 0"):
            samples.make_default(tmp_path / "data", progress=False, **counts)
    assert not (tmp_path / "data").exists()


# ---------------------------------------------------------------------------- messages


@pytest.fixture(scope="module")
def five_and_none(tmp_path_factory):
    folder = tmp_path_factory.mktemp("info")
    clusters = random_clusters(5, seed=1)
    return (
        ntuple.write_clusters(folder / "five.root", clusters),
        ntuple.write_clusters(folder / "empty.root", clusters[0:0]),
    )


def test_info_refuses_entry_stop_zero(five_and_none):
    five, _ = five_and_none
    result = run("info", str(five), "--entry-stop", "0")
    assert result.returncode == 2
    assert "argument --entry-stop: must be at least 1, got 0" in result.stderr
    assert "Traceback" not in result.stderr


def test_info_on_a_file_without_entries_says_so(five_and_none):
    """Before: a pandas traceback, "Cannot describe a DataFrame without columns"."""
    _, empty = five_and_none
    result = run("info", str(empty))
    assert result.returncode == 0, result.stderr
    assert "0 clusters" in result.stdout
    assert "nothing to summarise: no entries" in result.stdout
    assert "Traceback" not in result.stderr


def test_info_with_a_cut_nothing_passes_says_so(five_and_none):
    five, _ = five_and_none
    result = run("info", str(five), "--cut", "cluster_E > 1e12")
    assert result.returncode == 0, result.stderr
    assert "nothing to summarise: none of their 5 entries passes the cut" in result.stdout


def test_predicting_on_clusters_without_energy_hints_at_the_training_cut(keras, pions, tmp_path):
    """log10(cluster_E) of cluster_E ≤ 0: the message says which clusters and what to do."""
    model = training.train(**SMALL, data_source=pions, out=tmp_path / "m", epochs=1)
    clusters = ntuple.read_clusters(pions / "pi0.root", entry_stop=20)
    clusters.scalars.loc[[3, 7], "cluster_E"] = [0.0, -0.4]
    with pytest.raises(PreprocessingError) as raised:
        model.predict(clusters)
    message = str(raised.value)
    assert "log10(cluster_E) is undefined for 2 clusters with cluster_E ≤ 0 (rows 3, 7)" in message
    assert "the default training cut requires cluster_E > 0" in message


# ---------------------------------------------------------------------------- checkpoints


class _StopAfter:
    """A Keras callback that presses Ctrl-C at the end of an epoch (after calotools' own)."""

    def __init__(self, keras, epochs: int):
        class Callback(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch + 1 == epochs:
                    raise KeyboardInterrupt

        self.callback = Callback()


def _interrupted_run(keras, pions, out, *, after: int = 1) -> Interrupted:
    with pytest.raises(Interrupted) as raised:
        training.train(
            **SMALL,
            data_source=pions,
            out=out,
            epochs=3,
            callbacks=[_StopAfter(keras, after).callback],
            run_eagerly=True,
        )
    return raised.value


def test_an_interrupted_run_says_how_to_resume(keras, pions, tmp_path):
    """Still a KeyboardInterrupt, now with what was kept and how to go on."""
    out = tmp_path / "model"
    interrupted = _interrupted_run(keras, pions, out, after=2)
    assert isinstance(interrupted, KeyboardInterrupt)
    assert str(interrupted) == (
        f"epochs 1–2 of 3 are saved in {atomic.partial_folder(out)}; "
        "run the same command again to resume from epoch 3"
    )


@pytest.mark.parametrize("damage", ["truncated", "missing"])
def test_resuming_from_a_damaged_checkpoint_names_it(keras, pions, tmp_path, damage):
    """Before: Keras' "File not found" for a file that is there, half written."""
    out = tmp_path / "model"
    _interrupted_run(keras, pions, out)
    checkpoints = atomic.partial_folder(out) / "checkpoint"
    name = json.loads((checkpoints / "state.json").read_text())["checkpoint"]
    checkpoint = checkpoints / name
    if damage == "truncated":
        checkpoint.write_bytes(checkpoint.read_bytes()[: checkpoint.stat().st_size // 2])
        expected = "damaged Keras model file"
    else:
        checkpoint.unlink()
        expected = "no such Keras model file"
    with pytest.raises(TrainingError) as raised:
        training.train(**SMALL, data_source=pions, out=out, epochs=3, run_eagerly=True)
    message = str(raised.value)
    assert "the checkpoint of epoch 1 is unusable" in message
    assert str(checkpoint) in message
    assert expected in message
    assert "--overwrite" in message


def test_a_damaged_model_file_is_named_on_load(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ArtifactError, match=r"model\.keras: damaged Keras model file"):
        models.load_network(path)


def _wait_for_epochs(state: Path, process: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if json.loads(state.read_text())["epoch"] >= 1:
                return
        except (OSError, ValueError, KeyError):
            pass  # not written yet
        time.sleep(0.1)
    pytest.fail(f"no epoch finished within {timeout} s (exit status {process.poll()})")


def test_ctrl_c_in_calotools_train_ends_with_one_line_and_rerunning_resumes(pions, tmp_path):
    """A real SIGINT mid-run: exit 130, one line saying how to resume; the rerun resumes."""
    out = tmp_path / "model"
    command = [*CALOTOOLS, "train", "--model", "dense_emb2", "--data", str(pions)]
    command += ["--out", str(out), "--patience", "1000", "--schedule", "constant"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    # Many epochs, never stopping early: it is still training when Ctrl-C comes.
    process = subprocess.Popen(
        [*command, "--epochs", "1000"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        _wait_for_epochs(atomic.partial_folder(out) / "checkpoint" / "state.json", process, 120)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()  # no-op once it has stopped
        process.wait()
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("calotools train: interrupted; epochs 1–")
    assert last.endswith("run the same command again to resume from epoch " + last.split()[-1])
    done = int(last.split()[-1]) - 1
    # The same command (one epoch more than were done, to finish quickly) resumes.
    again = subprocess.run(
        [*command, "--epochs", str(done + 1)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert again.returncode == 0, again.stderr
    assert f"resuming at epoch {done + 1} of {done + 1}" in again.stderr
    history = np.genfromtxt(out / "history.csv", delimiter=",", names=True)
    assert list(np.atleast_1d(history["epoch"]).astype(int)) == list(range(1, done + 2))


# ---------------------------------------------------------------------------- TensorFlow


def test_tensorflow_warnings_reach_the_user_after_calotools_loads_it():
    """Before: "--- Logging error ---", TensorFlow's handler bound to a closed stream."""
    code = (
        "from calotools import backend\n"
        "backend.keras()\n"
        "import tensorflow as tf\n"
        "tf.get_logger().warning('a warning for the user')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert result.returncode == 0, result.stderr
    assert "a warning for the user" in result.stderr
    assert "Logging error" not in result.stderr
