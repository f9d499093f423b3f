"""Adversarial decorrelation (Louppe, Kagan, Cranmer, arXiv:1611.01046) on a toy problem.

The toy: feature ``a`` carries the class; feature ``b`` carries the class too,
but is shifted by the nuisance Z (a pile-up condition), so a plain classifier
that uses ``b`` has a score that depends on Z within each class, and the only
way to a Z-independent score is to give ``b`` up.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from network_factory import limit_threads

from calotools import adversarial
from calotools.adversarial import PivotConfig, pivot_loss, train_pivot, z_dependence
from calotools.errors import InvalidValueError

pytest.importorskip("keras")

#: Small and fast: every training below takes a second or two.
FAST = PivotConfig(
    pretrain_epochs=1,
    adversary_pretrain_epochs=1,
    epochs=2,
    adversary_units=(8,),
    batch_size=128,
    learning_rate=3e-3,
    adversary_learning_rate=3e-3,
)


def toy(n: int, seed: int, *, continuous_z: bool = False):
    """(x, y, z): x = (a, b), a = y + N(0, 1), b = y + Z + N(0, 0.5).

    Z is 0 or 1 (low or high pile-up), or with ``continuous_z`` drawn from N(0, 1).
    """
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    z = rng.normal(size=n) if continuous_z else rng.integers(0, 2, n)
    a = y + rng.normal(size=n)
    b = y + z + 0.5 * rng.normal(size=n)
    return np.stack([a, b], axis=1).astype(np.float32), y, z


@pytest.fixture(scope="module")
def build_classifier(keras):
    limit_threads()

    def build():
        inputs = keras.Input((2,), name="features")
        hidden = keras.layers.Dense(8, activation="relu", name="hidden")(inputs)
        score = keras.layers.Dense(1, activation="sigmoid", name="score")(hidden)
        return keras.Model(inputs, score)

    return build


def fresh(keras, build_classifier, seed: int = 0):
    keras.utils.set_random_seed(seed)
    return build_classifier()


def copy_of(keras, model):
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    return twin


# ---------------------------------------------------------------------------- the loss


def test_pivot_loss_subtracts_lambda_times_the_adversary_loss(keras):
    assert pivot_loss(2.0, 0.5, 3.0) == 0.5
    clf = keras.ops.convert_to_tensor([2.0, 1.0])
    adv = keras.ops.convert_to_tensor([0.5, 0.25])
    np.testing.assert_allclose(np.asarray(pivot_loss(clf, adv, 3.0)), [0.5, 0.25])
    assert pivot_loss(2.0, 0.5, 0.0) == 2.0


# ---------------------------------------------------------------------------- the update


def test_lambda_zero_is_plain_keras_fit_with_the_same_batch_order(keras, build_classifier):
    # 1050 samples in batches of 128: every epoch ends with a short batch, as in fit.
    x, y, z = toy(1050, seed=1)
    config = dataclasses.replace(FAST, lam=0.0, adversary_steps=2)
    classifier = fresh(keras, build_classifier)
    reference = copy_of(keras, classifier)
    initial = classifier.get_weights()

    result = train_pivot(classifier, x, y, z, config)

    reference.compile(
        optimizer=keras.optimizers.Adam(config.learning_rate),
        loss=keras.losses.BinaryCrossentropy(),
    )
    orders = np.random.default_rng(config.seed)  # the documented batch order
    for _ in range(config.pretrain_epochs + config.epochs):
        order = orders.permutation(len(y))
        reference.fit(
            x[order], y[order], batch_size=config.batch_size, epochs=1, shuffle=False, verbose=0
        )
    assert len(result.history["adv_loss"]) == config.epochs  # the adversary did train
    for trained, expected in zip(classifier.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_allclose(trained, expected, rtol=0, atol=1e-6)
    assert not np.allclose(classifier.get_weights()[0], initial[0], atol=1e-3)  # it did train


def test_the_adversary_gradient_enters_the_classifier_step_with_weight_minus_lambda(
    keras, build_classifier
):
    import tensorflow as tf

    x, y, z = toy(64, seed=2)
    lam, learning_rate = 2.0, 0.1
    # One batch, one adversary step, then one plain gradient-descent step of the classifier.
    config = PivotConfig(
        lam=lam,
        pretrain_epochs=0,
        adversary_pretrain_epochs=0,
        epochs=1,
        adversary_units=(8,),
        batch_size=64,
        optimizer="sgd",
        learning_rate=learning_rate,
    )
    classifier = fresh(keras, build_classifier)
    before = copy_of(keras, classifier)
    result = train_pivot(classifier, x, y, z, config)
    # The classifier stepped against the adversary as the run left it (its step came first).
    adversary = result.adversary

    cross_entropy = keras.losses.BinaryCrossentropy()
    labels = y[:, None].astype(np.float32)
    with tf.GradientTape(persistent=True) as tape:
        score = before(x, training=True)
        clf_loss = cross_entropy(labels, score)
        p = tf.clip_by_value(score, 1e-7, 1 - 1e-7)  # the adversary reads the logit
        adversary_input = tf.concat([tf.math.log(p / (1 - p)), labels], axis=1)
        adv_loss = cross_entropy(z[:, None].astype(np.float32), adversary(adversary_input))
    variables = before.trainable_variables
    step_clf = [-learning_rate * g.numpy() for g in tape.gradient(clf_loss, variables)]
    step_adv = [-learning_rate * g.numpy() for g in tape.gradient(adv_loss, variables)]

    steps = [
        after - start
        for after, start in zip(classifier.get_weights(), before.get_weights(), strict=True)
    ]
    for step, d_clf, d_adv in zip(steps, step_clf, step_adv, strict=True):
        np.testing.assert_allclose(step, d_clf - lam * d_adv, rtol=1e-4, atol=1e-6)
    # The adversary's share is far above the tolerance, so its sign and weight are tested.
    assert max(np.abs(lam * d).max() for d in step_adv) > 1e-3


# ---------------------------------------------------------------------------- the physics


def test_a_large_lambda_trades_auc_for_a_score_independent_of_z(keras, build_classifier):
    x, y, z = toy(3000, seed=3)
    x_test, y_test, z_test = toy(3000, seed=4)
    config = dataclasses.replace(
        FAST, pretrain_epochs=3, adversary_pretrain_epochs=2, epochs=6, adversary_units=(16,)
    )
    scan = adversarial.lambda_scan(
        build_classifier, x, y, z, [0.0, 10.0], config, x_test=x_test, y_test=y_test, z_test=z_test
    )
    plain, pivot = scan.iloc[0], scan.iloc[1]
    assert list(scan["lam"]) == [0.0, 10.0]
    # Plain: b is used, so the score shifts with Z in each class (JSD ≈ 0.26 bit);
    # λ = 10: a alone is left (JSD ≈ 0.03, about the histograms' own fluctuation;
    # 0.015–0.033 with other seeds and toy samples, against 0.23–0.27 for plain).
    assert plain["z_dependence"] > 0.15
    assert pivot["z_dependence"] < plain["z_dependence"] / 3
    # Robustness costs accuracy: AUC ≈ 0.88 with b, 0.75–0.80 after giving it up.
    assert pivot["auc"] <= plain["auc"] - 0.05
    # The adversary is left guessing: its cross-entropy near ln 2.
    assert pivot["adv_loss"] > plain["adv_loss"]
    assert pivot["adv_loss"] == pytest.approx(np.log(2), abs=0.03)


def test_the_gaussian_adversary_learns_a_continuous_z(keras, build_classifier):
    x, y, z = toy(3000, seed=5, continuous_z=True)
    config = dataclasses.replace(
        FAST,
        adversary="gaussian",
        n_components=3,
        adversary_units=(16,),
        pretrain_epochs=3,
        adversary_pretrain_epochs=5,
        lam=1.0,
    )
    weights = np.random.default_rng(0).uniform(0.5, 1.5, len(z))
    result = train_pivot(fresh(keras, build_classifier), x, y, z, config, sample_weight=weights)
    nll = result.history["pretrain_adv_loss"]
    assert len(nll) == 5
    assert nll[-1] < nll[0]
    # It learns from the score what Z was: the NLL of one Gaussian fit to Z is 1.43,
    # the adversary ends near 1.26, what a straight line in the logit allows.
    marginal_nll = 0.5 * np.log(2 * np.pi * np.e * z.var())
    assert nll[-1] < marginal_nll - 0.08
    mixture = result.adversary(np.array([[0.3, 0.0], [0.8, 1.0]], dtype=np.float32))
    assert sorted(mixture) == ["log_sigmas", "means", "weights"]
    assert all(mixture[name].shape == (2, 3) for name in mixture)
    np.testing.assert_allclose(np.asarray(mixture["weights"]).sum(axis=1), 1.0, rtol=1e-6)
    assert all(np.isfinite(result.history[key]).all() for key in ("clf_loss", "adv_loss"))


# ---------------------------------------------------------------------------- bookkeeping


def test_the_same_seed_gives_the_same_weights(keras, build_classifier):
    x, y, z = toy(600, seed=6)
    runs = [train_pivot(fresh(keras, build_classifier), x, y, z, FAST) for _ in range(2)]
    untrained = dataclasses.replace(
        FAST, seed=1, pretrain_epochs=0, adversary_pretrain_epochs=0, epochs=0
    )
    other = train_pivot(fresh(keras, build_classifier), x, y, z, untrained)
    for part in ("classifier", "adversary"):
        first, second = (getattr(run, part).get_weights() for run in runs)
        for a, b in zip(first, second, strict=True):
            np.testing.assert_array_equal(a, b)
    assert runs[0].history == runs[1].history
    assert not np.array_equal(runs[0].adversary.get_weights()[0], other.adversary.get_weights()[0])


def test_history_and_evaluated_losses_follow_the_run(keras, build_classifier):
    x, y, z = toy(600, seed=7)
    x_val, y_val, z_val = toy(300, seed=8)
    # Unconditioned: the adversary sees the score alone.
    config = dataclasses.replace(FAST, lam=0.5, epochs=3, condition_on_class=False)
    result = train_pivot(
        fresh(keras, build_classifier), x, y, z, config, validation=(x_val, y_val, z_val)
    )
    assert result.adversary.input_shape == (None, 1)
    for key in ("clf_loss", "adv_loss", "total_loss", "val_clf_loss", "val_adv_loss"):
        assert len(result.history[key]) == 3
    assert len(result.history["pretrain_clf_loss"]) == 1
    losses = adversarial.evaluate_losses(result, x_val, y_val, z_val)
    assert losses["clf_loss"] == pytest.approx(result.history["val_clf_loss"][-1], rel=1e-5)
    assert losses["adv_loss"] == pytest.approx(result.history["val_adv_loss"][-1], rel=1e-5)
    assert losses["total"] == pytest.approx(losses["clf_loss"] - 0.5 * losses["adv_loss"])
    assert result.config is config


def test_z_dependence_is_zero_for_equal_and_one_for_disjoint_distributions():
    score = np.array([0.1, 0.3, 0.6, 0.9])
    assert z_dependence(np.tile(score, 2), [0] * 4 + [1] * 4) == 0.0
    assert z_dependence(score, [0, 0, 1, 1], bins=2) == 1.0
    # Within each class: the classes differ (as they should), Z does not.
    y = np.array([0, 0, 1, 1, 0, 0, 1, 1])
    assert z_dependence(np.tile(score, 2), [0] * 4 + [1] * 4, y=y) == 0.0
    # Three groups: the mean over the two compared with the lowest.
    assert z_dependence([0.1, 0.1, 0.9, 0.1], [0, 1, 2, 2], bins=2) == pytest.approx(
        (0.0 + 0.311278) / 2, abs=1e-6
    )


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"lam": -1.0}, "lam"),
        ({"lam": float("nan")}, "lam"),
        ({"adversary": "poisson"}, "adversary"),
        ({"batch_size": 0}, "batch_size"),
        ({"epochs": 2.5}, "epochs"),
        ({"n_components": True}, "n_components"),
        ({"adversary_units": (8, 0)}, "adversary_units"),
        ({"learning_rate": 0.0}, "learning_rate"),
    ],
)
def test_a_bad_config_value_is_refused_by_name(changes, field):
    with pytest.raises(InvalidValueError, match=rf"PivotConfig\.{field}\b"):
        PivotConfig(**changes)


def test_bad_training_data_is_refused_by_name(keras, build_classifier):
    x, y, z = toy(100, seed=9)
    classifier = fresh(keras, build_classifier)
    with pytest.raises(InvalidValueError, match="x has 100 samples but z has 99"):
        train_pivot(classifier, x, y, z[:99], FAST)
    with pytest.raises(InvalidValueError, match="x has 100 samples but y has 101"):
        train_pivot(classifier, x, np.r_[y, 0], z, FAST)
    with pytest.raises(InvalidValueError, match="binary adversary's Z.*gaussian"):
        train_pivot(classifier, x, y, z + 0.5, FAST)
    with pytest.raises(InvalidValueError, match="y .*0 and 1 only"):
        train_pivot(classifier, x, y + 1, z, FAST)


def test_z_dependence_refuses_bad_input_by_name():
    with pytest.raises(InvalidValueError, match="score has 3 samples but z_groups has 2"):
        z_dependence([0.1, 0.2, 0.3], [0, 1])
    with pytest.raises(InvalidValueError, match="at least 2 groups.*found 1"):
        z_dependence([0.1, 0.2, 0.3], [0, 0, 0])
    with pytest.raises(InvalidValueError, match="at least 2 groups in class 1"):
        z_dependence([0.1, 0.2, 0.3, 0.4], [0, 1, 0, 0], y=[0, 0, 1, 1])
