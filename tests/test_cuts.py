"""Cut expressions act element-wise and name what they cannot find."""

from __future__ import annotations

import numpy as np
import pytest

from calotools.cuts import CutError, branches_in, evaluate_cut

COLUMNS = {
    "cluster_E": np.array([0.3, 2.0, 50.0, 200.0]),
    "cluster_Eta": np.array([0.1, -0.8, 0.5, -0.2]),
}


def test_and_or_not_act_element_wise():
    """`and`, `or`, `not` behave like &, |, ~ on arrays."""
    mask = evaluate_cut("cluster_E > 0.5 and not abs(cluster_Eta) > 0.7", COLUMNS)
    assert mask.tolist() == [False, False, True, True]
    mask = evaluate_cut("cluster_E < 1 or cluster_E > 100", COLUMNS)
    assert mask.tolist() == [True, False, False, True]


def test_chained_comparison_is_element_wise():
    """0.5 < E < 100, the selection of the ATLAS studies, works as written."""
    assert evaluate_cut("0.5 < cluster_E < 100", COLUMNS).tolist() == [False, True, True, False]


def test_numpy_functions_are_available():
    """log10, abs, sqrt … are NumPy's."""
    mask = evaluate_cut("log10(cluster_E) >= 1 and sqrt(cluster_E) < 10", COLUMNS)
    assert mask.tolist() == [False, False, True, False]


def test_branches_in_lists_names_but_not_functions():
    """Function names are not branch names."""
    assert branches_in("abs(cluster_Eta) < 0.7 and log10(cluster_E) > 0") == {
        "cluster_E",
        "cluster_Eta",
    }


def test_unknown_branch_is_named_with_the_alternatives():
    """A typo lists the branches there are."""
    with pytest.raises(CutError, match=r"uses 'cluster_e'.*in pi0.root; available: cluster_E"):
        evaluate_cut("cluster_e > 1", COLUMNS, where="pi0.root")


def test_syntax_error_and_non_boolean_result():
    """A broken expression and an expression that is not a selection are refused."""
    with pytest.raises(CutError, match="cannot parse"):
        evaluate_cut("cluster_E >", COLUMNS)
    with pytest.raises(CutError, match="not a true/false selection"):
        evaluate_cut("cluster_E * 2", COLUMNS)


def test_builtins_are_not_reachable():
    """A cut cannot call arbitrary Python."""
    with pytest.raises(CutError):
        evaluate_cut("__import__('os').getcwd() == cluster_E", COLUMNS)


def test_a_feature_may_be_log1p_of_a_moment_that_can_be_zero():
    from calotools.cuts import evaluate_feature, feature_branch

    assert feature_branch("log1p(cluster_SECOND_R)") == "cluster_SECOND_R"
    values = evaluate_feature("log1p(cluster_SECOND_R)", {"cluster_SECOND_R": np.array([0.0, 9.0])})
    np.testing.assert_allclose(values, [0.0, np.log(10.0)])
