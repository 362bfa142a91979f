"""One command for the study's tools: ``dmlstudy <command> [arguments]``.

Each command is a module's ``main(argv)``; ``python -m dmlstudy.<package>.<module>`` (what
dvc.yaml and the Makefile call) runs the same function. ``dmlstudy`` alone lists the commands,
``dmlstudy <command> --help`` gives a command's own arguments.

>>> sorted(COMMANDS)[:3]
['apply-winners', 'budget-check', 'campaign']
"""

from __future__ import annotations

import importlib
import sys

from dmlstudy.config.suggest import did_you_mean

#: command -> (the module whose ``main(argv)`` it runs, what it does)
COMMANDS: dict[str, tuple[str, str]] = {
    "check-params": ("dmlstudy.study.check_params", "validate params.yaml and the data first"),
    "fingerprints": ("dmlstudy.execution.code_fingerprints", "each loss's code fingerprint (DVC)"),
    "notebook": ("dmlstudy.execution.run_notebook", "run a jupytext notebook, render its HTML"),
    "campaign": ("dmlstudy.study.campaign", "the Optuna tuning campaign (equal budgets)"),
    "apply-winners": ("dmlstudy.study.apply_winners", "the campaign's winners into params.yaml"),
    "paper": ("dmlstudy.execution.paper_study", "the paper-grade study (make paper)"),
    "compare": ("dmlstudy.execution.compare_loss", "tune, train and report a new loss"),
    "fanout": ("dmlstudy.execution.fanout", "train out-of-date runs on dask workers"),
    "ddp-train": ("dmlstudy.execution.ddp_train", "one training over several GPUs (torchrun)"),
    "budget-check": ("dmlstudy.study.budget_check", "would a longer budget change a result?"),
    "stopping-replay": ("dmlstudy.analysis.stopping_replay", "replay the plateau rule on curves"),
    "readme-table": ("dmlstudy.reports.readme_table", "README's table from results/"),
    "experiments": ("dmlstudy.reports.experiments", "dvc exp runs side by side (make exps)"),
    "offline-plots": ("dmlstudy.reports.offline_plots", "offline template for dvc plots show"),
}


def usage() -> str:
    lines = ["usage: dmlstudy <command> [arguments]   (dmlstudy <command> --help)", ""]
    width = max(map(len, COMMANDS))
    lines += [f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(
            f"dmlstudy: unknown command {name!r}{did_you_mean(name, list(COMMANDS))}. "
            f"Valid choices: {', '.join(COMMANDS)}",
            file=sys.stderr,
        )
        return 2
    result = importlib.import_module(COMMANDS[name][0]).main(rest)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
