"""Model folders are data: loading one runs no code and reads nothing outside it.

Each test builds the folder a careless or malicious sender could hand over (a
planted pickle, a manifest pointing elsewhere, edited or broken JSON) from a
real model folder, then checks what `calotools.loading.load` does with it. The
planted pickle would create a marker file if it were ever unpickled.
"""

from __future__ import annotations

import json
import os
import pathlib
import pickle
import shutil
import warnings
from importlib import metadata

import numpy as np
import pytest
from pion_factory import pion_clusters, write_pion_samples

from calotools import artifacts, loading, ntuple, training
from calotools.baselines import BDTModel
from calotools.chain import CalibrationChain
from calotools.errors import ArtifactError, UntrustedFileError, VersionMismatchWarning

pytestmark = pytest.mark.usefixtures("one_openmp_thread")

os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

#: A small forest: these tests are about files, not about physics.
TREES = {"n_estimators": 10}


class Planted:
    """Unpickling this creates ``marker``: the stand-in for any code a pickle can run."""

    def __init__(self, marker: pathlib.Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def train_clusters():
    clusters = ntuple.Clusters.concat(
        [pion_clusters(200, "pi0", seed=1), pion_clusters(200, "pipm", seed=2)]
    )
    return clusters, np.repeat([0, 1], 200)


@pytest.fixture(scope="module")
def fresh():
    return pion_clusters(60, "pipm", seed=9)


@pytest.fixture(scope="module")
def bdt_folder(train_clusters, tmp_path_factory):
    """A BDT classifier saved the way calotools saves it."""
    clusters, labels = train_clusters
    folder = tmp_path_factory.mktemp("bdt") / "classifier"
    BDTModel.fit(clusters, "classify", labels=labels, **TREES).save(folder)
    return folder


@pytest.fixture(scope="module")
def chain_folder(train_clusters, bdt_folder, tmp_path_factory):
    """A chain of BDTs, its members copied inside it."""
    root = tmp_path_factory.mktemp("chain")
    for sample in ("pi0", "pipm"):
        regression = BDTModel.fit(pion_clusters(200, sample, seed=3), "regress", **TREES)
        regression.save(root / sample)
    members = [loading.load(p) for p in (bdt_folder, root / "pi0", root / "pipm")]
    return CalibrationChain(*members).save(root / "chain")


@pytest.fixture(scope="module")
def keras_folder(keras, tmp_path_factory):
    """A tiny network trained for one step, in the folder training writes."""
    root = tmp_path_factory.mktemp("keras")
    write_pion_samples(root / "data", 150, 150, seed=5)
    training.train(
        "dense3_all",
        root / "data",
        root / "net",
        epochs=1,
        batch_size=1024,
        model_kwargs={"units": (4,)},
        run_eagerly=True,
    )
    return root / "net"


def copy_of(folder, tmp_path, name="copy"):
    return pathlib.Path(shutil.copytree(folder, tmp_path / name, symlinks=True))


def edit_manifest(folder, *, drop=(), **fields):
    path = folder / artifacts.MANIFEST
    manifest = json.loads(path.read_text())
    manifest.update(fields)
    for key in drop:
        manifest.pop(key)
    path.write_text(json.dumps(manifest))


def plant(folder, marker):
    """Replace the trees of a BDT folder by a pickle that creates ``marker``."""
    (folder / "model.joblib").write_bytes(pickle.dumps(Planted(marker)))
    edit_manifest(folder, estimator="model.joblib", drop=["estimator_format"])


def legacy_bdt(folder, clusters, labels, estimator):
    """The folder calotools ≤ 0.2 wrote: a joblib pickle and its manifest."""
    import joblib

    folder.mkdir()
    joblib.dump(estimator, folder / "model.joblib")
    artifacts.write_manifest(
        folder,
        "bdt",
        name="bdt",
        task="classify",
        estimator="model.joblib",
        features=list(BDTModel.usable_features(list(clusters.scalars.columns))),
    )
    return folder


# ---------------------------------------------------------------------------- pickles


def test_a_planted_pickle_is_refused_and_never_unpickled(bdt_folder, tmp_path):
    marker = tmp_path / "marker"
    folder = copy_of(bdt_folder, tmp_path)
    plant(folder, marker)
    with pytest.raises(UntrustedFileError, match=r"model\.joblib.*trust=True"):
        loading.load(folder)
    with pytest.raises(UntrustedFileError):
        BDTModel.load(folder)
    assert not marker.exists()


def test_a_pickle_disguised_as_lightgbm_trees_is_not_unpickled(bdt_folder, tmp_path):
    marker = tmp_path / "marker"
    folder = copy_of(bdt_folder, tmp_path)
    (folder / "model.txt").write_bytes(pickle.dumps(Planted(marker)))
    with pytest.raises(ArtifactError, match=r"model\.txt: not a readable LightGBM model"):
        loading.load(folder)
    assert not marker.exists()


def test_a_pickle_in_a_chain_member_is_refused_too(chain_folder, tmp_path):
    marker = tmp_path / "marker"
    chain = copy_of(chain_folder, tmp_path)
    plant(chain / "pi0", marker)
    with pytest.raises(UntrustedFileError, match=r"pi0.model\.joblib"):
        loading.load(chain)
    assert not marker.exists()


def test_an_old_pickled_bdt_loads_only_when_trusted(train_clusters, chain_folder, tmp_path, fresh):
    from sklearn.ensemble import HistGradientBoostingClassifier

    clusters, labels = train_clusters
    features = BDTModel.usable_features(list(clusters.scalars.columns))
    hgb = HistGradientBoostingClassifier(max_iter=5, random_state=0)
    hgb.fit(BDTModel.feature_matrix(clusters, features), labels)
    folder = legacy_bdt(tmp_path / "old", clusters, labels, hgb)
    with pytest.raises(UntrustedFileError, match="only for a folder you made yourself"):
        loading.load(folder)
    restored = loading.load(folder, trust=True)
    expected = hgb.predict_proba(BDTModel.feature_matrix(fresh, features))[:, 1]
    np.testing.assert_array_equal(restored.predict(fresh), expected)
    # In a chain too: trust reaches its members.
    chain = copy_of(chain_folder, tmp_path, "chain")
    shutil.rmtree(chain / "classifier")
    shutil.copytree(folder, chain / "classifier")
    with pytest.raises(UntrustedFileError, match=r"classifier.model\.joblib"):
        loading.load(chain)
    trusted = loading.load(chain, trust=True)
    np.testing.assert_array_equal(trusted.classifier.predict(fresh), expected)


# ---------------------------------------------------------------------------- paths


@pytest.mark.parametrize("where", ["parent", "absolute", "symlink"])
def test_a_bdt_manifest_cannot_name_a_file_outside_its_folder(bdt_folder, tmp_path, where):
    other = copy_of(bdt_folder, tmp_path, "other")
    folder = copy_of(bdt_folder, tmp_path)
    name = json.loads((folder / artifacts.MANIFEST).read_text())["estimator"]
    (other / name).write_text("not a model: reading it would fail differently")
    if where == "parent":
        edit_manifest(folder, estimator=f"../other/{name}")
    elif where == "absolute":
        edit_manifest(folder, estimator=str(other / name))
    else:
        (folder / name).unlink()
        (folder / name).symlink_to(other / name)
    with pytest.raises(ArtifactError, match=r"model\.json.*'estimator'.*(outside|absolute)"):
        loading.load(folder)


@pytest.mark.parametrize("key", ["network", "preprocessing"])
def test_a_network_manifest_cannot_name_another_folders_files(keras_folder, tmp_path, key):
    copy_of(keras_folder, tmp_path, "other")
    folder = copy_of(keras_folder, tmp_path)
    name = json.loads((folder / artifacts.MANIFEST).read_text())[key]
    edit_manifest(folder, **{key: f"../other/{name}"})
    with pytest.raises(ArtifactError, match=rf"model\.json.*'{key}'.*\.\./other.*outside"):
        loading.load(folder)
    edit_manifest(folder, **{key: str(tmp_path / "other" / name)})
    with pytest.raises(ArtifactError, match="absolute"):
        loading.load(folder)


def test_a_chain_member_must_lie_inside_the_chain(chain_folder, tmp_path):
    chain = copy_of(chain_folder, tmp_path / "a")
    shutil.copytree(chain / "classifier", tmp_path / "elsewhere")
    edit_manifest(chain, members={"classifier": "../elsewhere", "pi0": "pi0", "pipm": "pipm"})
    with pytest.raises(ArtifactError, match=r"'members\.classifier'.*outside"):
        loading.load(chain)
    edit_manifest(chain, members={"classifier": ".", "pi0": "pi0", "pipm": "pipm"})
    with pytest.raises(ArtifactError, match=r"'members\.classifier'"):  # not itself either
        loading.load(chain)


def test_the_recorded_files_of_a_folder_are_read_only_from_inside_it(bdt_folder, tmp_path):
    other = tmp_path / "metrics.json"
    other.write_text('{"auc": 0.99}')
    folder = copy_of(bdt_folder, tmp_path)
    edit_manifest(folder, metrics="../metrics.json")
    model = loading.load(folder)
    with pytest.raises(ArtifactError, match="'metrics'.*outside"):
        model.test_metrics  # noqa: B018


def test_keras_networks_load_in_safe_mode(keras, keras_folder, tmp_path):
    """A Lambda layer holds Python bytecode: Keras' safe mode refuses to rebuild it."""
    folder = copy_of(keras_folder, tmp_path)
    inputs = keras.Input((3,))
    network = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    network.save(folder / "model.keras")
    with pytest.raises(ValueError, match="safe_mode"):
        loading.load(folder)


# ---------------------------------------------------------------------------- versions


def test_a_model_made_with_other_versions_warns_with_both(bdt_folder, tmp_path):
    folder = copy_of(bdt_folder, tmp_path)
    versions = json.loads((folder / "versions.json").read_text())
    versions.update(numpy="1.0.0", calotools="0.0.1", python="2.7.18", platform="elsewhere")
    (folder / "versions.json").write_text(json.dumps(versions))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loading.load(folder)
    assert [w.category for w in caught] == [VersionMismatchWarning]  # once per load
    message = str(caught[0].message)
    assert f"numpy 1.0.0 (saved) vs {metadata.version('numpy')} (installed)" in message
    assert "calotools 0.0.1 (saved)" in message
    assert "2.7.18" not in message  # Python and the platform are not compared
    assert "elsewhere" not in message


def test_a_patch_release_or_a_missing_record_does_not_warn(bdt_folder, tmp_path):
    folder = copy_of(bdt_folder, tmp_path)
    versions = json.loads((folder / "versions.json").read_text())
    major, minor, *_ = (*metadata.version("numpy").split("."), "0")
    versions.update(numpy=f"{major}.{minor}.999", tensorflow="1.0")  # a BDT uses no TensorFlow
    (folder / "versions.json").write_text(json.dumps(versions))
    loading.load(folder)  # warnings are errors here
    (folder / "versions.json").unlink()
    loading.load(folder)


def test_a_chain_with_mismatched_members_warns_once(chain_folder, tmp_path):
    chain = copy_of(chain_folder, tmp_path)
    for role in ("classifier", "pi0"):
        versions = json.loads((chain / role / "versions.json").read_text())
        versions["numpy"] = "1.0.0"
        (chain / role / "versions.json").write_text(json.dumps(versions))
    with pytest.warns(VersionMismatchWarning) as caught:
        loading.load(chain)
    assert len(caught) == 1
    message = str(caught[0].message)
    assert f"{chain / 'classifier'}: numpy 1.0.0" in message
    assert f"{chain / 'pi0'}: numpy 1.0.0" in message


# ---------------------------------------------------------------------------- broken JSON


@pytest.mark.parametrize(
    ("file", "text", "expected"),
    [
        ("model.json", '{"format": ', r"model\.json: not valid JSON \(line 1 column 12"),
        ("model.json", "[1, 2]", r"model\.json: expected a JSON object"),
        ("versions.json", "{oops}", r"versions\.json: not valid JSON \(line 1 column 2"),
        ("versions.json", '"1.0"', r"versions\.json: expected a JSON object"),
    ],
)
def test_invalid_json_in_a_bdt_folder_names_the_file(bdt_folder, tmp_path, file, text, expected):
    folder = copy_of(bdt_folder, tmp_path)
    (folder / file).write_text(text)
    with pytest.raises(ArtifactError, match=expected):
        loading.load(folder)


def test_an_invalid_preprocessing_file_is_named(keras_folder, tmp_path):
    folder = copy_of(keras_folder, tmp_path)
    (folder / "preprocessing.json").write_text('{"layers": [')
    with pytest.raises(ArtifactError, match=r"preprocessing\.json: not valid JSON \(line 1"):
        loading.load(folder)
    (folder / "preprocessing.json").write_text('{"format": "something else"}')
    with pytest.raises(ArtifactError, match=r"preprocessing\.json: not a calotools preprocessing"):
        loading.load(folder)


def test_read_json_names_the_file_and_the_place(tmp_path):
    path = tmp_path / "state.json"
    path.write_text('{\n  "epoch": 3,\n  "best": \n}')
    with pytest.raises(ArtifactError, match=r"state\.json: not valid JSON \(line 4 column 1"):
        artifacts.read_json(path)
    path.write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(ArtifactError, match=r"state\.json: not valid JSON"):
        artifacts.read_json(path)


# ---------------------------------------------------------------------------- the format


def test_a_saved_bdt_is_text_and_round_trips_exactly(train_clusters, tmp_path, fresh):
    clusters, labels = train_clusters
    for task, kwargs in (("classify", {"labels": labels}), ("regress", {})):
        bdt = BDTModel.fit(clusters, task, **kwargs, **TREES)
        folder = bdt.save(tmp_path / task)
        restored = loading.load(folder)
        np.testing.assert_array_equal(restored.predict(fresh), bdt.predict(fresh))
        files = {p.name for p in folder.iterdir()}
        assert files == {"model.json", "model.txt", "versions.json"}
        assert (folder / "model.txt").read_text().startswith("tree\n")
        for path in folder.iterdir():
            assert not path.read_bytes().startswith(b"\x80"), f"{path.name} is a pickle"


def test_the_same_seed_gives_the_same_trees(train_clusters, tmp_path, fresh):
    clusters, labels = train_clusters
    first, second, other = (
        BDTModel.fit(clusters, "classify", labels=labels, seed=seed, subsample=0.5,
                     subsample_freq=1, **TREES)
        for seed in (1, 1, 2)
    )  # fmt: skip
    np.testing.assert_array_equal(first.predict(fresh), second.predict(fresh))
    assert not np.array_equal(first.predict(fresh), other.predict(fresh))
    text = [m.save(tmp_path / str(i)).joinpath("model.txt").read_text() for i, m in
            enumerate((first, second))]  # fmt: skip
    assert text[0] == text[1]


def test_old_parameter_names_are_refused_with_the_new_ones(train_clusters):
    clusters, labels = train_clusters
    with pytest.raises(TypeError, match="max_iter.*n_estimators"):
        BDTModel.fit(clusters, "classify", labels=labels, max_iter=5)
