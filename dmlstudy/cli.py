"""One command for the study's tools: ``dmlstudy <command> [arguments]``.

Each command is a module's ``main(argv)``; ``python -m dmlstudy.pipeline.<module>`` (what
dvc.yaml and the Makefile call) runs the same function. ``dmlstudy`` alone lists the commands,
``dmlstudy <command> --help`` gives a command's own arguments.

>>> sorted(COMMANDS)[:3]
['budget-check', 'campaign', 'check-params']
"""

from __future__ import annotations

import importlib
import sys

from dmlstudy.config.suggest import did_you_mean

#: command -> the module whose ``main(argv)`` it runs
COMMANDS = {
    "check-params": "dmlstudy.pipeline.check_params",
    "fingerprints": "dmlstudy.pipeline.code_fingerprints",
    "notebook": "dmlstudy.pipeline.run_notebook",
    "campaign": "dmlstudy.pipeline.campaign",
    "paper": "dmlstudy.pipeline.paper_study",
    "compare": "dmlstudy.pipeline.compare_loss",
    "fanout": "dmlstudy.pipeline.fanout",
    "ddp-train": "dmlstudy.pipeline.ddp_train",
    "budget-check": "dmlstudy.pipeline.budget_check",
    "stopping-replay": "dmlstudy.pipeline.stopping_replay",
    "readme-table": "dmlstudy.pipeline.readme_table",
    "experiments": "dmlstudy.pipeline.experiments",
    "offline-plots": "dmlstudy.pipeline.offline_plots",
}


def _summary(module: str) -> str:
    """The first line of a command module's docstring."""
    doc = importlib.import_module(module).__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def usage() -> str:
    lines = ["usage: dmlstudy <command> [arguments]   (dmlstudy <command> --help)", ""]
    width = max(map(len, COMMANDS))
    lines += [f"  {name:<{width}}  {_summary(module)}" for name, module in COMMANDS.items()]
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
    result = importlib.import_module(COMMANDS[name]).main(rest)
    return result if isinstance(result, int) else 0


if __name__ == "__main__":
    sys.exit(main())
