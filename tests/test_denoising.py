"""The pile-up auto-encoder (PAED) on partner clusters from calotools' own simulation.

The pairs are a small π0 sample simulated twice from the same hard-scatter
events, at ⟨μ⟩ = 0 and ⟨μ⟩ = 80 on a small real minimum-bias library, matched
cluster by cluster with `calotools.sim.pileup_samples.partners` (same event,
mutual nearest in (η, φ), ΔR < 0.1). Events with ``eventNumber % 4 == 3`` are
held out. One PAED is trained once for the module (ten brief epochs; Keras'
first graph trace takes much of it on a busy CPU) and serves the tests of what
a trained PAED does.
"""

from __future__ import annotations

import math
import zipfile

import numpy as np
import pandas as pd
import pytest

from calotools import artifacts, denoising, models, ntuple
from calotools.denoising import Paed, PaedConfig
from calotools.errors import (
    ArtifactError,
    DataError,
    InvalidValueError,
    OutputPathError,
    PreprocessingError,
)
from calotools.ntuple import Clusters
from calotools.sim import event_samples, samples
from calotools.sim.pileup_samples import partners

N_EVENTS = 400
SEED = 1
MU = 80.0
#: Minimum-bias events in the library: each is reused, rotated in φ and mirrored
#: in η (`calotools.sim.pileup.overlay_window`), as in tests/test_pileup_samples.py.
LIBRARY_EVENTS = 8
#: Settings of the module's PAED: small batches give the steps a brief training needs.
BRIEF = {"filters": (8, 16), "latent": 16, "epochs": 10, "batch_size": 16, "learning_rate": 2e-3}


@pytest.fixture(scope="module")
def pairs(tmp_path_factory):
    """(noisy, clean) partners, row by row: ``"train"`` and the held-out ``"test"`` events."""
    pytest.importorskip("pythia8mc", reason="the [events] extra (minimum-bias library) is missing")
    folder = tmp_path_factory.mktemp("pairs")
    library = event_samples.make_pileup_library(
        folder / "minbias.npz",
        n_events=LIBRARY_EVENTS,
        seed=SEED + event_samples.PILEUP_SEED_OFFSET,
    )
    clean, noisy = (
        ntuple.read_clusters(
            samples.make_sample(
                "pi0",
                folder / f"mu{mu:g}.root",
                n_events=N_EVENTS,
                seed=SEED,
                mu=mu,
                library=library,
                workers=1,
                progress=False,
            )
        )
        for mu in (0.0, MU)
    )
    rows, partner = partners(clean, noisy)
    clean, noisy = clean[rows], noisy[partner]
    # As training's cut: classifiers take log10(cluster_E).
    kept = (clean.scalars["cluster_E"] > 0).to_numpy() & (noisy.scalars["cluster_E"] > 0).to_numpy()
    held_out = clean.scalars["eventNumber"].to_numpy() % 4 == 3
    return {
        "train": (noisy[kept & ~held_out], clean[kept & ~held_out]),
        "test": (noisy[kept & held_out], clean[kept & held_out]),
    }


@pytest.fixture(scope="module")
def trained(keras, pairs):
    return denoising.train_paed(*pairs["train"], PaedConfig(**BRIEF))


def em_energy(clusters: Clusters) -> float:
    energy = clusters.scalars["cluster_E"].to_numpy(np.float64)[:, None, None]
    return float(sum((clusters.images[layer] * energy).sum() for layer in models.EM_LAYERS))


# ---------------------------------------------------------------------------- pixels


def test_pixels_are_the_log_of_the_cell_energy_over_5_mev_and_invert():
    clusters = Clusters(
        pd.DataFrame({"cluster_E": np.array([2.0], np.float32)}),
        {"EMB2": np.zeros((1, 16, 16), np.float32)},
    )
    clusters.images["EMB2"][0, 8, 8] = 0.0025  # 5 MeV of the 2 GeV cluster
    clusters.images["EMB2"][0, 0, 0] = -0.01  # a negative noise cell
    pixels = denoising.to_pixels(clusters, ["EMB2"])
    assert pixels["EMB2"].dtype == np.float32
    assert pixels["EMB2"][0, 8, 8] == pytest.approx(math.log(2))
    assert pixels["EMB2"][0, 0, 0] == 0.0
    energy = denoising.from_pixels(pixels)["EMB2"]
    assert energy[0, 8, 8] == pytest.approx(0.005, rel=1e-5)
    assert energy.sum() == pytest.approx(0.005, rel=1e-5)


# ---------------------------------------------------------------------------- what it does


def test_a_briefly_trained_paed_beats_the_identity_on_held_out_clusters(trained, pairs):
    noisy, clean = pairs["test"]
    identity = denoising.pixel_error(noisy, clean)
    denoised = denoising.pixel_error(trained.denoise(noisy), clean)
    # Measured 0.71–0.74 of the identity over seeds 0–4. Pixels with less energy in
    # the noisy image (about 45 % of the identity's error: cells under pile-up's
    # higher clustering thresholds, shared cells) are out of reach of a subtraction.
    assert denoised < 0.85 * identity, (denoised, identity)
    assert list(trained.history["epoch"]) == list(range(1, BRIEF["epochs"] + 1))
    assert trained.history["loss"].iloc[-1] < trained.history["loss"].iloc[0]


def test_an_untrained_paed_is_close_to_the_identity(keras, pairs):
    """The residual start: every pixel t loses about softplus(−4) ≈ 0.018 (or down to 0)."""
    config = PaedConfig()
    paed = Paed(denoising.build_paed(config), config)
    noisy, _ = pairs["test"]
    noisy = noisy[:37]  # not a whole batch: padded, then cut off
    before, after = denoising.to_pixels(noisy), paed.pixels(noisy, batch_size=16)
    removed = math.log1p(math.exp(denoising.SUBTRACTION_BIAS))
    for layer in config.layers:
        assert after[layer].shape == before[layer].shape
        np.testing.assert_allclose(
            after[layer], np.maximum(before[layer] - removed, 0), atol=0.1 * removed
        )
    assert 0.97 < em_energy(paed.denoise(noisy)) / em_energy(noisy) < 1


def test_denoised_clusters_keep_scalars_and_other_layers_and_feed_a_classifier(trained, pairs):
    noisy, _ = pairs["test"]
    denoised = trained.denoise(noisy)
    assert len(denoised) == len(noisy)
    assert denoised.scalars.equals(noisy.scalars)
    assert denoised.images.keys() == noisy.images.keys()
    for layer, image in noisy.images.items():
        assert denoised.images[layer].dtype == np.float32
        assert denoised.images[layer].shape == image.shape
        if layer in models.EM_LAYERS:
            assert (denoised.images[layer] >= 0).all()
            # Pile-up is only ever removed: no pixel gains energy.
            assert (denoised.images[layer] <= image * (1 + 1e-5) + 1e-9).all()
        else:
            assert np.array_equal(denoised.images[layer], image)
    prep = models.spec("dense_emb2").preprocessing("classify").fit(noisy)
    network = models.build("dense_emb2", "classify", prep, units=(4,))
    classifier = models.KerasModel(network, prep, name="dense_emb2", task="classify")
    p_pipm = classifier.predict(denoised)
    assert p_pipm.shape == (len(noisy),)
    assert np.isfinite(p_pipm).all()


def test_latent_vectors_have_the_configured_size_per_layer_or_joint(keras, trained, pairs):
    noisy, clean = pairs["test"]
    assert trained.latent(noisy).shape == (len(noisy), 3 * BRIEF["latent"])
    # Two layers, one of them EMB1 with its anisotropic pooling: one latent vector for both.
    config = PaedConfig(
        layers=("EMB1", "EMB2"), joint=True, filters=(4,), latent=6, epochs=1, batch_size=64
    )
    joint = denoising.train_paed(*pairs["train"], config)
    latent = joint.latent(noisy)
    assert latent.shape == (len(noisy), config.latent_size) == (len(noisy), 6)
    assert latent.dtype == np.float32
    assert len(joint.history) == 1
    assert [layer.name for layer in joint.network.layers if layer.name.startswith("latent")] == [
        "latent"
    ]
    denoised = joint.denoise(noisy)
    assert np.array_equal(denoised.images["EMB3"], noisy.images["EMB3"])  # not its layer
    assert np.isfinite(denoising.pixel_error(denoised, clean, config.layers))


# ---------------------------------------------------------------------------- the folder


def test_a_saved_paed_loads_and_gives_identical_outputs(trained, pairs, tmp_path):
    noisy, _ = pairs["test"]
    folder = trained.save(tmp_path / "paed")
    assert artifacts.read_manifest(folder)["kind"] == denoising.KIND
    loaded = Paed.load(folder)
    assert loaded.config == trained.config
    assert loaded.folder == folder
    expected, found = trained.pixels(noisy), loaded.pixels(noisy)
    for layer in trained.config.layers:
        np.testing.assert_array_equal(found[layer], expected[layer])
    np.testing.assert_array_equal(loaded.latent(noisy), trained.latent(noisy))
    np.testing.assert_allclose(loaded.history.to_numpy(), trained.history.to_numpy())
    assert loaded.save(folder) == folder  # a PAED folder is replaced, whole


def test_folders_that_are_no_paed_are_refused_by_name(trained, tmp_path):
    with pytest.raises(ArtifactError, match="nowhere: no such model folder"):
        Paed.load(tmp_path / "nowhere")
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine\n")
    with pytest.raises(ArtifactError, match="has no model.json"):
        Paed.load(other)
    with pytest.raises(OutputPathError, match="other exists and is not a PAED folder"):
        trained.save(other)
    assert (other / "notes.txt").read_text() == "mine\n"  # left alone

    folder = trained.save(tmp_path / "paed")
    network = folder / "network.keras"
    network.write_bytes(network.read_bytes()[:1000])  # truncated
    assert not zipfile.is_zipfile(network)
    with pytest.raises(ArtifactError, match="network.keras: damaged Keras model file"):
        Paed.load(folder)

    folder = trained.save(tmp_path / "paed")
    config = folder / "config.json"
    artifacts.write_json(config, {**artifacts.read_json(config), "depth": 3})
    with pytest.raises(
        ArtifactError, match=r"config.json: PaedConfig has no field\(s\) \['depth'\]"
    ):
        Paed.load(folder)
    artifacts.write_json(config, {**trained.config.to_dict(), "latent": -1})
    with pytest.raises(ArtifactError, match="config.json: PaedConfig.latent must be"):
        Paed.load(folder)

    artifacts.write_manifest(tmp_path / "bdt", "bdt", estimator="model.txt")
    with pytest.raises(ArtifactError, match="a 'bdt' model folder, not a PAED"):
        Paed.load(tmp_path / "bdt")


# ---------------------------------------------------------------------------- bad input


def test_unpaired_or_incomplete_inputs_are_refused_by_name(pairs):
    noisy, clean = pairs["train"]
    with pytest.raises(DataError, match=r"\d+ noisy and \d+ clean clusters; rows must be partners"):
        denoising.train_paed(noisy, clean[:-1])
    with pytest.raises(DataError, match="pair different events, first row 0"):
        denoising.train_paed(noisy[::-1], clean)
    without_emb3 = Clusters(noisy.scalars, {k: v for k, v in noisy.images.items() if k != "EMB3"})
    with pytest.raises(PreprocessingError, match="noisy clusters have no image branch 'EMB3'"):
        denoising.train_paed(without_emb3, clean)
    with pytest.raises(DataError, match="validation pairs: .* rows must be partners"):
        denoising.train_paed(noisy, clean, validation=(noisy[:3], clean[:2]))
    with pytest.raises(PreprocessingError, match="have no branch 'cluster_E'"):
        denoising.to_pixels(Clusters(noisy.scalars.drop(columns="cluster_E"), noisy.images))
    with pytest.raises(DataError, match="partners row by row; got"):
        denoising.pixel_error(noisy, clean[:-1])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"layers": ("EMB2", "EMB4")}, r"PaedConfig.layers: unknown layer\(s\) 'EMB4'"),
        ({"layers": ()}, "PaedConfig.layers must be one or more distinct"),
        ({"layers": "EMB2"}, "PaedConfig.layers must be a sequence"),
        ({"filters": ()}, "PaedConfig.filters must be one or more positive integers"),
        ({"filters": (16, 0)}, "PaedConfig.filters must be one or more positive integers"),
        ({"latent": 0}, "PaedConfig.latent must be an integer of at least 1"),
        ({"epochs": 2.5}, "PaedConfig.epochs must be an integer"),
        ({"batch_size": True}, "PaedConfig.batch_size must be an integer"),
        ({"learning_rate": float("nan")}, "PaedConfig.learning_rate must be a finite number"),
        ({"joint": "yes"}, "PaedConfig.joint must be True or False"),
        ({"seed": -1}, "PaedConfig.seed must be an integer of at least 0"),
    ],
)
def test_a_bad_configuration_is_refused_naming_the_field(fields, message):
    with pytest.raises(InvalidValueError, match=message):
        PaedConfig(**fields)


def test_a_configuration_round_trips_through_json():
    config = PaedConfig(layers=["EMB2"], joint=True, filters=[8], latent=5)
    assert config.layers == ("EMB2",)
    assert config.filters == (8,)
    assert PaedConfig.from_dict(config.to_dict()) == config
