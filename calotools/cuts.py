"""Selections and features written as expressions on branch names.

A **cut** is an expression such as
``"abs(cluster_Eta) < 0.7 and cluster_ENG_CALIB_TOT > 0.2"``, evaluated on
arrays with NumPy. ``and``, ``or`` and ``not`` act element-wise, so a cut
reads like the physics. A cut is data, not code: it is parsed and checked
against a small language (`ALLOWED`: branch names, numbers, comparisons,
logic, arithmetic and the functions in `FUNCTIONS`), then evaluated by walking
its tree, never by ``eval``. Cuts read back from splits, sidecars and model
folders go through the same check.

A **feature** is one number per cluster for a model or for spectrum matching:
a branch name, or ``abs``, ``log`` or ``log10`` of one (``"log10(cluster_E)"``).

Both the selection stage (`calotools.data`) and the model-input stage
(`calotools.preprocessing`) read their expressions here.

Examples
--------
>>> import numpy as np
>>> columns = {"cluster_E": np.array([0.3, 2.0, 50.0])}
>>> evaluate_cut("cluster_E > 0.5 and cluster_E < 100", columns)
array([False,  True,  True])
>>> sorted(branches_in("log10(cluster_E) > abs(cluster_Eta)"))
['cluster_E', 'cluster_Eta']
>>> feature_branch("log10(cluster_E)")
'cluster_E'
>>> evaluate_feature("log10(cluster_E)", columns).tolist()
[-0.5228787452803376, 0.3010299956639812, 1.6989700043360187]
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping

import numpy as np

from calotools.errors import CutError

__all__ = [
    "ALLOWED",
    "CutError",
    "branches_in",
    "evaluate_cut",
    "evaluate_feature",
    "feature_branch",
]

#: Functions a cut may call: the element-wise NumPy ones a physicist expects.
FUNCTIONS = {
    name: getattr(np, name)
    for name in (
        "abs",
        "sqrt",
        "exp",
        "log",
        "log10",
        "sin",
        "cos",
        "tan",
        "sinh",
        "cosh",
        "tanh",
        "arctan2",
        "minimum",
        "maximum",
        "isfinite",
        "where",
    )
}


#: What a cut may contain, said in every refusal.
ALLOWED = (
    "branch names, numbers, True/False, comparisons (< <= > >= == !=, chained), "
    "and/or/not, + - * / // % ** and unary minus, and calls of " + ", ".join(FUNCTIONS)
)

_BINARY = {
    ast.Add: np.add,
    ast.Sub: np.subtract,
    ast.Mult: np.multiply,
    ast.Div: np.true_divide,
    ast.FloorDiv: np.floor_divide,
    ast.Mod: np.mod,
    ast.Pow: np.power,
}
_COMPARE = {
    ast.Lt: np.less,
    ast.LtE: np.less_equal,
    ast.Gt: np.greater,
    ast.GtE: np.greater_equal,
    ast.Eq: np.equal,
    ast.NotEq: np.not_equal,
}
_UNARY = {ast.USub: np.negative, ast.UAdd: np.positive, ast.Not: np.logical_not}
_OPERATORS = (ast.operator, ast.cmpop, ast.unaryop, ast.boolop, ast.expr_context)


def _refuse(cut: str, what: str) -> CutError:
    return CutError(f"the cut {cut!r} uses {what}, which a cut may not; allowed: {ALLOWED}")


def _check(cut: str, tree: ast.Expression) -> None:
    """Refuse every node outside the cut language, before anything is evaluated.

    The language is small on purpose: a cut read back from a split, a sidecar
    or a model folder someone sent is data, and must not be able to reach
    Python's objects (attributes, subscripts, comprehensions, lambdas …).
    """
    for node in ast.walk(tree):
        if isinstance(node, ast.Expression | ast.Load | ast.And | ast.Or | ast.Not):
            continue
        if isinstance(node, ast.Name):
            if node.id.startswith("__"):
                raise _refuse(cut, f"the name {node.id!r}")
        elif isinstance(node, ast.Constant):
            if type(node.value) not in (int, float, bool):
                raise _refuse(cut, f"the constant {node.value!r}")
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINARY:
                raise _refuse(cut, f"the operator {type(node.op).__name__}")
        elif isinstance(node, ast.UnaryOp):
            if type(node.op) not in _UNARY:
                raise _refuse(cut, f"the operator {type(node.op).__name__}")
        elif isinstance(node, ast.Compare):
            for op in node.ops:
                if type(op) not in _COMPARE:
                    raise _refuse(cut, f"the comparison {type(op).__name__}")
        elif isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in FUNCTIONS):
                raise _refuse(cut, f"a call of {ast.unparse(node.func)!r}")
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                raise _refuse(cut, f"keyword or * arguments in {ast.unparse(node)!r}")
        elif isinstance(node, ast.BoolOp):
            continue
        elif not isinstance(node, _OPERATORS):
            raise _refuse(cut, f"{type(node).__name__.lower()} {ast.unparse(node)!r}")


def _parse(cut: str) -> ast.Expression:
    try:
        tree = ast.parse(cut, mode="eval")
    except SyntaxError as err:
        msg = f"cannot parse the cut {cut!r}: {err.msg}"
        raise CutError(msg) from None
    _check(cut, tree)
    return tree


def _evaluate(node: ast.AST, namespace: Mapping[str, np.ndarray]) -> np.ndarray:
    """Walk a checked tree; ``and``/``or``/``not`` act element-wise (&, |, ~)."""
    if isinstance(node, ast.Expression):
        return _evaluate(node.body, namespace)
    if isinstance(node, ast.Name):
        return namespace[node.id]
    if isinstance(node, ast.Constant):
        # NumPy scalars, never Python objects: 10**100 becomes a float, not an object array.
        constant = node.value
        if isinstance(constant, bool):
            return np.asarray(constant)
        if isinstance(constant, int) and abs(constant) < 2**63:
            return np.asarray(constant, dtype=np.int64)
        if isinstance(constant, int | float):
            return np.asarray(float(constant))
    if isinstance(node, ast.BoolOp):
        combine = np.logical_and if isinstance(node.op, ast.And) else np.logical_or
        result = _evaluate(node.values[0], namespace)
        for value in node.values[1:]:
            result = combine(result, _evaluate(value, namespace))
        return result
    if isinstance(node, ast.UnaryOp):
        return _UNARY[type(node.op)](_evaluate(node.operand, namespace))
    if isinstance(node, ast.BinOp):
        left, right = _evaluate(node.left, namespace), _evaluate(node.right, namespace)
        return _BINARY[type(node.op)](left, right)
    if isinstance(node, ast.Compare):
        # ``0.5 < x < 100`` is a chained ``and`` in Python; element-wise here too.
        operands = [_evaluate(node.left, namespace)]
        operands += [_evaluate(c, namespace) for c in node.comparators]
        result = np.asarray(True)
        for op, left, right in zip(node.ops, operands, operands[1:], strict=False):
            result = np.logical_and(result, _COMPARE[type(op)](left, right))
        return result
    if isinstance(node, ast.Call):
        function = FUNCTIONS[node.func.id]  # type: ignore[attr-defined]  # checked: a Name
        return function(*(_evaluate(a, namespace) for a in node.args))
    msg = f"unchecked node {type(node).__name__} in a cut"  # _check lets none through
    raise RuntimeError(msg)


def branches_in(cut: str) -> set[str]:
    """Names of the branches a cut uses (every name that is not a known function).

    Raises `CutError` for an expression outside the cut language.
    """
    tree = _parse(cut)
    calls = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    return {
        node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and id(node) not in calls
    }


def evaluate_cut(cut: str, columns: Mapping[str, np.ndarray], *, where: str = "") -> np.ndarray:
    """Evaluate ``cut`` on ``columns`` and return a boolean mask.

    The expression is parsed and checked against the cut language (`ALLOWED`)
    and evaluated by walking its tree with NumPy: no Python code is run.

    Parameters
    ----------
    cut
        Expression on branch names.
    columns
        Arrays by branch name, all of the same length.
    where
        Where the columns come from (a file name), for error messages.
    """
    used = branches_in(cut)
    missing = sorted(used - set(columns))
    if missing:
        place = f" in {where}" if where else ""
        msg = (
            f"the cut {cut!r} uses {', '.join(map(repr, missing))}, which is not a branch{place}; "
            f"available: {', '.join(sorted(columns))}"
        )
        raise CutError(msg)
    try:
        with np.errstate(all="ignore"):  # log(0) is -inf, a value a cut may compare
            mask = np.asarray(_evaluate(_parse(cut), {name: columns[name] for name in used}))
    except (TypeError, ValueError, ArithmeticError) as err:
        msg = f"cannot evaluate the cut {cut!r}: {err}"
        raise CutError(msg) from err
    if mask.dtype != np.bool_:
        msg = f"the cut {cut!r} gives values of type {mask.dtype}, not a true/false selection"
        raise CutError(msg)
    return mask


# ---------------------------------------------------------------------------- features

_FEATURE = re.compile(
    r"^\s*(?:(?P<func>abs|log10|log1p|log)\(\s*(?P<arg>\w+)\s*\)|(?P<name>\w+))\s*$"
)
# log1p: for moments that are 0 for a few clusters (one-cell widths, say).
_FEATURE_FUNCTIONS = {"abs": np.abs, "log10": np.log10, "log1p": np.log1p, "log": np.log}


def _match_feature(expression: str) -> re.Match[str]:
    match = _FEATURE.match(expression)
    if match is None:
        msg = (
            f"cannot read the feature {expression!r}: write a branch name or abs(), log(), "
            "log10() or log1p() of one, e.g. 'log10(cluster_E)'"
        )
        raise CutError(msg)
    return match


def feature_branch(expression: str) -> str:
    """The branch a feature reads: ``"log10(cluster_E)"`` → ``"cluster_E"``.

    A feature is a branch name, or ``abs``, ``log``, ``log10`` or ``log1p`` of one.
    """
    match = _match_feature(expression)
    return match["arg"] or match["name"]


def evaluate_feature(expression: str, columns: Mapping[str, np.ndarray]) -> np.ndarray:
    """Values of a feature (see `feature_branch`) as float64.

    Logarithms of values ≤ 0 give -inf or NaN without a warning: the callers
    check finiteness and say which clusters and branches are affected.
    """
    branch = feature_branch(expression)
    if branch not in columns:
        msg = (
            f"the feature {expression!r} needs the branch {branch!r}; "
            f"available: {', '.join(sorted(columns))}"
        )
        raise CutError(msg)
    values = np.asarray(columns[branch], dtype=np.float64)
    func = _match_feature(expression)["func"]
    if func is None:
        return values
    with np.errstate(divide="ignore", invalid="ignore"):
        return _FEATURE_FUNCTIONS[func](values)
