"""``params.yaml`` → typed, validated study settings (pydantic), and the errors that say how to
fix a bad value.

Every notebook of the pipeline starts with :func:`load_config`; ``make study`` and the first
stage of ``dvc repro`` (``check_params``) run it on the whole file, so a bad value (unknown loss or
dataset, quoted number, empty seed list, misspelt key) stops the study before any work, with a
:class:`ParamsError` naming the key and the valid choices (one :func:`did_you_mean` for all).
Modules: ``suggest`` (did you mean), ``errors``, ``checks`` (loss / TrainSettings values),
``sections`` (the strict section models), ``study`` (StudyConfig), ``load``. This package may
import data, losses and training (to validate against them), never dmlstudy.pipeline.
"""

from dmlstudy.config.checks import (
    RESERVED_TRAIN_KEYS,
    check_loss_params,
    check_train_overrides,
    unknown_key,
)
from dmlstudy.config.errors import ParamsError, quoted_scalar_hint
from dmlstudy.config.load import config_from_dict, load_config
from dmlstudy.config.sections import (
    ABLATIONS,
    COARSE_DATASETS,
    DATA_DIR_ENV,
    DATASETS,
    LOSS_SECTION_KEYS,
    AblationSection,
    DataSection,
    DatasetPreset,
    MultimodalSection,
    PrepareSection,
    ProfileSection,
    StudySection,
    split_loss_section,
)
from dmlstudy.config.study import StudyConfig
from dmlstudy.config.suggest import check_choice, did_you_mean
from dmlstudy.config.tuning import TuningSection

__all__ = [
    "ABLATIONS",
    "COARSE_DATASETS",
    "DATASETS",
    "DATA_DIR_ENV",
    "LOSS_SECTION_KEYS",
    "RESERVED_TRAIN_KEYS",
    "AblationSection",
    "DataSection",
    "DatasetPreset",
    "MultimodalSection",
    "ParamsError",
    "PrepareSection",
    "ProfileSection",
    "StudyConfig",
    "StudySection",
    "TuningSection",
    "check_choice",
    "check_loss_params",
    "check_train_overrides",
    "config_from_dict",
    "did_you_mean",
    "load_config",
    "quoted_scalar_hint",
    "split_loss_section",
    "unknown_key",
]
