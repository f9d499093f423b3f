"""Benchmark: CPU training and inference throughput of every model, and their results.

Default mode: for every network of the registry (`calotools.models`, default
sizes, classification), the training throughput (clusters/s over the faster
of two epochs, after a warm-up that traces the graph) and the inference throughput, of the
network alone and with the preprocessing from clusters, on synthetic clusters
(`calotools.testing.random_clusters`: only sizes matter). In the same run, two
classical baselines: the BDT on the cluster moments (`calotools.baselines`) and
a logistic regression on all flattened pixels; the ratio columns divide each
model's rate by the BDT's. Earlier forms of a network (`REFERENCES`: the
DenseNet before issue 15) are measured in the same run and their ratio printed.

    python benchmarks/models.py [--n 8192] [--batch-size 256] [--models densenet lapp_cnn]

``--results DIR``: train every classifier briefly on the data set in DIR
(``pi0.root``, ``pipm.root``) with `calotools.training.train` and print, on the
test split, the AUC, the accuracy and the π0/π± efficiencies at p = 0.5 and at
the best p (π0 when P(π0) > p), next to LCW; then train π0 and π± regressions
and print the median response and the resolution (q84 − q16) / (2 · median)
per true-energy bin, next to the EM-scale and LCW energies.

    python benchmarks/models.py --results data [--epochs 5] [--max-clusters 20000] [--quick]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from calotools import evaluation, metrics, models, training
from calotools.baselines import EM_SCALE, LCW_ENERGY, BDTModel
from calotools.testing import random_clusters

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

HERE = Path(__file__).resolve().parent
#: Coarse true-energy bins (GeV) for the printed response tables.
RESULT_EDGES = (0.2, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 2000)
DEFAULT_REGRESSIONS = ("dense3_all", "densenet", "bdt")


def timed(function, *args, **kwargs) -> float:
    start = time.perf_counter()
    function(*args, **kwargs)
    return time.perf_counter() - start


# ---------------------------------------------------------------------------- throughput


def epoch_clock():
    """A Keras callback noting the wall time of every epoch."""
    import keras

    class EpochClock(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.durations: list[float] = []

        def on_epoch_begin(self, epoch, logs=None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None) -> None:
            self.durations.append(time.perf_counter() - self.start)

    return EpochClock()


#: Earlier forms of a network, measured next to the current one in the same run:
#: row label → (registry name, builder keywords).
REFERENCES: dict[str, tuple[str, dict]] = {
    # The DenseNet before issue 15: 3 × 3 stems everywhere, Keras' batch normalisation.
    "densenet (before: 3×3 stem, Keras BN)": (
        "densenet",
        {"strip_stride": 1, "fused_batch_norm": False},
    ),
}


def network_rates(
    name: str, clusters, labels: np.ndarray, batch_size: int, sizes: dict | None = None
) -> dict[str, float]:
    """Clusters/s: training (best of two timed epochs), inference, inference from clusters."""
    import keras

    keras.utils.set_random_seed(0)
    prep = models.spec(name).preprocessing("classify").fit(clusters)
    inputs = prep.transform(clusters)
    targets = prep.targets(clusters, labels)
    network = models.compile_model(
        models.build(name, "classify", prep, **(sizes or {})), name, "classify"
    )
    n = len(clusters)
    clock = epoch_clock()
    # Epoch 1 traces the train function (and the partial last batch); epochs 2 and 3
    # are timed, and the faster counts: this machine's noise only ever slows an epoch.
    network.fit(inputs, targets, batch_size=batch_size, epochs=3, callbacks=[clock], verbose=0)
    train_s = min(clock.durations[1:])
    network.predict(inputs, batch_size=1024, verbose=0)  # traces predict
    infer_s = timed(network.predict, inputs, batch_size=1024, verbose=0)
    wrapped = models.KerasModel(network, prep, name=name, task="classify")
    end_to_end_s = timed(wrapped.predict, clusters)
    return {
        "parameters": network.count_params(),
        "train": n / train_s,
        "infer": n / infer_s,
        "infer_from_clusters": n / end_to_end_s,
    }


def baseline_rates(clusters, labels: np.ndarray, threads: int) -> dict[str, dict[str, float]]:
    from threadpoolctl import threadpool_limits

    with threadpool_limits(threads):
        return _baseline_rates(clusters, labels)


def _baseline_rates(clusters, labels: np.ndarray) -> dict[str, dict[str, float]]:
    from sklearn.linear_model import LogisticRegression

    n = len(clusters)
    start = time.perf_counter()
    bdt = BDTModel.fit(clusters, "classify", labels=labels, n_estimators=200)
    bdt_train = n / (time.perf_counter() - start)
    bdt_infer = n / timed(bdt.predict, clusters)
    pixels = np.concatenate([image.reshape(n, -1) for image in clusters.images.values()], axis=1)
    logistic = LogisticRegression(max_iter=200)
    logistic_train = n / timed(logistic.fit, pixels, labels)
    logistic_infer = n / timed(logistic.predict_proba, pixels)
    return {
        "bdt (200 trees, moments)": {"train": bdt_train, "infer": bdt_infer},
        "logistic regression (pixels)": {"train": logistic_train, "infer": logistic_infer},
    }


def throughput(args: argparse.Namespace) -> pd.DataFrame:
    clusters = random_clusters(args.n, seed=1)
    labels = np.random.default_rng(2).integers(0, 2, args.n)
    names = args.models or [n for n in models.available() if models.spec(n).kind == "keras"]
    rows = {}
    for name, rates in baseline_rates(clusters, labels, args.threads).items():
        rows[name] = {"parameters": np.nan, **rates, "infer_from_clusters": rates["infer"]}
    for name in names:
        print(f"measuring {name} …", flush=True)
        rows[name] = network_rates(name, clusters, labels, args.batch_size)
        for label, (reference, sizes) in REFERENCES.items():
            if reference == name:
                print(f"measuring {label} …", flush=True)
                rows[label] = network_rates(name, clusters, labels, args.batch_size, sizes)
    table = pd.DataFrame.from_dict(rows, orient="index")
    reference = table.loc["bdt (200 trees, moments)"]
    table["train / bdt"] = table["train"] / reference["train"]
    table["infer / bdt"] = table["infer_from_clusters"] / reference["infer"]
    for label, (name, _) in REFERENCES.items():
        if label in table.index:
            print(
                f"{name} training, now / before: "
                f"{table.loc[name, 'train'] / table.loc[label, 'train']:.2f}"
            )
    return table


# ---------------------------------------------------------------------------- results


def classification_row(summary: dict) -> dict[str, float]:
    return {
        "AUC": summary["auc"],
        "acc p=0.5": summary["accuracy"],
        "π0 eff p=0.5": summary["pi0_efficiency"],
        "π± eff p=0.5": summary["pipm_efficiency"],
        "best p": summary["best_cutoff"],
        "acc best p": summary["best_accuracy"],
        "π0 eff best p": summary["best_pi0_efficiency"],
        "π± eff best p": summary["best_pipm_efficiency"],
    }


def train_settings(args: argparse.Namespace, name: str) -> dict:
    settings = {
        "epochs": args.epochs,
        "max_clusters": args.max_clusters,
        "overwrite": args.overwrite,
        "verbose": 0,
    }
    if args.quick:
        settings["model_kwargs"] = dict(models.spec(name).tiny)
    return settings


def classification_results(args: argparse.Namespace, out: Path) -> pd.DataFrame:
    rows, baseline = {}, None
    for name in args.models or list(models.available()):
        start = time.perf_counter()
        model = training.train(
            name, args.results, out / f"{name}-classify", **train_settings(args, name)
        )
        print(f"trained {name} classifier in {time.perf_counter() - start:.0f} s", flush=True)
        rows[name] = classification_row(model.test_metrics["model"])
        baseline = model.test_metrics["baselines"].get("lcw", baseline)
    if baseline is not None:  # every model has the same test split (same seed)
        rows["LCW (1 − EM_PROBABILITY)"] = classification_row(baseline)
    return pd.DataFrame.from_dict(rows, orient="index")


def regression_results(args: argparse.Namespace, out: Path, sample: str) -> pd.DataFrame:
    columns = {}
    for name in args.regressions:
        start = time.perf_counter()
        model = training.train(
            name,
            args.results,
            out / f"{name}-regress-{sample}",
            task="regress",
            sample=sample,
            **train_settings(args, name),
        )
        print(
            f"trained {name} {sample} regression in {time.perf_counter() - start:.0f} s",
            flush=True,
        )
        extra = [evaluation.TRUE_ENERGY, *EM_SCALE.branches, *LCW_ENERGY.branches]
        predictions, table = evaluation.predict_selection(
            model, model.split["test"], extra_branches=list(dict.fromkeys(extra))
        )
        truth = table[evaluation.TRUE_ENERGY].to_numpy()
        columns[name] = metrics.binned_response(truth, predictions, RESULT_EDGES)
    # The same test clusters for every regression of a sample (same seed).
    columns["EM scale"] = metrics.binned_response(truth, table["cluster_E"], RESULT_EDGES)
    columns["LCW"] = metrics.binned_response(truth, table["cluster_E_LCCalib"], RESULT_EDGES)
    first = next(iter(columns.values()))
    index = [
        f"{low:g}–{high:g} GeV (n={count})"
        for low, high, count in first[["low", "high", "count"]].itertuples(index=False)
    ]
    result = pd.concat(
        {
            "median response": pd.DataFrame({k: v["median"] for k, v in columns.items()}),
            "IQR/(2·median)": pd.DataFrame({k: v["resolution"] for k, v in columns.items()}),
        },
        axis=1,
    )
    result.index = index
    return result[first["count"].to_numpy() > 0]


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=8192, help="clusters for the throughput")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="OpenMP/BLAS threads of the baselines (OpenMP stalls on a busy machine)",
    )
    parser.add_argument("--models", nargs="+", help="registry names (default: all)")
    parser.add_argument("--results", type=Path, help="data folder with pi0.root and pipm.root")
    parser.add_argument("--regressions", nargs="+", default=list(DEFAULT_REGRESSIONS))
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--max-clusters", type=int, help="training clusters per model")
    parser.add_argument("--quick", action="store_true", help="tiny models (a smoke run)")
    parser.add_argument("--out", type=Path, default=HERE / "out" / "models")
    parser.add_argument("--overwrite", action="store_true", help="retrain models already in --out")
    args = parser.parse_args(argv)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        if args.results is None:
            table = throughput(args)
            print(
                f"\nthroughput on {os.cpu_count()} CPU cores ({args.threads} thread(s) for the "
                f"baselines), {args.n} clusters, batch {args.batch_size}, clusters/s:"
            )
            print(table.to_string(float_format=lambda x: f"{x:,.3g}"))
            return
        from threadpoolctl import threadpool_limits

        out = args.out / args.results.resolve().name
        with threadpool_limits(args.threads, user_api="openmp"):  # the BDTs
            table = classification_results(args, out)
        print("\nclassification, test split:")
        print(table.to_string(float_format=lambda x: f"{x:.4f}"))
        for sample in ("pi0", "pipm"):
            with threadpool_limits(args.threads, user_api="openmp"):
                table = regression_results(args, out, sample)
            print(f"\n{sample} regression, test split:")
            print(table.to_string(float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
