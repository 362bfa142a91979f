"""The package's layering, read from the source (ast): every ``dmlstudy`` import, module-level or
inside a function, points down the order below (or within its own layer), and no module imports
another module's private (``_name``) names.

data → models → losses → evaluation → training → plots → config, embed → analysis → study
→ reports → execution → cli (→ notebooks)

What used to be one ``pipeline`` package is four layers, one job each: *analysis* reads finished
runs (tables, paired comparisons, findings; runs are found by ``training.rundir.run_path`` and read
by ``training.outputs``, below it), *study* decides what runs (each run's settings, the checks
before compute, ablations, multi-modal runs, the tuning campaign; it uses analysis to compare arms),
*reports* renders pages from both, *execution* runs notebooks, stages, the fan-out and the
paper-grade study, and may call all of them.

Evaluation sits below training: validation MAP@R selects a run's best epoch, and evaluation
knows nothing of training (it imports nothing else from dmlstudy).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dmlstudy"
LAYERS = [
    ("data",),
    ("models",),
    ("losses",),
    ("evaluation",),
    ("training",),
    ("plots",),
    ("config", "embed"),  # config validates against data/losses/training; embed runs checkpoints
    ("analysis",),  # what finished runs say
    ("study",),  # what runs, checked before compute (compares arms through analysis)
    ("reports",),  # pages and tables
    ("execution",),  # notebooks, stages, fan-out, the paper-grade study, make compare
    ("cli",),  # the `dmlstudy` command: dispatches to the entry points
]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}
#: A dependency-free leaf every layer may use: the one "did you mean" helper.
LEAF = "dmlstudy.config.suggest"
#: Upward edges that exist on purpose, with the reason; each must still exist (no stale entry).
KNOWN_UPWARD: dict[tuple[str, str], str] = {}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _layer(module: str) -> str | None:
    """``dmlstudy.<layer>[...]`` → layer name (None for the package root)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def _dotted(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str, list[str]]]:
    """(line, absolute module, imported names) of every dmlstudy import in ``path``."""
    here = _dotted(path)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            out.append((node.lineno, module, [a.name for a in node.names]))
        elif isinstance(node, ast.Import):
            out += [(node.lineno, a.name, []) for a in node.names]
    return [(line, m, names) for line, m, names in out if m.split(".")[0] == "dmlstudy"]


def _edges() -> list[tuple[str, int, str, str, str]]:
    """(file, line, source layer, target layer, target module) of every cross-layer import."""
    edges = []
    for path in _modules():
        source = _layer(_dotted(path))
        for line, module, names in _imports(path):
            # `from dmlstudy import config` names the layer in the imported names
            targets = [f"{module}.{n}" for n in names] if module == "dmlstudy" else [module]
            for target in targets:
                layer = _layer(target)
                if source and layer and layer != source:
                    edges.append(
                        (str(path.relative_to(PACKAGE.parent)), line, source, layer, target)
                    )
    return edges


def test_every_layer_is_ranked():
    layers = {_layer(_dotted(p)) for p in _modules()} - {None}
    assert layers == set(RANK), f"unranked: {layers - set(RANK)}, stale: {set(RANK) - layers}"


def test_no_import_runs_upward():
    upward = [
        f"{file}:{line}: {source} imports {target}"
        for file, line, source, layer, target in _edges()
        if RANK[layer] > RANK[source]
        and not target.startswith(LEAF)
        and (source, layer) not in KNOWN_UPWARD
    ]
    assert not upward, "imports running upward:\n" + "\n".join(upward)


def test_known_upward_edges_still_exist():
    found = {(source, layer) for _, _, source, layer, _ in _edges()}
    assert set(KNOWN_UPWARD) <= found, f"stale KNOWN_UPWARD: {set(KNOWN_UPWARD) - found}"


def test_every_package_has_a_layer():
    """A new subpackage must be placed in LAYERS (an unplaced one would escape the check)."""
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert packages | modules <= set(RANK), sorted((packages | modules) - set(RANK))


def test_config_never_imports_what_runs_the_study():
    above = {"analysis", "study", "reports", "execution", "cli"}
    bad = [e for e in _edges() if e[2] == "config" and e[3] in above]
    assert not bad, bad


def test_the_suggest_leaf_imports_nothing_from_dmlstudy():
    path = PACKAGE / Path(*LEAF.split(".")[1:]).with_suffix(".py")
    assert _imports(path) == []


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_public_names_cross_modules(path):
    private = [
        f"line {line}: from {module} import {name}"
        for line, module, names in _imports(path)
        for name in names
        if name.startswith("_") and module != _dotted(path)
    ]
    assert not private, f"{path.name} imports private names: {private}"


def test_the_checker_sees_an_upward_import(tmp_path, monkeypatch):
    """The walk must be able to fail: a data module importing the study is reported, and so is
    analysis importing the study (the run-folder paths that once pulled it upward)."""
    fake = tmp_path / "dmlstudy"
    (fake / "data").mkdir(parents=True)
    (fake / "study").mkdir()
    (fake / "analysis").mkdir()
    (fake / "data" / "x.py").write_text("def f():\n    from dmlstudy.study import runs\n")
    (fake / "study" / "y.py").write_text("from ..data import x\n")
    (fake / "analysis" / "z.py").write_text("from dmlstudy.study.runs import run_path\n")
    monkeypatch.setitem(globals(), "PACKAGE", fake)
    edges = _edges()
    assert ("dmlstudy/data/x.py", 2, "data", "study", "dmlstudy.study") in edges
    assert ("dmlstudy/study/y.py", 1, "study", "data", "dmlstudy.data") in edges
    with pytest.raises(AssertionError, match=r"analysis imports dmlstudy\.study\.runs"):
        test_no_import_runs_upward()
    with pytest.raises(AssertionError, match=r"data imports dmlstudy\.study"):
        test_no_import_runs_upward()
