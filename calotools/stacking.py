"""Stacking: one combined P(π±) from the scores of several classifiers.

A network on the cell images and the BDT on the cluster moments see the same
clusters through different summaries, so their mistakes are partly
independent. `Stack` combines them the simplest way that is calibrated: a
logistic regression on the members' log-odds,

    logit P(π±) = b + Σ_i w_i · logit p_i,

fitted on clusters that none of the members trained on (the validation split,
`calotools.study.stacked`), and judged on the test split like any member.
With one member it is Platt scaling of that member. The fit is a handful of
numbers, saved as JSON (`to_dict`), never as a pickle.

Examples
--------
>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> labels = rng.integers(0, 2, 2000)
>>> a = np.clip(0.5 + (labels - 0.5) * 0.6 + rng.normal(0, 0.2, 2000), 0.01, 0.99)
>>> b = np.clip(0.5 + (labels - 0.5) * 0.6 + rng.normal(0, 0.2, 2000), 0.01, 0.99)
>>> stack = Stack.fit({"net": a, "bdt": b}, labels)
>>> stack.members
('net', 'bdt')
>>> combined = stack.predict({"net": a, "bdt": b})
>>> bool(((combined > 0.5) == labels).mean() > ((a > 0.5) == labels).mean())
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from calotools.errors import InvalidValueError

__all__ = ["PROBABILITY_FLOOR", "Stack", "logit"]

#: Scores are clipped to [floor, 1 − floor] before the log-odds: a BDT or a
#: saturated sigmoid gives exactly 0 or 1 (float32 has ~1e-7 resolution at 1).
PROBABILITY_FLOOR = 1e-6


def logit(p: Any) -> np.ndarray:
    """log(p / (1 − p)), with ``p`` clipped to `PROBABILITY_FLOOR` from 0 and 1."""
    p = np.clip(np.asarray(p, dtype=np.float64), PROBABILITY_FLOOR, 1.0 - PROBABILITY_FLOOR)
    return np.log(p) - np.log1p(-p)


def _matrix(scores: Mapping[str, Any], members: tuple[str, ...]) -> np.ndarray:
    missing = [name for name in members if name not in scores]
    if missing:
        msg = f"the stack needs the scores of {missing}; got {sorted(scores)}"
        raise InvalidValueError(msg)
    columns = [np.asarray(scores[name], dtype=np.float64) for name in members]
    lengths = {name: len(c) for name, c in zip(members, columns, strict=True)}
    if len(set(lengths.values())) != 1:
        msg = f"the members' scores have different lengths: {lengths}"
        raise InvalidValueError(msg)
    for name, column in zip(members, columns, strict=True):
        bad = ~np.isfinite(column) | (column < 0) | (column > 1)
        if bad.any():
            msg = (
                f"the scores of {name!r} must be probabilities in [0, 1]; "
                f"{int(bad.sum())} are not (first: {column[bad][0]!r})"
            )
            raise InvalidValueError(msg)
    return np.stack([logit(c) for c in columns], axis=1)


@dataclass(frozen=True)
class Stack:
    """A fitted combination of classifiers' P(π±) (see the module docstring).

    Attributes
    ----------
    members
        Names of the combined scores, in the order of ``weights``.
    weights, bias
        The logistic regression on the members' log-odds.
    """

    members: tuple[str, ...]
    weights: tuple[float, ...]
    bias: float

    @classmethod
    def fit(
        cls,
        scores: Mapping[str, Any],
        labels: Any,
        *,
        sample_weight: Any = None,
    ) -> Stack:
        """Fit on held-out clusters: ``scores`` name → P(π±), ``labels`` π0 = 0, π± = 1."""
        from sklearn.linear_model import LogisticRegression

        members = tuple(scores)
        if not members:
            raise InvalidValueError("scores is empty; give the P(π±) of at least one classifier")
        features = _matrix(scores, members)
        labels = np.asarray(labels)
        if len(labels) != len(features) or not np.isin(labels, (0, 1)).all():
            msg = f"labels must be {len(features)} values of 0 (π0) or 1 (π±)"
            raise InvalidValueError(msg)
        if len(np.unique(labels)) < 2:
            raise InvalidValueError("stacking needs clusters of both classes")
        # Almost no regularisation: a few weights from thousands of clusters.
        regression = LogisticRegression(C=1e6, max_iter=1000)
        regression.fit(features, labels, sample_weight=sample_weight)
        return cls(
            members,
            tuple(float(w) for w in regression.coef_[0]),
            float(regression.intercept_[0]),
        )

    def predict(self, scores: Mapping[str, Any]) -> np.ndarray:
        """The combined P(π±) for the members' scores."""
        z = _matrix(scores, self.members) @ np.asarray(self.weights) + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def to_dict(self) -> dict[str, Any]:
        """Plain values, for JSON."""
        return {"members": list(self.members), "weights": list(self.weights), "bias": self.bias}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> Stack:
        """The inverse of `to_dict`; refuses a malformed mapping with what it expected."""
        try:
            members = tuple(str(m) for m in values["members"])
            weights = tuple(float(w) for w in values["weights"])
            bias = float(values["bias"])
        except (KeyError, TypeError, ValueError) as err:
            msg = f"a stack needs 'members', 'weights' and 'bias' (numbers); {err}"
            raise InvalidValueError(msg) from None
        if len(members) != len(weights):
            msg = f"{len(members)} members but {len(weights)} weights"
            raise InvalidValueError(msg)
        return cls(members, weights, bias)
