"""Stacking classifiers: a calibrated combination that beats its members when they disagree."""

from __future__ import annotations

import json

import numpy as np
import pytest

from calotools import metrics
from calotools.errors import InvalidValueError
from calotools.stacking import Stack, logit


def two_noisy_views(n: int, seed: int):
    """Labels and two scores whose errors are independent: each alone is worse than both."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, n)
    views = {}
    for name, noise in (("images", 1.2), ("moments", 1.5)):
        z = 2.0 * (labels - 0.5) + rng.normal(0, noise, n)
        views[name] = 1.0 / (1.0 + np.exp(-z))
    return labels, views


def test_the_stack_beats_each_member_on_new_clusters():
    labels, scores = two_noisy_views(4000, seed=1)
    stack = Stack.fit(scores, labels)
    test_labels, test_scores = two_noisy_views(4000, seed=2)
    combined = stack.predict(test_scores)
    auc = metrics.auc(test_labels, combined)
    for name, score in test_scores.items():
        assert auc > metrics.auc(test_labels, score) + 0.01, name
    # Logistic on log-odds: both members weigh in, the less noisy one more.
    assert stack.weights[0] > stack.weights[1] > 0


def test_one_member_is_platt_scaling_and_keeps_the_order():
    labels, scores = two_noisy_views(2000, seed=3)
    squeezed = {"images": 0.5 + 0.1 * (scores["images"] - 0.5)}  # overconfident the other way
    stack = Stack.fit(squeezed, labels)
    combined = stack.predict(squeezed)
    assert np.all(np.diff(combined[np.argsort(squeezed["images"])]) >= -1e-12)
    # Calibrated: the mean P(π±) is the π± fraction.
    assert combined.mean() == pytest.approx(labels.mean(), abs=0.01)


def test_scores_of_exactly_zero_and_one_are_usable():
    assert np.isfinite(logit([0.0, 1.0])).all()
    labels = np.array([0, 0, 1, 1] * 50)
    stack = Stack.fit({"bdt": labels.astype(float)}, labels)
    assert np.isfinite(stack.predict({"bdt": np.array([0.0, 1.0])})).all()


def test_it_round_trips_through_json():
    labels, scores = two_noisy_views(500, seed=4)
    stack = Stack.fit(scores, labels)
    again = Stack.from_dict(json.loads(json.dumps(stack.to_dict())))
    assert again == stack
    with pytest.raises(InvalidValueError, match="'members', 'weights' and 'bias'"):
        Stack.from_dict({"members": ["a"]})


def test_bad_scores_are_refused_by_name():
    labels, scores = two_noisy_views(100, seed=5)
    stack = Stack.fit(scores, labels)
    with pytest.raises(InvalidValueError, match=r"needs the scores of \['moments'\]"):
        stack.predict({"images": scores["images"]})
    with pytest.raises(InvalidValueError, match="'moments' must be probabilities"):
        stack.predict({**scores, "moments": scores["moments"] * 3})
    with pytest.raises(InvalidValueError, match="different lengths"):
        Stack.fit({"images": scores["images"], "moments": scores["moments"][:10]}, labels)
    with pytest.raises(InvalidValueError, match="both classes"):
        Stack.fit(scores, np.zeros(100, int))
