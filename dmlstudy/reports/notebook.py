"""The set-up every report notebook starts with (one place, not eight copies).

>>> import logging, pandas as pd
>>> before = len(logging.getLogger("dmlstudy").handlers)
>>> show_in_report(); show_in_report()
>>> len(logging.getLogger("dmlstudy").handlers) - before, pd.get_option("display.max_colwidth")
(1, None)
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import pandas as pd

from dmlstudy.config import StudyConfig, load_config

_HANDLER_NAME = "dmlstudy-report"


def show_in_report() -> None:
    """The package's notices (a replaced run, a resumed one) go to stdout, where the page shows
    them as report text rather than as a stderr block; tables show whole cells. Idempotent."""
    log = logging.getLogger("dmlstudy")
    if not any(h.get_name() == _HANDLER_NAME for h in log.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.set_name(_HANDLER_NAME)
        log.addHandler(handler)
    pd.set_option("display.max_colwidth", None)


def setup(params_file: str | Path) -> StudyConfig:
    """:func:`show_in_report`, then ``params_file`` validated (``load_config``)."""
    show_in_report()
    return load_config(params_file)
