"""Selections and features written as expressions on branch names.

A **cut** is a Python expression such as
``"abs(cluster_Eta) < 0.7 and cluster_ENG_CALIB_TOT > 0.2"``, evaluated on
arrays with NumPy. ``and``, ``or`` and ``not`` act element-wise (they are
rewritten to ``&``, ``|`` and ``~``), so a cut reads like the physics.

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

__all__ = ["CutError", "branches_in", "evaluate_cut", "evaluate_feature", "feature_branch"]

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


class _ElementWiseLogic(ast.NodeTransformer):
    """Rewrite ``and``/``or``/``not`` to ``&``/``|``/``~`` so they act on arrays."""

    def visit_BoolOp(self, node: ast.BoolOp) -> ast.AST:
        self.generic_visit(node)
        op: ast.operator = ast.BitAnd() if isinstance(node.op, ast.And) else ast.BitOr()
        result = node.values[0]
        for value in node.values[1:]:
            result = ast.BinOp(left=result, op=op, right=value)
        return result

    def visit_UnaryOp(self, node: ast.UnaryOp) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.op, ast.Not):
            return ast.UnaryOp(op=ast.Invert(), operand=node.operand)
        return node

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        # ``0.5 < x < 100`` is a chained ``and`` in Python; split it element-wise too.
        self.generic_visit(node)
        if len(node.ops) == 1:
            return node
        operands = [node.left, *node.comparators]
        parts: list[ast.expr] = [
            ast.Compare(left=operands[i], ops=[op], comparators=[operands[i + 1]])
            for i, op in enumerate(node.ops)
        ]
        return self.visit_BoolOp(ast.BoolOp(op=ast.And(), values=parts))


def _parse(cut: str) -> ast.Expression:
    try:
        return ast.parse(cut, mode="eval")
    except SyntaxError as err:
        msg = f"cannot parse the cut {cut!r}: {err.msg}"
        raise CutError(msg) from None


def branches_in(cut: str) -> set[str]:
    """Names of the branches a cut uses (every name that is not a known function)."""
    tree = _parse(cut)
    return {
        node.id
        for node in ast.walk(tree)
        if isinstance(node, ast.Name) and node.id not in FUNCTIONS
    }


def evaluate_cut(cut: str, columns: Mapping[str, np.ndarray], *, where: str = "") -> np.ndarray:
    """Evaluate ``cut`` on ``columns`` and return a boolean mask.

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
    tree = ast.fix_missing_locations(_ElementWiseLogic().visit(_parse(cut)))
    namespace = {**FUNCTIONS, **{name: columns[name] for name in used}}
    try:
        mask = eval(compile(tree, "<cut>", "eval"), {"__builtins__": {}}, namespace)
    except Exception as err:
        msg = f"cannot evaluate the cut {cut!r}: {err}"
        raise CutError(msg) from err
    mask = np.asarray(mask)
    if mask.dtype != np.bool_:
        msg = f"the cut {cut!r} gives values of type {mask.dtype}, not a true/false selection"
        raise CutError(msg)
    return mask


# ---------------------------------------------------------------------------- features

_FEATURE = re.compile(r"^\s*(?:(?P<func>abs|log10|log)\(\s*(?P<arg>\w+)\s*\)|(?P<name>\w+))\s*$")
_FEATURE_FUNCTIONS = {"abs": np.abs, "log10": np.log10, "log": np.log}


def _match_feature(expression: str) -> re.Match[str]:
    match = _FEATURE.match(expression)
    if match is None:
        msg = (
            f"cannot read the feature {expression!r}: write a branch name or abs(), log() or "
            "log10() of one, e.g. 'log10(cluster_E)'"
        )
        raise CutError(msg)
    return match


def feature_branch(expression: str) -> str:
    """The branch a feature reads: ``"log10(cluster_E)"`` → ``"cluster_E"``.

    A feature is a branch name, or ``abs``, ``log`` or ``log10`` of one.
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
