"""The ``calotools`` command line.

``calotools simulate`` makes simulated samples and the default data set,
``calotools info FILE...`` summarises cluster ntuples, ``calotools train``
trains a registered model (``calotools models`` lists them) and
``calotools demo`` runs the study.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from calotools._argtypes import non_negative_float, positive_int
from calotools.errors import CalotoolsError

__all__ = ["main"]

# The collision-event samples of `calotools.sim.generator` (kept here so that
# `calotools --help` does not import the simulation).
_EVENT_SAMPLES = ("jz0w", "jz1w", "jz2w", "jz3w", "jz4w", "minbias")


def _info(args: argparse.Namespace) -> int:
    from calotools import ntuple

    paths = ntuple.resolve_files(args.files)
    clusters = ntuple.read_clusters(paths, cut=args.cut, entry_stop=args.entry_stop)
    size_mb = sum(path.stat().st_size for path in paths) / 1e6
    print(f"{len(paths)} file(s), {size_mb:.1f} MB, {len(clusters)} clusters", end="")
    print(f" passing {args.cut!r}" if args.cut else "")
    if len(clusters) == 0:
        entries = sum(ntuple.ChunkReader(path, []).num_entries for path in paths)
        why = f"none of their {entries} entries passes the cut" if entries else "no entries"
        print(f"nothing to summarise: {why}")
        return 0
    print(f"images: {', '.join(f'{n}{list(a.shape[1:])}' for n, a in clusters.images.items())}")
    with pd.option_context("display.width", 120, "display.max_rows", 200):
        print(
            clusters.summary()[["count", "mean", "16%", "50%", "84%"]].to_string(
                float_format=lambda x: f"{x:.4g}"
            )
        )
    return 0


def _simulate(args: argparse.Namespace) -> int:
    from calotools.sim import samples

    if args.default is not None:
        data = samples.make_default(
            args.default, n_events=args.n, seed=args.seed, workers=args.workers
        )
        print(f"default data set in {data.folder}")
        return 0
    if args.sample is None or args.out is None:
        print(
            "calotools simulate: error: give --sample and --out, or --default DIR", file=sys.stderr
        )
        return 2
    if args.sample in _EVENT_SAMPLES:
        from calotools.sim import event_samples

        quick = "quick" if samples.quick_mode() else "full"
        event_samples.make_event_sample(
            args.sample,
            args.out,
            n_events=args.n or event_samples.DEFAULT_EVENTS[quick],
            mu=args.mu,
            seed=args.seed,
            lcw=args.lcw,
            pairs=args.pairs,
            workers=args.workers,
        )
        return 0
    if args.pairs and not args.mu:
        print("calotools simulate: error: --pairs needs --mu > 0", file=sys.stderr)
        return 2
    n_events = args.n or samples.DEFAULT_EVENTS["quick" if samples.quick_mode() else "full"]
    common = {
        "n_events": n_events,
        "seed": args.seed,
        "lcw": args.lcw,
        "simulation": {"e_min": args.e_min, "e_max": args.e_max},
        "workers": args.workers,
    }
    if not args.mu:
        samples.make_sample(args.sample, args.out, **common)
        return 0
    from calotools.sim import event_samples

    # The minimum-bias library next to the file, shared by files of one seed.
    n_library = event_samples.LIBRARY_EVENTS["quick" if samples.quick_mode() else "full"]
    out = Path(args.out)
    library = event_samples.library_path_for(out.parent, seed=args.seed, n_events=n_library)
    event_samples.make_pileup_library(
        library, n_events=n_library, seed=args.seed + event_samples.PILEUP_SEED_OFFSET
    )
    samples.make_sample(args.sample, out, mu=args.mu, library=library, **common)
    if args.pairs:
        pair = event_samples.pair_path(out)
        samples.make_sample(args.sample, pair, mu=0.0, library=library, **common)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from calotools import study

    study.run_study(args.notebooks, args.out)
    return 0


def _parser() -> argparse.ArgumentParser:
    from calotools.version import __version__

    parser = argparse.ArgumentParser(
        prog="calotools",
        description="Machine learning on calorimeter topo-cluster images.",
    )
    parser.add_argument("--version", action="version", version=f"calotools {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    info = commands.add_parser("info", help="summarise cluster ntuples (ROOT files)")
    info.add_argument("files", nargs="+", help="files, folders or glob patterns")
    info.add_argument("--cut", help="selection, e.g. 'cluster_E > 0.5 and abs(cluster_Eta) < 0.7'")
    info.add_argument(
        "--entry-stop", type=positive_int, help="read at most this many entries (at least 1)"
    )
    info.set_defaults(run=_info)

    simulate = commands.add_parser(
        "simulate",
        help="simulate a sample (or the default data set) into MLTree ntuples",
        description="Simulate single particles in the ATLAS-like barrel, topo-cluster them, "
        "apply the LCW-style calibration and write ClusterTree files with JSON sidecars. "
        "Set CALOTOOLS_QUICK=1 for small samples.",
    )
    simulate.add_argument(
        "--sample",
        choices=["pi0", "pipm", "gamma", *_EVENT_SAMPLES],
        help="particle gun, or collision events: Pythia 8 dijets in a JZ slice, or minimum bias",
    )
    simulate.add_argument(
        "--n",
        type=positive_int,
        help="number of events (default: 100000, quick: 4000; collision events: 2000, quick: 50)",
    )
    simulate.add_argument(
        "--mu",
        type=non_negative_float,
        default=0.0,
        help="mean number of in-time pile-up interactions <mu> (default 0)",
    )
    simulate.add_argument(
        "--pairs",
        action="store_true",
        help="with --mu: also write the same events without pile-up (OUT_nopileup.root)",
    )
    simulate.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    simulate.add_argument("--out", help="output ROOT file")
    simulate.add_argument("--lcw", help="LCW tables to apply (from --default DIR/lcw_tables.npz)")
    simulate.add_argument("--e-min", type=float, default=0.2, help="lowest energy, GeV")
    simulate.add_argument("--e-max", type=float, default=2000.0, help="highest energy, GeV")
    simulate.add_argument(
        "--workers",
        type=positive_int,
        help="worker processes (default: one per CPU core); the output is the same for any number",
    )
    simulate.add_argument(
        "--default",
        metavar="DIR",
        help="make the default data set in DIR: LCW tables, pi0.root, pipm.root",
    )
    simulate.set_defaults(run=_simulate)

    from calotools import training

    training.add_train_parser(commands)
    training.add_models_parser(commands)

    demo = commands.add_parser(
        "demo",
        help="run the study end to end: default data, every notebook, HTML and figures",
        description="Make (or reuse) the default data set in data/ and execute the numbered "
        "notebooks into OUT/notebooks, with HTML pages in OUT/html and the key figures in "
        "OUT/figures. CALOTOOLS_QUICK=1 runs everything small and fast.",
    )
    demo.add_argument("--notebooks", default="notebooks", help="folder of the notebooks")
    demo.add_argument("--out", default="outputs", help="folder for the results")
    demo.set_defaults(run=_demo)
    return parser


class _CurrentStderr(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is when a message comes (tests and kernels swap it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)


#: Where the command line shows what calotools logs (files made, epochs, …).
_PROGRESS = _CurrentStderr()
_PROGRESS.setFormatter(logging.Formatter("%(message)s"))


def _show_progress() -> None:
    """Send calotools' INFO messages to stderr (once, however often main runs)."""
    logger = logging.getLogger("calotools")
    if _PROGRESS not in logger.handlers:
        logger.addHandler(_PROGRESS)
    logger.setLevel(logging.INFO)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    A `calotools.errors.CalotoolsError` (a file, branch, argument or
    configuration the user can fix) is printed as one line with exit status 2;
    anything else is a bug and keeps its traceback. Ctrl-C ends with one line
    (for ``train``: how to resume) and exit status 130, as shells expect.
    """
    parser = _parser()
    args = parser.parse_args(argv)
    _show_progress()
    try:
        return args.run(args)
    except CalotoolsError as err:
        print(f"calotools {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as err:
        detail = f"; {err}" if str(err) else ""
        print(f"calotools {args.command}: interrupted{detail}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
