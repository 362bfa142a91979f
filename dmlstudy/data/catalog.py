"""The five datasets and :func:`load_index` (locate/download → read layout → validate → count)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from . import cars196, cub200, inshop, omniglot, sop
from .index import INDEX_COLUMNS, check_counts, validate_index
from .sources import DatasetSpec, Reader, default_work_dir, locate_files, resolve_data_dir

DATASETS: dict[str, DatasetSpec] = {
    m.SPEC.name: m.SPEC for m in (omniglot, cub200, cars196, sop, inshop)
}


def get_spec(name: str) -> DatasetSpec:
    """The DatasetSpec called ``name``; a clear error lists the valid names.

    >>> get_spec("omniglot").channels
    1
    """
    if name not in DATASETS:
        raise KeyError(f"unknown dataset {name!r}; valid names: {sorted(DATASETS)}")
    return DATASETS[name]


def open_dataset(
    name: str,
    data_dir: str | Path | None,
    *,
    work_dir: str | Path | None = None,
    download: bool = True,
) -> tuple[pd.DataFrame, Reader]:
    """Index plus a Reader for its image bytes (see :func:`load_index`)."""
    spec = get_spec(name)
    data_dir = resolve_data_dir(data_dir)
    work_dir = Path(work_dir) if work_dir is not None else default_work_dir()
    files = locate_files(spec, data_dir, work_dir, download)
    reader = spec.open(files, work_dir)
    index = spec.build(files, reader)
    extra = [c for c in index.columns if c not in INDEX_COLUMNS]
    index = index[list(INDEX_COLUMNS) + extra].reset_index(drop=True)
    validate_index(index)
    check_counts(index, spec.expected, ", ".join(str(files[f.filename]) for f in spec.files))
    return index, reader


def load_index(
    name: str,
    data_dir: str | Path | None,
    *,
    work_dir: str | Path | None = None,
    download: bool = True,
) -> pd.DataFrame:
    """Retrieval index of dataset ``name`` (contract in :mod:`dmlstudy.data.index`).

    Archives are looked up in ``<data_dir>/<name>/`` (``$DMLSTUDY_DATA_DIR`` overrides
    ``data_dir``), then in ``<work_dir>/downloads/<name>/``, else downloaded there (resumable,
    md5-checked) unless ``download=False``. The layout is parsed and the per-split class and
    image counts must equal the official ones, so a partial dataset is never returned.
    """
    return open_dataset(name, data_dir, work_dir=work_dir, download=download)[0]
