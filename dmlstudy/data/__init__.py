"""Data layer: dataset indexes, download/verify, uint8 image cache, splits and sampler.

Datasets (``DATASETS``): omniglot, cub200, cars196, sop, inshop — one module each with the
upstream URL, checksum and layout parser. Archives are read from the data directory
``<data_dir>/<name>/`` (``$DMLSTUDY_DATA_DIR`` overrides the argument; may be read-only) or
downloaded into a writable work dir (``$DMLSTUDY_WORK_DIR``, default ~/.cache/dmlstudy).

Data directory layout (file names exactly as published upstream)::

    <data_dir>/omniglot/images_background.zip   images_evaluation.zip
    <data_dir>/cub200/CUB_200_2011.tgz
    <data_dir>/cars196/car_ims.tgz              cars_annos.mat
    <data_dir>/sop/Stanford_Online_Products.zip
    <data_dir>/inshop/img.zip                   list_eval_partition.txt   (manual download)

Local copies are checked by layout and per-split class/image counts; downloads also by md5.
"""

from .cache import prepare_dataset
from .catalog import DATASETS, get_spec, load_index
from .errors import (
    ChecksumError,
    DataError,
    DatasetLayoutError,
    DatasetNotFoundError,
    IndexValidationError,
    PreparedDataError,
)
from .index import INDEX_COLUMNS, validate_index
from .prepared import PreparedDataset
from .sampler import MPerClassSampler, RandomBatchSampler, build_sampler
from .sources import DATA_DIR_ENV, WORK_DIR_ENV, resolve_data_dir
from .splits import assign_validation_split

__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "INDEX_COLUMNS",
    "WORK_DIR_ENV",
    "ChecksumError",
    "DataError",
    "DatasetLayoutError",
    "DatasetNotFoundError",
    "IndexValidationError",
    "MPerClassSampler",
    "PreparedDataError",
    "PreparedDataset",
    "RandomBatchSampler",
    "assign_validation_split",
    "build_sampler",
    "get_spec",
    "load_index",
    "prepare_dataset",
    "resolve_data_dir",
    "validate_index",
]
