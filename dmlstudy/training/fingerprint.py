"""What a run's result depends on besides its settings: the training code and the prepared data.

DVC reruns a training stage when its code or prepared-data dependency changes; the run folder is
persistent (``persist: true``), so the trainer itself must tell such a rerun from a resume:
a run folder is reused or resumed only if these fingerprints (stored in ``checkpoint.pt`` and
``metrics.json`` as ``inputs``) are unchanged too. Library versions (torch, timm) are not
covered, as DVC does not cover them either.

The code fingerprint is one of meaning, not bytes, and of the code a run executes only:

- **meaning**: each module is parsed (``ast``), its docstrings dropped and the tree written back
  by ``ast.unparse``, so comments, docstrings, blank lines and formatting do not count, while any
  change to what runs does (``ast.unparse`` rather than ``ast.dump``: its text does not change
  when a Python release adds a node field, e.g. 3.12's ``type_params``);
- **what runs**: the modules the trainer (:data:`TRAINER`) and the run's loss import,
  transitively, read from their import statements (never imported): the loss's module is the
  one that registers its class (``__module__``), plus the base loss a regularizer wraps
  (``base``). A name imported from a package (``from dmlstudy.losses import build_loss``) counts
  where it is defined, not the package's ``__init__``: ``dmlstudy/losses/__init__.py`` only
  imports every loss module to register it, so a new or edited sibling loss does not count.

``python -m dmlstudy.execution.code_fingerprints`` writes these per loss for DVC (``work/code``).

>>> len(code_fingerprint("contrastive"))
16
>>> "dmlstudy.losses.proxy" in loss_modules("contrastive")
False
"""

from __future__ import annotations

import ast
import functools
import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import dmlstudy
from dmlstudy.data.prepared import file_sha256

#: Subpackages whose source shapes a training's result (what dvc.yaml's ``fingerprint`` stage
#: depends on; the settings mapping aside, which the stored settings cover).
CODE_PACKAGES = ("data", "evaluation", "losses", "models", "training")
#: The trainer's entry module: with what it imports, the code every run executes.
TRAINER = ("dmlstudy.training.loop",)
#: The files of a prepared dataset (dmlstudy.data.prepare_dataset).
PREPARED_FILES = ("meta.json", "index.csv", "images.npy")
INPUT_NAMES = {"code": "training code", "data": "prepared data"}

_PACKAGE = "dmlstudy"


def _root(root: str | Path | None) -> Path:
    """The ``dmlstudy`` package folder whose sources are read (default: the imported one)."""
    return Path(root) if root is not None else Path(dmlstudy.__file__).parent


def _source_file(root: Path, module: str) -> Path | None:
    """``module``'s file under ``root`` (a package's ``__init__.py``), or None."""
    rel = Path(*module.split(".")[1:])
    for path in (root / rel.with_suffix(".py") if rel.parts else None, root / rel / "__init__.py"):
        if path is not None and path.is_file():
            return path
    return None


@functools.cache
def _parse(path: str, size: int, mtime_ns: int) -> tuple[str, tuple[ast.stmt, ...]]:
    """(sha256 of the module's meaning, its import statements), read once per version of it."""
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), path)
    imports = tuple(n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom))
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = node.body[1:] or [ast.Pass()]
    return hashlib.sha256(ast.unparse(tree).encode()).hexdigest(), imports


def _module_info(root: Path, module: str) -> tuple[Path, str, tuple[ast.stmt, ...]] | None:
    path = _source_file(root, module)
    if path is None:
        return None
    st = path.stat()
    return (path, *_parse(str(path.resolve()), st.st_size, st.st_mtime_ns))


def _targets(root: Path, module: str, node: ast.stmt) -> list[tuple[str, str | None]]:
    """What an import statement of ``module`` reaches: ``(module, None)`` for a whole module,
    ``(package, name)`` for a name taken from a package's ``__init__``."""
    if isinstance(node, ast.Import):
        return [(a.name, None) for a in node.names if a.name.split(".")[0] == _PACKAGE]
    assert isinstance(node, ast.ImportFrom)
    source = _source_file(root, module)
    is_package = source is not None and source.name == "__init__.py"
    package = module if is_package else module.rpartition(".")[0]
    if node.level:
        parts = package.split(".")
        base = ".".join(parts[: len(parts) - node.level + 1])
        origin = f"{base}.{node.module}" if node.module else base
    else:
        origin = node.module or ""
    if origin.split(".")[0] != _PACKAGE:
        return []
    out: list[tuple[str, str | None]] = []
    for alias in node.names:
        sub = f"{origin}.{alias.name}"
        if _source_file(root, sub) is not None:
            out.append((sub, None))
        else:
            out.append((origin, alias.name))
    return out


def _reexport(
    root: Path, package: str, name: str, seen: set[tuple[str, str]]
) -> tuple[str, str | None]:
    """Where the name ``name`` of a package ``__init__`` comes from: ``(module, None)`` when it
    re-imports it (followed through further packages), else ``(package, None)``."""
    info = _module_info(root, package)
    if info is None or info[0].name != "__init__.py" or (package, name) in seen:
        return package, None
    seen.add((package, name))
    for node in info[2]:
        if not isinstance(node, ast.ImportFrom):
            continue
        targets = _targets(root, package, node)
        if not targets:  # an import from outside dmlstudy (collections.abc, torch…)
            continue
        for (target, target_name), alias in zip(targets, node.names, strict=True):
            if (alias.asname or alias.name) == name:
                if target_name is None:
                    return target, None
                return _reexport(root, target, target_name, seen)
    return package, None


def module_closure(modules: Iterable[str], *, root: str | Path | None = None) -> dict[str, str]:
    """``{module: sha256 of its meaning}`` of ``modules`` and every dmlstudy module they import,
    transitively (module docstring: names taken from a package count where they are defined)."""
    base = _root(root)
    found: dict[str, str] = {}
    todo = list(modules)
    while todo:
        module = todo.pop()
        if module in found:
            continue
        info = _module_info(base, module)
        if info is None:
            continue
        found[module] = info[1]
        for node in info[2]:
            for target, name in _targets(base, module, node):
                if name is not None:
                    target, _ = _reexport(base, target, name, set())
                todo.append(target)
    return dict(sorted(found.items()))


def _loss_roots(loss: str, loss_params: Mapping[str, Any] | None) -> list[str]:
    """The modules defining ``loss``'s class and, for a regularizer, its base loss's."""
    from dmlstudy.losses.base import get_loss_class, loss_hyperparameters

    params = dict(loss_params or {})
    roots = [get_loss_class(loss).__module__]
    defaults = loss_hyperparameters(loss)
    if "base" in defaults:
        base = params.get("base") or defaults["base"]
        if isinstance(base, str) and base != loss:
            roots += _loss_roots(base, params.get("base_params"))
    return roots


def loss_modules(
    loss: str | None = None,
    loss_params: Mapping[str, Any] | None = None,
    *,
    root: str | Path | None = None,
) -> dict[str, str]:
    """``{module: sha256}`` of the code a run of ``loss`` executes: the trainer's modules and the
    loss's (module docstring); ``loss=None``: those of every registered loss."""
    if loss is None:
        from dmlstudy.losses.base import list_losses

        roots = [m for name in list_losses() for m in _loss_roots(name, None)]
    else:
        roots = _loss_roots(loss, loss_params)
    return module_closure([*TRAINER, *roots], root=root)


def code_fingerprint(
    loss: str | None = None,
    loss_params: Mapping[str, Any] | None = None,
    *,
    root: str | Path | None = None,
) -> str:
    """sha256 (16 hex digits) of :func:`loss_modules`: the names and meaning of the modules a run
    of ``loss`` executes (``None``: any loss, e.g. to check that workers run the same code)."""
    return modules_fingerprint(loss_modules(loss, loss_params, root=root))


def modules_fingerprint(modules: Mapping[str, str]) -> str:
    """sha256 (16 hex digits) of ``{module: sha256 of its meaning}``, in name order."""
    h = hashlib.sha256()
    for module, digest in sorted(modules.items()):
        h.update(module.encode() + b"\0" + digest.encode() + b"\0")
    return h.hexdigest()[:16]


def data_fingerprint(prepared_dir: str | Path) -> str:
    """sha256 (16 hex digits) of the prepared files' contents: the per-file digests that the
    loader's check computed already (:func:`dmlstudy.data.prepared.file_sha256`, once per process
    while a file's size and mtime stay the same), so images.npy is read once, not twice."""
    h = hashlib.sha256()
    for name in PREPARED_FILES:
        h.update(name.encode() + b"\0" + bytes.fromhex(file_sha256(Path(prepared_dir) / name)))
    return h.hexdigest()[:16]


def run_inputs(
    prepared_dir: str | Path,
    loss: str | None = None,
    loss_params: Mapping[str, Any] | None = None,
) -> dict[str, str]:
    """``{"code": ..., "data": ...}`` of a run of ``loss`` on ``prepared_dir``."""
    return {"code": code_fingerprint(loss, loss_params), "data": data_fingerprint(prepared_dir)}
