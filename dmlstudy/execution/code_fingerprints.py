"""dvc.yaml's ``fingerprint`` stage: one small file per study loss, ``<out_dir>/<loss>.json``,
holding the fingerprint of the code a run of that loss executes
(:func:`dmlstudy.training.fingerprint.loss_modules`: its own modules and the trainer's, by
meaning, not bytes).

The training stages depend on their loss's file instead of on the source folders: a comment,
docstring or formatting edit, or a sibling loss's edit, reruns only this stage (seconds), whose
files come out the same, so DVC skips the trainings. A regularizer's file covers the base losses
it wraps on every study dataset (``losses.<loss>.base`` and its ``per_dataset`` values). The
ablations' losses get a file too (the ablation stages depend on the whole folder).

    python -m dmlstudy.execution.code_fingerprints params.yaml work/code
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

from dmlstudy.config import StudyConfig, load_config
from dmlstudy.training.fingerprint import TRAINER, loss_modules, modules_fingerprint


def loss_record(config: StudyConfig, loss: str) -> dict[str, Any]:
    """``{"loss", "code", "modules"}`` of ``loss``: the union, over the study's datasets, of the
    modules its runs execute, and their fingerprint (16 hex digits)."""
    modules: dict[str, str] = {}
    for dataset in config.study.datasets:
        modules.update(loss_modules(loss, config.loss_params(dataset, loss)))
    return {
        "loss": loss,
        "code": modules_fingerprint(modules),
        "modules": dict(sorted(modules.items())),
    }


def fingerprinted_losses(config: StudyConfig) -> list[str]:
    """The losses a study of params.yaml trains: ``study.losses``, the profiles' losses (the
    paper-grade study's stages depend on these files too) and those of their ablations."""
    config = config.everything()
    ablation_losses = [config.ablations[name].loss for name in config.study.ablations]
    return list(dict.fromkeys([*config.study.losses, *ablation_losses]))


def write_fingerprints(config: StudyConfig, out_dir: str | Path) -> list[Path]:
    """Write ``<out_dir>/<loss>.json`` for every loss the study trains (the folder holds nothing
    else)."""
    out = Path(out_dir)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    written = []
    for loss in fingerprinted_losses(config):
        path = out / f"{loss}.json"
        path.write_text(json.dumps(loss_record(config, loss), indent=1, sort_keys=True) + "\n")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("params", help="params.yaml")
    parser.add_argument("out_dir", help="folder for <loss>.json (e.g. work/code)")
    args = parser.parse_args(argv)
    written = write_fingerprints(load_config(args.params), args.out_dir)
    print(
        f"{len(written)} code fingerprints ({', '.join(TRAINER)} and each loss) in {args.out_dir}"
    )


if __name__ == "__main__":
    main()
