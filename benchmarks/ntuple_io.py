"""Benchmark: writing and reading a ClusterTree ntuple with all six images.

Prints clusters/s for writing, whole-file reading and chunked reading of a
file in 10k-entry baskets (calotools' default), and, as baselines in the same
run, the same clusters written in one basket, read in chunks by one iteration
and by separate calls per chunk (as a loader jumping between chunks does). Then
the same clusters stored as an RNTuple (plain uproot, 10k-entry clusters), read
whole and in chunks, against the TTree in the same run.
Target (issue 2): chunked reading ≥ 100k clusters/s on one core.

    python benchmarks/ntuple_io.py [--n 100000] [--compression lz4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
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


def write_rntuple(path: Path, clusters: ntuple.Clusters, compression: str, step: int) -> None:
    """The clusters as an RNTuple, written with plain uproot, one cluster per ``step`` entries."""
    columns = {name: clusters.scalars[name].to_numpy() for name in clusters.scalars}
    columns.update(clusters.images)
    types = {name: np.dtype((v.dtype, v.shape[1:])) for name, v in columns.items()}
    codec = {"lz4": uproot.LZ4(1), "zstd": uproot.ZSTD(1), "zlib": uproot.ZLIB(1)}[compression]
    with uproot.recreate(path, compression=codec) as file:
        tree = file.mkrntuple(ntuple.TREE_NAME, types)
        for start in range(0, len(clusters), step):
            tree.extend({name: v[start : start + step] for name, v in columns.items()})


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
        rntuple = Path(tmp) / "rntuple.root"
        write_rntuple(rntuple, clusters, args.compression, ntuple.DEFAULT_BASKET_SIZE)
        t_whole_rn, back_rn = timed(ntuple.read_clusters, rntuple)
        assert len(back_rn) == args.n
        t_chunked_rn, n_rn = timed(chunked_read, rntuple, args.step)

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
    print(f"  RNTuple: read whole file        {args.n / t_whole_rn:10.0f} clusters/s")
    print(f"  RNTuple: read in chunks         {n_rn / t_chunked_rn:10.0f} clusters/s")
    print(f"  ratio RNTuple / TTree, chunks   {t_chunked / t_chunked_rn:10.2f}  (above 1: faster)")


if __name__ == "__main__":
    main()
