"""Benchmark: topo-clustering, cluster moments and images on batches of simulated events.

Prints events/s and clusters/s for each step (cells → clusters → moments →
images) on π0 and π± batches, and, as the baseline in the same run, one
``scipy.sparse.csgraph.connected_components`` call on the same batch's graph of
growing cells (the least any batch topo-clustering must do). Events come from
`calotools.sim.simulation` when it is there, else from toy showers made here.
Target (issue "Simulation, part 2"): clustering + moments + images
≥ 2,500 events/s, so that with the simulation the chain passes 1,000 events/s.

    python benchmarks/clustering.py [--n 1000] [--energy 20] [--repeat 3]

Without ``--energy`` the energies are log-uniform in 0.2–2000 GeV, as in the
ATLAS single-pion samples (docs/ntuple-format.md, "Samples").
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import sparse
from scipy.sparse import csgraph

from calotools import geometry
from calotools.sim.cells import CellBatch, LayerCells, Window
from calotools.sim.clustering import ClusteringConfig, neighbour_edges, topo_cluster
from calotools.sim.images import cluster_images
from calotools.sim.moments import cluster_moments

# Toy showers, only when calotools.sim.simulation is missing: Cauchy-like lateral
# profiles with fixed layer shares, noise of docs/physics.md §2.
_TOY_NOISE = {"PreSamplerB": 0.03, "EMB1": 0.015, "EMB2": 0.025, "EMB3": 0.02}
_TOY_SHARES = {
    "pi0": (0.03, 0.30, 0.60, 0.05, 0.015, 0.005, 0.0),
    "pi+": (0.02, 0.08, 0.20, 0.05, 0.30, 0.30, 0.05),
}


def toy_batch(particle: str, n: int, energy: float | None, seed: int) -> CellBatch:
    rng = np.random.default_rng(seed)
    energy = (
        np.exp(rng.uniform(np.log(0.2), np.log(2000.0), n))
        if energy is None
        else np.full(n, energy)
    )
    window = Window()
    eta, phi = rng.uniform(-0.6, 0.6, n), rng.uniform(-np.pi, np.pi, n)
    eta_low, phi_low = window.origin(eta, phi)
    layers = {}
    for lay, share in zip(geometry.LAYERS, _TOY_SHARES[particle], strict=True):
        n_eta, n_phi = window.shape(lay.name)
        scale = 0.06 if lay.name.startswith("Tile") else (0.02 if particle == "pi0" else 0.05)
        edges_eta = eta_low[:, None] + np.arange(n_eta + 1) * lay.deta - eta[:, None]
        edges_phi = geometry.wrap_phi(
            phi_low[:, None] + np.arange(n_phi + 1) * lay.dphi - phi[:, None]
        )
        f_eta = np.diff(np.arctan(edges_eta / scale), axis=1) / np.pi
        f_phi = np.diff(np.arctan(edges_phi / scale), axis=1) / np.pi
        truth = energy[:, None, None] * share * f_eta[:, :, None] * f_phi[:, None, :]
        sigma = _TOY_NOISE.get(lay.name, 0.02)
        zero = np.zeros_like(truth)
        layers[lay.name] = LayerCells(
            lay, truth + rng.normal(0.0, sigma, truth.shape), sigma, truth, zero, zero, zero
        )
    zero = np.zeros(n)
    return CellBatch(
        window, eta_low, phi_low, layers, energy, eta, phi,
        np.full(n, 111 if particle == "pi0" else 211), np.arange(n), zero, zero, zero, zero,
    )  # fmt: skip


def make_batch(
    particle: str, n: int, energy: float | None, seed: int
) -> tuple[CellBatch, float, str]:
    """A batch, the seconds the simulation took (nan for toys), and its source."""
    try:
        from calotools.sim.config import SimulationConfig
        from calotools.sim.simulation import simulate_batch
    except ImportError:
        return toy_batch(particle, n, energy, seed), float("nan"), "toy showers"
    spectrum = {} if energy is None else {"e_min": energy, "e_max": energy}
    config = SimulationConfig(particle=particle, n_events=n, seed=seed, **spectrum)
    start = time.perf_counter()
    batch = simulate_batch(config, 0, n)
    return batch, time.perf_counter() - start, "calotools.sim.simulation"


def growing_cell_graph(batch: CellBatch, config: ClusteringConfig) -> sparse.csr_matrix:
    """The batch's block-diagonal graph of cells above the growth threshold."""
    n_cells = batch.window.n_cells
    energy = np.concatenate(
        [batch.layers[lay.name].energy.reshape(len(batch), -1) for lay in geometry.LAYERS], axis=1
    )
    sigma = np.concatenate(
        [
            np.full(np.prod(batch.window.shape(lay.name)), batch.layers[lay.name].noise_sigma)
            for lay in geometry.LAYERS
        ]
    )
    growing = np.abs(energy) > config.growth_threshold * sigma
    edges = neighbour_edges(batch.window)
    event, edge = np.nonzero(growing[:, edges[:, 0]] & growing[:, edges[:, 1]])
    rows, cols = event * n_cells + edges[edge, 0], event * n_cells + edges[edge, 1]
    size = len(batch) * n_cells
    return sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(size, size))


def best_of(repeat: int, function, *args):
    """Smallest wall time of ``repeat`` calls, and the last result."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        result = function(*args)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="events per batch")
    parser.add_argument(
        "--energy", type=float, default=None, help="particle energy (GeV); default log-uniform"
    )
    parser.add_argument("--repeat", type=int, default=3, help="timings keep the best of this many")
    args = parser.parse_args()
    config = ClusteringConfig()

    for particle in ("pi0", "pi+"):
        batch, t_sim, source = make_batch(particle, args.n, args.energy, seed=1)
        t_cluster, clusters = best_of(args.repeat, topo_cluster, batch, config)
        t_moments, _ = best_of(args.repeat, cluster_moments, clusters)
        t_images, _ = best_of(args.repeat, cluster_images, clusters)
        graph = growing_cell_graph(batch, config)
        t_baseline, _ = best_of(args.repeat, csgraph.connected_components, graph, False)
        n_clusters = len(clusters)
        t_reco = t_cluster + t_moments + t_images
        energy = "0.2–2000 GeV log-uniform" if args.energy is None else f"{args.energy:g} GeV"
        print(f"{particle}, {energy}, {args.n} events from {source}")
        print(f"  clusters per event               {n_clusters / args.n:10.2f}")
        print(
            f"  cells per cluster (median)       {np.median(clusters.table['cluster_nCells']):10.0f}"
        )
        for name, seconds in (
            ("topo-clustering", t_cluster),
            ("moments", t_moments),
            ("images", t_images),
        ):
            print(
                f"  {name:32s} {args.n / seconds:10.0f} events/s {n_clusters / seconds:10.0f} clusters/s"
            )
        print(
            f"  clustering + moments + images    {args.n / t_reco:10.0f} events/s  (target ≥ 2500)"
        )
        if np.isfinite(t_sim):
            chain = args.n / (t_sim + t_reco)
            print(f"  simulation + all of the above    {chain:10.0f} events/s  (target ≥ 1000)")
        print(
            f"  baseline: one connected_components on the growing cells {args.n / t_baseline:10.0f} events/s"
        )
        print(f"  ratio topo-clustering / baseline {t_cluster / t_baseline:10.1f}")


if __name__ == "__main__":
    main()
