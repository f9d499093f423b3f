"""The in-memory and the streaming loader give the same clusters, the same way."""

from __future__ import annotations

import os
import pickle
import tracemalloc

import numpy as np
import pytest
from sample_factory import make_clusters, write_samples

from calotools import data, ntuple
from calotools.loaders import LoaderWarning, load_arrays
from calotools.preprocessing import Preprocessing, PreprocessingError

# Two cores: TensorFlow should not start a thread pool per core per op.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(scope="module")
def loaders(keras):
    from calotools import loaders

    return loaders


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    return write_samples(tmp_path_factory.mktemp("samples"))


@pytest.fixture(scope="module")
def parts(samples):
    selection = data.select(
        samples, data.SelectionConfig(match="log10(cluster_E)", match_method="reweight")
    )
    return data.split(selection, seed=2)


@pytest.fixture(scope="module")
def prep(parts):
    recipe = Preprocessing(layout="densenet", scale="unit_sum", target="log_energy")
    branches = recipe.input_branches + recipe.target_branches
    return recipe.fit(chunk for chunk, _ in data.iterate_selection(parts["train"], branches))


def sorted_by_id(ids: np.ndarray, *arrays: np.ndarray) -> list[np.ndarray]:
    order = np.lexsort((ids[:, 1], ids[:, 0]))
    return [ids[order], *(a[order] for a in arrays)]


def read_all(dataset, order=None) -> None:
    for index in range(len(dataset)) if order is None else order:
        dataset[int(index)]


def one_epoch(dataset) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """ids, inputs, targets and weights of every batch of the current epoch, in order."""
    batches = [dataset[i] for i in range(len(dataset))]
    ids = np.concatenate([dataset.batch_ids(i) for i in range(len(dataset))])
    inputs = {name: np.concatenate([b[0][name] for b in batches]) for name in batches[0][0]}
    targets = np.concatenate([b[1] for b in batches])
    weights = np.concatenate([b[2] for b in batches])
    return ids, inputs, targets, weights


def test_both_loaders_give_the_same_clusters_with_the_same_values(loaders, parts, prep):
    """Over one epoch: same (file, entry) set, same inputs, targets and weights."""
    part = parts["train"]
    arrays = load_arrays(part, prep)
    streaming = loaders.StreamingDataset(
        part, prep, batch_size=128, buffer_chunks=3, chunk_size=500, seed=4
    )
    in_memory = loaders.ArrayDataset(arrays, batch_size=128, seed=4)
    assert len(streaming) == len(in_memory) == int(np.ceil(len(part) / 128))
    stream_ids, stream_inputs, stream_targets, stream_weights = one_epoch(streaming)
    mem_ids, mem_inputs, mem_targets, mem_weights = one_epoch(in_memory)
    assert len(stream_ids) == len(mem_ids) == len(part)
    np.testing.assert_array_equal(sorted_by_id(stream_ids)[0], part.ids)
    np.testing.assert_array_equal(sorted_by_id(mem_ids)[0], part.ids)
    for name in prep.input_shapes:
        _, stream_values = sorted_by_id(stream_ids, stream_inputs[name])
        _, mem_values = sorted_by_id(mem_ids, mem_inputs[name])
        np.testing.assert_array_equal(stream_values, mem_values)
        assert stream_values.dtype == np.float32
    np.testing.assert_array_equal(
        sorted_by_id(stream_ids, stream_targets)[1], sorted_by_id(mem_ids, mem_targets)[1]
    )
    np.testing.assert_array_equal(sorted_by_id(stream_ids, stream_weights)[1], part.weight)
    np.testing.assert_array_equal(sorted_by_id(mem_ids, mem_weights)[1], part.weight)


def test_streaming_mixes_chunks_and_reshuffles_every_epoch_reproducibly(loaders, parts, prep):
    part = parts["train"]
    dataset = loaders.StreamingDataset(
        part, prep, batch_size=200, buffer_chunks=3, chunk_size=500, seed=1
    )
    first = dataset.batch_ids(0)
    # A batch draws from several chunks (500-entry baskets) and from both files.
    assert len({(f, e // 500) for f, e in first}) >= 3
    assert len(set(first[:, 0])) == 2
    epoch0 = np.concatenate([dataset.batch_ids(i) for i in range(len(dataset))])
    dataset.on_epoch_end()
    assert dataset.epoch == 1
    epoch1 = np.concatenate([dataset.batch_ids(i) for i in range(len(dataset))])
    assert not np.array_equal(epoch0, epoch1)
    np.testing.assert_array_equal(sorted_by_id(epoch0)[0], sorted_by_id(epoch1)[0])
    again = loaders.StreamingDataset(
        part, prep, batch_size=200, buffer_chunks=3, chunk_size=500, seed=1
    )
    again.set_epoch(1)
    np.testing.assert_array_equal(again.batch_ids(5), epoch1[1000:1200])


def test_streaming_from_samples_applies_the_cut_while_reading(loaders, samples):
    prep = Preprocessing(layers=("EMB2",), scalars=(), target="label")
    dataset = loaders.StreamingDataset(samples, prep, batch_size=256, shuffle=False)
    selection = data.select(samples)
    ids = np.concatenate([dataset.batch_ids(i) for i in range(len(dataset))])
    np.testing.assert_array_equal(ids, selection.ids)  # unshuffled: file and entry order
    labels = np.concatenate([dataset[i][1] for i in range(len(dataset))])
    np.testing.assert_array_equal(labels, selection.labels)


def test_streaming_memory_does_not_grow_with_the_file_size(loaders, tmp_path):
    """Peak allocations while streaming an epoch: the same for 4k and 16k clusters."""
    prep = Preprocessing(layers=("EMB2", "EMB1"), scalars=(), target="energy_ratio")
    peaks = []
    for n in (4_000, 16_000):
        path = ntuple.write_clusters(
            tmp_path / f"pi0_{n}.root", make_clusters(n, seed=n), basket_size=500
        )
        dataset = loaders.StreamingDataset(
            {"pi0": path}, prep, batch_size=250, buffer_chunks=2, chunk_size=500, cut=None
        )
        tracemalloc.start()
        read_all(dataset)
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    one_cluster = 4 * (128 * 4 + 16 * 16)
    assert peaks[1] < 1.25 * peaks[0]
    # Three cached windows of 1,000 clusters, plus reading buffers, not the file.
    assert peaks[1] < 8 * 1_000 * one_cluster < 16_000 * one_cluster


def tiny_classifier(keras, prep):
    image = keras.Input(prep.input_shapes["EMB2"], name="EMB2")
    scalars = keras.Input(prep.input_shapes["scalars"], name="scalars")
    hidden = keras.layers.Flatten()(keras.layers.Conv2D(2, 3, activation="relu")(image))
    hidden = keras.layers.Concatenate()([hidden, scalars])
    output = keras.layers.Dense(1, activation="sigmoid")(hidden)
    model = keras.Model({"EMB2": image, "scalars": scalars}, output)
    model.compile(optimizer="adam", loss="binary_crossentropy", weighted_metrics=[])
    return model


@pytest.fixture(scope="module")
def classifier_prep(parts):
    prep = Preprocessing(layers=("EMB2",), scalars=("log10(cluster_E)",), target="label")
    branches = prep.input_branches
    return prep.fit(chunk for chunk, _ in data.iterate_selection(parts["train"], branches))


def test_keras_trains_on_the_streaming_loader_with_threads_and_processes(
    loaders, keras, parts, classifier_prep
):
    model = tiny_classifier(keras, classifier_prep)
    for options in ({"workers": 1}, {}, {"workers": 2, "use_multiprocessing": True}):
        train = loaders.StreamingDataset(
            parts["train"], classifier_prep, batch_size=256, chunk_size=500, **options
        )
        validation = loaders.StreamingDataset(
            parts["validation"], classifier_prep, batch_size=256, shuffle=False
        )
        history = model.fit(train, validation_data=validation, epochs=2, shuffle=False, verbose=0)
        assert np.isfinite(history.history["loss"]).all()
        assert np.isfinite(history.history["val_loss"]).all()


def test_every_keras_epoch_sees_every_cluster_once_in_a_new_order(
    loaders, keras, parts, classifier_prep
):
    """Also when Keras prefetches the next epoch before calling on_epoch_end."""
    served: dict[int, dict[int, np.ndarray]] = {}

    class Logged(loaders.StreamingDataset):
        def __getitem__(self, index):
            batch = super().__getitem__(index)
            ids = self.batch_ids(index)
            assert index not in served.setdefault(self.epoch, {}), "a batch served twice"
            served[self.epoch][index] = ids
            return batch

    part = parts["train"]
    model = tiny_classifier(keras, classifier_prep)
    for workers in (1, 2):  # Keras' generator path and its thread pool
        served.clear()
        train = Logged(part, classifier_prep, batch_size=128, chunk_size=500, workers=workers)
        model.fit(train, epochs=3, shuffle=False, verbose=0)
        complete = [e for e, batches in served.items() if len(batches) == len(train)]
        assert len(complete) >= 3
        orders = []
        for epoch in complete:
            ids = np.concatenate([served[epoch][i] for i in range(len(train))])
            np.testing.assert_array_equal(sorted_by_id(ids)[0], part.ids)
            orders.append(ids)
        assert not np.array_equal(orders[0], orders[1])
        assert not np.array_equal(orders[1], orders[2])


def test_a_pickled_streaming_loader_gives_the_same_batches(loaders, parts, prep):
    """What a spawned worker process receives."""
    dataset = loaders.StreamingDataset(parts["test"], prep, batch_size=100, seed=9)
    dataset[0]  # open files and fill the cache: none of it may travel
    copy = pickle.loads(pickle.dumps(dataset))
    for index in (0, 3, len(dataset) - 1):
        np.testing.assert_array_equal(copy.batch_ids(index), dataset.batch_ids(index))
        np.testing.assert_array_equal(copy[index][0]["EMB23"], dataset[index][0]["EMB23"])


def test_asking_for_batches_out_of_order_warns_to_pass_shuffle_false(loaders, parts, prep):
    dataset = loaders.StreamingDataset(
        parts["train"],
        prep,
        batch_size=32,
        buffer_chunks=1,
        chunk_size=500,
        cache_windows=1,
        prefetch=False,
    )
    order = np.random.default_rng(0).permutation(len(dataset))
    with pytest.warns(LoaderWarning, match="shuffle=False"):
        read_all(dataset, order)


def test_nan_in_an_image_stops_both_loaders_saying_where(loaders, tmp_path):
    clusters = make_clusters(1_500, seed=5)
    clusters.scalars["cluster_Eta"] = np.float32(0.1)
    clusters.images["EMB2"][1234, 3, 4] = np.inf
    path = ntuple.write_clusters(tmp_path / "pipm.root", clusters, basket_size=500)
    selection = data.select({"pipm": path})
    prep = Preprocessing(layers=("EMB2",), scalars=(), target="energy_ratio")
    pattern = r"pipm.root entries \d+–\d+: branch 'EMB2' has 1 non-finite .*entries 1234\)"
    with pytest.raises(PreprocessingError, match=pattern):
        load_arrays(selection, prep)
    dataset = loaders.StreamingDataset(selection, prep, batch_size=100, chunk_size=500)
    with pytest.raises(PreprocessingError, match=pattern):
        read_all(dataset)


def test_a_file_remade_since_the_selection_is_detected_while_streaming(loaders, tmp_path):
    path = tmp_path / "pi0.root"
    ntuple.write_clusters(path, make_clusters(1_000, seed=1), basket_size=500)
    selection = data.select({"pi0": path})
    ntuple.write_clusters(path, make_clusters(1_000, seed=2), basket_size=500)
    prep = Preprocessing(layers=("EMB2",), scalars=(), target="energy_ratio")
    dataset = loaders.StreamingDataset(selection, prep, batch_size=100, shuffle=False)
    with pytest.raises(data.DataError, match="no longer pass the selection's cut"):
        read_all(dataset)


def test_streaming_nothing_is_an_error(loaders, samples):
    prep = Preprocessing(layers=("EMB2",), scalars=())
    with pytest.raises(data.DataError, match="none of the entries"):
        loaders.StreamingDataset(samples, prep, cut="cluster_E < 0")


def test_a_streaming_cut_on_a_missing_branch_names_the_file_and_branch(loaders, samples):
    prep = Preprocessing(layers=("EMB2",), scalars=())
    with pytest.raises(ntuple.NtupleError, match=r"pi0.root has no branch 'cluster_ETA'"):
        loaders.StreamingDataset(samples, prep, cut="abs(cluster_ETA) < 0.7")
