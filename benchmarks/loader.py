"""Benchmark: feeding a small Keras CNN from memory, from the streaming loader and naively.

Trains the same CNN (EMB2 16×16 + log10 E, |η| → dense head, log-energy
regression) on the training split of one ntuple, fed by

(a) in-memory arrays (`calotools.loaders.load_arrays`, then ``model.fit(x, y)``);
(b) the streaming loader (`calotools.loaders.StreamingDataset`);
(c) a naive ``PyDataset`` calling ``uproot.iterate(step_size=batch_size)`` for
    every batch, as the generator of the LLNL report (section 3) does;

and prints the training throughput (clusters/s, after a warm-up) and the CPU
time per cluster (all threads of the process; little affected by other programs
on the machine) of each, and the peak resident memory of (a) and (b).
Throughputs are measured in one process, in rounds alternating (a), (b) and
(c), so that a busy moment on a shared machine hits all three alike; the
ratios are medians of the per-round ratios. Memory is measured in one process
per variant; (b) there streams its whole epoch, so its peak covers the whole
file, and runs again on a file ten times smaller to show that its memory does
not depend on the file size. Targets: (b)/(a) ≥ 0.9, (b) well ahead of (c),
(b) under 2 GB.

The input files are made with `calotools.testing.random_clusters` (the default
cut keeps about two thirds) and kept in ``--out`` for later runs.

    python benchmarks/loader.py [--n 1000000] [--batch-size 512] [--steps 200] [--repeats 3]
    python benchmarks/loader.py --n 200000 --steps 60 --repeats 1     # a quick run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import uproot

from calotools import data, ntuple
from calotools.preprocessing import Preprocessing
from calotools.testing import random_clusters

HERE = Path(__file__).resolve().parent
WRITE_CHUNK = 50_000
WARMUP_STEPS = 20


# ---------------------------------------------------------------------------- inputs


def make_file(path: Path, n: int) -> Path:
    """An ntuple of ``n`` synthetic clusters in 10k-entry baskets (kept if already there)."""
    if path.exists():
        with uproot.open(path) as file:
            if file[ntuple.TREE_NAME].num_entries == n:
                return path
    with ntuple.ClusterWriter(path) as writer:
        for start in range(0, n, WRITE_CHUNK):
            size = min(WRITE_CHUNK, n - start)
            clusters = random_clusters(size, seed=start)
            rng = np.random.default_rng(start)
            # Spread η over the barrel and beyond, so the default cut keeps ~2/3.
            clusters.scalars["cluster_Eta"] = rng.uniform(-1, 1, size).astype(np.float32)
            writer.write(clusters)
    return path


def recipe() -> Preprocessing:
    return Preprocessing(
        layers=("EMB2",), scalars=("log10(cluster_E)", "abs(cluster_Eta)"), target="log_energy"
    )


def prepare(path: Path, out: Path) -> tuple[Path, Path, int]:
    """Select, split and fit the preprocessing; saved for the measuring processes."""
    parts = data.split(data.select({"pipm": path}), seed=0)
    split_path = parts.save(out / f"{path.stem}.split.npz")
    prep = recipe()
    branches = prep.input_branches + prep.target_branches
    prep.fit(chunk for chunk, _ in data.iterate_selection(parts["train"], branches))
    return split_path, prep.save(out / f"{path.stem}.preprocessing.json"), len(parts["train"])


# ---------------------------------------------------------------------------- measuring


def build_model(prep: Preprocessing):
    import keras

    keras.utils.set_random_seed(0)
    image = keras.Input(prep.input_shapes["EMB2"], name="EMB2")
    scalars = keras.Input(prep.input_shapes["scalars"], name="scalars")
    x = keras.layers.Conv2D(16, 3, padding="same", activation="relu")(image)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, padding="same", activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Concatenate()([keras.layers.Flatten()(x), scalars])
    x = keras.layers.Dense(64, activation="relu")(x)
    model = keras.Model({"EMB2": image, "scalars": scalars}, keras.layers.Dense(1)(x))
    model.compile(optimizer="adam", loss="mse")
    return model


def batch_clock():
    """A Keras callback noting the wall and CPU time at the end of every training batch."""
    import keras

    class BatchClock(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []
            self.cpu_times: list[float] = []

        def on_train_batch_end(self, batch, logs=None) -> None:
            self.times.append(time.perf_counter())
            # CPU time of the whole process (TensorFlow's and the loader's threads):
            # unlike wall time, barely changed by other programs on the machine.
            self.cpu_times.append(time.process_time())

    return BatchClock()


def naive_dataset(path: Path, prep: Preprocessing, batch_size: int, first: int = 0):
    """The LLNL-style generator: one ``uproot.iterate`` call per batch, cut applied after.

    Batch ``i`` holds entries from ``(first + i) × batch_size`` on.
    """
    import keras

    from calotools.cuts import evaluate_cut

    class Naive(keras.utils.PyDataset):
        def __init__(self) -> None:
            super().__init__()
            with uproot.open(path) as file:
                self.n_entries = file[ntuple.TREE_NAME].num_entries
            self.branches = list(dict.fromkeys([*prep.branches, "cluster_Eta"]))
            self.sizes: dict[int, int] = {}

        def __len__(self) -> int:
            return self.n_entries // batch_size - first

        def __getitem__(self, index: int):
            start = (first + index) * batch_size
            chunk = next(
                uproot.iterate(
                    f"{path}:{ntuple.TREE_NAME}",
                    self.branches,
                    step_size=batch_size,
                    entry_start=start,
                    entry_stop=start + batch_size,
                    library="np",
                )
            )
            mask = evaluate_cut(data.DEFAULT_CUT, chunk)
            clusters = ntuple.Clusters(
                pd.DataFrame({k: v[mask] for k, v in chunk.items() if v.ndim == 1}),
                {k: v[mask] for k, v in chunk.items() if v.ndim > 1},
            )
            self.sizes[index] = len(clusters)
            return prep.transform(clusters), prep.targets(clusters)

    return Naive()


def fit_rate(model, batch_sizes, steps: int, **fit_options) -> tuple[float, float]:
    """Clusters/s of ``model.fit`` over ``steps`` batches after the warm-up, and CPU µs/cluster."""
    clock = batch_clock()
    model.fit(
        epochs=1, steps_per_epoch=WARMUP_STEPS + steps, callbacks=[clock], verbose=0, **fit_options
    )
    clusters = sum(batch_sizes(i) for i in range(WARMUP_STEPS, WARMUP_STEPS + steps))
    wall = clock.times[-1] - clock.times[WARMUP_STEPS - 1]
    cpu = clock.cpu_times[-1] - clock.cpu_times[WARMUP_STEPS - 1]
    return clusters / wall, cpu / clusters * 1e6


def loader_rate(dataset, batches: range) -> float:
    """Clusters/s of a loader alone (no training): what it could feed a faster model."""
    served, start = 0, time.perf_counter()
    for index in batches:
        served += len(dataset[index][1])
    return served / (time.perf_counter() - start)


def measure_throughput(args: argparse.Namespace) -> dict[str, list[float]]:
    """Training and loader-alone rates of the three feeding methods, in alternating rounds.

    One process, one model: the rounds interleave (a), (b) and (c), so that a
    busy moment on a shared machine hits all three alike.
    """
    from calotools import loaders

    prep = Preprocessing.load(args.preprocessing)
    train = data.Split.load(args.split)["train"]
    arrays = loaders.load_arrays(train, prep)
    model = build_model(prep)
    batch = args.batch_size
    steps = min(args.steps, len(train) // batch - WARMUP_STEPS)
    naive_steps = max(steps // 3, 10)  # (c) is slow; its rate needs fewer batches
    rates: dict[str, list[float]] = {}

    def record(name: str, rate_and_cpu: tuple[float, float]) -> None:
        rates.setdefault(name, []).append(rate_and_cpu[0])
        rates.setdefault(f"{name}_cpu", []).append(rate_and_cpu[1])

    for round_number in range(args.repeats):
        record(
            "memory",
            fit_rate(
                model,
                lambda i: batch,
                steps,
                x=arrays.inputs,
                y=arrays.targets,
                batch_size=batch,
                shuffle=True,
            ),
        )
        streaming = loaders.StreamingDataset(train, prep, batch_size=batch, seed=round_number)
        record("streaming", fit_rate(model, lambda i: batch, steps, x=streaming, shuffle=False))
        first = round_number * (WARMUP_STEPS + naive_steps)
        naive = naive_dataset(Path(args.file), prep, batch, first)
        record(
            "naive",
            fit_rate(
                model, lambda i, naive=naive: naive.sizes[i], naive_steps, x=naive, shuffle=False
            ),
        )
    in_memory = loaders.ArrayDataset(arrays, batch_size=batch)
    streaming = loaders.StreamingDataset(train, prep, batch_size=batch, seed=99)
    naive = naive_dataset(Path(args.file), prep, batch, len(train) // batch // 2)
    rates["memory_loader"] = [loader_rate(in_memory, range(min(len(in_memory), 500)))]
    rates["streaming_loader"] = [loader_rate(streaming, range(min(len(streaming), 500)))]
    rates["naive_loader"] = [loader_rate(naive, range(min(len(naive), 50)))]
    return rates


def measure_memory(args: argparse.Namespace) -> dict[str, float]:
    """Peak resident memory of training with (a) or (b); (b) then streams the whole epoch."""
    from calotools import loaders

    prep = Preprocessing.load(args.preprocessing)
    train = data.Split.load(args.split)["train"]
    model = build_model(prep)
    steps = min(WARMUP_STEPS + args.steps, len(train) // args.batch_size)
    if args.variant == "memory":
        arrays = loaders.load_arrays(train, prep)
        model.fit(
            arrays.inputs,
            arrays.targets,
            batch_size=args.batch_size,
            steps_per_epoch=steps,
            verbose=0,
        )
    else:
        dataset = loaders.StreamingDataset(train, prep, batch_size=args.batch_size)
        model.fit(dataset, steps_per_epoch=steps, shuffle=False, verbose=0)
        # The rest of the epoch through the loader: its memory over the whole file.
        for index in range(steps, len(dataset)):
            dataset[index]
    return {"peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(variant: str, file: Path, split: Path, prep: Path, args) -> dict:
    """Run one measurement in a fresh process and return what it printed."""
    command = [
        sys.executable,
        __file__,
        "--variant",
        variant,
        "--file",
        str(file),
        "--split",
        str(split),
        "--preprocessing",
        str(prep),
        "--batch-size",
        str(args.batch_size),
        "--steps",
        str(args.steps),
        "--repeats",
        str(args.repeats),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in result.stdout.splitlines() if line.startswith("RESULT ")]
    if result.returncode or not lines:
        sys.stderr.write(result.stderr[-4000:])
        msg = f"the {variant} measurement failed (exit {result.returncode})"
        raise RuntimeError(msg)
    return json.loads(lines[-1].removeprefix("RESULT "))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="clusters in the file")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--steps", type=int, default=200, help="timed batches per measurement")
    parser.add_argument("--repeats", type=int, default=3, help="rounds of (a), (b), (c)")
    parser.add_argument("--out", type=Path, default=HERE / "out", help="folder for the files")
    parser.add_argument(
        "--variant", choices=["throughput", "memory", "streaming"], help=argparse.SUPPRESS
    )
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--split", help=argparse.SUPPRESS)
    parser.add_argument("--preprocessing", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.variant == "throughput":
        print("RESULT " + json.dumps(measure_throughput(args)), flush=True)
        return
    if args.variant:
        print("RESULT " + json.dumps(measure_memory(args)), flush=True)
        return

    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    big = make_file(args.out / f"loader_{args.n}.root", args.n)
    small = make_file(args.out / f"loader_{args.n // 10}.root", args.n // 10)
    print(f"input files ready in {time.perf_counter() - start:.0f} s")
    big_split, big_prep, n_train = prepare(big, args.out)
    small_split, small_prep, n_train_small = prepare(small, args.out)

    rates = run_child("throughput", big, big_split, big_prep, args)
    memory = {
        "a": run_child("memory", big, big_split, big_prep, args)["peak_rss_mb"],
        "b": run_child("streaming", big, big_split, big_prep, args)["peak_rss_mb"],
        "b_small": run_child("streaming", small, small_split, small_prep, args)["peak_rss_mb"],
    }
    median = {name: float(np.median(values)) for name, values in rates.items()}
    # Ratios from the rounds, pairwise: both sides measured under the same load.
    b_over_a = np.median(np.divide(rates["streaming"], rates["memory"]))
    b_over_c = np.median(np.divide(rates["streaming"], rates["naive"]))

    print(
        f"\nloader benchmark: {args.n} clusters in the file ({n_train} in the training split), "
        f"batch {args.batch_size}, {os.cpu_count()} cores\n"
        f"training: {args.steps} timed batches after {WARMUP_STEPS} warm-up ((c): a third), "
        f"median of {args.repeats} alternating rounds in one process; "
        "peak RSS: one process per variant"
    )
    header = ("training", "CPU per", "loader alone", "peak RSS")
    units = ("clusters/s", "cluster", "clusters/s", "")
    for line in (header, units):
        print(f"  {'':36s}{line[0]:>12s}{line[1]:>10s}{line[2]:>14s}{line[3]:>12s}")
    rows = (
        ("(a) in-memory arrays", "memory", f"{memory['a']:9.0f} MB"),
        ("(b) streaming loader", "streaming", f"{memory['b']:9.0f} MB"),
        ("(c) naive uproot.iterate per batch", "naive", ""),
    )
    for label, name, peak in rows:
        print(
            f"  {label:36s}{median[name]:12.0f}{median[name + '_cpu']:8.1f}µs"
            f"{median[name + '_loader']:14.0f}{peak}"
        )
    label = f"(b) streaming, file 10× smaller ({n_train_small})"
    print(f"  {label:36s}{'–':>12s}{'–':>10s}{'–':>14s}{memory['b_small']:9.0f} MB")
    ratios = (
        ("(b)/(a) training throughput", b_over_a, "target ≥ 0.9"),
        ("(a)/(b) CPU per cluster", median["memory_cpu"] / median["streaming_cpu"], ""),
        ("(b)/(c) training throughput", b_over_c, "target ≫ 1"),
        ("(b)/(c) loader alone", median["streaming_loader"] / median["naive_loader"], ""),
        ("(b)/(a) peak memory", memory["b"] / memory["a"], ""),
        ("(b) peak memory, big / small file", memory["b"] / memory["b_small"], "target ≈ 1"),
    )
    for label, value, target in ratios:
        print(f"  ratio {label:34s}{value:8.2f}  {target}")
    verdict = "under" if memory["b"] < 2048 else "OVER"
    print(f"  (b) peak memory {memory['b']:.0f} MB: {verdict} the 2 GB target")
    print(
        "  per round, (a) (b) (c) clusters/s: "
        + "; ".join(
            " ".join(f"{rates[name][r]:.0f}" for name in ("memory", "streaming", "naive"))
            for r in range(args.repeats)
        )
    )


if __name__ == "__main__":
    main()
