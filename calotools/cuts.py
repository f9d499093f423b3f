"""Selections written as expressions on branch names.

A cut is a Python expression such as
``"abs(cluster_Eta) < 0.7 and cluster_ENG_CALIB_TOT > 0.2"``, evaluated on
arrays with NumPy. ``and``, ``or`` and ``not`` act element-wise (they are
rewritten to ``&``, ``|`` and ``~``), so a cut reads like the physics.

Examples
--------
>>> import numpy as np
>>> columns = {"cluster_E": np.array([0.3, 2.0, 50.0])}
>>> evaluate_cut("cluster_E > 0.5 and cluster_E < 100", columns)
array([False,  True,  True])
>>> sorted(branches_in("log10(cluster_E) > abs(cluster_Eta)"))
['cluster_E', 'cluster_Eta']
"""

from __future__ import annotations

import ast
from collections.abc import Mapping

import numpy as np

__all__ = ["CutError", "branches_in", "evaluate_cut"]

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


class CutError(ValueError):
    """A cut expression that cannot be parsed or names an unknown branch."""


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
        parts = [
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
