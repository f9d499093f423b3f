"""ATLAS 4-2-0 topo-clustering of simulated cells, vectorised over a batch.

`topo_cluster` turns a `calotools.sim.cells.CellBatch` into topo-clusters the way
athena's ``CaloTopoClusterMaker`` and ``CaloTopoClusterSplitter`` do
(``docs/physics.md`` §4):

1. seeds |E|/σ > 4, growing cells |E|/σ > 2, perimeter cells |E|/σ > 0;
   neighbours ``super3D`` (8 in-layer neighbours plus the overlapping cells of
   the adjacent layers, EMB3 ↔ TileBar0 across the cryostat), the presampler
   does not grow within itself;
2. proto-clusters are the connected components of growing cells that hold a
   seed; a perimeter cell touching two proto-clusters goes to the one whose
   growing cell athena processes first: the earliest generation of the
   breadth-first growth, ties to the most significant seed;
3. clusters with two or more local maxima are split by regrowing from the
   maxima inside the parent; border cells reached by two maxima in the same
   generation are shared with weights w₁ = E₁/(E₁ + r E₂), r = exp(d₁ − d₂).

Every window of a batch has the same cell grid (`calotools.sim.cells.Window`), so
the neighbour relations are one template; the batch is one block-diagonal graph
and each step is a handful of array operations on all events at once.

Examples
--------
>>> clusters = topo_cluster(batch)  # doctest: +SKIP
>>> clusters.table[["event", "clusterIndex", "cluster_E", "cluster_nCells"]]  # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.sparse import csgraph

from calotools import geometry
from calotools.errors import InvalidValueError
from calotools.sim.cells import CellBatch, Window

__all__ = [
    "ClusterCells",
    "ClusteringConfig",
    "TopoClusters",
    "cell_positions",
    "cell_sigma",
    "neighbour_edges",
    "sigma_at",
    "topo_cluster",
]

_LAYER_NAMES = tuple(lay.name for lay in geometry.LAYERS)
_PRESAMPLER = 0  # index of PreSamplerB in geometry.LAYERS


@dataclass(frozen=True)
class ClusteringConfig:
    """Settings of the topo-clustering; saved as JSON next to what it produced.

    Defaults are athena's 4-2-0 barrel settings (``CaloTopoClusterConfig.py``,
    ``CaloTopoClusterSplitter.cxx``). Energies in GeV, lengths in mm.
    """

    seed_threshold: float = 4.0  #: |E|/σ above which a cell seeds a cluster
    growth_threshold: float = 2.0  #: |E|/σ above which a cell keeps growing it
    perimeter_threshold: float = 0.0  #: |E|/σ above which a neighbour joins
    #: Multiplies every cell's σ: the "different noise cut" samples (docs/physics.md §2).
    noise_scale: float = 1.0
    #: Proto-clusters with |E_T| at or below this are dropped (ClusterEtorAbsEtCut).
    cluster_min_abs_et: float = 0.0
    split: bool = True
    split_min_energy: float = 0.5  #: local maxima need E ≥ 500 MeV (EnergyCut)
    split_min_neighbours: int = 4  #: and this many neighbours in the cluster (NumberOfCellsCut)
    split_primary_layers: tuple[str, ...] = ("EMB2", "EMB3")
    #: Layers whose maxima count only where no primary maximum overlaps them.
    split_secondary_layers: tuple[str, ...] = ("EMB1", "TileBar0", "TileBar1", "TileBar2")
    share_border_cells: bool = True  #: ShareBorderCells
    em_shower_scale_mm: float = 50.0  #: EMShowerScale (5 cm) in the shared-cell weights

    def __post_init__(self) -> None:
        if not self.seed_threshold >= self.growth_threshold >= self.perimeter_threshold >= 0:
            msg = (
                "thresholds must satisfy seed ≥ growth ≥ perimeter ≥ 0, got "
                f"{self.seed_threshold}, {self.growth_threshold}, {self.perimeter_threshold}"
            )
            raise InvalidValueError(msg)
        if self.noise_scale <= 0:
            msg = f"noise_scale must be positive, got {self.noise_scale}"
            raise InvalidValueError(msg)
        for name in (*self.split_primary_layers, *self.split_secondary_layers):
            geometry.layer(name)  # raises with the list of valid names
        # JSON gives lists back; keep the dataclass hashable.
        object.__setattr__(self, "split_primary_layers", tuple(self.split_primary_layers))
        object.__setattr__(self, "split_secondary_layers", tuple(self.split_secondary_layers))

    def to_dict(self) -> dict:
        """The settings as plain JSON-compatible values."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, values: dict) -> ClusteringConfig:
        """Settings from `to_dict` output; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            msg = f"unknown clustering settings {sorted(unknown)}; known: {sorted(known)}"
            raise InvalidValueError(msg)
        return cls(**values)

    def to_json(self, path: str | Path | None = None) -> str:
        """The settings as JSON text, also written to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            Path(path).write_text(text + "\n")
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> ClusteringConfig:
        """Settings from JSON text or from a file holding it."""
        text = str(source)
        if not text.lstrip().startswith("{"):
            text = Path(source).read_text()
        return cls.from_dict(json.loads(text))


# ---------------------------------------------------------------------- template


@dataclass(frozen=True)
class _Template:
    """Cell grid and neighbour tables of one window, shared by every event.

    Local cell index = layer offset + i_η · n_φ + i_φ, layers in
    `geometry.LAYERS` order. Fine units: η in the smallest Δη, φ in the
    smallest Δφ; every layer's cell is a whole number of fine units, so
    overlaps are exact.
    """

    n_cells: int
    offsets: np.ndarray  #: (n_layers + 1,) first local index of each layer
    layer: np.ndarray  #: (C,) index into geometry.LAYERS
    eta: np.ndarray  #: (C,) cell-centre η relative to the window's η_low
    phi: np.ndarray  #: (C,) cell-centre φ relative to the window's φ_low
    radius: np.ndarray  #: (C,) the layer's mid radius (mm)
    fine: np.ndarray  #: (C, 4) η_lo, η_hi, φ_lo, φ_hi in fine units
    grow: _Adjacency  #: super3D without presampler–presampler: the clustering graph
    grow_forward: _Adjacency  #: the neighbours of `grow` with a larger local index
    full: _Adjacency  #: super3D: the splitter's graph
    in_layer: _Adjacency  #: the 8 in-layer neighbours (athena all2D), for ISOLATION


@dataclass(frozen=True)
class _Adjacency:
    """Neighbour table of the template cells: (n_cells, max degree), local indices.

    Rows shorter than the maximum are padded with the cell itself: a lookup
    then needs no mask, and a cell is never outside its own cluster.
    """

    table: np.ndarray
    degree: np.ndarray

    @classmethod
    def from_pairs(cls, rows: np.ndarray, cols: np.ndarray, n: int) -> _Adjacency:
        order = np.lexsort((cols, rows))
        rows, cols = rows[order], cols[order]
        degree = np.bincount(rows, minlength=n)
        slot = np.arange(len(rows)) - (np.cumsum(degree) - degree)[rows]
        table = np.repeat(np.arange(n, dtype=np.int32)[:, None], max(int(degree.max()), 1), 1)
        table[rows, slot] = cols
        return cls(table, degree)

    def pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(cell, neighbour) local index pairs, padding left out."""
        rows = np.repeat(np.arange(len(self.table))[:, None], self.table.shape[1], 1)
        real = np.arange(self.table.shape[1]) < self.degree[:, None]
        return rows[real], self.table[real]

    def lookup(self, cells: np.ndarray, n_cells: int) -> np.ndarray:
        """(len(cells), max degree) flat indices of the neighbours of flat ``cells``."""
        local = cells % n_cells
        neighbours = self.table[local].astype(cells.dtype)
        neighbours += (cells - local)[:, None]
        return neighbours


@functools.lru_cache(maxsize=8)
def _template(window: Window) -> _Template:
    shapes = [window.shape(lay.name) for lay in geometry.LAYERS]
    offsets = np.concatenate(([0], np.cumsum([ne * nphi for ne, nphi in shapes])))
    fine_deta = min(lay.deta for lay in geometry.LAYERS)
    fine_nphi = max(lay.n_phi for lay in geometry.LAYERS)
    fine_shape = (
        round(window.width_eta / fine_deta),
        round(window.width_phi * fine_nphi / math.tau),
    )

    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("layer", "eta", "phi", "r", "fine")}
    fine_maps, in_layer_edges = [], []
    for index, (lay, (n_eta, n_phi)) in enumerate(zip(geometry.LAYERS, shapes, strict=True)):
        k_eta, k_phi = round(lay.deta / fine_deta), fine_nphi // lay.n_phi
        ie, ip = (a.ravel() for a in np.meshgrid(np.arange(n_eta), np.arange(n_phi), indexing="ij"))
        parts["layer"].append(np.full(ie.size, index, dtype=np.int8))
        parts["eta"].append((ie + 0.5) * lay.deta)
        parts["phi"].append((ip + 0.5) * lay.dphi)
        parts["r"].append(np.full(ie.size, 0.5 * (lay.r_inner_mm + lay.r_outer_mm)))
        parts["fine"].append(
            np.stack([ie * k_eta, (ie + 1) * k_eta, ip * k_phi, (ip + 1) * k_phi], 1)
        )
        fe, fp = np.meshgrid(np.arange(fine_shape[0]), np.arange(fine_shape[1]), indexing="ij")
        fine_maps.append(offsets[index] + (fe // k_eta) * n_phi + fp // k_phi)
        # The 8 in-layer neighbours; a window of the whole ring wraps around in φ.
        grid = offsets[index] + np.arange(n_eta * n_phi).reshape(n_eta, n_phi)
        for d_eta, d_phi in ((0, 1), (1, -1), (1, 0), (1, 1)):
            if window.wraps_phi:
                a, b = grid[: n_eta - d_eta], np.roll(grid, -d_phi, axis=1)[d_eta:]
            else:
                lo, hi = max(0, -d_phi), n_phi - max(0, d_phi)
                a, b = grid[: n_eta - d_eta, lo:hi], grid[d_eta:, lo + d_phi : hi + d_phi]
            in_layer_edges.append(np.stack([a.ravel(), b.ravel()], 1))
    in_layer = np.concatenate(in_layer_edges)
    # Consecutive layers (PS, EMB1, EMB2, EMB3, Tile0, Tile1, Tile2) touch where
    # their cells overlap in η–φ (athena next/prevInSamp and next/prevSuperCalo).
    across = np.concatenate(
        [np.stack([a.ravel(), b.ravel()], 1) for a, b in itertools.pairwise(fine_maps)]
    )
    n_cells = int(offsets[-1])
    across = np.unique(across[:, 0] * n_cells + across[:, 1])
    across = np.stack([across // n_cells, across % n_cells], 1)
    layer = np.concatenate(parts["layer"])
    ps_pair = (layer[in_layer[:, 0]] == _PRESAMPLER) & (layer[in_layer[:, 1]] == _PRESAMPLER)

    def table(edges: np.ndarray, forward_only: bool = False) -> _Adjacency:
        lo, hi = edges.min(axis=1), edges.max(axis=1)
        if forward_only:
            return _Adjacency.from_pairs(lo, hi, n_cells)
        return _Adjacency.from_pairs(np.concatenate([lo, hi]), np.concatenate([hi, lo]), n_cells)

    grow_edges = np.concatenate([in_layer[~ps_pair], across])
    return _Template(
        n_cells=n_cells,
        offsets=offsets,
        layer=layer,
        eta=np.concatenate(parts["eta"]),
        phi=np.concatenate(parts["phi"]),
        radius=np.concatenate(parts["r"]),
        fine=np.concatenate(parts["fine"]).astype(np.int32),
        grow=table(grow_edges),
        grow_forward=table(grow_edges, forward_only=True),
        full=table(np.concatenate([in_layer, across])),
        in_layer=table(in_layer),
    )


def neighbour_edges(
    window: Window | None = None, *, presampler_in_layer: bool = False
) -> np.ndarray:
    """The window's ``super3D`` neighbour pairs as an (n_edges, 2) array of local cell indices.

    Each undirected pair appears once (smaller index first). Without
    ``presampler_in_layer`` the presampler–presampler pairs are left out, as the
    clustering does (athena RestrictPSNeighbors).
    """
    tpl = _template(window or Window())
    rows, cols = (tpl.full if presampler_in_layer else tpl.grow).pairs()
    keep = cols > rows
    return np.stack([rows[keep], cols[keep]], 1)


# ---------------------------------------------------------------------- results


@dataclass
class ClusterCells:
    """The cell → cluster assignment: one entry per (cluster, cell), sorted by cluster then cell.

    A cell shared by two clusters appears twice with weights summing to 1.
    ``cell`` is the flat index event · n_cells + local index (see `cell_positions`);
    positions are cell centres at the layer's mid radius (mm).
    """

    cluster: np.ndarray  #: (L,) row of the cluster in `TopoClusters.table`
    cell: np.ndarray  #: (L,) flat cell index
    weight: np.ndarray  #: (L,) the cell's weight in that cluster
    energy: np.ndarray  #: (L,) the cell's measured energy, unweighted (GeV)
    layer: np.ndarray  #: (L,) index into geometry.LAYERS
    eta: np.ndarray
    phi: np.ndarray
    x: np.ndarray
    y: np.ndarray
    z: np.ndarray
    offsets: np.ndarray  #: (n_clusters + 1,) entries of cluster k are offsets[k]:offsets[k+1]

    def __len__(self) -> int:
        return len(self.cell)

    def matrix(self, n_cells_total: int) -> sparse.csr_matrix:
        """Weights as a sparse (n_clusters × n_cells_total) matrix: ``M @ flat_energy`` sums clusters."""
        return sparse.csr_matrix(
            (self.weight, self.cell, self.offsets), shape=(len(self.offsets) - 1, n_cells_total)
        )


@dataclass
class TopoClusters:
    """Topo-clusters of a `CellBatch`.

    Attributes
    ----------
    table
        One row per cluster, sorted by event then energy: ``event`` (row in
        the batch), ``eventNumber``, ``clusterIndex`` (rank by energy in the
        event), ``nCluster``, ``cluster_E``, ``cluster_Pt``, ``cluster_Eta``,
        ``cluster_Phi``, ``cluster_nCells`` (docs/ntuple-format.md names).
    cells
        Which cells make each cluster, with weights and positions.
    batch, config
        What was clustered, and how.

    Examples
    --------
    The ntuple row of each cluster, with `calotools.sim.moments` and `calotools.sim.images`:

    >>> scalars = pd.concat([clusters.table, cluster_moments(clusters)], axis=1)  # doctest: +SKIP
    >>> ntuple.Clusters(scalars, cluster_images(clusters))  # doctest: +SKIP
    """

    table: pd.DataFrame
    cells: ClusterCells
    batch: CellBatch
    config: ClusteringConfig

    def __len__(self) -> int:
        return len(self.table)

    @property
    def n_cells_per_event(self) -> int:
        """Cells in one event's window, all layers."""
        return _template(self.batch.window).n_cells


def cell_positions(batch: CellBatch, cells: np.ndarray) -> dict[str, np.ndarray]:
    """η, φ, x, y, z (mm) of the centres of flat cell indices ``cells`` of ``batch``.

    Cells sit at their layer's mid radius on a cylinder: x = r cos φ,
    y = r sin φ, z = r sinh η (``geometry`` radii).
    """
    tpl = _template(batch.window)
    event, local = np.divmod(np.asarray(cells), tpl.n_cells)
    eta = batch.eta_low[event] + tpl.eta[local]
    phi = batch.phi_low[event] + tpl.phi[local]
    radius = tpl.radius[local]
    # cos(a + b) from per-event and per-template-cell factors: numpy's float64
    # cos is ~10× slower than these gathers.
    cos_low, sin_low = np.cos(batch.phi_low)[event], np.sin(batch.phi_low)[event]
    cos_cell, sin_cell = np.cos(tpl.phi)[local], np.sin(tpl.phi)[local]
    return {
        "eta": eta,
        "phi": phi + math.tau * np.floor((math.pi - phi) / math.tau),  # into (−π, π]
        "x": radius * (cos_low * cos_cell - sin_low * sin_cell),
        "y": radius * (sin_low * cos_cell + cos_low * sin_cell),
        "z": radius * np.sinh(eta),
        "layer": tpl.layer[local],
    }


# ---------------------------------------------------------------------- helpers


def _flat_energy(batch: CellBatch, tpl: _Template) -> np.ndarray:
    """(N, n_cells) cell energies in template order."""
    missing = [name for name in _LAYER_NAMES if name not in batch.layers]
    if missing:
        msg = f"the cell batch has no layer(s) {missing}; it has {sorted(batch.layers)}"
        raise InvalidValueError(msg)
    n = len(batch)
    parts = []
    for lay in geometry.LAYERS:
        energy = np.asarray(batch.layers[lay.name].energy)
        if energy.shape != (n, *batch.window.shape(lay.name)):
            msg = (
                f"layer {lay.name} has cells shaped {energy.shape}; the window needs "
                f"{(n, *batch.window.shape(lay.name))}"
            )
            raise InvalidValueError(msg)
        parts.append(energy.reshape(n, -1))
    # Keep the simulation's precision (float32 halves the memory traffic);
    # every sum over cells is done in float64.
    dtype = np.result_type(*parts)
    return np.concatenate(parts, axis=1, dtype=dtype if dtype.kind == "f" else np.float64)


def cell_sigma(batch: CellBatch) -> np.ndarray:
    """Noise σ of each cell of the window, template order (GeV).

    Electronic noise, with the pile-up noise in quadrature where the batch has
    some (`calotools.sim.cells.LayerCells.sigma`). (n_cells,) when it is the
    same for every event; (N, n_cells) when it is not (single particles with
    pile-up: the pile-up σ depends on η, and each window sits at its own η).
    Look cells up with `sigma_at`, which takes either.
    """
    per_event = any(np.ndim(batch.layers[name].sigma) == 3 for name in _LAYER_NAMES)
    n = len(batch)
    parts: list[np.ndarray] = []
    for name in _LAYER_NAMES:
        shape = batch.window.shape(name)
        sigma = np.asarray(batch.layers[name].sigma, dtype=np.float64)
        if per_event:
            parts.append(np.broadcast_to(sigma, (n, *shape)).reshape(n, -1))
        else:
            parts.append(np.broadcast_to(sigma, shape).ravel())
    return np.concatenate(parts, axis=-1)


def sigma_at(sigma: np.ndarray, flat: np.ndarray) -> np.ndarray:
    """σ of the cells at flat indices ``flat`` (event · n_cells + local), from `cell_sigma`.

    Examples
    --------
    >>> sigma_at(np.array([1.0, 2.0]), np.array([0, 3]))
    array([1., 2.])
    >>> sigma_at(np.array([[1.0, 2.0], [3.0, 4.0]]), np.array([0, 3]))
    array([1., 4.])
    """
    if sigma.ndim == 1:
        return sigma[flat % len(sigma)]
    return sigma.reshape(-1)[flat]


def _ranges(starts: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Concatenation of arange(start, stop) for each pair, vectorised."""
    counts = stops - starts
    ends = np.cumsum(counts)
    out = np.arange(int(ends[-1]) if len(ends) else 0, dtype=starts.dtype)
    out += np.repeat(starts - (ends - counts), counts)
    return out


# ---------------------------------------------------------------------- clustering


def topo_cluster(batch: CellBatch, config: ClusteringConfig | None = None) -> TopoClusters:
    """Topo-cluster every event of ``batch`` (athena 4-2-0 with splitting).

    Parameters
    ----------
    batch
        Cells of N events (``calotools.sim.cells``).
    config
        Thresholds and splitter settings; athena's defaults when omitted.

    Returns
    -------
    TopoClusters
        The per-cluster table and the cell → cluster assignment.
    """
    config = config or ClusteringConfig()
    tpl = _template(batch.window)
    energy = _flat_energy(batch, tpl).reshape(-1)
    sigma = cell_sigma(batch) * config.noise_scale
    scratch = np.full(energy.size, -1, dtype=np.int32)  # flat cell → node id, reused

    cells, parent = _proto_clusters(energy, sigma, tpl, config, scratch)
    if config.cluster_min_abs_et > 0:
        eta = batch.eta_low[cells // tpl.n_cells] + tpl.eta[cells % tpl.n_cells]
        keep = _passes_et_cut(parent, energy[cells], eta, config.cluster_min_abs_et)
        cells, parent = cells[keep], np.cumsum(np.bincount(parent[keep]) > 0)[parent[keep]] - 1
    if config.split and len(cells):
        index, cluster, weight = _split(batch, cells, parent, energy, tpl, config, scratch)
        cells = cells[index]
    else:
        cluster, weight = parent, np.ones(len(cells))
    return _assemble(batch, config, cells, cluster, weight, energy)


def _proto_clusters(
    energy: np.ndarray,
    sigma: np.ndarray,
    tpl: _Template,
    config: ClusteringConfig,
    scratch: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Cells of the 4-2-0 proto-clusters (sorted) and their proto-cluster label."""
    n_cells = tpl.n_cells
    index_type = np.int32 if energy.size < 2**31 else np.int64
    growth = np.flatnonzero(
        np.abs(energy).reshape(-1, n_cells) > config.growth_threshold * sigma
    ).astype(index_type)
    significance = np.abs(energy[growth]) / sigma_at(sigma, growth)
    n_growth = len(growth)
    scratch[growth] = np.arange(n_growth, dtype=np.int32)

    # Growing-cell graph: one gather in the template, offset per event. Forward
    # neighbours only (the graph is undirected); padding and others drop out.
    col = scratch[tpl.grow_forward.lookup(growth, n_cells)]
    row, k = np.nonzero(col > np.arange(n_growth, dtype=np.int32)[:, None])
    col = col[row, k]
    graph = sparse.csr_matrix((np.ones(len(row)), (row, col)), shape=(n_growth, n_growth))
    _, component = csgraph.connected_components(graph, directed=False)
    seeded = np.zeros(component.max(initial=-1) + 1, dtype=bool)
    seeded[component[significance > config.seed_threshold]] = True
    kept = np.flatnonzero(seeded[component])

    # athena grows all clusters together, one generation of neighbours at a
    # time, starting from the seeds sorted by |S/N|. A breadth-first search
    # from a virtual source linked to the seeds in that order visits cells in
    # athena's order; a perimeter cell joins the cluster that reaches it first.
    # BFS nodes are the kept cells in cell order, the source is the last node.
    n_kept = len(kept)
    node = np.full(n_growth, -1, dtype=np.int32)
    node[kept] = np.arange(n_kept, dtype=np.int32)
    seed_nodes = np.flatnonzero(significance[kept] > config.seed_threshold)
    seed_nodes = seed_nodes[np.argsort(-significance[kept[seed_nodes]])]
    kept_cells = growth[kept]
    neighbours = tpl.grow.lookup(kept_cells, n_cells)
    target = scratch[neighbours]
    grows = (target >= 0) & (neighbours != kept_cells[:, None])
    # Rows are the BFS nodes in order, so the growing neighbours are the CSR
    # rows as they stand; the source's row keeps the seed order (scipy does
    # not sort a matrix built from its CSR arrays).
    counts = grows.sum(axis=1)
    bfs = sparse.csr_matrix(
        (
            np.ones(int(counts.sum()) + len(seed_nodes)),
            np.concatenate([node[target[grows]], seed_nodes.astype(np.int32)]),
            np.concatenate(([0], np.cumsum(counts), [counts.sum() + len(seed_nodes)])).astype(
                np.int32
            ),
        ),
        shape=(n_kept + 1, n_kept + 1),
    )
    visit = csgraph.breadth_first_order(bfs, n_kept, directed=True, return_predecessors=False)
    rank = np.empty(n_kept + 1, dtype=np.int32)
    rank[visit] = np.arange(len(visit), dtype=np.int32)

    # Perimeter: the non-growing neighbours of kept growing cells above the cut.
    flat = np.flatnonzero(target < 0).astype(index_type)
    row, nb = flat // neighbours.shape[1], neighbours.reshape(-1)[flat]
    scratch[nb] = -2
    perimeter = np.flatnonzero(scratch == -2).astype(index_type)
    if config.perimeter_threshold > 0:
        passes = np.abs(energy[perimeter]) > config.perimeter_threshold * sigma_at(sigma, perimeter)
    else:
        passes = energy[perimeter] != 0
    scratch[perimeter[~passes]] = -1
    perimeter = perimeter[passes]
    scratch[perimeter] = np.arange(len(perimeter), dtype=np.int32)
    target = scratch[nb]
    if not passes.all():
        row, target = row[target >= 0], target[target >= 0]
    first = np.full(len(perimeter), np.iinfo(np.int32).max, dtype=np.int32)
    np.minimum.at(first, target, rank[row])

    # Proto-cluster labels: seeded components renumbered 0, 1, ...
    label = (np.cumsum(seeded) - 1)[component[kept]]
    scratch[growth] = -1
    scratch[perimeter] = -1
    cells = np.concatenate([kept_cells, perimeter])
    labels = np.concatenate([label, label[visit[first]]])
    # Two sorted runs: a stable sort (timsort) merges them in linear time.
    by_cell = np.argsort(cells, kind="stable")
    return cells[by_cell], labels[by_cell]


def _passes_et_cut(label: np.ndarray, e: np.ndarray, eta: np.ndarray, cut: float) -> np.ndarray:
    """Per cell: does its cluster have |E_T| > ``cut``? (athena ClusterEtorAbsEtCut, absolute)."""
    n = int(label.max(initial=-1)) + 1
    abs_e = np.abs(e)
    total = np.bincount(label, abs_e, minlength=n)
    cluster_eta = np.bincount(label, abs_e * eta, minlength=n) / np.where(total > 0, total, 1.0)
    et = np.bincount(label, e, minlength=n) / np.cosh(cluster_eta)
    return (np.abs(et) > cut)[label]


# ---------------------------------------------------------------------- splitting


def _local_maxima(
    cells: np.ndarray,
    parent: np.ndarray,
    e: np.ndarray,
    layer: np.ndarray,
    energy: np.ndarray,
    tpl: _Template,
    config: ClusteringConfig,
    scratch: np.ndarray,
) -> np.ndarray:
    """Indices into ``cells`` of the splitter's local maxima (CaloTopoClusterSplitter.cxx)."""
    primary = np.isin(
        np.arange(len(_LAYER_NAMES)), [_LAYER_NAMES.index(n) for n in config.split_primary_layers]
    )
    secondary = (
        np.isin(
            np.arange(len(_LAYER_NAMES)),
            [_LAYER_NAMES.index(n) for n in config.split_secondary_layers],
        )
        & ~primary
    )
    candidate = np.flatnonzero((e >= config.split_min_energy) & (primary | secondary)[layer])
    neighbours = tpl.full.lookup(cells[candidate], tpl.n_cells)
    in_parent = (scratch[neighbours] == parent[candidate][:, None]) & (
        neighbours != cells[candidate][:, None]
    )
    nb_layer = tpl.layer[neighbours % tpl.n_cells]
    higher = in_parent & (energy[neighbours] >= e[candidate][:, None])
    # A primary maximum must beat its primary neighbours; a secondary one must
    # beat every primary and secondary neighbour (athena's signed-ratio trick).
    blocked = np.where(
        primary[layer[candidate]][:, None],
        higher & primary[nb_layer],
        higher & (primary | secondary)[nb_layer],
    )
    n_in, n_blocked = in_parent.sum(axis=1), blocked.sum(axis=1)
    maxima = candidate[(n_in >= config.split_min_neighbours) & (n_blocked == 0)]
    is_primary = primary[layer[maxima]]
    first, second = maxima[is_primary], maxima[~is_primary]
    if len(second):
        # A secondary maximum is dropped where a primary maximum, or a more
        # energetic secondary one, overlaps it in η–φ in another layer (athena
        # walks the prev/next-sampling neighbours; the energy order is its GPU
        # criterion, which makes the result independent of cell order).
        drop = _overlaps(cells, second, first, tpl, None, e)
        drop |= _overlaps(cells, second, second, tpl, e, e)
        second = second[~drop]
    return np.concatenate([first, second])


def _overlaps(
    cells: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    tpl: _Template,
    e_a: np.ndarray | None,
    e: np.ndarray,
) -> np.ndarray:
    """For each index in ``a``: does a ``b`` cell of the same event overlap it in η–φ?

    With ``e_a`` given, only ``b`` cells with higher energy (ties: lower index) count.
    """
    # Declared: np.divmod gives Any, which searchsorted's stub takes for a scalar.
    event_a: np.ndarray
    event_a, local_a = np.divmod(cells[a], tpl.n_cells)
    event_b, local_b = np.divmod(cells[b], tpl.n_cells)
    by_event = np.argsort(event_b, kind="stable")
    lo = np.searchsorted(event_b[by_event], event_a, side="left")
    hi = np.searchsorted(event_b[by_event], event_a, side="right")
    i = np.repeat(np.arange(len(a)), hi - lo)
    j = by_event[_ranges(lo, hi)]
    fa, fb = tpl.fine[local_a[i]], tpl.fine[local_b[j]]
    hit = (np.maximum(fa[:, 0], fb[:, 0]) < np.minimum(fa[:, 1], fb[:, 1])) & (
        np.maximum(fa[:, 2], fb[:, 2]) < np.minimum(fa[:, 3], fb[:, 3])
    )
    hit &= tpl.layer[local_a[i]] != tpl.layer[local_b[j]]
    if e_a is not None:
        ea, eb = e[a[i]], e[b[j]]
        hit &= (eb > ea) | ((eb == ea) & (b[j] < a[i]))
    return np.bincount(i[hit], minlength=len(a)) > 0


def _claim(
    frontier: np.ndarray,
    key: np.ndarray,
    neighbours: np.ndarray,
    free: np.ndarray,
    label: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One generation of growth from ``frontier`` onto ``free`` nodes.

    athena processes a generation's cells in order of ``key`` (lowest first);
    the first to reach a node claims it, and the first of a different cluster
    in the same generation makes it a shared cell. ``neighbours`` is the
    (n_nodes, degree) node table, padded with the node itself. Returns the
    claimed nodes (ascending), their first and second claimers (−1: none).
    """
    target = np.zeros(len(free), dtype=bool)
    target[neighbours[frontier]] = True
    target = np.flatnonzero(target & free)
    in_frontier = np.zeros(len(free), dtype=bool)
    in_frontier[frontier] = True
    # Each target looks at its own neighbours in the frontier: a dense
    # (targets × degree) argmin instead of a scatter over the edges.
    nb = neighbours[target]
    claims = in_frontier[nb]
    rows = np.arange(len(target))
    first = nb[rows, np.argmin(np.where(claims, key[nb], np.inf), axis=1)]
    other = claims & (label[nb] != label[first][:, None])
    pick = np.argmin(np.where(other, key[nb], np.inf), axis=1)
    second = np.where(other[rows, pick], nb[rows, pick], -1)
    return target, first, second


def _split(
    batch: CellBatch,
    cells: np.ndarray,
    parent: np.ndarray,
    energy: np.ndarray,
    tpl: _Template,
    config: ClusteringConfig,
    scratch: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split clusters around local maxima; returns (index into ``cells``, cluster, weight)."""
    e, layer = energy[cells], tpl.layer[cells % tpl.n_cells]
    scratch[cells] = parent
    maxima = _local_maxima(cells, parent, e, layer, energy, tpl, config, scratch)
    scratch[cells] = -1
    n_parents = int(parent.max()) + 1
    is_split = np.bincount(parent[maxima], minlength=n_parents) >= 2
    kept = ~is_split
    new_parent = np.cumsum(kept) - 1
    if not is_split.any():
        return np.arange(len(cells)), new_parent[parent], np.ones(len(cells))

    # Regrow inside each parent from its maxima, over the super3D graph.
    nodes = np.flatnonzero(is_split[parent])
    n_nodes = len(nodes)
    scratch[cells[nodes]] = np.arange(n_nodes, dtype=np.int32)
    neighbours = tpl.full.lookup(cells[nodes], tpl.n_cells)
    col = scratch[neighbours]
    scratch[cells[nodes]] = -1
    node_parent = parent[nodes]
    own = np.arange(n_nodes)[:, None]
    ok = (col >= 0) & (node_parent[np.maximum(col, 0)] == node_parent[:, None])
    neighbours = np.where(ok, col, own)  # node ids, padded with the node itself
    node_e = e[nodes]
    seeds = np.searchsorted(nodes, maxima[is_split[parent[maxima]]])
    first = np.full(n_nodes, -1)
    second = np.full(n_nodes, -1)
    generation = np.full(n_nodes, -1)
    first[seeds], generation[seeds] = np.arange(len(seeds)), 0
    frontier, step = seeds, 0
    while len(frontier):
        step += 1
        target, by, by2 = _claim(frontier, -node_e, neighbours, first < 0, first)
        first[target], generation[target] = first[by], step
        if config.share_border_cells:
            shared = by2 >= 0
            second[target[shared]] = first[by2[shared]]
            target = target[~shared]
        frontier = target
    # Cells reached only through shared cells become shared with the same pair,
    # grown from the shared cells in the order athena lists them.
    frontier = np.flatnonzero(second >= 0)
    key = np.empty(n_nodes)
    key[frontier] = np.argsort(np.lexsort((-node_e[frontier], generation[frontier])))
    while len(frontier) and (first < 0).any():
        target, by, _ = _claim(frontier, key, neighbours, first < 0, first)
        first[target], second[target] = first[by], second[by]
        key[target] = -node_e[target]
        frontier = target
    n_split = len(seeds)
    rest = first < 0  # unreachable from the maxima: athena's "rest" cluster of the parent
    if rest.any():
        rest_parent = np.unique(parent[nodes[rest]], return_inverse=True)[1].ravel()
        first[rest] = n_split + rest_parent
        n_split += int(rest_parent.max()) + 1

    weight = np.ones(n_nodes)
    is_shared = second >= 0
    if is_shared.any():
        weight[is_shared] = _shared_weights(
            first, second, is_shared, node_e, cell_positions(batch, cells[nodes]), n_split, config
        )
    cluster = new_parent[parent]
    cluster[nodes] = int(kept.sum()) + first
    # Second links right after the first, so that the list stays in cell order.
    copies = np.ones(len(cells), dtype=np.int64)
    copies[nodes[is_shared]] = 2
    index = np.repeat(np.arange(len(cells)), copies)
    out_cluster, out_weight = cluster[index], np.ones(len(index))
    position = np.cumsum(copies) - copies  # first entry of each cell in the output
    out_weight[position[nodes]] = weight
    second_slot = position[nodes[is_shared]] + 1
    out_cluster[second_slot] = int(kept.sum()) + second[is_shared]
    out_weight[second_slot] = 1.0 - weight[is_shared]
    return index, out_cluster, out_weight


def _shared_weights(
    first: np.ndarray,
    second: np.ndarray,
    is_shared: np.ndarray,
    node_e: np.ndarray,
    positions: dict[str, np.ndarray],
    n_split: int,
    config: ClusteringConfig,
) -> np.ndarray:
    """w₁ = E₁/(E₁ + r E₂), r = exp(clip((d₁ − d₂)/scale, ±10)) (CaloTopoClusterSplitter.cxx)."""
    own = ~is_shared
    lab = first[own]
    xyz = np.stack([positions[k] for k in ("x", "y", "z")], 1)
    cluster_e = np.bincount(lab, node_e[own], minlength=n_split)
    abs_e = np.abs(node_e[own])
    norm = np.bincount(lab, abs_e, minlength=n_split)
    # Declared: bincount with weights gives floats; its stub says integers.
    centroid: np.ndarray = np.stack(
        [np.bincount(lab, abs_e * xyz[own, k], minlength=n_split) for k in range(3)], 1
    )
    centroid /= np.where(norm > 0, norm, 1.0)[:, None]
    c1, c2 = first[is_shared], second[is_shared]
    # Clusters with E ≤ 0 count as 1 MeV (athena).
    e1 = np.where(cluster_e[c1] > 0, cluster_e[c1], 1e-3)
    e2 = np.where(cluster_e[c2] > 0, cluster_e[c2], 1e-3)
    d1 = np.linalg.norm(xyz[is_shared] - centroid[c1], axis=1)
    d2 = np.linalg.norm(xyz[is_shared] - centroid[c2], axis=1)
    r = np.exp(np.clip((d1 - d2) / config.em_shower_scale_mm, -10.0, 10.0))
    return e1 / (e1 + e2 * r)


# ---------------------------------------------------------------------- assembly


def _assemble(
    batch: CellBatch,
    config: ClusteringConfig,
    cells: np.ndarray,
    cluster: np.ndarray,
    weight: np.ndarray,
    energy: np.ndarray,
) -> TopoClusters:
    """Kinematics, ranking by energy in each event, and the output containers."""
    tpl = _template(batch.window)
    n = int(cluster.max(initial=-1)) + 1
    cluster_event = np.zeros(n, dtype=np.int64)
    cluster_event[cluster] = cells // tpl.n_cells
    cell_e = energy[cells].astype(np.float64)
    e = np.bincount(cluster, weight * cell_e, minlength=n)
    order = np.lexsort((-e, cluster_event))
    new_id = np.empty(n, dtype=np.int64)
    new_id[order] = np.arange(n)
    cluster = new_id[cluster]
    # Links are in cell order; a stable sort by cluster keeps that inside each
    # cluster (16-bit keys sort by radix, ~10× faster than a comparison sort).
    by_cluster = np.argsort(cluster.astype(np.uint16) if n < 2**16 else cluster, kind="stable")
    cluster, cells, weight = cluster[by_cluster], cells[by_cluster], weight[by_cluster]
    cell_e = cell_e[by_cluster]
    e, cluster_event = e[order], cluster_event[order]

    positions = cell_positions(batch, cells)
    n_cells = np.bincount(cluster, minlength=n)
    starts = np.cumsum(n_cells) - n_cells
    abs_e = np.abs(weight * cell_e)
    # Links are grouped by cluster now: reduceat sums segments (no cluster is empty).
    norm = np.add.reduceat(abs_e, starts) if n else np.zeros(0)
    norm = np.where(norm > 0, norm, 1.0)
    eta = np.add.reduceat(abs_e * positions["eta"], starts) / norm if n else norm
    # φ averaged as offsets from a reference, so that ±π needs no care: the
    # window's centre, or, in a window of the whole ring, each cluster's first cell.
    local_phi = tpl.phi[cells % tpl.n_cells]
    if batch.window.wraps_phi and n:
        reference = local_phi[starts]
        dphi = geometry.wrap_phi(local_phi - np.repeat(reference, n_cells))
    else:
        reference = np.full(n, 0.5 * batch.window.width_phi)
        dphi = local_phi - reference[0] if n else local_phi
    mean_dphi = np.add.reduceat(abs_e * dphi, starts) / norm if n else norm
    phi = geometry.wrap_phi(batch.phi_low[cluster_event] + reference + mean_dphi)

    per_event = np.bincount(cluster_event, minlength=len(batch))
    first_of_event = np.cumsum(per_event) - per_event
    table = pd.DataFrame(
        {
            "event": cluster_event,
            "eventNumber": np.asarray(batch.event_number)[cluster_event],
            "clusterIndex": (np.arange(n) - first_of_event[cluster_event]).astype(np.int32),
            "nCluster": per_event[cluster_event].astype(np.int32),
            "cluster_E": e,
            "cluster_Pt": e / np.cosh(eta),
            "cluster_Eta": eta,
            "cluster_Phi": phi,
            "cluster_nCells": n_cells.astype(np.int32),
        }
    )
    links = ClusterCells(
        cluster=cluster,
        cell=cells,
        weight=weight,
        energy=cell_e,
        offsets=np.concatenate(([0], np.cumsum(n_cells))),
        **positions,
    )
    return TopoClusters(table=table, cells=links, batch=batch, config=config)
