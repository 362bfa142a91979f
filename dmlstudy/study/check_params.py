"""First pipeline stage: validate the whole ``params.yaml`` before any work is done.

``python -m dmlstudy.study.check_params params.yaml [work/params.ok]`` checks every section
(:func:`dmlstudy.config.load_config`), refuses an unfair comparison made by accident (a study
loss without a search space, or without tuned values where the others have them unless
``study.untuned`` lists it: :func:`check_tuning_coverage`), builds the ``TrainSettings`` of
every run the study will start (study datasets × losses, ablation variants, multi-modal runs)
so that cross-field errors (``batch_size`` not a multiple of ``m_per_class``…) surface here, and
checks that every study dataset's archives are local or downloadable (:func:`check_data`) and
every pretrained backbone's weights are in a local file, the hub cache, or a reachable hub
(:func:`check_weights`; ``HF_HUB_OFFLINE`` forbids the hub).
Everything is checked for every loss and ablation a study of ``params.yaml`` trains: the quick
default's (``study``) and the paper-grade study's (``profiles.paper.losses``/``ablations``).
``make study`` runs it before DVC parses dvc.yaml. With a marker path it writes a constant
marker on success: downstream stages depend on it for ordering only, so a valid params edit
never invalidates them through it.
"""

from __future__ import annotations

import sys
import urllib.parse
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from dmlstudy.config import ParamsError, StudyConfig, load_config
from dmlstudy.data import DataError, DatasetNotFoundError, get_spec
from dmlstudy.data.download import unreachable
from dmlstudy.data.sources import absent_files, missing_files_message
from dmlstudy.losses import build_loss
from dmlstudy.study.edits import check_edits
from dmlstudy.study.run_checks import (
    SplitCounts,
    check_batches,
    check_model_builds,
    check_pretrained_weights,
    key_sources,
    split_counts,
)
from dmlstudy.study.runs import study_runs
from dmlstudy.training.settings import TrainSettings

MARKER = "params.yaml validated by dmlstudy.study.check_params\n"


def _offline_text_encoder(names: list[str]) -> np.ndarray:
    """Stand-in text encoder for the construction check only (no model download/load)."""
    return np.eye(len(names), dtype=np.float32)


def check_loss_builds(s: TrainSettings, where: str) -> None:
    """Build the run's loss on 4 toy classes and walk its epoch schedule: catches combinations
    the constructor or ``schedule`` rejects (e.g. RSW phase2_epochs >= epochs) before training.
    The language loss gets a stand-in text encoder here (its encoder is loaded at training)."""
    params = dict(s.loss_params)
    if s.loss == "language":
        params["encoder"] = _offline_text_encoder
    try:
        loss = build_loss(
            s.loss,
            num_classes=4,
            embedding_dim=s.embedding_dim,
            class_names=["a", "b", "c", "d"],
            **params,
        )
        if s.schedule == "plateau":  # phases follow the lr drops, not a fixed budget
            for drops in range(s.plateau_drops + 1):
                loss.schedule(0, s.epochs, drops)
        else:
            for epoch in range(s.epochs):
                loss.schedule(epoch, s.epochs)
    except (ValueError, TypeError) as exc:
        raise ParamsError(f"{where}: loss {s.loss!r} rejects its settings: {exc}") from None


def built(where: str, make: Callable[[], TrainSettings]) -> TrainSettings:
    """``make()``: merged settings that ``TrainSettings`` rejects raise a ``ParamsError`` naming
    the run (``where``) and each field, not pydantic's bare "1 validation error"."""
    try:
        return make()
    except ValidationError as exc:
        msgs = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}" for e in exc.errors()
        )
        raise ParamsError(f"{where}: the merged training settings are invalid: {msgs}") from None


def check_runs(config: StudyConfig, prepared_root: str | Path | None = "work/prepared") -> int:
    """Build every run's TrainSettings and check it against its dataset's training split and its
    model (:mod:`.run_checks`; counts from ``prepared_root/<dataset>`` when prepared with the
    active settings), for every loss and ablation a study of params.yaml trains
    (:meth:`~dmlstudy.config.StudyConfig.everything`); return how many runs ``config.study``
    (the default pipeline) defines."""
    counts: dict[str, SplitCounts] = {}
    warned: set[str] = set()
    for run in study_runs(config.everything()):
        s = built(run.where, partial(run.settings, config, 0, ".", "."))
        check_loss_builds(s, run.where)
        sources = key_sources(config, run)
        if run.dataset not in counts:
            counts[run.dataset] = split_counts(config, run.dataset, prepared_root)
        for warning in check_batches(s, run.where, counts[run.dataset], sources):
            if warning not in warned:
                warned.add(warning)
                print(f"WARNING: {warning}", file=sys.stderr)
        check_model_builds(s, run.where, get_spec(run.dataset).channels, sources)
    return len(study_runs(config)) * len(config.study.seeds)


def check_weights(config: StudyConfig, probe: Callable[[str], str | None] | None = None) -> None:
    """Every run with ``pretrained: true`` can get its backbone's weights without compute: from
    its ``pretrained_file``, the local hub cache, or a reachable hub (``probe(url)``, once per
    backbone; none under ``HF_HUB_OFFLINE``). One error per backbone and file, all at once
    (:func:`dmlstudy.study.run_checks.check_pretrained_weights`)."""
    seen: dict = {}
    errors: dict[tuple[str, str | None], str] = {}
    for run in study_runs(config.everything()):
        s = built(run.where, partial(run.settings, config, 0, ".", "."))
        channels = get_spec(run.dataset).channels
        try:
            check_pretrained_weights(s, run.where, channels, key_sources(config, run), probe, seen)
        except ParamsError as exc:
            errors.setdefault((s.backbone, str(s.pretrained_file)), str(exc))
    if errors:
        raise ParamsError("\n".join(errors.values()))


def check_campaign(config: StudyConfig) -> int:
    """Build the tuning campaign's runs before any compute: per loss, trial 0 (the published
    values) and both corners of its space, as search trials and at the full protocol (the
    confirmation); trial 0 must fit the space's choices and the budget a full run. Every loss a
    study of params.yaml trains (:meth:`~dmlstudy.config.StudyConfig.everything`)."""
    from dmlstudy.study.campaign import (
        confirm_settings,
        corner_points,
        published_point,
        search_settings,
        subject,
        subjects,
    )

    t, n = config.tuning, 0
    for loss in subjects(config):  # and the ablation arms with their own search space
        subj = subject(config, loss)
        space = subj.space
        space_key = subj.space_at
        published = published_point(config, loss)
        for key, spec in space.items():
            choices = spec.get("choice")
            if choices is not None and key in published and published[key] not in choices:
                raise ParamsError(
                    f"{space_key}: {loss}'s published {key} = {published[key]!r} is not among "
                    f"the choices {choices} (trial 0 runs the published values)"
                )
        low, high = corner_points(space)
        for what, point in (
            (f"trial 0 (the published losses.{subj.loss} values)", published),
            (f"the low corner of {space_key}", low),
            (f"the high corner of {space_key}", high),
        ):
            where = f"tuning search of {loss}: {what} {point} under tuning.loss_params.{loss}"
            s = built(where, partial(search_settings, config, loss, point, ".", "."))
            check_loss_builds(s, where)
            where = f"tuning confirmation of {loss}: {what} at the full protocol"
            full = built(where, partial(confirm_settings, config, loss, point, 0, ".", "."))
            check_loss_builds(full, where)
            n += 1
        if s.epochs > t.epochs_per_loss:
            raise ParamsError(
                f"tuning.epochs_per_loss ({t.epochs_per_loss}) is below the epoch cap of "
                f"{loss}'s runs ({s.epochs}, datasets.{t.dataset}.train.epochs): trial 0 could "
                f"not finish"
            )
    return n


def campaign_command(config: StudyConfig, loss: str) -> str:
    """The command that runs the tuning campaign for ``loss`` alone (merged into the record)."""
    d = config.tuning.dataset
    return (
        f"python -m dmlstudy.study.campaign params.yaml --prepared-dir work/prepared/{d} "
        f"--out-dir work/tuning/{d} --loss {loss}"
    )


def check_tuning_coverage(config: StudyConfig) -> list[str]:
    """No unfair comparison by accident: every loss of ``study.losses`` has a search space
    (``tuning.space.<loss>``; ``{}`` searches ``tuning.space.common`` only), and on each study
    dataset where any of them has tuned values (``losses.<loss>.per_dataset.<dataset>``; an
    empty entry counts: the published values won) every one has them, unless ``study.untuned``
    lists it (it trains at its published values until the campaign has run for it). Return a
    warning per untuned run; a listed loss tuned on every study dataset is an error (stale).
    ``study.losses`` here are every study's (:meth:`~dmlstudy.config.StudyConfig.everything`):
    the paper-grade study's losses are compared too."""
    lists = {"study.losses": config.study.losses} | {
        f"profiles.{name}.losses": p.losses for name, p in config.profiles.items() if p.losses
    }
    config = config.everything()
    study = config.study
    for loss in study.losses:
        if loss not in config.tuning.space:
            where = next(key for key, names in lists.items() if loss in names)
            raise ParamsError(
                f"{where} lists {loss!r} but tuning.space has no {loss} entry: every loss "
                f"of the study is tuned over its own space with the same budget. Add "
                f"tuning.space.{loss} with its hyper-parameters' ranges (margins, scales, e.g. "
                f"'scale: {{log: [8.0, 64.0]}}'; '{loss}: {{}}' searches tuning.space.common "
                f"only), then run the campaign for it: {campaign_command(config, loss)} "
                f"(docs/adding-a-loss.md)"
            )
    warnings = []
    for dataset in study.datasets:
        tuned = [loss for loss in study.losses if dataset in config.tuned_datasets(loss)]
        if not tuned:
            continue  # every loss at its published values: a fair comparison too
        for loss in study.losses:
            if loss in tuned:
                continue
            if loss not in study.untuned:
                raise ParamsError(
                    f"losses.{loss} has no tuned values for {dataset} (losses.{loss}.per_dataset."
                    f"{dataset}) while {', '.join(tuned)} have them: it would train at its "
                    f"published values (and the protocol's lr) against tuned rivals. Run the "
                    f"campaign for it ({campaign_command(config, loss)}) and copy its winner "
                    f"into losses.{loss}.per_dataset.{dataset}, or add {loss} to study.untuned "
                    f"to train it untuned until then (docs/adding-a-loss.md)"
                )
            warnings.append(
                f"{loss} trains untuned on {dataset} (study.untuned) while {len(tuned)} other "
                f"loss(es) have tuned values: not a fair comparison until "
                f"{campaign_command(config, loss)} has run"
            )
    for loss in study.untuned:
        if all(d in config.tuned_datasets(loss) for d in study.datasets):
            raise ParamsError(
                f"study.untuned lists {loss!r} but losses.{loss}.per_dataset has tuned values "
                f"for every study dataset ({', '.join(study.datasets)}): remove it from "
                f"study.untuned"
            )
    return warnings


def check_data(config: StudyConfig, probe: Callable[[str], str | None] = unreachable) -> None:
    """Every dataset of ``study.datasets`` has its files in the data directory or among earlier
    downloads (work directory), or can download them. ``probe(url)`` says why a server cannot be
    reached (None: it can; once per host): offline, the error names every missing file, its URL
    and where to put it, for all datasets at once."""
    data_dir, work_dir = config.data_dir(), config.work_dir()
    offline: dict[str, str | None] = {}
    problems = []
    for name in config.study.datasets:
        spec = get_spec(name)
        missing, reasons = [], set()
        for rf in absent_files(spec, data_dir, work_dir):
            if rf.md5 is None:
                missing.append(rf)
                reasons.add("manual download only")
                continue
            host = urllib.parse.urlsplit(rf.url).netloc
            if host not in offline:
                offline[host] = probe(rf.url)
            if offline[host]:
                missing.append(rf)
                reasons.add(f"not found locally and offline: {offline[host]}")
        if missing:
            problems.append(
                missing_files_message(spec, data_dir, missing, "; ".join(sorted(reasons)))
            )
    if problems:
        raise DatasetNotFoundError("\n".join(problems))


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print(
            "usage: python -m dmlstudy.study.check_params PARAMS_YAML [MARKER_FILE]",
            file=sys.stderr,
        )
        return 2
    try:
        config = load_config(args[0])
        untuned = check_tuning_coverage(config)
        edits = check_edits(config, args[0])
        runs = check_runs(config)
        check_campaign(config)
    except (ParamsError, ValueError, DataError) as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    problems = []  # what the machine lacks: pretrained weights, archives (all at once)
    for check in (check_weights, check_data):
        try:
            check(config)
        except (ParamsError, DataError) as exc:
            problems.append(f"ERROR: {exc}")
    if problems:
        print("\n".join(problems), file=sys.stderr)
        return 1
    if len(args) == 2:
        marker = Path(args[1])
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(MARKER)
    for line in untuned:
        print(f"WARNING: {line}", file=sys.stderr)
    for line in edits:
        print(line, file=sys.stderr)
    print(f"{args[0]}: OK ({runs} training runs)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
