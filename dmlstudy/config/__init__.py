"""``params.yaml`` → typed, validated study settings (pydantic), and the errors that say how to
fix a bad value.

Every notebook of the pipeline starts with :func:`load_config`; ``make study`` and the first
stage of ``dvc repro`` (``check_params``) run it on the whole file, so a bad value (unknown loss or
dataset, quoted number, empty seed list, misspelt key) stops the study before any work, with a
:class:`ParamsError` naming the key and the valid choices (one :func:`did_you_mean` for all).
Modules: ``suggest`` (did you mean), ``errors``, ``checks`` (loss / TrainSettings values),
``sections`` (the strict section models), ``study`` (StudyConfig), ``load``. This package may
import data, losses and training (to validate against them), never what runs the study
(analysis, study, reports, execution).
"""

import importlib
from typing import Any

#: Public name -> defining module. Imported on first use (PEP 562): ``dmlstudy.config.suggest``,
#: which the losses registry imports, must not pull the schema (and with it data, losses and
#: pydantic) into every process that only needs "did you mean".
_EXPORTS = {
    "ABLATIONS": "dmlstudy.config.sections",
    "AblationSection": "dmlstudy.config.sections",
    "COARSE_DATASETS": "dmlstudy.config.sections",
    "DATASETS": "dmlstudy.config.sections",
    "DATA_DIR_ENV": "dmlstudy.config.sections",
    "DataSection": "dmlstudy.config.sections",
    "DatasetPreset": "dmlstudy.config.sections",
    "LOSS_SECTION_KEYS": "dmlstudy.config.sections",
    "MultimodalSection": "dmlstudy.config.sections",
    "ParamsError": "dmlstudy.config.errors",
    "PrepareSection": "dmlstudy.config.sections",
    "ProfileSection": "dmlstudy.config.sections",
    "RESERVED_TRAIN_KEYS": "dmlstudy.config.checks",
    "StudyConfig": "dmlstudy.config.study",
    "StudySection": "dmlstudy.config.sections",
    "TuningSection": "dmlstudy.config.tuning",
    "check_choice": "dmlstudy.config.suggest",
    "check_loss_params": "dmlstudy.config.checks",
    "check_train_overrides": "dmlstudy.config.checks",
    "config_from_dict": "dmlstudy.config.load",
    "did_you_mean": "dmlstudy.config.suggest",
    "load_config": "dmlstudy.config.load",
    "quoted_scalar_hint": "dmlstudy.config.errors",
    "read_params": "dmlstudy.config.load",
    "split_loss_section": "dmlstudy.config.sections",
    "unknown_key": "dmlstudy.config.checks",
}


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
    "read_params",
    "split_loss_section",
    "unknown_key",
]
