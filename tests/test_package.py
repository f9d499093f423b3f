"""The public face of the package: its names, its layers, its old paths."""

from __future__ import annotations

import ast
import importlib
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import calotools

PACKAGE = Path(calotools.__file__).parent
#: The public API, one list of names per module. A change to it is deliberate:
#: update the file in the same commit (and the README's changelog if it breaks users).
PUBLIC_API = json.loads((Path(__file__).parent / "public_api.json").read_text())

#: The modules from the bottom up: each may import only modules before it. The
#: simulation (calotools.sim) sits on the shared contract (geometry, cuts,
#: ntuple) and below the whole analysis layer.
LAYERS = [
    "calotools._deprecated",
    "calotools._argtypes",
    "calotools.version",
    "calotools.errors",
    "calotools.extras",
    "calotools.atomic",
    "calotools.geometry",
    "calotools.cuts",
    "calotools.ntuple",
    "calotools.testing",
    "calotools.shower_shapes",
    "calotools.sim.generator",
    "calotools.sim.cells",
    "calotools.sim.config",
    "calotools.sim.showers",
    "calotools.sim.simulation",
    "calotools.sim.clustering",
    "calotools.sim.moments",
    "calotools.sim.images",
    "calotools.sim.calibration",
    "calotools.sim.reconstruction",
    "calotools.sim.barrel",
    "calotools.sim.pileup",
    "calotools.sim.workers",
    "calotools.sim.samples",
    "calotools.backend",
    "calotools.layers",
    "calotools.metrics",
    "calotools.adversarial",
    "calotools.jets",
    "calotools.sim.event_samples",
    "calotools.sim.pileup_samples",
    "calotools.stacking",
    "calotools.data",
    "calotools.predictor",
    "calotools.preprocessing",
    "calotools.loaders",
    "calotools.artifacts",
    "calotools.models",
    "calotools.denoising",
    "calotools.baselines",
    "calotools.chain",
    "calotools.loading",
    "calotools.evaluation",
    "calotools.plotting",
    "calotools.interpret",
    "calotools.widgets",
    "calotools.dask_tools",
    "calotools.training",
    "calotools.study",
    "calotools.domain_shift",
    "calotools.pileup_study",
    "calotools.cli",
    "calotools.__main__",
    "calotools.sim",
    "calotools",
]


def run_python(code: str) -> str:
    """What ``code`` prints, run in a fresh interpreter (imports start from nothing)."""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    return result.stdout


def module_files() -> dict[str, Path]:
    files = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        if name != "calotools._version":  # written by setuptools-scm on install
            files[name] = path
    return files


def calotools_imports(path: Path, module: str) -> set[str]:
    """Every calotools module ``module`` imports, anywhere in the file (functions included)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    known = set(module_files())
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1])
                base = f"{base}.{node.module}" if node.module else base
            # `from calotools import data` imports the module calotools.data; a
            # name that is no module (`from calotools import __version__`) the package.
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                found.add(submodule if submodule in known else base)
    return {name for name in found if name in known} - {module}


def test_every_module_has_a_place_in_the_layers():
    assert sorted(module_files()) == sorted(LAYERS)


@pytest.mark.parametrize("module", LAYERS)
def test_a_module_imports_only_the_layers_below_it(module):
    """No import circles and nothing importing upward; the package __init__ is imported by no one."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    imports = calotools_imports(module_files()[module], module)
    upward = sorted(name for name in imports if rank[name] > rank[module])
    assert not upward, f"{module} imports {upward}, which stand above it"
    if module != "calotools.__main__":
        # Importing a package name (`from calotools import x`) is fine; the package's
        # own namespace (`from calotools import __version__`) is not.
        assert "calotools" not in imports or module == "calotools", module


def test_the_simulation_imports_nothing_of_the_analysis_layer():
    contract = {"calotools.geometry", "calotools.cuts", "calotools.ntuple"}
    helpers = {"calotools.errors", "calotools.atomic", "calotools.version", "calotools.extras"}
    for module, path in module_files().items():
        if module.startswith("calotools.sim"):
            outside = {
                m for m in calotools_imports(path, module) if not m.startswith("calotools.sim")
            }
            assert outside <= contract | helpers, (
                f"{module} imports {sorted(outside - contract - helpers)}"
            )


def test_the_public_api_is_pinned():
    """Every module's __all__ (and the packages' namespaces) is what public_api.json says."""
    modules = [m.name for m in pkgutil.walk_packages(calotools.__path__, "calotools.")]
    public = sorted(m for m in modules if not m.rpartition(".")[2].startswith("_"))
    assert sorted(PUBLIC_API) == sorted(["calotools", *public])
    for module in public:
        names = importlib.import_module(module).__all__
        assert sorted(names) == PUBLIC_API[module], f"{module}.__all__ changed"
    assert sorted(dir(calotools)) == PUBLIC_API["calotools"]
    assert sorted(dir(calotools.sim)) == PUBLIC_API["calotools.sim"]


def test_every_public_name_exists_and_has_a_docstring():
    for module, names in PUBLIC_API.items():
        loaded = importlib.import_module(module)
        for name in names:
            value = getattr(loaded, name)
            if callable(value) and not isinstance(value, type(calotools)):
                assert value.__doc__, f"{module}.{name} has no docstring"


def test_import_is_light():
    """`import calotools` does not import TensorFlow (submodules load on first use)."""
    code = "import calotools, sys; print('tensorflow' in sys.modules)"
    assert run_python(code).strip() == "False"


def test_submodules_load_on_first_access():
    """calotools.geometry and calotools.sim.config work after a bare `import calotools`."""
    assert calotools.geometry.layer("EMB2").image_shape == (16, 16)
    assert calotools.sim.config.SimulationConfig().particle == "pi0"
    assert "ntuple" in dir(calotools)


def test_the_package_ships_its_type_information():
    assert (PACKAGE / "py.typed").is_file()


# ---------------------------------------------------------------------------- old paths


def test_old_simulation_paths_import_the_new_modules_with_a_warning():
    """calotools 0.1 had the simulation at the top level; those paths work for one release."""
    code = (
        "import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
        "try:\n"
        "    import calotools.simulation\n"
        "except DeprecationWarning as err:\n"
        "    print(err)\n"
    )
    assert "calotools.simulation is now calotools.sim.simulation" in run_python(code)
    code = (
        "import warnings; warnings.simplefilter('ignore', DeprecationWarning)\n"
        "import calotools, calotools.simulation, calotools.sim.simulation as new\n"
        "from calotools.samples import make_sample\n"
        "from calotools.sim.samples import make_sample as new_make\n"
        "print(calotools.simulation is new, make_sample is new_make, calotools.showers.__name__)\n"
    )
    assert run_python(code).split() == ["True", "True", "calotools.sim.showers"]


def test_moved_functions_are_forwarded_with_a_warning():
    from calotools import interpret, loading, models, plotting

    with pytest.warns(
        DeprecationWarning, match=r"calotools.models.load is now calotools.loading.load"
    ):
        assert models.load is loading.load
    with pytest.warns(DeprecationWarning, match=r"plotting.correlation_maps"):
        assert interpret.plot_correlation_maps is plotting.correlation_maps
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        _ = models.nothing


# ---------------------------------------------------------------------------- installation

ROOT = PACKAGE.parent


def requirement_name(requirement: str) -> str:
    """``"dask[distributed]>=2024.4"`` → ``"dask"``, normalised as pip does."""
    name = requirement.split(";", maxsplit=1)[0]
    for stop in "[<>=!~ ":
        name = name.split(stop)[0]
    return name.strip().lower().replace("_", "-")


def test_the_lock_pins_every_dependency_exactly():
    """requirements.lock (made by `make lock`) has an exact version of everything declared."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    declared = {requirement_name(r) for r in project["dependencies"]}
    for extra, requirements in project["optional-dependencies"].items():
        declared |= {requirement_name(r) for r in requirements if not r.startswith("calotools")}
        assert extra in {"ml", "dask", "notebooks", "events", "all", "test", "dev"}
    lines = [
        line.strip()
        for line in (ROOT / "requirements.lock").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    pinned = {requirement_name(line): line.partition("==")[2] for line in lines}
    assert all("==" in line for line in lines), "the lock pins exact versions only"
    assert declared <= set(pinned), f"not in requirements.lock: {sorted(declared - set(pinned))}"
    assert "calotools" not in pinned
    for requirement in project["dependencies"]:
        assert "==" not in requirement, f"pyproject.toml keeps lower bounds only: {requirement}"


def test_the_extras_cover_the_optional_imports():
    """Every package calotools.extras imports is installed by the extra it names."""
    tomllib = pytest.importorskip("tomllib")
    from calotools import extras

    optional = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    # Packages that come with another one of the extra.
    comes_with = {"distributed": "dask", "nbformat": "nbconvert"}
    for module, extra in extras.EXTRA_OF.items():
        names = {requirement_name(r) for r in optional[extra]}
        assert comes_with.get(module, module).replace("_", "-") in names, (module, extra)
        assert f'pip install "calotools[{extra}]"' == extras.install_command(extra)
