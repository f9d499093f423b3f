"""The study's full-mode figures on the default data set (issue 14, item 6).

Makes (or reuses) the full default data set under ``ROOT/data`` and the
study's models under ``ROOT/models``, exactly as the notebooks do, then prints:

- notebook 02's table: AUC, accuracy and efficiencies at p = 0.5, the best p,
  and the π0 rejection at 90 % π± efficiency with its binomial error, for LCW,
  every classifier and the stack of the DenseNet and the BDT;
- notebook 03's cutoff scan: accuracy and both efficiencies at p = 0.3, 0.5
  and the best p, for the DenseNet and LCW;
- notebook 05's response table (clusters above 1 GeV) for EM scale, LCW and
  the hybrid and BDT regressions, pooled and per ENG_CALIB_TOT bin (1–10,
  10–100, 100–500 GeV), and per bin the resolution of the first regressor
  minus each other method's, with a paired bootstrap error;
- the per-layer ladder: the AUC of a small flat dense network (Dense 128 on
  the layer's pixels, no cluster energy) trained on each layer alone and on
  the six together;
- the median cells per cluster per class and ENG_CALIB_TOT bin.

Every table is also written as CSV under ``ROOT/tables``. To measure other
code, put it first on the path (a git worktree) and give it its own root:
``PYTHONPATH=/tmp/old python benchmarks/study_tables.py --root /tmp/old-study``.

    python benchmarks/study_tables.py [--root study-tables] [--classifiers bdt densenet ...]
        [--regressors hybrid bdt densenet] [--skip ladder response]
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

import calotools
from calotools import evaluation, geometry, metrics, models, ntuple, study, training
from calotools.preprocessing import Preprocessing

CALIB_BINS = [0.2, 1.0, 3.0, 10.0, 30.0, 100.0, np.inf]
LADDER_UNITS = (128,)
#: The regressions of notebooks 04 and 05.
REGRESSORS = ("hybrid", "bdt")
#: The classifiers notebook 02 stacks.
STACK = ("densenet", "bdt")
#: ENG_CALIB_TOT bins of the per-bin response table (GeV).
TRUE_BINS = [1.0, 10.0, 100.0, 500.0]


def _show(title: str, table: pd.DataFrame, root: Path, name: str) -> None:
    print(f"\n## {title}\n{table.to_string(float_format=lambda x: f'{x:.4f}')}", flush=True)
    table.to_csv(root / "tables" / f"{name}.csv")


def classification(context: study.StudyContext, names: list[str], root: Path) -> dict:
    trained = {}
    for name in names:
        start = time.perf_counter()
        trained[name] = context.trained(name, "classify")
        print(f"{name}: {time.perf_counter() - start:.0f} s", flush=True)
    test = study.common_test_split(trained.values())
    tables = {
        name: study.predictions_on_test(
            model, extra_branches=["cluster_EM_PROBABILITY"], selection=test
        )
        for name, model in trained.items()
    }
    first = next(iter(tables.values()))
    labels = first["label"].to_numpy()
    scores = {"LCW": 1 - first["cluster_EM_PROBABILITY"].to_numpy()}
    scores |= {name: table["prediction"].to_numpy() for name, table in tables.items()}
    if set(STACK) <= set(trained):  # notebook 02's stack, fitted on the validation clusters
        stack = study.stacked({name: trained[name] for name in STACK})
        print(f"stack {stack.members}: weights {stack.weights}, bias {stack.bias:.3f}")
        scores[f"stack: {' + '.join(STACK)}"] = stack.predict({n: scores[n] for n in STACK})
    rows = {}
    for name, score in scores.items():
        summary = evaluation.classification_summary(labels, score)
        summary["rejection_90"] = float(metrics.rejection_at(labels, score, 0.9))
        summary["rejection_90_error"] = float(metrics.rejection_error(labels, score, 0.9))
        rows[name] = summary
    columns = ["n", "auc", "accuracy", "pi0_efficiency", "pipm_efficiency"]
    columns += ["best_cutoff", "best_accuracy", "rejection_90", "rejection_90_error"]
    _show("notebook 02: classifiers", pd.DataFrame(rows).T[columns], root, "classifiers")

    scans = []
    for name in ("densenet", "LCW"):
        if name not in scores:
            continue
        p_pi0 = 1 - np.clip(scores[name], 0, 1)
        best = metrics.best_cutoff(metrics.cutoff_scan(labels, p_pi0))
        scan = metrics.cutoff_scan(labels, p_pi0, cutoffs=sorted({0.3, 0.5, best}))
        scans.append(scan.assign(method=name))
    columns = ["method", "cutoff", "accuracy", "pi0_efficiency", "pipm_efficiency"]
    _show("notebook 03: cutoff scan", pd.concat(scans)[columns], root, "cutoff_scan")
    return {"test": test, "labels": labels}


def ladder(context: study.StudyContext, test, labels: np.ndarray, root: Path) -> None:
    layers = [*((name,) for name in geometry.IMAGE_LAYER_NAMES), tuple(geometry.IMAGE_LAYER_NAMES)]
    rows = {}
    for chosen in layers:
        label = chosen[0] if len(chosen) == 1 else "all six"
        recipe = Preprocessing(
            layout="flat",
            layers=chosen,
            scale=models.CLASSIFIER_SCALE,
            scalars=(),
            target="label",
        )
        out = root / "models" / f"ladder-{'-'.join(chosen)}"
        start = time.perf_counter()
        model = training.train(
            "dense_emb2",
            context.data.folder,
            out,
            task="classify",
            preprocessing=recipe,
            cut=context.selection,
            model_kwargs={"units": LADDER_UNITS},
            **study.TRAINING["quick" if context.quick else "full"],
        )
        table = study.predictions_on_test(model, selection=test)
        assert np.array_equal(table["label"].to_numpy(), labels)
        rows[label] = {
            "auc": metrics.auc(labels, table["prediction"].to_numpy()),
            "seconds": time.perf_counter() - start,
        }
    _show("per-layer ladder (Dense 128 on pixels only)", pd.DataFrame(rows).T, root, "ladder")


def response(context: study.StudyContext, root: Path, regressors: list[str]) -> None:
    parts = {}
    per_bin: dict[tuple[str, str], dict[tuple[str, str], float]] = defaultdict(dict)
    differences: dict[tuple[str, str], dict[tuple[str, str], float]] = defaultdict(dict)
    for sample in ("pi0", "pipm"):
        trained = {}
        for name in regressors:
            start = time.perf_counter()
            trained[name] = context.trained(name, "regress", sample)
            print(f"{name} {sample} regression: {time.perf_counter() - start:.0f} s", flush=True)
        table = study.regression_table(trained)
        methods = ["EM scale", "LCW", *regressors]
        parts[sample] = metrics.response_summaries(
            table[study.TRUE_ENERGY], {m: table[m] for m in methods}, min_true=1.0
        )
        # Pooled figures hide an energy-dependent bias as width: also per true-energy bin.
        for method in methods:
            binned = metrics.binned_response(table[study.TRUE_ENERGY], table[method], TRUE_BINS)
            for row in binned.itertuples():
                label = f"{row.low:g}–{row.high:g} GeV"
                per_bin[(sample, label)][(method, "median")] = row.median
                per_bin[(sample, label)][(method, "resolution")] = row.resolution
                per_bin[(sample, label)][("", "count")] = row.count
        # The first regressor against every other method, on the same clusters:
        # a paired bootstrap error of the resolution difference.
        first = regressors[0]
        for other in [m for m in methods if m != first]:
            paired = metrics.resolution_difference(
                table[study.TRUE_ENERGY], table[first], table[other], TRUE_BINS
            )
            for row in paired.itertuples():
                label = f"{row.low:g}–{row.high:g} GeV"
                differences[(sample, label)][(f"{first} − {other}", "difference")] = row.difference
                differences[(sample, label)][(f"{first} − {other}", "error")] = row.difference_err
    _show("notebook 05: response above 1 GeV", pd.concat(parts, axis=1), root, "response")
    binned_table = pd.DataFrame(per_bin).T
    count = [("", "count")]
    binned_table = binned_table[count + [c for c in binned_table.columns if c not in count]]
    _show("response per ENG_CALIB_TOT bin", binned_table, root, "response_binned")
    _show(
        f"resolution differences per bin, {regressors[0]} − each method (paired bootstrap error)",
        pd.DataFrame(differences).T,
        root,
        "resolution_differences",
    )


def cells(context: study.StudyContext, root: Path) -> None:
    rows = []
    read = {
        sample: ntuple.read_clusters(
            context.data.folder / f"{sample}.root",
            ["cluster_ENG_CALIB_TOT", "cluster_nCells"],
            cut=context.selection,
        ).scalars
        for sample in ("pi0", "pipm")
    }
    for lo, hi in itertools.pairwise(CALIB_BINS):
        row = {"ENG_CALIB_TOT (GeV)": f"{lo:g}–{hi:g}" if np.isfinite(hi) else f"> {lo:g}"}
        for sample, table in read.items():
            energy = table.cluster_ENG_CALIB_TOT
            inside = table[(energy >= lo) & (energy < hi)]
            row[f"{sample} n"] = len(inside)
            row[f"{sample} cells"] = (
                float(np.median(inside.cluster_nCells)) if len(inside) else np.nan
            )
        row["pipm/pi0"] = row["pipm cells"] / row["pi0 cells"]
        rows.append(row)
    _show(
        "median cells per cluster",
        pd.DataFrame(rows).set_index("ENG_CALIB_TOT (GeV)"),
        root,
        "cells",
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("study-tables"))
    parser.add_argument("--classifiers", nargs="*", default=None)
    parser.add_argument("--regressors", nargs="*", default=list(REGRESSORS))
    parser.add_argument("--quick", action="store_true", help="smoke run: quick data and training")
    parser.add_argument("--skip", nargs="*", default=(), choices=("ladder", "response"))
    args = parser.parse_args()
    root = args.root.resolve()
    (root / "tables").mkdir(parents=True, exist_ok=True)
    print(f"calotools from {Path(calotools.__file__).parent}, root {root}", flush=True)
    start = time.perf_counter()
    context = study.setup(quick=args.quick, root=root)
    print(f"data: {time.perf_counter() - start:.0f} s", flush=True)
    cells(context, root)
    names = args.classifiers or study.default_classifiers(quick=args.quick)
    found = classification(context, names, root)
    if "ladder" not in args.skip:
        ladder(context, found["test"], found["labels"], root)
    if "response" not in args.skip:
        response(context, root, args.regressors)
    print(f"\ntotal: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
