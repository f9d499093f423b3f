"""The model registry: every architecture of the studies builds, trains, saves, loads and predicts."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from pion_factory import pion_clusters, write_pion_samples

from calotools import geometry, loading, models, ntuple, training

pytestmark = pytest.mark.usefixtures("one_openmp_thread")

# Two cores: TensorFlow should not start a thread pool per core per op.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "2")
os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

STUDY_MODELS = {
    "dense_emb2",
    "dense3_emb2",
    "cnn_emb2",
    "dense3_all",
    "dense4_all",
    "per_layer_dense",
    "per_layer_cnn",
    "densenet",
    "lapp_cnn",
    "hybrid",
    "bdt",
}
CASES = [
    (name, task)
    for name in models.available()
    for task in models.spec(name).tasks
    if task in models.TASKS
]


@pytest.fixture(scope="module")
def data_folder(tmp_path_factory):
    """A few hundred separable π0 and π± clusters in the default data set layout."""
    folder = tmp_path_factory.mktemp("data")
    write_pion_samples(folder, 250, 250, seed=3)
    return folder


def layers_of(network, kind: str) -> list:
    return [layer for layer in network.layers if type(layer).__name__ == kind]


def test_the_registry_holds_every_architecture_of_the_studies():
    listing = models.available("classify")
    assert set(listing) == STUDY_MODELS
    # The LAPP denoiser is an entry too, of its own task, built by calotools.denoising.
    paed = models.spec("paed")
    assert paed.tasks == (models.DENOISE,)
    assert set(models.available()) == STUDY_MODELS | {"paed"}
    with pytest.raises(models.ModelError, match="calotools.denoising.build_paed"):
        models.build("paed", models.DENOISE)
    from calotools.denoising import PaedConfig

    config = PaedConfig()
    assert (config.layers, config.filters, config.latent) == (
        paed.layers,
        paed.sizes["filters"],
        paed.sizes["latent"],
    )
    for name, description in listing.items():
        model_spec = models.spec(name)
        assert description
        assert "\n" not in description
        assert model_spec.source
        assert set(model_spec.tasks) == {"classify", "regress"}


def test_importing_the_modelling_modules_does_not_import_tensorflow():
    code = (
        "import sys, calotools.models, calotools.training, calotools.baselines, "
        "calotools.chain, calotools.evaluation; print('tensorflow' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_an_unknown_model_or_task_is_refused_with_the_choices():
    with pytest.raises(models.ModelError, match="the models are: .*densenet"):
        models.spec("resnet")
    with pytest.raises(models.ModelError, match="task must be one of classify, regress"):
        models.spec("densenet").preprocessing("segment")
    with pytest.raises(models.ModelError, match="no size keyword"):
        models.build("densenet", "classify", depth=100)


@pytest.mark.parametrize(("name", "task"), CASES, ids=[f"{n}-{t}" for n, t in CASES])
def test_every_model_trains_saves_loads_and_predicts_identically(
    keras, name, task, data_folder, tmp_path
):
    folder = tmp_path / f"{name}-{task}"
    trained = training.train(
        name,
        data_folder,
        folder,
        task=task,
        epochs=1,
        batch_size=1024,  # one step
        model_kwargs=models.spec(name).tiny,
        run_eagerly=True,  # tracing a graph for one step would dominate the test
    )
    files = {path.name for path in folder.iterdir()}
    assert {"model.json", "split.npz", "training.json", "metrics.json", "versions.json"} <= files
    if models.spec(name).kind == "keras":
        assert {"model.keras", "preprocessing.json", "history.csv", "checkpoint"} <= files
        assert len(trained.history) == 1
    restored = loading.load(folder)
    assert type(restored) is type(trained)
    assert restored.task == task
    clusters = pion_clusters(50, "pipm", seed=11)
    predictions = restored.predict(clusters)
    np.testing.assert_allclose(predictions, trained.predict(clusters), rtol=1e-6)
    assert predictions.shape == (50,)
    if task == "classify":
        assert np.all((predictions >= 0) & (predictions <= 1))
    else:
        assert np.all(np.isfinite(predictions) & (predictions > 0))


def test_the_densenet_has_the_three_llnl_inputs_and_their_heads(keras):
    classifier = models.build("densenet", "classify")
    shapes = {tensor.name: tuple(tensor.shape[1:]) for tensor in classifier.inputs}
    assert shapes == {"EMB1": (128, 4, 1), "EMB23": (16, 16, 2), "Tile": (4, 4, 3)}
    # Two softmax units (categorical cross-entropy) to classify …
    assert classifier.output.shape[-1] == 2
    assert classifier.get_layer("score").activation.__name__ == "softmax"
    # … built from dense blocks: BN-ReLU-Conv layers whose outputs are concatenated.
    assert len(layers_of(classifier, "FusedBatchNormalization")) >= 3 * 2 * 3
    assert len(layers_of(classifier, "Concatenate")) >= 3 * 2 * 3
    assert len(layers_of(classifier, "AveragePooling2D")) == 3  # one transition per branch
    compiled = models.compile_model(classifier, "densenet", "classify")
    assert "categorical_crossentropy" in str(compiled.loss)
    # … and one linear output (Huber loss), starting at zero (the EM scale), with the energy
    # and |η| as inputs, to regress.
    regression = models.compile_model(models.build("densenet", "regress"), "densenet", "regress")
    assert regression.output.shape[-1] == 1
    assert regression.get_layer("energy").activation.__name__ == "linear"
    assert "scalars" in {tensor.name for tensor in regression.inputs}
    assert "huber" in str(regression.loss)
    head = regression.get_layer("energy").get_weights()
    assert all(not np.any(weights) for weights in head)


def test_the_lapp_cnn_follows_the_lapp_recipe(keras):
    network = models.compile_model(models.build("lapp_cnn", "classify"), "lapp_cnn", "classify")
    convs = layers_of(network, "Conv2D") + layers_of(network, "Dense")[:-1]
    assert {layer.activation.__name__ for layer in convs} == {"selu"}
    assert {type(layer.kernel_initializer).__name__ for layer in convs} == {"HeNormal"}
    assert {layer.rate for layer in layers_of(network, "Dropout")} == {0.08}
    assert network.get_layer("score").activation.__name__ == "sigmoid"
    assert float(network.optimizer.learning_rate) == pytest.approx(1e-4)
    assert models.spec("lapp_cnn").class_weight == "balanced"
    # Every layer image gets its own branch.
    assert {t.name for t in network.inputs} == set(geometry.IMAGE_LAYER_NAMES)


@pytest.mark.parametrize(
    ("name", "units", "n_pixels"),
    [
        ("dense_emb2", [128], 16 * 16),
        ("dense3_emb2", [128, 64, 32], 16 * 16),
        ("dense3_all", [128, 64, 32], 128 * 4 + 16 * 16 + 8 * 16 + 4 * 4 + 4 * 4 + 2 * 4),
        ("dense4_all", [512, 256, 128, 64], 128 * 4 + 16 * 16 + 8 * 16 + 4 * 4 + 4 * 4 + 2 * 4),
    ],
)
def test_the_forum_dense_networks_have_the_quoted_layers(keras, name, units, n_pixels):
    network = models.build(name, "classify")
    shapes = {tensor.name: tuple(tensor.shape[1:]) for tensor in network.inputs}
    assert shapes == {"flat": (n_pixels,), "scalars": (1,)}  # pixels + cluster energy
    assert [layer.units for layer in layers_of(network, "Dense")] == [*units, 1]


def test_the_emb2_cnn_sees_no_cluster_energy_but_its_regression_does(keras):
    classifier = models.build("cnn_emb2", "classify")
    assert [t.name for t in classifier.inputs] == ["EMB2"]
    assert models.spec("cnn_emb2").preprocessing("classify").scalars == ()
    regression = models.build("cnn_emb2", "regress")
    assert {t.name for t in regression.inputs} == {"EMB2", "scalars"}
    assert models.spec("cnn_emb2").preprocessing("regress").scalars == models.REGRESSION_SCALARS


@pytest.mark.parametrize("name", [n for n in models.available() if models.spec(n).kind == "keras"])
def test_an_untrained_regression_returns_the_em_scale_energy(keras, name):
    """The head starts at zero and the target is ln(E_calib / E_EM): before any training, a
    regression is the identity on cluster_E, the starting point a calibration corrects."""
    clusters = pion_clusters(20, "pipm", seed=5)
    prep = models.spec(name).preprocessing("regress").fit(clusters)
    assert prep.target == models.REGRESSION_TARGET == "log_ratio"
    network = models.build(name, "regress", prep, **models.spec(name).tiny)
    model = models.KerasModel(network, prep, name=name, task="regress")
    np.testing.assert_allclose(
        model.predict(clusters), clusters.scalars["cluster_E"].to_numpy(), rtol=1e-6
    )


def test_any_network_can_see_the_moments_beside_its_images(keras):
    """`MOMENT_SCALARS` join the scalars of a network that had none (the EMB2 CNN) or some."""
    spec = models.spec("cnn_emb2")
    prep = spec.preprocessing("classify", extra_scalars=models.MOMENT_SCALARS)
    assert prep.scalars == models.MOMENT_SCALARS
    network = models.build("cnn_emb2", "classify", prep)
    shapes = {t.name: tuple(t.shape[1:]) for t in network.inputs}
    assert shapes == {"EMB2": (16, 16, 1), "scalars": (len(models.MOMENT_SCALARS),)}
    # Energy and |η| are not repeated for a network that had them.
    per_layer = models.spec("per_layer_cnn").preprocessing(
        "classify", extra_scalars=models.MOMENT_SCALARS
    )
    assert per_layer.scalars == models.MOMENT_SCALARS
    # The reference form of the forum networks is unchanged.
    assert spec.preprocessing("classify").scalars == ()


def test_the_hybrid_joins_a_cnn_per_layer_and_a_dense_branch_on_the_moments(keras):
    network = models.build("hybrid", "classify")
    assert {t.name for t in network.inputs} == {*geometry.IMAGE_LAYER_NAMES, "scalars"}
    assert network.get_layer("moments_0").input.shape[-1] == len(models.MOMENT_SCALARS)
    assert network.get_layer("branches").output.shape[-1] == (
        sum(
            network.get_layer(f"{layer}_flatten").output.shape[-1]
            for layer in geometry.IMAGE_LAYER_NAMES
        )
        + 32
    )
    assert models.spec("hybrid").preprocessing("regress").scalars == models.MOMENT_SCALARS


def test_moments_the_files_lack_are_left_out_and_the_recipe_says_so(tmp_path):
    """Real MLTree ntuples lack calotools' additions to the moments: a network trains on
    the moments there are, as the BDT does, and its saved recipe lists them."""
    lacking = ["cluster_SECOND_R", "cluster_SECOND_LAMBDA", "cluster_SIGNIFICANCE"]
    for offset, sample in enumerate(("pi0", "pipm")):
        clusters = pion_clusters(200, sample, seed=20 + offset)
        clusters.scalars = clusters.scalars.drop(columns=lacking)
        ntuple.write_clusters(tmp_path / f"{sample}.root", clusters)
    trained = training.train(
        "dense3_emb2",
        tmp_path,
        tmp_path / "with-moments",
        extra_scalars=models.MOMENT_SCALARS,
        model_kwargs=dict(models.spec("dense3_emb2").tiny),
        epochs=1,
    )
    seen = trained.preprocessing.scalars
    assert seen == tuple(s for s in models.MOMENT_SCALARS if not any(b in s for b in lacking))
    assert len(seen) == len(models.MOMENT_SCALARS) - 3
    assert loading.load(tmp_path / "with-moments").preprocessing.scalars == seen
    with pytest.raises(training.TrainingError, match="extra_scalars.*'bdt'"):
        training.TrainingConfig(model="bdt", extra_scalars=models.MOMENT_SCALARS)


def test_the_per_layer_network_combines_one_score_per_layer(keras):
    network = models.build("per_layer_dense", "classify")
    scores = [layer for layer in network.layers if layer.name.startswith("score_")]
    assert {layer.name for layer in scores} == {f"score_{n}" for n in geometry.IMAGE_LAYER_NAMES}
    assert network.get_layer("layer_scores").output.shape[-1] == 6


def test_a_softmax_classifier_reports_column_one_as_p_pipm(keras):
    """Softmax outputs (P(π0), P(π±)); predict gives P(π±)."""
    prep = models.spec("densenet").preprocessing("classify").fit(pion_clusters(10, "pi0"))
    inputs = {name: keras.Input(shape, name=name) for name, shape in prep.input_shapes.items()}
    flat = keras.layers.Flatten()(inputs["Tile"])
    logits = keras.layers.Dense(
        2, kernel_initializer="zeros", bias_initializer=keras.initializers.Constant([0, np.log(3)])
    )(flat)
    network = keras.Model(inputs, keras.layers.Softmax()(logits))
    model = models.KerasModel(network, prep, name="densenet", task="classify")
    np.testing.assert_allclose(model.predict(pion_clusters(5, "pi0")), 0.75, rtol=1e-6)


def test_predictions_are_the_networks_own_for_any_count_with_one_trace(keras):
    """Whole batches plus a padded last one: the same numbers, and one trace for every count."""
    prep = models.spec("dense_emb2").preprocessing("classify").fit(pion_clusters(10, "pi0"))
    network = models.build("dense_emb2", "classify", prep)
    model = models.KerasModel(network, prep, name="dense_emb2", task="classify")
    rng = np.random.default_rng(3)
    inputs = {
        name: rng.random((700, *shape), dtype=np.float32)
        for name, shape in prep.input_shapes.items()
    }
    expected = np.asarray(network(inputs, training=False))
    for n in (700, 256, 37):  # 2 whole batches + 188; exactly one; a short one only
        part = {name: value[:n] for name, value in inputs.items()}
        np.testing.assert_allclose(
            model.predict_inputs(part, batch_size=256), expected[:n], rtol=1e-5, atol=1e-6
        )
    assert network.predict_function.experimental_get_tracing_count() == 1
    empty = {name: value[:0] for name, value in inputs.items()}
    assert model.predict_inputs(empty, batch_size=256).shape == (0, *expected.shape[1:])
