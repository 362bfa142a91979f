"""Equal tuning effort for every loss, on validation classes only, on Optuna (protocol v2).

Per loss (``tuning:`` in params.yaml), one Optuna study in one SQLite file (``study_name`` = the
loss; a later, widened space of the loss is a new study ``<loss>.2``, ``<loss>.3``, ...):

1. *search*: trial 0 is the published values (enqueued, never pruned); then a seeded TPE over
   ``tuning.space``. Every trial is one training of the real protocol (plateau stopping, the
   dataset's epoch cap, ``evaluate_test=False``) that reports val MAP@R after every validation
   round to a Hyperband pruner (resource: epochs; several brackets, so that no loss is judged on
   its first epochs alone). The search of a loss ends at ``tuning.epochs_per_loss`` training
   epochs over all its trials, pruned ones included (counted from the storage, so it survives
   restarts): a trial still running then is stopped (``stopped=budget``);
2. *confirm* (study ``<study>:confirm``): the ``confirm_top`` best trials (complete ones and
   ones the budget cut, by their best val MAP@R) at the full protocol on every seed of
   ``confirm_seeds`` (the search run itself serves for the search seed when its settings are the
   protocol's; a cut trial resumes there after its last epoch and finishes); the best mean
   val MAP@R wins and goes to ``losses.<loss>.per_dataset.<dataset>`` (:func:`winner_overrides`).

Storage: the live SQLite file is ``<out-dir>/optuna.db``; after every finished trial a
consistent copy goes to ``tuning.storage`` (committed, ``results/tuning/<dataset>/optuna.db``)
with ``trials.csv``, ``summary.csv`` and ``winners.csv`` beside it (:mod:`.campaign_record`). A
fresh clone starts from the committed copy. A trial left RUNNING by a killed worker is failed
once its heartbeat is stale and retried: it resumes its run folder (training/rundir.py).
``--workers 2`` runs two one-thread worker processes on the same storage (SQLite is the queue;
no scheduler), ``--loss X`` only that loss, merged into the same storage.

An ablation arm whose loss changes shape declares its own search space
(``ablations.<name>.variants.<arm>.space``: DAAL's point proxy) and is tuned like a loss under
the name ``<ablation>/<arm>`` (:func:`subject`): the arm's ``loss_params`` fixed, trial 0 the
published values of its loss, the winner to ``ablations.<name>.variants.<arm>.per_dataset``::

    python -m dmlstudy.study.campaign params.yaml --prepared-dir work/prepared/omniglot \\
        --out-dir work/tuning/omniglot --workers 2
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import warnings
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
from optuna.samplers import TPESampler
from optuna.trial import FrozenTrial, TrialState

from dmlstudy.config import StudyConfig, load_config
from dmlstudy.losses import loss_hyperparameters
from dmlstudy.study.runs import train_overrides, train_settings
from dmlstudy.training.divergence import TrainingDivergedError
from dmlstudy.training.settings import TrainSettings

#: retries of a trial whose worker died (a chain of at most this many retries).
MAX_RETRY = 3
CONFIRM = ":confirm"
#: between the ablation and the arm in the campaign name of an arm with its own search space
ARM = "/"

#: the retry of a dead worker's trial (RetryFailedTrialCallback before optuna 4.9)
_Retry = (
    getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    or optuna.storages.RetryFailedTrialCallback
)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Heartbeats and retries are 'experimental' in optuna (there since 2.9): no warnings."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.filterwarnings("ignore", "Heartbeat of storage", UserWarning)
        yield


#: ``trainer(settings, on_epoch) -> metrics``: one training (dmlstudy.training.train).
Trainer = Callable[[TrainSettings, Callable[[dict[str, Any]], None] | None], dict[str, Any]]


def _train(settings: TrainSettings, on_epoch: Callable[[dict[str, Any]], None] | None) -> dict:
    from dmlstudy.training import train

    return train(settings, on_epoch=on_epoch)


# --- the space --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Subject:
    """What one campaign name tunes: a loss (``name`` = ``loss``), or an ablation arm with its own
    search space (``<ablation>/<arm>``), trained as ``loss`` with the arm's ``arm_params`` fixed.
    The winner goes to ``<writes_to>.<dataset>``; params.yaml declares the space at ``space_at``."""

    name: str
    loss: str
    space: dict[str, dict[str, list[Any]]]
    arm_params: dict[str, Any]
    writes_to: str
    space_at: str


def subject(config: StudyConfig, name: str) -> Subject:
    """The loss or ablation arm a campaign name tunes (every study of params.yaml: the paper
    study's ablations too); an arm without a search space of its own is refused, naming those
    that have one."""
    if ARM not in name:
        return Subject(
            name,
            name,
            config.tuning.loss_space(name),
            {},
            f"losses.{name}.per_dataset",
            f"tuning.space.{name}",
        )
    from dmlstudy.study.ablation import tuning_targets

    targets = {t.name: t for t in tuning_targets(config.everything())}
    if name not in targets:
        raise ValueError(
            f"{name!r} is no ablation arm with a search space of its own "
            f"(ablations.<name>.variants.<arm>.space); valid: {', '.join(targets) or 'none'}"
        )
    t = targets[name]
    return Subject(name, t.loss, t.space, dict(t.loss_params), t.writes_to, t.space_at)


def subjects(config: StudyConfig) -> list[str]:
    """Every campaign name of params.yaml's studies: their losses, then the ablation arms with
    their own search space (what the campaign tunes when no ``--loss`` is given)."""
    from dmlstudy.study.ablation import tuning_targets

    every = config.everything()
    return [*every.study.losses, *(t.name for t in tuning_targets(every))]


def base_tuned_train(config: StudyConfig, dataset: str, loss: str) -> dict[str, Any]:
    """The training values the campaign chose for the base of ``loss`` on ``dataset``
    (``losses.<base>.per_dataset.<dataset>.train``; direction and language are a term over a base
    loss, ``losses.<loss>.base``), or {} for a loss without a base."""
    base = config.published_loss_params(loss).get("base")
    if not base:
        return {}
    tuned = config.loss_train(dataset, base)
    untuned = config.loss_train(dataset, base, tuned=False)
    return {k: v for k, v in tuned.items() if k not in untuned or untuned[k] != v}


def published_point(config: StudyConfig, name: str) -> dict[str, Any]:
    """Trial 0: every dimension of the space at its published value — ``train.<field>`` the
    protocol's (the dataset's training settings with the loss's own, untuned; for a term over a
    tuned base, direction and language, the base's tuned ones: the published term starts from
    the base as the study trains it), a loss hyper-parameter the arm's fixed one,
    ``losses.<loss>`` or else the constructor's default."""
    dataset = config.tuning.dataset
    subj = subject(config, name)
    loss = subj.loss
    protocol = {
        **train_overrides(config, dataset, loss, tuned=False),
        **base_tuned_train(config, dataset, loss),
    }
    published = {
        **loss_hyperparameters(loss),
        **config.published_loss_params(loss),
        **subj.arm_params,
    }
    out: dict[str, Any] = {}
    for key in subj.space:
        if key.startswith("train."):
            field = key.removeprefix("train.")
            out[key] = protocol.get(field, TrainSettings.model_fields[field].default)
        elif published.get(key) is not None:
            out[key] = published[key]
    return out


def corner_points(space: dict[str, dict[str, list[Any]]]) -> list[dict[str, Any]]:
    """Two points of the space: every dimension at its low end / choice, then at its high end
    (what check_params builds before any compute)."""
    return [
        {
            k: (args[0] if end == 0 else args[-1])
            for k, spec in space.items()
            for args in spec.values()
        }
        for end in (0, 1)
    ]


def _suggest(trial: optuna.Trial, key: str, spec: dict[str, list[Any]]) -> Any:
    ((kind, args),) = spec.items()
    if kind == "choice":
        return trial.suggest_categorical(key, args)
    if kind == "int":
        return trial.suggest_int(key, args[0], args[1])
    return trial.suggest_float(key, args[0], args[1], log=kind == "log")


def _readable(value: Any) -> Any:
    """A drawn float at 3 significant digits (the values that go into params.yaml)."""
    return float(f"{value:.3g}") if isinstance(value, float) else value


class TrialSeededTPE(TPESampler):
    """TPE whose random draws are a function of (seed, study, trial number): two workers, or a
    restarted one, never draw the same startup point twice."""

    def __init__(self, *, seed: int, **kwargs: Any) -> None:
        super().__init__(seed=seed, **kwargs)
        self._base_seed = seed

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        s = zlib.crc32(f"{self._base_seed}:{study.study_name}:{trial.number}".encode())
        self._rng.rng.seed(s)  # optuna private API (pinned <6; tests/study/test_campaign.py)
        self._random_sampler._rng.rng.seed(s)
        super().before_trial(study, trial)


# --- settings -------------------------------------------------------------------------------


def _split(point: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    loss_params = {k: v for k, v in point.items() if not k.startswith("train.")}
    train = {k.removeprefix("train."): v for k, v in point.items() if k.startswith("train.")}
    return loss_params, train


def search_settings(
    config: StudyConfig,
    name: str,
    point: dict[str, Any],
    out_dir: str | Path,
    prepared_dir: str | Path,
    fixed: dict[str, Any] | None = None,
) -> TrainSettings:
    """A search trial of the loss or arm ``name``: the real protocol (untuned: the campaign
    starts from the published values) with ``tuning.loss_params.<loss>``, the arm's fixed
    values and the point, validation only."""
    t = config.tuning
    subj = subject(config, name)
    loss_params, train = _split(point)
    return train_settings(
        config,
        t.dataset,
        subj.loss,
        t.seed,
        prepared_dir=prepared_dir,
        out_dir=out_dir,
        loss_params={**t.loss_params.get(subj.loss, {}), **subj.arm_params, **loss_params},
        extra={**train, **(fixed or {}), "evaluate_test": False},
        tuned=False,
    )


def confirm_settings(
    config: StudyConfig,
    name: str,
    point: dict[str, Any],
    seed: int,
    out_dir: str | Path,
    prepared_dir: str | Path,
    fixed: dict[str, Any] | None = None,
) -> TrainSettings:
    """A point as the study would train it (the protocol's loss values under it, an arm's fixed
    values), validation only."""
    subj = subject(config, name)
    loss_params, train = _split(point)
    return train_settings(
        config,
        config.tuning.dataset,
        subj.loss,
        seed,
        prepared_dir=prepared_dir,
        out_dir=out_dir,
        loss_params={**subj.arm_params, **loss_params},
        extra={**train, **(fixed or {}), "evaluate_test": False},
        tuned=False,
    )


def confirm_candidates(study: optuna.Study, top: int) -> list[FrozenTrial]:
    """The ``top`` best trials of a finished search by their best val MAP@R (trial number
    breaks ties): complete trials, and trials the search budget cut while they ran
    (``stopped=budget``, at least one validation round). A cut trial was stopped by the
    budget's arithmetic, not by its score; leaving it out would let the last trial of a search
    be the best one seen and never be confirmed (campaign v2: CosFace's trial 2, 53.7 at
    epoch 43, against 51.1 for the best complete trial). Pruned and diverged trials are out."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    eligible = [
        tr
        for tr in trials
        if tr.state == TrialState.COMPLETE
        or (tr.user_attrs.get("stopped") == "budget" and "best_val" in tr.user_attrs)
    ]

    def best(tr: FrozenTrial) -> float:
        return float(tr.user_attrs.get("best_val", tr.value))

    return sorted(eligible, key=lambda tr: (-best(tr), tr.number))[:top]


# --- the storage ----------------------------------------------------------------------------


def _finished(db: Path) -> int:
    """Finished trials in a storage file (0 when it has none yet)."""
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            (n,) = con.execute(
                "SELECT COUNT(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED', 'FAIL')"
            ).fetchone()
        return int(n)
    except sqlite3.Error:
        return 0


def snapshot(live: Path, record: Path) -> None:
    """A consistent copy of the live storage at ``record`` (SQLite backup, atomic rename): what
    git commits is never a half-written file."""
    record.parent.mkdir(parents=True, exist_ok=True)
    tmp = record.with_name(f".{record.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with (
        contextlib.closing(sqlite3.connect(live)) as src,
        contextlib.closing(sqlite3.connect(tmp)) as dst,
    ):
        src.backup(dst)
    os.replace(tmp, record)


def _run_name(study: str, loss: str, number: int, published: bool) -> str:
    """A search trial's run folder under ``<out-dir>/<loss>/`` (its retries resume it); the
    published values' run is shared by the studies of a loss (same settings: reused)."""
    if published:
        return "published"
    return f"trial{number}" if study == loss else f"{study}/trial{number}"


def space_json(space: dict[str, Any]) -> str:
    return json.dumps(space, sort_keys=True)


def trial_zero(study: optuna.Study) -> dict[str, Any] | None:
    """The point of a study's trial 0 (the published values it was enqueued with, whether it has
    run or not), or None."""
    first = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("published")]
    return dict(first[0].system_attrs.get("fixed_params") or first[0].params) if first else None


def search_studies(storage: optuna.storages.BaseStorage, loss: str) -> list[str]:
    """The search studies of ``loss`` in the storage, oldest first (``loss``, ``loss.2``, ...)."""
    names = {
        s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)
    }
    out = [loss] if loss in names else []
    n = 2
    while f"{loss}.{n}" in names:
        out.append(f"{loss}.{n}")
        n += 1
    return out


@dataclass
class Campaign:
    """One campaign on ``config.tuning.dataset``: run folders and the live storage under
    ``out_dir``, the committed record in ``results`` (default: tuning.storage's folder)."""

    config: StudyConfig
    prepared_dir: Path
    out_dir: Path
    results: Path
    trainer: Trainer = _train
    cpu_threads: int | None = None
    heartbeat_s: int = 60
    grace_s: int = 180
    poll_s: float = 30.0

    def __post_init__(self) -> None:
        self.prepared_dir, self.out_dir = Path(self.prepared_dir), Path(self.out_dir)
        self.results = Path(self.results)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.live = self.out_dir / "optuna.db"
        self.record = self.results / Path(self.config.tuning.storage_path()).name
        self._storage: optuna.storages.RDBStorage | None = None

    # storage

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        """Between the processes of this campaign: study creation, retries, confirmations."""
        with open(self.out_dir / "optuna.lock", "w") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    def adopt_record(self) -> str:
        """Start from the committed record when it holds more finished trials than the live
        storage (a fresh clone, or a record pulled from a longer campaign)."""
        with self.locked():
            if self.record.is_file() and _finished(self.record) > _finished(self.live):
                if self.live.is_file():
                    shutil.copy2(self.live, self.live.with_suffix(".db.bak"))
                shutil.copy2(self.record, self.live)
                return f"continuing from the committed record {self.record}"
        return f"storage {self.live}"

    @property
    def storage(self) -> optuna.storages.RDBStorage:
        if self._storage is None:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            with _quiet():
                self._storage = optuna.storages.RDBStorage(
                    f"sqlite:///{self.live.resolve()}",
                    engine_kwargs={"connect_args": {"timeout": 300}},
                    heartbeat_interval=self.heartbeat_s,
                    grace_period=self.grace_s,
                )
        return self._storage

    def _fixed(self) -> dict[str, Any]:
        return {} if self.cpu_threads is None else {"cpu_threads": self.cpu_threads}

    def study(self, name: str) -> optuna.Study:
        loss = name.split(CONFIRM)[0].split(".")[0]
        if name.endswith(CONFIRM):
            sampler: optuna.samplers.BaseSampler = optuna.samplers.RandomSampler(seed=0)
            pruner: optuna.pruners.BasePruner = optuna.pruners.NopPruner()
        else:
            t = self.config.tuning
            tpe, hb = t.sampler.tpe, t.pruner.hyperband
            sampler = TrialSeededTPE(
                seed=tpe.seed, n_startup_trials=tpe.n_startup_trials, constant_liar=True
            )
            pruner = optuna.pruners.HyperbandPruner(
                min_resource=hb.min_resource,
                max_resource=self.max_epochs(loss),
                reduction_factor=hb.reduction_factor,
            )
        return optuna.load_study(
            study_name=name, storage=self.storage, sampler=sampler, pruner=pruner
        )

    def max_epochs(self, loss: str) -> int:
        return search_settings(self.config, loss, {}, ".", ".").epochs

    def current_study(self, loss: str) -> str:
        """The search study of the declared space and trial 0 (created with trial 0 enqueued when
        new: a widened space, or a trial 0 that moved — a base's tuned values — is a new study)."""
        space = subject(self.config, loss).space
        start = published_point(self.config, loss)
        with self.locked():
            names = search_studies(self.storage, loss)
            for name in reversed(names):
                study = self.study(name)
                if study.user_attrs.get("space") == space_json(space) and (
                    trial_zero(study) in (None, start)
                ):
                    return name
            name = loss if not names else f"{loss}.{len(names) + 1}"
            study = optuna.create_study(study_name=name, storage=self.storage, direction="maximize")
            study.set_user_attr("space", space_json(space))
            study.set_user_attr("dataset", self.config.tuning.dataset)
            study.enqueue_trial(published_point(self.config, loss), user_attrs={"published": True})
            optuna.create_study(
                study_name=name + CONFIRM, storage=self.storage, direction="maximize"
            )
            return name

    def retry_failed(self, study: optuna.Study) -> None:
        """Fail trials whose worker stopped beating, and queue one retry of every failed trial
        (a killed or interrupted worker; at most MAX_RETRY in a chain). Under the lock."""
        with _quiet():
            optuna.storages.fail_stale_trials(study)
            trials = study.get_trials(deepcopy=False)
            retried = {n for t in trials for n in t.system_attrs.get("retry_history", [])}
            retry = _Retry(max_retry=MAX_RETRY, inherit_intermediate_values=True)
            for t in trials:
                if t.state == TrialState.FAIL and t.number not in retried:
                    retry(study, t)

    # the search

    def spent(self, study: optuna.Study) -> int:
        """Training epochs of a search study: per run (a trial and its retries), the epochs it
        reached; running trials included."""
        runs: dict[str, int] = {}
        for t in study.get_trials(deepcopy=False):
            run = t.user_attrs.get("run")
            if run is not None:
                runs[run] = max(runs.get(run, 0), int(t.user_attrs.get("epochs", 0)))
        return sum(runs.values())

    def search_objective(self, study: optuna.Study, loss: str) -> Callable[[optuna.Trial], float]:
        budget = self.config.tuning.epochs_per_loss

        def objective(trial: optuna.Trial) -> float:
            attrs = trial.user_attrs
            published = bool(attrs.get("published"))
            drawn = {
                k: _suggest(trial, k, spec) for k, spec in subject(self.config, loss).space.items()
            }
            point = attrs.get("point") or (
                drawn if published else {k: _readable(v) for k, v in drawn.items()}
            )
            run = attrs.get("run") or _run_name(study.study_name, loss, trial.number, published)
            trial.set_user_attr("point", point)
            trial.set_user_attr("run", run)
            folder = self.out_dir / loss / run
            settings = search_settings(
                self.config, loss, point, folder, self.prepared_dir, self._fixed()
            )
            best = [-math.inf]

            def on_epoch(record: dict[str, Any]) -> None:
                step = int(record["epoch"]) + 1
                trial.set_user_attr("epochs", step)
                if "val" in record:
                    value = float(record["val"]["map@r"])
                    trial.report(value, step)
                    if value > best[0]:
                        best[0] = value
                        trial.set_user_attr("best_val", value)
                    if not published and trial.should_prune():
                        trial.set_user_attr("stopped", "pruner")
                        raise optuna.TrialPruned(f"pruned at epoch {step}")
                if self.spent(study) >= budget:
                    trial.set_user_attr("stopped", "budget")
                    raise optuna.TrialPruned(f"budget of {budget} epochs reached at epoch {step}")

            return self._run_trial(trial, settings, on_epoch)

        return objective

    def _run_trial(
        self,
        trial: optuna.Trial,
        settings: TrainSettings,
        on_epoch: Callable[[dict[str, Any]], None] | None,
    ) -> float:
        """Train one trial's run and record it; a diverged run is a pruned trial, named."""
        start = time.perf_counter()
        try:
            metrics = self.trainer(settings, on_epoch)
        except TrainingDivergedError as err:
            trial.set_user_attr("stopped", "diverged")
            trial.set_user_attr("error", str(err).splitlines()[0][:300])
            raise optuna.TrialPruned("diverged") from None
        finally:
            trial.set_user_attr("seconds", time.perf_counter() - start)
        return self._finish(trial, metrics)

    def _finish(self, trial: optuna.Trial, m: dict[str, Any]) -> float:
        trial.set_user_attr("epochs", int(m.get("epochs_run") or 0))
        trial.set_user_attr("best_epoch", int(m.get("best_epoch", -1)))
        trial.set_user_attr("train_seconds", float(m.get("train_seconds") or 0.0))
        trial.set_user_attr("converged", bool(m.get("converged")))
        trial.set_user_attr("best_val", float(m["val"]["map@r"]))
        trial.set_user_attr("val_recall@1", float(m["val"].get("recall@1", math.nan)))
        return float(m["val"]["map@r"])

    # the confirmation

    def search_done(self, study: optuna.Study) -> bool:
        return self.spent(study) >= self.config.tuning.epochs_per_loss and not study.get_trials(
            deepcopy=False, states=(TrialState.RUNNING,)
        )

    def enqueue_confirmations(self, name: str, loss: str) -> optuna.Study:
        """The confirmation runs of a finished search (once): the ``confirm_top`` best
        candidates (:func:`confirm_candidates`) on every seed of ``confirm_seeds``. A trial the
        budget cut resumes its own run folder for the search seed, so it finishes there."""
        t = self.config.tuning
        confirm = self.study(name + CONFIRM)
        if confirm.user_attrs.get("candidates") is not None:
            return confirm
        top = confirm_candidates(self.study(name), t.confirm_top)
        for tr in top:
            point = tr.user_attrs["point"]
            own = self.out_dir / loss / tr.user_attrs["run"]
            for seed in t.confirm_seeds:
                folder = (
                    self.out_dir / loss / f"{name}-confirm" / f"trial{tr.number}" / f"seed{seed}"
                )
                reuse = confirm_settings(self.config, loss, point, seed, own, ".", self._fixed())
                if reuse == search_settings(self.config, loss, point, own, ".", self._fixed()):
                    folder = own  # the search run is this confirmation run: reused, not retrained
                confirm.enqueue_trial(
                    {},
                    user_attrs={
                        "source": tr.number,
                        "seed": seed,
                        "point": point,
                        "run": str(folder.relative_to(self.out_dir / loss)),
                    },
                )
        confirm.set_user_attr("candidates", [tr.number for tr in top])
        return confirm

    def confirm_objective(self, loss: str) -> Callable[[optuna.Trial], float]:
        def objective(trial: optuna.Trial) -> float:
            a = trial.user_attrs
            folder = self.out_dir / loss / a["run"]
            settings = confirm_settings(
                self.config, loss, a["point"], a["seed"], folder, self.prepared_dir, self._fixed()
            )
            return self._run_trial(trial, settings, None)

        return objective

    # the workers

    def next_job(self, losses: Sequence[str]) -> tuple[optuna.Study, optuna.Trial, Callable] | None:
        """The next trial to run, taken (``study.ask``) under the same lock that chose it: search
        trials loss by loss until their budgets are spent, then the queued confirmations of
        finished searches; None when nothing can start now. Choosing and taking in one critical
        section matters: a worker that saw a queued confirmation and asked for it after another
        worker had taken it would get a fresh trial with none of the confirmation's attributes."""
        budget = self.config.tuning.epochs_per_loss
        with self.locked():
            for loss in losses:
                study = self.study(self._names[loss])
                self.retry_failed(study)
                if self.spent(study) < budget:
                    return study, self._take(study), self.search_objective(study, loss)
            for loss in losses:
                name = self._names[loss]
                if not self.search_done(self.study(name)):
                    continue
                confirm = self.enqueue_confirmations(name, loss)
                self.retry_failed(confirm)
                if confirm.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                    return confirm, self._take(confirm), self.confirm_objective(loss)
        return None

    def _take(self, study: optuna.Study) -> optuna.Trial:
        """``study.ask()`` (pops a queued trial first) with its first heartbeat; the caller holds
        the campaign's lock (SQLite has no SELECT FOR UPDATE)."""
        with _quiet():
            trial = study.ask()
        self.storage.record_heartbeat(trial._trial_id)
        return trial

    def running(self, losses: Sequence[str]) -> bool:
        states = (TrialState.RUNNING,)
        return any(
            self.study(n).get_trials(deepcopy=False, states=states)
            for loss in losses
            for n in (self._names[loss], self._names[loss] + CONFIRM)
        )

    def prepare(self, losses: Sequence[str]) -> None:
        """Open (or create) the current study of every loss."""
        self._names = {loss: self.current_study(loss) for loss in losses}

    def work(self, losses: Sequence[str], export: bool = True) -> None:
        """Run trials until every loss is searched and confirmed; waits while another worker
        runs the last trials of a search."""
        self.prepare(losses)
        while True:
            job = self.next_job(losses)
            if job is None:
                if not self.running(losses):
                    return
                time.sleep(self.poll_s)
                continue
            study, taken, objective = job
            trial = self.run_trial(study, taken, objective)
            if export:
                self.export()
            print(
                f"{study.study_name} trial {trial.number}: {trial.state.name}, "
                f"{trial.user_attrs.get('epochs', 0)} epochs, val MAP@R "
                f"{trial.user_attrs.get('best_val', float('nan')):.4f}",
                file=sys.stderr,
                flush=True,
            )

    def run_trial(
        self,
        study: optuna.Study,
        trial: optuna.Trial,
        objective: Callable[[optuna.Trial], float],
    ) -> FrozenTrial:
        """Run a trial taken by :meth:`next_job` and tell its result, with a heartbeat while it
        runs. A worker killed mid-trial leaves it RUNNING, its heartbeat stops, and
        :meth:`retry_failed` later fails and retries it."""
        stop = threading.Event()

        def beat() -> None:
            while not stop.wait(self.heartbeat_s):
                self.storage.record_heartbeat(trial._trial_id)

        beating = threading.Thread(target=beat, daemon=True)
        beating.start()
        try:
            value = objective(trial)
        except optuna.TrialPruned:
            study.tell(trial, state=TrialState.PRUNED)
        except (Exception, KeyboardInterrupt):
            study.tell(trial, state=TrialState.FAIL)
            raise
        else:
            study.tell(trial, value)
        finally:
            stop.set()
            beating.join()
        return study._storage.get_trial(trial._trial_id)

    def export(self) -> None:
        """The committed record: storage copy, trials.csv, summary.csv, winners.csv."""
        from dmlstudy.study import campaign_record as R

        snapshot(self.live, self.record)
        R.write_record(self.config, self.storage, self.results)


def winner_overrides(config: StudyConfig, best: pd.DataFrame) -> dict[str, dict[str, Any]]:
    """``losses.<loss>.per_dataset.<dataset>`` values of the winners (an arm's:
    ``<writes_to>.<dataset>``, :class:`Subject`): the points' values that differ from the
    published defaults (training settings under ``train``), keyed by campaign name."""
    out: dict[str, dict[str, Any]] = {}
    for _, r in best.iterrows():
        loss_params, train = _split(json.loads(r["point"]))
        loss = subject(config, r["loss"]).loss
        published = config.published_loss_params(loss)
        protocol = train_overrides(config, config.tuning.dataset, loss, tuned=False)
        default = TrainSettings.model_fields
        values = {k: v for k, v in loss_params.items() if published.get(k) != v}
        train = {k: v for k, v in train.items() if protocol.get(k, default[k].default) != v}
        if train:
            values["train"] = train
        out[r["loss"]] = values
    return out


def run_campaign(campaign: Campaign, losses: Sequence[str], workers: int, argv: list[str]) -> None:
    """``workers`` processes side by side (one thread each) on the campaign's storage."""
    campaign.adopt_record()
    campaign.prepare(losses)
    if workers <= 1:
        campaign.work(losses)
        return
    cmd = [sys.executable, "-m", "dmlstudy.study.campaign", *argv, "--worker"]
    procs = [subprocess.Popen(cmd) for _ in range(workers)]
    try:
        codes = [p.wait() for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
    if any(codes):
        raise SystemExit(f"a campaign worker failed (exit codes {codes}); rerun to resume")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("params_file")
    ap.add_argument("--prepared-dir", required=True)
    ap.add_argument("--out-dir", required=True, help="run folders and the live storage")
    ap.add_argument("--results", help="the committed record (default: tuning.storage's folder)")
    ap.add_argument(
        "--loss",
        action="append",
        help="only these losses, or ablation arms with their own search space as "
        "<ablation>/<arm> (default: every study's, StudyConfig.everything, and every such arm)",
    )
    ap.add_argument("--workers", type=int, default=1, help="worker processes side by side")
    ap.add_argument(
        "--cpu-threads", type=int, help="torch threads per run (default: 1 with --workers > 1)"
    )
    ap.add_argument("--export", action="store_true", help="only write the record from storage")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = sys.argv[1:] if argv is None else argv
    a = ap.parse_args(args)
    config = load_config(a.params_file)
    threads = a.cpu_threads if a.cpu_threads is not None else (1 if a.workers > 1 else None)
    campaign = Campaign(
        config,
        prepared_dir=Path(a.prepared_dir),
        out_dir=Path(a.out_dir),
        results=Path(a.results or Path(config.tuning.storage_path()).parent),
        cpu_threads=threads,
    )
    losses = list(a.loss or subjects(config))  # the paper study's too
    for name in losses:
        subject(config, name)  # an unknown arm fails here, naming the valid ones
    if a.worker:
        campaign.work(losses)
        return
    if not a.export:
        print(campaign.adopt_record(), file=sys.stderr)
        worker_args = [x for x in args if x != "--worker"]
        if a.cpu_threads is None and threads is not None:
            worker_args += ["--cpu-threads", str(threads)]
        run_campaign(campaign, losses, a.workers, worker_args)
    else:
        campaign.adopt_record()
    campaign.export()
    from dmlstudy.study.campaign_record import winners

    print(json.dumps(winner_overrides(config, winners(campaign.storage, config)), indent=1))


if __name__ == "__main__":
    main()
