"""Training: learning, schedules, resuming, the classify-then-calibrate chain and the CLI.

The data are separable synthetic pions (`pion_factory`): `calotools.sim.simulation`
exists, but the clustering and ntuple production that would turn it into
ClusterTree files is still being written.
"""

from __future__ import annotations

import argparse
import logging
import math
import os

import numpy as np
import pandas as pd
import pytest
from pion_factory import PIPM_SCALE, pion_clusters, write_pion_samples

from calotools import artifacts, atomic, data, metrics, models, ntuple, training
from calotools.chain import CalibrationChain, ChainError
from calotools.loading import load

pytestmark = pytest.mark.usefixtures("one_openmp_thread")

os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: A small dense network on all layers: learns the synthetic pions in a few epochs.
SMALL = {"model": "dense3_all", "model_kwargs": {"units": (16, 8)}, "batch_size": 128}


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pions")
    write_pion_samples(folder, 600, 600, seed=1)
    return folder


class EpochRecorder:
    """Keras callback noting the epochs it sees begin (0-based)."""

    def __init__(self, keras, interrupt_after: int | None = None):
        recorder = self

        class Callback(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                recorder.epochs.append(epoch)

            def on_epoch_end(self, epoch, logs=None):
                if recorder.interrupt_after is not None and epoch + 1 == recorder.interrupt_after:
                    raise Interrupted

        self.epochs: list[int] = []
        self.interrupt_after = interrupt_after
        self.callback = Callback()


class Interrupted(Exception):
    """Stands for a killed job."""


# ---------------------------------------------------------------------------- learning


def test_a_classifier_beats_random_clearly_on_held_out_clusters(keras, data_folder, tmp_path):
    model = training.train(
        SMALL["model"],
        data_folder,
        tmp_path / "classifier",
        epochs=6,
        batch_size=64,
        model_kwargs=SMALL["model_kwargs"],
    )
    assert model.test_metrics["model"]["auc"] > 0.9
    assert model.test_metrics["model"]["n"] == len(model.split["test"])
    # Fresh clusters it never saw, from other seeds.
    pi0, pipm = pion_clusters(300, "pi0", seed=50), pion_clusters(300, "pipm", seed=51)
    scores = np.concatenate([model.predict(pi0), model.predict(pipm)])
    labels = np.repeat([0, 1], 300)
    assert metrics.auc(labels, scores) > 0.9
    history = model.history
    assert list(history["epoch"]) == [1, 2, 3, 4, 5, 6]
    assert history["val_loss"].iloc[-1] < history["val_loss"].iloc[0]


def test_the_split_balances_classes_and_is_saved_with_the_model(keras, data_folder, tmp_path):
    model = training.train(
        **SMALL, data_source=data_folder, out=tmp_path / "m", epochs=1, run_eagerly=True
    )
    split = model.split
    assert set(split.parts) == {"train", "validation", "test"}
    counts = split["train"].counts()
    assert counts["pi0"] == counts["pipm"]
    selection = data.select(
        {"pi0": data_folder / "pi0.root", "pipm": data_folder / "pipm.root"},
        data.SelectionConfig(cut=training.DEFAULT_CUT, balance=True),
    )
    np.testing.assert_array_equal(split["test"].ids, data.split(selection)["test"].ids)


def test_clusters_with_a_negative_energy_are_left_out(tmp_path):
    """Noise can make cluster_E negative; log10(cluster_E) is an input of the networks."""
    pi0, pipm = pion_clusters(300, "pi0", seed=8), pion_clusters(300, "pipm", seed=9)
    pi0.scalars.loc[:9, "cluster_E"] = -0.1
    ntuple.write_clusters(tmp_path / "pi0.root", pi0)
    ntuple.write_clusters(tmp_path / "pipm.root", pipm)
    model = training.train("bdt", tmp_path, tmp_path / "bdt", model_kwargs={"n_estimators": 5})
    used = np.concatenate([model.split[part].ids for part in model.split])
    pi0_file = [f.sample for f in model.split["train"].files].index("pi0")
    assert not np.isin(np.arange(10), used[used[:, 0] == pi0_file, 1]).any()


def test_a_regression_on_one_sample_trains_on_that_sample_only(keras, data_folder, tmp_path):
    model = training.train(
        "dense_emb2",
        data_folder,
        tmp_path / "pipm",
        task="regress",
        sample="pipm",
        epochs=1,
        model_kwargs={"units": (4,)},
        run_eagerly=True,
    )
    assert all(set(model.split[part].counts()) == {"pipm"} for part in model.split)
    summary = model.test_metrics["model"]
    assert {"median_response", "resolution", "bins"} <= set(summary)
    assert set(model.test_metrics["baselines"]) == {"em_scale", "lcw"}


def test_streaming_trains_on_the_same_split_as_in_memory(keras, data_folder, tmp_path):
    in_memory = training.train(
        **SMALL, data_source=data_folder, out=tmp_path / "memory", epochs=1, run_eagerly=True
    )
    streamed = training.train(
        **SMALL,
        data_source=data_folder,
        out=tmp_path / "stream",
        epochs=2,
        streaming=True,
        run_eagerly=True,
    )
    np.testing.assert_array_equal(streamed.split["train"].ids, in_memory.split["train"].ids)
    assert np.isfinite(streamed.history[["loss", "val_loss"]].to_numpy()).all()
    assert len(streamed.history) == 2


def test_class_weights_make_both_classes_weigh_the_same(keras, data_folder):
    selection = data.select(
        {"pi0": data_folder / "pi0.root", "pipm": data_folder / "pipm.root"}
    ).take(np.arange(900))  # 600 π0 and 300 π±
    weights = training.class_weights(selection)
    assert weights[0] * 600 == pytest.approx(weights[1] * 300)
    assert weights[0] * 600 + weights[1] * 300 == pytest.approx(900)


# ---------------------------------------------------------------------------- schedules


def test_a_stalled_validation_loss_halves_the_rate_then_stops_the_run(keras, data_folder, tmp_path):
    # At a rate of 1e-30 the weights do not move in float32: the loss stalls.
    model = training.train(
        **SMALL,
        data_source=data_folder,
        out=tmp_path / "stalled",
        epochs=10,
        learning_rate=1e-30,
        lr_patience=1,
        patience=3,
        run_eagerly=True,
    )
    history = model.history
    assert list(history["epoch"]) == [1, 2, 3, 4]  # stopped after 3 epochs without progress
    np.testing.assert_allclose(history["learning_rate"], [1e-30, 1e-30, 5e-31, 2.5e-31], rtol=1e-5)
    assert artifacts.read_manifest(tmp_path / "stalled")["best_epoch"] == 1
    # A run that stopped early is complete: asking for more epochs changes nothing.
    again = training.train(
        **SMALL,
        data_source=data_folder,
        out=tmp_path / "stalled",
        epochs=20,
        learning_rate=1e-30,
        run_eagerly=True,
    )
    assert len(again.history) == 4


def test_the_cosine_schedule_decays_the_rate_to_zero_at_the_last_epoch(
    keras, data_folder, tmp_path
):
    model = training.train(
        **SMALL,
        data_source=data_folder,
        out=tmp_path / "cosine",
        epochs=4,
        learning_rate=1e-3,
        schedule="cosine",
        run_eagerly=True,
    )
    expected = [1e-3 * 0.5 * (1 + math.cos(math.pi * e / 4)) for e in range(4)]
    np.testing.assert_allclose(model.history["learning_rate"], expected, rtol=1e-5)


# ---------------------------------------------------------------------------- resuming


def checkpoint_iterations(keras, folder) -> int:
    state = artifacts.read_json(folder / "checkpoint" / "state.json")
    checkpoint = keras.models.load_model(folder / "checkpoint" / state["checkpoint"])
    return int(checkpoint.optimizer.iterations.numpy())


def test_training_again_with_more_epochs_continues_where_it_stopped(keras, data_folder, tmp_path):
    out = tmp_path / "model"
    first = training.train(**SMALL, data_source=data_folder, out=out, epochs=2, run_eagerly=True)
    steps = math.ceil(len(first.split["train"]) / SMALL["batch_size"])
    assert checkpoint_iterations(keras, out) == 2 * steps
    recorder = EpochRecorder(keras)
    resumed = training.train(
        **SMALL,
        data_source=data_folder,
        out=out,
        epochs=4,
        callbacks=[recorder.callback],
        run_eagerly=True,
    )
    assert recorder.epochs == [2, 3]  # it starts at the third epoch
    assert list(resumed.history["epoch"]) == [1, 2, 3, 4]
    # The optimizer state carried on (a fresh optimizer would count 2 epochs of steps).
    assert checkpoint_iterations(keras, out) == 4 * steps
    assert not atomic.partial_folder(out).exists()


def test_an_interrupted_run_resumes_from_its_last_checkpoint(keras, data_folder, tmp_path):
    out = tmp_path / "model"
    recorder = EpochRecorder(keras, interrupt_after=2)
    with pytest.raises(Interrupted):
        training.train(
            **SMALL,
            data_source=data_folder,
            out=out,
            epochs=4,
            callbacks=[recorder.callback],
            run_eagerly=True,
        )
    # Nothing under the final name; the partial folder says how far it got.
    assert not out.exists()
    with pytest.raises(
        artifacts.ArtifactError, match=r"unfinished training run .*\.model\.partial"
    ):
        load(out)
    assert len(pd.read_csv(atomic.partial_folder(out) / "history.csv")) == 2
    recorder = EpochRecorder(keras)
    model = training.train(
        **SMALL,
        data_source=data_folder,
        out=out,
        epochs=4,
        callbacks=[recorder.callback],
        run_eagerly=True,
    )
    assert recorder.epochs == [2, 3]
    assert list(model.history["epoch"]) == [1, 2, 3, 4]
    assert (out / "model.keras").exists()
    assert not atomic.partial_folder(out).exists()


def test_a_folder_holding_another_model_is_not_overwritten(keras, data_folder, tmp_path):
    out = tmp_path / "model"
    training.train(**SMALL, data_source=data_folder, out=out, epochs=1, run_eagerly=True)
    with pytest.raises(
        training.TrainingError,
        match="holds another run .model .dense3_all. there, .dense_emb2. here",
    ):
        training.train("dense_emb2", data_folder, out, epochs=1, run_eagerly=True)


# ---------------------------------------------------------------------------- the chain


@pytest.fixture(scope="module")
def chain_members(data_folder, tmp_path_factory):
    """A BDT classifier and a BDT regression per class, trained on the same data."""
    folder = tmp_path_factory.mktemp("members")
    bdt = {"n_estimators": 30}
    training.train("bdt", data_folder, folder / "classifier", model_kwargs=bdt)
    for sample in ("pi0", "pipm"):
        training.train(
            "bdt", data_folder, folder / sample, task="regress", sample=sample, model_kwargs=bdt
        )
    return folder


@pytest.fixture(scope="module")
def mixed_clusters():
    pi0, pipm = pion_clusters(400, "pi0", seed=70), pion_clusters(400, "pipm", seed=71)
    return ntuple.Clusters.concat([pi0, pipm]), np.repeat([0, 1], 400)


def chain_of(members, **settings):
    """A chain of the three member folders in ``members``."""
    return CalibrationChain(
        load(members / "classifier"), load(members / "pi0"), load(members / "pipm"), **settings
    )


def test_the_chain_routes_each_cluster_to_the_regression_of_its_predicted_class(
    chain_members, mixed_clusters
):
    clusters, labels = mixed_clusters
    chain = chain_of(chain_members, cutoff=0.3)
    details = chain.details(clusters)
    p_pi0 = 1 - chain.classifier.predict(clusters)
    called_pi0 = p_pi0 > 0.3
    np.testing.assert_array_equal(details["called_pi0"], called_pi0)
    expected = np.where(called_pi0, chain.pi0.predict(clusters), chain.pipm.predict(clusters))
    np.testing.assert_allclose(chain.predict(clusters), expected)
    # A good classifier calls most clusters right.
    assert np.mean(called_pi0 == (labels == 0)) > 0.9
    # p = 1 calls nothing π0; p = 0 calls π0 every cluster with P(π0) > 0.
    never = chain.with_settings(cutoff=1.0)
    np.testing.assert_allclose(never.predict(clusters), chain.pipm.predict(clusters))
    always = chain.with_settings(cutoff=0.0).details(clusters)
    assert always["called_pi0"].to_numpy()[p_pi0 > 0].all()


def test_the_soft_chain_weights_the_two_regressions_by_the_class_probability(
    chain_members, mixed_clusters
):
    clusters, _ = mixed_clusters
    chain = chain_of(chain_members, mode="soft")
    details = chain.details(clusters)
    p_pi0 = details["p_pi0"].to_numpy()
    expected = p_pi0 * details["energy_pi0"] + (1 - p_pi0) * details["energy_pipm"]
    np.testing.assert_allclose(chain.predict(clusters), expected)
    assert np.all(
        chain.predict(clusters) >= np.minimum(details["energy_pi0"], details["energy_pipm"])
    )


def test_the_chain_calibrates_both_classes_where_one_regression_cannot(
    chain_members, mixed_clusters
):
    clusters, labels = mixed_clusters
    true_energy = clusters.scalars["cluster_ENG_CALIB_TOT"].to_numpy()
    chain = chain_of(chain_members)
    response = chain.predict(clusters) / true_energy
    for label in (0, 1):
        assert np.median(response[labels == label]) == pytest.approx(1.0, abs=0.05)
    pi0_only = chain.pi0.predict(clusters) / true_energy
    assert np.median(pi0_only[labels == 1]) == pytest.approx(1 / PIPM_SCALE, abs=0.05)


def test_a_saved_chain_is_one_folder_that_loads_and_predicts_identically(
    chain_members, mixed_clusters, tmp_path
):
    clusters, _ = mixed_clusters
    chain = chain_of(
        chain_members,
        cutoff=0.4,
        mode="soft",
    )
    chain.save(tmp_path / "chain")
    assert {p.name for p in (tmp_path / "chain").iterdir()} >= {"classifier", "pi0", "pipm"}
    restored = load(tmp_path / "chain")
    assert isinstance(restored, CalibrationChain)
    assert (restored.cutoff, restored.mode) == (0.4, "soft")
    np.testing.assert_allclose(restored.predict(clusters), chain.predict(clusters))


def test_a_chain_needs_a_classifier_and_two_regressions(chain_members):
    classifier = load(chain_members / "classifier")
    regression = load(chain_members / "pi0")
    with pytest.raises(ChainError, match="pi0 member must be a regress model"):
        CalibrationChain(classifier, classifier, regression)
    with pytest.raises(ChainError, match="cutoff"):
        CalibrationChain(classifier, regression, regression, cutoff=1.5)


# ---------------------------------------------------------------------------- command line


def cli() -> argparse.ArgumentParser:
    """A parser wired the way calotools.cli wires the commands."""
    parser = argparse.ArgumentParser(prog="calotools")
    commands = parser.add_subparsers(dest="command", required=True)
    training.add_train_parser(commands)
    training.add_models_parser(commands)
    return parser


def test_calotools_train_quick_makes_a_model_folder_showing_progress(
    keras, data_folder, tmp_path, capsys, caplog
):
    out = tmp_path / "quick"
    args = cli().parse_args(
        ["train", "--model", "cnn_emb2", "--data", str(data_folder), "--out", str(out), "--quick"]
    )
    with caplog.at_level(logging.INFO, logger="calotools"):
        assert args.run(args) == 0
    assert "Epoch 2/2" in capsys.readouterr().out  # Keras' progress
    logged = caplog.text  # calotools' own: what the run does, and its result
    assert "[cnn_emb2 classify]" in logged
    assert "test AUC" in logged
    assert load(out).task == "classify"


def test_calotools_train_says_what_a_data_folder_lacks(data_folder, tmp_path):
    (tmp_path / "pi0.root").write_bytes((data_folder / "pi0.root").read_bytes())
    out = tmp_path / "bdt"
    args = cli().parse_args(["train", "--model", "bdt", "--data", str(tmp_path), "--out", str(out)])
    with pytest.raises(FileNotFoundError, match=r"lacks .*pipm\.root"):
        args.run(args)
    assert not out.exists()
    assert not atomic.partial_folder(out).exists()


def test_calotools_models_lists_the_registry(capsys):
    args = cli().parse_args(["models"])
    assert args.run(args) == 0
    printed = capsys.readouterr().out
    for name, description in models.available().items():
        assert name in printed
        assert description[:30] in printed
