"""Benchmark: writing and reading a ClusterTree ntuple with all six images.

Prints clusters/s for writing, whole-file reading and chunked reading of a
file in 10k-entry baskets (calotools' default), and, as baselines in the same
run, the same clusters written in one basket, read in chunks by one iteration
and by separate calls per chunk (as a loader jumping between chunks does).
Target (issue 2): chunked reading ≥ 100k clusters/s on one core.

    python benchmarks/ntuple_io.py [--n 100000] [--compression lz4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import uproot

from calotools import ntuple
from calotools.testing import random_clusters


def timed(function, *args, **kwargs) -> tuple[float, object]:
    start = time.perf_counter()
    result = function(*args, **kwargs)
    return time.perf_counter() - start, result


def chunked_read(path: Path, step_size: int) -> int:
    return sum(len(chunk) for chunk in ntuple.iterate_clusters(path, step_size=step_size))


def random_access_read(path: Path, step_size: int) -> int:
    """Chunks read by separate calls, as a loader that jumps between chunks does."""
    n = 0
    with uproot.open(path) as file:
        tree = file[ntuple.TREE_NAME]
        for start in range(0, tree.num_entries, step_size):
            arrays = tree.arrays(library="np", entry_start=start, entry_stop=start + step_size)
            n += len(arrays["cluster_E"])
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="clusters in the file")
    parser.add_argument("--compression", default="lz4", choices=["lz4", "zstd", "zlib"])
    parser.add_argument("--step", type=int, default=ntuple.DEFAULT_BASKET_SIZE, help="chunk size")
    args = parser.parse_args()

    clusters = random_clusters(args.n, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        baskets = Path(tmp) / "baskets.root"
        one_basket = Path(tmp) / "one_basket.root"
        t_write, _ = timed(ntuple.write_clusters, baskets, clusters, compression=args.compression)
        ntuple.write_clusters(
            one_basket, clusters, compression=args.compression, basket_size=args.n
        )
        t_whole, back = timed(ntuple.read_clusters, baskets)
        assert len(back) == args.n
        t_chunked, n = timed(chunked_read, baskets, args.step)
        t_baseline, _ = timed(chunked_read, one_basket, args.step)
        t_random, _ = timed(random_access_read, baskets, args.step)
        t_random_one, _ = timed(random_access_read, one_basket, args.step)
        size_mb = baskets.stat().st_size / 1e6

    print(f"ntuple I/O, {args.n} clusters, six images, {args.compression}, chunks of {args.step}")
    print(
        f"  file size                       {size_mb:10.1f} MB ({size_mb * 1e6 / args.n:.0f} B/cluster)"
    )
    print(f"  write                           {args.n / t_write:10.0f} clusters/s")
    print(f"  read whole file                 {args.n / t_whole:10.0f} clusters/s")
    print(f"  read in chunks                  {n / t_chunked:10.0f} clusters/s  (target ≥ 100000)")
    print(f"  baseline: chunks, one basket    {n / t_baseline:10.0f} clusters/s")
    print(f"  ratio chunked / baseline        {t_baseline / t_chunked:10.2f}")
    print(f"  separate chunk reads, baskets   {n / t_random:10.0f} clusters/s")
    print(f"  separate chunk reads, one basket{n / t_random_one:10.0f} clusters/s")
    print(f"  ratio baskets / one basket      {t_random_one / t_random:10.2f}")


if __name__ == "__main__":
    main()
