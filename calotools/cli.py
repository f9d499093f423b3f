"""The ``calotools`` command line.

``calotools info FILE...`` summarises cluster ntuples; later subcommands make
the default data set, train models and run the study.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

__all__ = ["main"]


def _info(args: argparse.Namespace) -> int:
    from calotools import ntuple

    paths = ntuple.resolve_files(args.files)
    clusters = ntuple.read_clusters(paths, cut=args.cut, entry_stop=args.entry_stop)
    size_mb = sum(path.stat().st_size for path in paths) / 1e6
    print(f"{len(paths)} file(s), {size_mb:.1f} MB, {len(clusters)} clusters", end="")
    print(f" passing {args.cut!r}" if args.cut else "")
    print(f"images: {', '.join(f'{n}{list(a.shape[1:])}' for n, a in clusters.images.items())}")
    with pd.option_context("display.width", 120, "display.max_rows", 200):
        print(
            clusters.summary()[["count", "mean", "16%", "50%", "84%"]].to_string(
                float_format=lambda x: f"{x:.4g}"
            )
        )
    return 0


def _demo(args: argparse.Namespace) -> int:
    from calotools import ntuple
    from calotools.testing import random_clusters

    # Until the simulation lands, the demo exercises the ntuple round trip on
    # synthetic clusters (random numbers with the schema's shapes, not physics).
    path = ntuple.write_clusters(Path(args.out) / "example.root", random_clusters(args.n))
    print(f"wrote {args.n} synthetic clusters to {path}")
    return _info(argparse.Namespace(files=[str(path)], cut=None, entry_stop=None))


def _parser() -> argparse.ArgumentParser:
    from calotools import __version__

    parser = argparse.ArgumentParser(
        prog="calotools",
        description="Machine learning on calorimeter topo-cluster images.",
    )
    parser.add_argument("--version", action="version", version=f"calotools {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser("info", help="summarise cluster ntuples (ROOT files)")
    info.add_argument("files", nargs="+", help="files, folders or glob patterns")
    info.add_argument("--cut", help="selection, e.g. 'cluster_E > 0.5 and abs(cluster_Eta) < 0.7'")
    info.add_argument("--entry-stop", type=int, help="read at most this many entries")
    info.set_defaults(run=_info)

    demo = commands.add_parser("demo", help="run the study end to end")
    demo.add_argument("--out", default="outputs/demo", help="folder for the results")
    demo.add_argument("--n", type=int, default=2000, help="number of clusters")
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args)
    except (FileNotFoundError, ValueError) as err:
        # Bad input is the user's to fix: say what, without a traceback.
        print(f"calotools {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
