"""π± energy shares in the LAr and Tile layers, for comparison with ATLAS (issue 14, item 4).

Simulates single π+ at fixed total energies (3, 5, 9, 20, 50, 100, 180 GeV), |η|
uniform in [0.35, 0.55], topo-clusters each event (4-2-0, ``docs/physics.md`` §4)
and prints one table row per energy:

- ``<E_LAr>/E``, ``<E_Tile>/E``: EM-scale energy of the clustered cells in the
  LAr layers (PreSamplerB, EMB1–3) and in the Tile layers (TileBar0–2), over the
  beam energy;
- ``f_LAr``, ``σ(f_LAr)``: mean and spread over events of the per-event LAr share
  E_LAr / (E_LAr + E_Tile);
- ``E/E_beam``, ``rms/mean``, ``q-width``: the EM-scale response (all clustered
  cells), its rms over its mean, and half its 16–84 % interval over its median
  (the resolution of ``docs/conventions.md``);
- ``MIP-like``: the fraction of pions with less than 1.1 GeV (EM scale) in the EM
  layers within ΔR < 0.1 of the track, and ``MIP+HAD`` those that also have
  0.4 < E_HAD(ΔR < 0.1) / p < 0.9: the selection of the ATLAS E/p analyses
  (``docs/pion-validation.md``);
- ``pass LAr``: the fraction whose first inelastic interaction lies beyond the back
  of EMB3, with its binomial error, and ``exp(-λ/λπ)``, what the simulation's own
  stack predicts (λ_LAr · cosh η / λ_π, averaged over the events);
- ``E_LAr(pass)``: the mean LAr energy of the pions that pass the LAr, their MIP signal.

``docs/pion-validation.md`` puts these numbers next to the published ones. To
compare with other code, run it with that code first on the path, e.g. a git
worktree: ``PYTHONPATH=/tmp/old python benchmarks/pion_shares.py``.

    python benchmarks/pion_shares.py [--n 2000] [--seed 11]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
from pathlib import Path

import numpy as np
import pandas as pd

import calotools
from calotools import geometry
from calotools.sim.clustering import ClusteringConfig, topo_cluster
from calotools.sim.config import CHARGED_PION_MASS_GEV, SimulationConfig
from calotools.sim.showers import build_stack
from calotools.sim.simulation import simulate_batch

ENERGIES = (3.0, 5.0, 9.0, 20.0, 50.0, 100.0, 180.0)
# Around η ≈ 0.45, where the 2004 combined test beam put its pions (the brief's
# figure; the test-beam papers themselves could not be read here).
ETA_RANGE = (0.35, 0.55)
# The MIP selection of the ATLAS E/p analysis code (jmrolsson/EoverPAnalysis,
# Root/EoverPHists.cxx): E_EM(ΔR < 0.1) < 1.1 GeV and 0.4 < E_HAD(ΔR < 0.1)/p < 0.9.
MIP_CONE = 0.1
MIP_EM_MAX_GEV = 1.1
MIP_HAD_RANGE = (0.4, 0.9)
# Events per simulate_batch call: keeps the (N, cells) arrays at tens of MB.
_CHUNK = 500
_EM = np.array([lay.is_em for lay in geometry.LAYERS])


def lar_depth_lambda(config: SimulationConfig) -> float:
    """λ_I from the origin to the back of EMB3 at η = 0, dead material in front included."""
    stack = build_stack(config.dead_material)
    return float(stack.lambda_bounds[stack.layer_slices["EMB3"][-1] + 1])


def pion_events(energy: float, n: int, *, seed: int, eta_range=ETA_RANGE) -> pd.DataFrame:
    """One row per simulated π+ of total energy ``energy``: clustered energies and truth.

    Columns: ``e_beam``, ``p`` (momentum), ``eta``, ``e_lar`` and ``e_tile``
    (EM-scale energy of the topo-clustered cells), ``em_cone`` and ``had_cone``
    (the same within ΔR < 0.1 of the track, EM and Tile layers),
    ``first_lambda`` (first interaction, λ_I from the origin along the path),
    ``lar_lambda`` (the back of EMB3 along the same path) and ``em_fraction``.
    """
    config = SimulationConfig(
        particle="pi+",
        n_events=n,
        e_min=energy,
        e_max=energy,
        eta_min=eta_range[0],
        eta_max=eta_range[1],
        seed=seed,
    )
    # Splitting only shares cells between clusters; the set of clustered cells,
    # and so every sum here, is the same without it.
    clustering = ClusteringConfig(split=False)
    depth = lar_depth_lambda(config)
    parts = []
    for start in range(0, n, _CHUNK):
        batch = simulate_batch(config, start, min(n, start + _CHUNK))
        layers, cone = _clustered_layer_energies(batch, clustering)
        parts.append(
            pd.DataFrame(
                {
                    "e_beam": batch.truth_e,
                    "p": np.sqrt(batch.truth_e**2 - CHARGED_PION_MASS_GEV**2),
                    "eta": batch.truth_eta,
                    "e_lar": layers[:, _EM].sum(axis=1),
                    "e_tile": layers[:, ~_EM].sum(axis=1),
                    "em_cone": cone[:, _EM].sum(axis=1),
                    "had_cone": cone[:, ~_EM].sum(axis=1),
                    "first_lambda": batch.extra["first_interaction_lambda"],
                    "lar_lambda": depth * np.cosh(batch.truth_eta),
                    "em_fraction": batch.extra["em_fraction"],
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _clustered_layer_energies(batch, clustering: ClusteringConfig) -> tuple[np.ndarray, np.ndarray]:
    """(N, layers) EM-scale energy of the clustered cells, all and within ΔR < MIP_CONE of the track."""
    clusters = topo_cluster(batch, clustering)
    cells = clusters.cells
    event = cells.cell // clusters.n_cells_per_event
    energy = cells.weight * cells.energy
    d_eta = cells.eta - batch.truth_eta[event]
    d_phi = geometry.wrap_phi(cells.phi - batch.truth_phi[event])
    near = np.hypot(d_eta, d_phi) < MIP_CONE
    n, n_layers = len(batch), len(geometry.LAYERS)
    index = event * n_layers + cells.layer
    every = np.bincount(index, energy, minlength=n * n_layers).reshape(n, n_layers)
    cone = np.bincount(index[near], energy[near], minlength=n * n_layers).reshape(n, n_layers)
    return every, cone


def summarise(events: pd.DataFrame, config: SimulationConfig | None = None) -> dict[str, float]:
    """The row of the printed table for one energy (see the module docstring)."""
    config = config or SimulationConfig()
    e_beam = float(events.e_beam.iloc[0])
    total = events.e_lar + events.e_tile
    response = total / events.e_beam
    q16, median, q84 = np.quantile(response, [0.16, 0.5, 0.84])
    share = (events.e_lar / total)[total > 0]
    mip = events.em_cone < MIP_EM_MAX_GEV
    had = events.had_cone / events.p
    passes = events.first_lambda > events.lar_lambda
    n = len(events)
    return {
        "E (GeV)": e_beam,
        "<E_LAr>/E": events.e_lar.mean() / e_beam,
        "<E_Tile>/E": events.e_tile.mean() / e_beam,
        "f_LAr": share.mean(),
        "σ(f_LAr)": share.std(),
        "E/E_beam": response.mean(),
        "rms/mean": response.std() / response.mean(),
        "q-width": (q84 - q16) / (2.0 * median),
        "MIP-like": mip.mean(),
        "MIP+HAD": (mip & (had > MIP_HAD_RANGE[0]) & (had < MIP_HAD_RANGE[1])).mean(),
        "pass LAr": passes.mean(),
        "± (binomial)": math.sqrt(passes.mean() * (1.0 - passes.mean()) / n),
        "exp(-λ/λπ)": np.exp(-events.lar_lambda / config.pion_interaction_length).mean(),
        "E_LAr(pass)": events.e_lar[passes].mean(),
        "events": n,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="events per energy")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    config = dataclasses.replace(SimulationConfig(), seed=args.seed)
    print(
        f"calotools from {Path(calotools.__file__).parent}; π+ at |η| in {list(ETA_RANGE)}, "
        f"{args.n} events per energy, seed {args.seed}; "
        f"LAr depth {lar_depth_lambda(config):.3f} λ_I at η = 0, "
        f"λ_π = {config.pion_interaction_length} λ_I"
    )
    rows = [summarise(pion_events(e, args.n, seed=args.seed), config) for e in ENERGIES]
    table = pd.DataFrame(rows)
    print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))


if __name__ == "__main__":
    main()
