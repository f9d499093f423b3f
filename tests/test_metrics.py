"""Classification and calibration metrics against values worked out by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from calotools import metrics

# Φ⁻¹(0.84): the 84 % quantile of a unit normal (q16 is its negative).
Z84 = 0.9944578832097535


# ---------------------------------------------------------------------------- ROC and AUC


def test_perfect_classifier_has_auc_one_and_unbounded_rejection():
    """Every π± scores above every π0: AUC 1, no π0 passes at any efficiency."""
    y_true = np.array([0] * 50 + [1] * 50)
    score = np.r_[np.linspace(0, 0.4, 50), np.linspace(0.6, 1, 50)]
    assert metrics.auc(y_true, score) == 1.0
    fpr, tpr, _ = metrics.roc_curve(y_true, score)
    assert fpr[tpr < 1].max() == 0.0
    assert np.isinf(metrics.rejection_at(y_true, score, [0.5, 0.9, 1.0])).all()


def test_classifier_ignoring_its_input_has_auc_one_half():
    """A score independent of the class gives AUC 0.5 within 5 standard deviations.

    Under the null hypothesis σ(AUC) = sqrt((n0 + n1 + 1) / (12 n0 n1)) (the
    Mann–Whitney variance), 0.0041 here.
    """
    rng = np.random.default_rng(11)
    y_true = rng.integers(0, 2, 20_000)
    n_pos = y_true.sum()
    n_neg = len(y_true) - n_pos
    sigma = np.sqrt((n_pos + n_neg + 1) / (12 * n_pos * n_neg))
    assert metrics.auc(y_true, rng.random(len(y_true))) == pytest.approx(0.5, abs=5 * sigma)


def test_roc_and_auc_with_ties_match_the_hand_computation():
    """π0 scores 0.1, 0.5, 0.9 and π± scores 0.5, 0.9, 0.3, worked out on paper.

    Pairs (π±, π0) won / tied: 0.5 beats 0.1 and ties 0.5 (1.5); 0.9 beats two
    and ties one (2.5); 0.3 beats one (1): AUC = 5 / 9. Tied clusters are
    called together, so the ROC steps diagonally through each tie.
    """
    y_true = [0, 0, 0, 1, 1, 1]
    score = [0.1, 0.5, 0.9, 0.5, 0.9, 0.3]
    fpr, tpr, thresholds = metrics.roc_curve(y_true, score)
    np.testing.assert_allclose(fpr, [0, 1 / 3, 2 / 3, 2 / 3, 1])
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 1, 1])
    assert thresholds.tolist() == [np.inf, 0.9, 0.5, 0.3, 0.1]
    assert metrics.auc(y_true, score) == pytest.approx(5 / 9)


def test_auc_equals_pair_counting_and_the_trapezoid_under_the_roc():
    """With many ties, AUC = P(π± > π0) + P(tie) / 2 = trapezoidal area of the ROC."""
    rng = np.random.default_rng(3)
    y_true = rng.integers(0, 2, 400)
    score = np.round(rng.random(400) + 0.3 * y_true, 1)  # ~14 distinct values
    pos, neg = score[y_true == 1], score[y_true == 0]
    wins = (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
    fpr, tpr, _ = metrics.roc_curve(y_true, score)
    trapezoid = np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2)
    assert metrics.auc(y_true, score) == pytest.approx(wins, rel=1e-12)
    assert trapezoid == pytest.approx(wins, rel=1e-12)


def test_roc_keeps_tied_infinite_scores_together():
    """Scores of ±inf (e.g. saturated logits) are ties like any other."""
    fpr, tpr, thresholds = metrics.roc_curve([0, 1, 1, 0], [np.inf, np.inf, -np.inf, 0.0])
    assert thresholds.tolist() == [np.inf, np.inf, 0.0, -np.inf]
    np.testing.assert_allclose(fpr, [0, 0.5, 1, 1])
    np.testing.assert_allclose(tpr, [0, 0.5, 0.5, 1])


def test_rejection_interpolates_along_the_roc_curve():
    """ROC points (FPR, TPR): (0, 0), (0, ½), (½, ½), (½, 1), (1, 1).

    Up to 50 % efficiency no π0 passes (inf); beyond, the curve is vertical at
    FPR = ½ (rejection 2). A point on a flat stretch takes its lowest FPR.
    """
    y_true = [1, 0, 1, 0]
    score = [0.9, 0.8, 0.7, 0.6]
    rejection = metrics.rejection_at(y_true, score, [0.0, 0.25, 0.5, 0.75, 1.0])
    assert rejection.tolist() == [np.inf, np.inf, np.inf, 2.0, 2.0]
    # Between (⅓, ⅓) and (⅔, ⅔) of the tie example the FPR is interpolated linearly.
    y_ties = [0, 0, 0, 1, 1, 1]
    score_ties = [0.1, 0.5, 0.9, 0.5, 0.9, 0.3]
    assert metrics.rejection_at(y_ties, score_ties, 0.5) == pytest.approx(2.0)
    assert isinstance(metrics.rejection_at(y_ties, score_ties, 0.5), float)


# ---------------------------------------------------------------------------- cutoff p

# Six clusters worked out by hand: three π0 and three π±, with P(π0).
SIX_LABELS = [0, 0, 0, 1, 1, 1]
SIX_P_PI0 = [0.9, 0.6, 0.3, 0.7, 0.2, 0.1]


def test_cutoff_scan_on_six_clusters_matches_the_hand_count():
    """Called π0 when P(π0) > p, strictly: at p = 0.3 the π0 with 0.3 is called π±."""
    scan = metrics.cutoff_scan(SIX_LABELS, SIX_P_PI0, cutoffs=[0.25, 0.3, 0.5, 0.8, 1.0])
    expected = pd.DataFrame(
        {
            "cutoff": [0.25, 0.3, 0.5, 0.8, 1.0],
            # called π0: {0.9, 0.6, 0.3, 0.7}, {0.9, 0.6, 0.7} twice, {0.9}, {}
            "accuracy": [5 / 6, 4 / 6, 4 / 6, 4 / 6, 3 / 6],
            "pi0_efficiency": [1, 2 / 3, 2 / 3, 1 / 3, 0],
            "pipm_efficiency": [2 / 3, 2 / 3, 2 / 3, 1, 1],
            "pi0_purity": [3 / 4, 2 / 3, 2 / 3, 1, np.nan],
            "pipm_purity": [1, 2 / 3, 2 / 3, 3 / 5, 1 / 2],
            "n_pi0": [4, 3, 3, 1, 0],
            "n_pipm": [2, 3, 3, 5, 6],
        }
    )
    pd.testing.assert_frame_equal(scan, expected, check_dtype=False)
    assert scan.attrs == {"n_true_pi0": 3, "n_true_pipm": 3}


def test_cutoff_scan_defaults_to_a_hundred_steps_in_p():
    scan = metrics.cutoff_scan(SIX_LABELS, SIX_P_PI0)
    assert len(scan) == 101
    assert scan["cutoff"].iloc[[0, 30, -1]].tolist() == pytest.approx([0.0, 0.3, 1.0])


def test_best_cutoff_maximises_accuracy_or_balances_efficiencies():
    scan = metrics.cutoff_scan(SIX_LABELS, SIX_P_PI0, cutoffs=[0.25, 0.5, 0.8])
    assert metrics.best_cutoff(scan) == 0.25
    assert metrics.best_cutoff(scan, "balanced") == 0.5  # both efficiencies 2/3
    with pytest.raises(ValueError, match="'accuracy' or 'balanced'"):
        metrics.best_cutoff(scan, "purity")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lacks the column"):
        metrics.best_cutoff(scan.drop(columns="accuracy"))


def test_confusion_matrix_counts_and_normalisations():
    """At p = 0.25: π0 → (3 called π0, 0 called π±); π± → (1, 2)."""
    counts = metrics.confusion_matrix(SIX_LABELS, SIX_P_PI0, cutoff=0.25)
    assert counts.index.tolist() == ["π0", "π±"]
    assert counts.columns.tolist() == ["π0", "π±"]
    assert (counts.index.name, counts.columns.name) == ("true", "predicted")
    assert counts.to_numpy().tolist() == [[3, 0], [1, 2]]
    by_true = metrics.confusion_matrix(SIX_LABELS, SIX_P_PI0, cutoff=0.25, normalize="true")
    np.testing.assert_allclose(by_true.to_numpy(), [[1, 0], [1 / 3, 2 / 3]])
    by_pred = metrics.confusion_matrix(SIX_LABELS, SIX_P_PI0, cutoff=0.25, normalize="pred")
    np.testing.assert_allclose(by_pred.to_numpy(), [[3 / 4, 0], [1 / 4, 1]])
    # Nobody is called π0 above every probability: that column has no purity.
    nobody = metrics.confusion_matrix(SIX_LABELS, SIX_P_PI0, cutoff=1.0, normalize="pred")
    assert np.isnan(nobody["π0"]).all()


def test_confusion_matrix_agrees_with_the_cutoff_scan():
    rng = np.random.default_rng(5)
    y_true = rng.integers(0, 2, 1000)
    p_pi0 = np.clip(rng.normal(0.65 - 0.3 * y_true, 0.2), 0, 1)
    row = metrics.cutoff_scan(y_true, p_pi0, cutoffs=[0.3]).iloc[0]
    by_true = metrics.confusion_matrix(y_true, p_pi0, cutoff=0.3, normalize="true")
    assert by_true.loc["π0", "π0"] == pytest.approx(row["pi0_efficiency"])
    assert by_true.loc["π±", "π±"] == pytest.approx(row["pipm_efficiency"])
    by_pred = metrics.confusion_matrix(y_true, p_pi0, cutoff=0.3, normalize="pred")
    assert by_pred.loc["π0", "π0"] == pytest.approx(row["pi0_purity"])


# ---------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: metrics.auc([0, 1, 1], [0.1, 0.2]), "y_true has 3 clusters but score has 2"),
        (lambda: metrics.auc([0, 1, 2], [0.1, 0.2, 0.3]), r"labels 0 \(π0\) and 1 \(π±\) only"),
        (lambda: metrics.auc([1, 1, 1], [0.1, 0.2, 0.3]), "only π± clusters"),
        (lambda: metrics.auc([], []), "no clusters"),
        (
            lambda: metrics.roc_curve([0, 1, 0, 1], [0.1, np.nan, np.nan, 0.3]),
            "score has 2 NaN value",
        ),
        (lambda: metrics.auc([0, 1, np.nan], [0.1, 0.2, 0.3]), "y_true has 1 NaN value"),
        (
            lambda: metrics.cutoff_scan([0, 1], [0.2, 1.2]),
            r"p_pi0 must be probabilities in \[0, 1\]",
        ),
        (lambda: metrics.cutoff_scan([0, 1], [0.2, 0.8], cutoffs=[0.5, 2]), "cutoffs must lie"),
        (lambda: metrics.rejection_at([0, 1], [0.2, 0.8], [1.5]), "efficiencies must lie"),
        (lambda: metrics.confusion_matrix([0, 1], [0.2, 0.8], normalize="all"), "normalize"),
        (lambda: metrics.auc([[0, 1]], [[0.1, 0.2]]), r"1-D\), got shape \(1, 2\)"),
        (lambda: metrics.binned_response([1.0, 2.0], [1.0]), "e_true has 2 clusters but e_pred"),
        (lambda: metrics.binned_response([1.0, 0.0], [1.0, 1.0]), "e_true must be positive"),
        (
            lambda: metrics.binned_response([1.0, 2.0], [np.nan, 1.0]),
            "e_pred has 1 NaN value",
        ),
        (lambda: metrics.binned_response([1.0], [1.0], edges=[2, 1]), "strictly increasing"),
    ],
)
def test_bad_inputs_are_reported_in_the_users_terms(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---------------------------------------------------------------------------- response


def test_binned_response_of_five_clusters_matches_the_hand_computation():
    """Responses 0.8, 0.9, 1.0, 1.1, 1.5 in one bin (NumPy's linear quantiles).

    q16 sits at position 4 × 0.16 = 0.64: 0.8 + 0.64 × 0.1 = 0.864; q84 at
    3.36: 1.1 + 0.36 × 0.4 = 1.244; resolution (1.244 − 0.864) / 2 = 0.19.
    The second bin is empty: NaN, and flagged.
    """
    e_true = [1.5] * 5
    e_pred = [1.2, 1.35, 1.5, 1.65, 2.25]
    table = metrics.binned_response(e_true, e_pred, edges=[1, 2, 4])
    first, empty = table.iloc[0], table.iloc[1]
    assert (first["low"], first["high"], first["count"]) == (1, 2, 5)
    assert first["center"] == pytest.approx(np.sqrt(2))
    assert first["median"] == pytest.approx(1.0)
    assert first["q16"] == pytest.approx(0.864)
    assert first["q84"] == pytest.approx(1.244)
    assert first["resolution"] == pytest.approx(0.19)
    assert first["median_err"] > 0
    assert first["resolution_err"] > 0
    assert bool(first["too_few"])  # 5 < 20: marked, values still given
    assert empty["count"] == 0
    assert bool(empty["too_few"])
    assert empty[["median", "median_err", "q16", "q84", "resolution"]].isna().all()


def test_binned_response_marks_sparse_and_empty_bins_without_hiding_them():
    rng = np.random.default_rng(2)
    e_true = np.r_[rng.uniform(1, 2, 30), rng.uniform(2, 3, 5)]  # 30, 5 and 0 clusters
    table = metrics.binned_response(e_true, e_true, edges=[1, 2, 3, 4], min_count=10)
    assert table["count"].tolist() == [30, 5, 0]
    assert table["too_few"].tolist() == [False, True, True]
    assert table["median"].iloc[:2].tolist() == pytest.approx([1.0, 1.0])
    assert np.isnan(table["median"].iloc[2])


def test_bins_are_half_open_and_clusters_outside_are_left_out():
    table = metrics.binned_response([0.5, 1.0, 2.0, 3.0, 3.5], [1.0] * 5, edges=[1, 2, 3])
    assert table["count"].tolist() == [1, 1]  # 1.0 → [1, 2); 2.0 → [2, 3); 3.0 is out


def test_default_edges_are_the_atlas_log_bins():
    table = metrics.binned_response([0.5, 5.0, 50.0], [0.5, 5.0, 50.0])
    assert len(table) == 40
    assert table["low"].iloc[0] == pytest.approx(0.1)
    assert table["high"].iloc[-1] == pytest.approx(1000.0)
    np.testing.assert_allclose(table["high"] / table["low"], 10**0.1)


def test_bin_quantiles_agree_with_numpy_per_bin():
    """The sort-once vectorised quantiles equal np.quantile bin by bin."""
    rng = np.random.default_rng(8)
    e_true = 10 ** rng.uniform(-1, 3, 5_000)
    e_pred = e_true * rng.gamma(4.0, 0.25, e_true.size)
    table = metrics.binned_response(e_true, e_pred)
    bins = np.searchsorted(metrics.DEFAULT_RESPONSE_EDGES, e_true, side="right") - 1
    for i, row in table.iterrows():
        response = (e_pred / e_true)[bins == i]
        assert row["count"] == response.size
        np.testing.assert_allclose(
            row[["q16", "median", "q84"]].to_numpy(dtype=float),
            np.quantile(response, [0.16, 0.5, 0.84]),
        )


def test_response_of_a_lognormal_smearing_is_recovered():
    """E_pred = E_true × exp(N(μ, σ)): median e^μ, resolution sinh(σ · z84) exactly.

    200 000 clusters log-uniform over the 40 default bins (~5 000 per bin):
    the statistical error of the median is ~0.3 %, of the resolution ~1.5 %;
    the tolerances (1.5 % and 6 %) are about four of those.
    """
    rng = np.random.default_rng(21)
    mu, sigma = np.log(0.95), 0.2
    e_true = 10 ** rng.uniform(-1, 3, 200_000)
    e_pred = e_true * np.exp(rng.normal(mu, sigma, e_true.size))
    table = metrics.binned_response(e_true, e_pred)
    assert not table["too_few"].any()
    np.testing.assert_allclose(table["median"], 0.95, rtol=0.015)
    np.testing.assert_allclose(table["q16"], np.exp(mu - sigma * Z84), rtol=0.02)
    np.testing.assert_allclose(table["q84"], np.exp(mu + sigma * Z84), rtol=0.02)
    np.testing.assert_allclose(table["resolution"], np.sinh(sigma * Z84), rtol=0.06)


def test_response_uncertainties_match_the_spread_of_repeated_samples():
    """2 000 bins of 200 clusters each are 2 000 independent samples of one distribution:
    the spread of their medians and resolutions is what the errors claim, within 10 %
    (the spread itself is known to ~1.6 %)."""
    rng = np.random.default_rng(4)
    n_bins, per_bin = 2_000, 200
    edges = np.arange(1.0, n_bins + 2.0)
    e_true = np.repeat(edges[:-1] + 0.5, per_bin)
    e_pred = e_true * np.exp(rng.normal(0.0, 0.2, e_true.size))
    table = metrics.binned_response(e_true, e_pred, edges)
    assert table["median"].std() == pytest.approx(table["median_err"].mean(), rel=0.10)
    assert table["resolution"].std() == pytest.approx(table["resolution_err"].mean(), rel=0.10)


def test_paired_resolution_difference_has_the_error_of_repeated_samples():
    """300 bins of 400 clusters are 300 independent pairs of estimates that share their
    main fluctuation: the bootstrap error is the spread of the differences within 20 %
    (that spread is known to ~4 %), and below the unpaired errors in quadrature (about
    two thirds of them here)."""
    rng = np.random.default_rng(5)
    n_bins, per_bin = 300, 400
    edges = np.arange(1.0, n_bins + 2.0)
    e_true = np.repeat(edges[:-1] + 0.5, per_bin)
    sharp = e_true * (1 + rng.normal(0.0, 0.1, e_true.size))
    wide = sharp + e_true * rng.normal(0.0, 0.05, e_true.size)
    table = metrics.resolution_difference(e_true, sharp, wide, edges, n_resamples=100, seed=2)
    assert table["difference"].std() == pytest.approx(table["difference_err"].mean(), rel=0.20)
    assert table["difference"].mean() == pytest.approx(0.1 - np.hypot(0.1, 0.05), abs=0.002)
    unpaired = np.hypot(
        metrics.binned_response(e_true, sharp, edges)["resolution_err"],
        metrics.binned_response(e_true, wide, edges)["resolution_err"],
    )
    assert table["difference_err"].mean() < 0.8 * unpaired.mean()
    same = metrics.resolution_difference(e_true[:400], sharp[:400], sharp[:400], [1, 2], seed=2)
    assert same["difference"].item() == 0
    assert same["difference_err"].item() == 0


def test_resolution_difference_refuses_bad_input_by_name():
    with pytest.raises(ValueError, match="n_resamples"):
        metrics.resolution_difference([1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [0.5, 3], n_resamples=1)
    with pytest.raises(ValueError, match="e_pred_b"):
        metrics.resolution_difference([1.0, 2.0], [1.0, 2.0], [1.0], [0.5, 3])


def test_metrics_do_not_import_matplotlib():
    import subprocess
    import sys

    code = "import calotools.metrics, sys; print('matplotlib' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_rejection_error_is_the_spread_of_the_rejection_over_background_samples():
    """σ of rejection_at over 300 samples of 2 000 π0 (the π± kept fixed, as the formula
    assumes) matches the binomial error within 15 %; with no π0 passing it is infinite."""
    rng = np.random.default_rng(4)
    signal = rng.normal(1.5, 1.0, 20_000)
    rejections, errors = [], []
    for _ in range(300):
        background = rng.normal(0.0, 1.0, 2_000)
        y = np.r_[np.ones(signal.size), np.zeros(background.size)]
        score = np.r_[signal, background]
        rejections.append(metrics.rejection_at(y, score, 0.9))
        errors.append(metrics.rejection_error(y, score, 0.9))
    assert np.std(rejections) == pytest.approx(np.mean(errors), rel=0.15)
    assert np.isinf(metrics.rejection_error([1, 0], [0.9, 0.1], 1.0))
    both = metrics.rejection_error(y, score, [0.5, 0.9])
    assert both.shape == (2,)
    assert both[1] == pytest.approx(errors[-1])
