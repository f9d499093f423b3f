"""Selection and inference over many files on a local Dask cluster of two worker processes."""

from __future__ import annotations

import os

import numpy as np
import pytest
import uproot
from sample_factory import write_samples

from calotools import dask_tools, data, ntuple
from calotools.loaders import load_arrays
from calotools.preprocessing import Preprocessing

os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def emb2_energy(inputs: dict[str, np.ndarray]) -> np.ndarray:
    """A "model" in plain NumPy: the EMB2 fraction of the cluster energy."""
    return inputs["EMB2"].sum(axis=(1, 2, 3))


@pytest.fixture(scope="module")
def client():
    with dask_tools.dask_client(n_workers=2, threads_per_worker=1, processes=True) as client:
        yield client


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return write_samples(tmp_path_factory.mktemp("samples"))


@pytest.fixture(scope="module")
def prep(samples):
    train = data.split(data.select(samples), seed=1)["train"]
    recipe = Preprocessing(layers=("EMB2", "TileBar0"), target="log_energy")
    return recipe.fit(data.read_selection(train, recipe.input_branches + recipe.target_branches))


def read_predictions(path) -> dict[str, np.ndarray]:
    with uproot.open(path) as file:
        return file[dask_tools.PREDICTION_TREE].arrays(library="np")


def test_the_local_cluster_has_two_single_threaded_worker_processes(client):
    workers = client.scheduler_info()["workers"]
    assert len(workers) == 2
    assert all(worker["nthreads"] == 1 for worker in workers.values())
    pids = client.run(os.getpid)
    assert os.getpid() not in pids.values()


def test_selection_on_the_cluster_equals_the_local_one(client, samples):
    config = data.SelectionConfig(balance=True, match="log10(cluster_E)", match_bins=10, seed=4)
    remote = dask_tools.select(samples, config, client=client, step_size=1_000)
    local = data.select(samples, config)
    np.testing.assert_array_equal(remote.ids, local.ids)
    assert remote.files == local.files


def test_numpy_model_predictions_are_written_per_input_file(client, samples, prep, tmp_path):
    files = list(samples.values())
    outputs = dask_tools.predict(
        files, emb2_energy, prep, output_dir=tmp_path, client=client, step_size=1_000
    )
    assert outputs == [tmp_path / "pi0.predictions.root", tmp_path / "pipm.predictions.root"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in outputs)
    selection = data.select(samples)
    for number, (path, output) in enumerate(zip(files, outputs, strict=True)):
        predictions = read_predictions(output)
        part = selection.take(selection.file_index == number)
        np.testing.assert_array_equal(predictions["entry"], part.entry)
        expected = emb2_energy(load_arrays(part, prep).inputs)
        np.testing.assert_allclose(predictions["prediction"], expected, rtol=1e-6)
        event_numbers = ntuple.read_clusters(path, ["eventNumber"]).scalars["eventNumber"]
        np.testing.assert_array_equal(
            predictions["eventNumber"], event_numbers.to_numpy()[part.entry]
        )
        # An energy target: the predictions are also turned into GeV.
        energy = prep.inverse_target(predictions["prediction"], predictions_cluster_e(path, part))
        np.testing.assert_allclose(predictions["energy"], energy, rtol=1e-6)


def predictions_cluster_e(path, part) -> np.ndarray:
    return ntuple.read_clusters(path, ["cluster_E"]).scalars["cluster_E"].to_numpy()[part.entry]


# Saving a Keras 3 model with the TensorFlow backend converts variables with
# np.array(variable), and TensorFlow's __array__ lacks NumPy 2's copy keyword
# (keras/src/backend/tensorflow/core.py); nothing calotools can change.
@pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)
def test_a_saved_keras_model_is_loaded_on_the_workers(client, samples, prep, tmp_path):
    import keras

    keras.utils.set_random_seed(1)
    inputs = {name: keras.Input(shape, name=name) for name, shape in prep.input_shapes.items()}
    flat = [keras.layers.Flatten()(tensor) for tensor in inputs.values()]
    output = keras.layers.Dense(1)(keras.layers.Concatenate()(flat))
    model = keras.Model(inputs, output)
    model_path = tmp_path / "regressor.keras"
    model.save(model_path)
    outputs = dask_tools.predict(
        samples["pipm"], model_path, prep, output_dir=tmp_path / "out", client=client
    )
    predictions = read_predictions(outputs[0])
    selection = data.select({"pipm": samples["pipm"]})
    np.testing.assert_array_equal(predictions["entry"], selection.entry)
    expected = model.predict(load_arrays(selection, prep).inputs, verbose=0)[:, 0]
    np.testing.assert_allclose(predictions["prediction"], expected, rtol=1e-5, atol=1e-6)


def test_a_missing_model_file_is_reported_before_any_work(client, samples, prep, tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such.keras"):
        dask_tools.predict(samples["pi0"], tmp_path / "no-such.keras", prep, client=client)


def test_a_cut_on_a_missing_branch_is_reported_with_the_file(client, samples, prep):
    with pytest.raises(ntuple.NtupleError, match=r"pi0.root has no branch 'cluster_Etaa'"):
        dask_tools.predict(
            samples["pi0"], emb2_energy, prep, cut="abs(cluster_Etaa) < 0.7", client=client
        )
