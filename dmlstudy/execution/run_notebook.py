"""Execute a jupytext percent-format notebook with papermill and render it to HTML.

papermill has no jupytext engine, so the source is read with jupytext and handed to
``papermill.execute_notebook`` as a notebook object::

    python -m dmlstudy.execution.run_notebook notebooks/train.py work/nb/train.ipynb \\
        --html reports/train.html -p dataset omniglot -p seed 0

``-p KEY VALUE`` values are parsed as YAML (``-p seeds "[0, 1]"`` is a list, ``-p lr 1e-3`` a
float). The kernel is ``python3`` — jupyter_client starts it with the *running* interpreter
(``sys.executable``) because the kernelspec's command is plain ``python``; so running this module
with the project's venv python runs the notebook in the venv (no ``ipykernel install`` needed).
The kernel dies with the process that runs this, and under ``dvc repro`` that process with DVC
(:mod:`.lifeline`). Output folders are created (papermill does not). Figures are captured by
matplotlib's inline backend even when ``MPLBACKEND=Agg`` is set for the caller; tqdm bars are
off (``TQDM_DISABLE``).
A failing notebook renders no HTML page, removes the empty folders the run created, keeps the
partial ``.ipynb`` and ends its output with the notebook's own error (:func:`failure_summary`).

>>> parse_parameters([("seed", "3"), ("lr", "1e-3"), ("name", "omniglot"), ("xs", "[1, 2]")])
{'seed': 3, 'lr': 0.001, 'name': 'omniglot', 'xs': [1, 2]}
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from dmlstudy.execution.lifeline import die_with_parent, kernel_exec_line

# nbformat validates notebooks with jsonschema, which imports its optional IRI format checker
# ``rfc3987_syntax`` when installed (jupyterlab's jupyter-events pulls it in); that module compiles
# a grammar at import, 1.5-3 s of every stage (benchmarks/bench_stage_overhead.py). Notebooks have
# no IRI fields to check, so this process never imports it.
sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]

INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
MAX_TRACEBACK_LINES = 24
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_CHAINED = ("The above exception was the direct cause", "During handling of the above exception")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")


def parse_parameters(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """``[(key, text)]`` → ``{key: value}`` with each text parsed as YAML (``1e-3`` is a float)."""
    out: dict[str, Any] = {}
    for key, text in pairs:
        value = yaml.safe_load(text)
        if isinstance(value, str) and _NUMBER.match(value):
            value = float(value)  # YAML 1.1 reads "1e-3" as a string; notebooks expect a number
        out[key] = value
    return out


def execute(
    source: str | Path,
    output: str | Path,
    parameters: dict[str, Any] | None = None,
    *,
    html: str | Path | None = None,
    kernel_name: str = "python3",
    cwd: str | Path | None = None,
    progress: bool = False,
) -> Path:
    """Run ``source`` (jupytext ``.py``) with ``parameters`` injected after its ``parameters``
    cell; write the executed ``.ipynb`` to ``output`` and, if ``html`` is given, a self-contained
    HTML page (code hidden, figures embedded). Raises ``papermill.PapermillExecutionError`` with
    the failing cell's traceback when the notebook fails: the partial notebook is still written,
    no HTML is rendered, and the folders this call created are removed if left empty."""
    import jupytext
    import papermill

    source, output = Path(source), Path(output)
    if not source.is_file():
        raise FileNotFoundError(f"notebook source not found: {source}")
    nb = jupytext.read(source)
    if not any("parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells):
        raise ValueError(f"{source} has no cell tagged 'parameters' (# %% tags=[\"parameters\"])")
    nb.metadata["kernelspec"] = {
        "name": kernel_name,
        "display_name": "Python 3",
        "language": "python",
    }
    created = [d for d in (output.parent, *output.parent.parents) if not d.exists()]
    output.parent.mkdir(parents=True, exist_ok=True)
    os.environ["MPLBACKEND"] = INLINE_BACKEND  # inherited by the kernel: figures become outputs
    os.environ.setdefault("DVC_NO_ANALYTICS", "1")
    os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars are noise in a rendered report
    try:
        papermill.execute_notebook(
            nb,
            str(output),
            parameters=parameters or {},
            kernel_name=kernel_name,
            cwd=str(cwd) if cwd else None,
            progress_bar=progress,
            log_output=False,
            # The kernel talks to this process over localhost TCP; its start-up warning about
            # unencrypted TCP would print once per stage. Kernel *errors* still print.
            # The kernel dies with this process, even of SIGKILL (lifeline): no orphan training.
            extra_arguments=[
                "--IPKernelApp.log_level=ERROR",
                f"--IPKernelApp.exec_lines={kernel_exec_line(os.getpid())}",
            ],
        )
    except BaseException:
        for folder in created:  # deepest first; stop at the first one that holds something
            try:
                folder.rmdir()
            except OSError:
                break
        raise
    if html is not None:
        render_html(output, html)
    return output


def _short_traceback(lines: list[str], ename: str) -> tuple[list[str], list[str]]:
    """IPython traceback lines → (the raising exception's frames, capped; the ``ename: evalue``
    lines of the exceptions it was chained from)."""
    starts = [i for i, line in enumerate(lines) if line.startswith(_CHAINED)]
    bounds = [0, *(i + 1 for i in starts)]
    causes = []
    for a, b in zip(bounds[:-1], starts):
        tail = [line for line in lines[a:b] if line.strip()]
        causes += tail[-1:]
    frames = [
        line
        for line in lines[bounds[-1] :]
        if line.strip("-").strip() and "Traceback (most recent call last)" not in line
    ]
    last = max((i for i, line in enumerate(frames) if line.startswith(ename)), default=len(frames))
    frames = frames[:last]
    if len(frames) > MAX_TRACEBACK_LINES:
        keep = MAX_TRACEBACK_LINES // 2
        frames = [*frames[:keep], "    ...", *frames[-keep:]]
    return frames, causes


def failure_summary(exc: BaseException, source: str | Path, output: str | Path) -> str:
    """What a failed run prints last: the failing cell's short traceback, the exceptions the
    error was chained from, where the partial notebook is, and last ``ERROR: <type>: <message>``
    (the notebook's own exception, not papermill's wrapper)."""
    import papermill

    lines = [f"{source} failed"]
    if isinstance(exc, papermill.PapermillExecutionError):
        text = _ANSI.sub("", "\n".join(exc.traceback)).splitlines()
        frames, causes = _short_traceback(text, exc.ename)
        lines[0] += f" in cell In [{exc.exec_count}]:"
        lines += frames + [f"caused by {cause}" for cause in causes]
        error = f"{exc.ename}: {exc.evalue}"
    else:
        error = f"{type(exc).__name__}: {exc}"
    output = Path(output)
    if output.is_file():
        lines.append(f"the notebook executed up to the failure is kept at {output}")
    lines.append(f"ERROR: {error}")
    return "\n".join(lines)


#: nbconvert's lab template without its CDN scripts (templates/nbconvert/offline).
OFFLINE_TEMPLATES = Path(__file__).parent / "templates" / "nbconvert"


def render_html(notebook: str | Path, html: str | Path, *, hide_code: bool = True) -> Path:
    """Render an executed notebook to one self-contained HTML file (PNG figures embedded, no
    script loaded from the network: it reads the same offline)."""
    import nbformat
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        template_name="offline", extra_template_basedirs=[str(OFFLINE_TEMPLATES)]
    )
    exporter.exclude_input = hide_code
    exporter.exclude_input_prompt = True
    exporter.exclude_output_prompt = True
    body, _ = exporter.from_notebook_node(nbformat.read(str(notebook), as_version=4))
    html = Path(html)
    html.parent.mkdir(parents=True, exist_ok=True)
    html.write_text(body, encoding="utf-8")
    return html


def argument_parser() -> argparse.ArgumentParser:
    """The command line of this module (dmlstudy.execution.fanout reads dvc.yaml's commands
    with it)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", help="jupytext percent-format notebook (.py)")
    parser.add_argument("output", help="executed notebook (.ipynb); folders are created")
    parser.add_argument("--html", help="also render a self-contained HTML page here")
    parser.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("KEY", "VALUE")
    )
    parser.add_argument("--kernel", default="python3")
    return parser


def main(argv: list[str] | None = None) -> int:
    if os.environ.get("DVC_STAGE"):  # a stage of dvc repro: no use (and harm) once dvc is gone
        die_with_parent(through_shell=True)
    args = argument_parser().parse_args(argv)
    start = time.perf_counter()
    try:
        execute(
            args.source,
            args.output,
            parse_parameters(args.parameter),
            html=args.html,
            kernel_name=args.kernel,
        )
    except Exception as exc:  # the summary replaces papermill's chained tracebacks
        print(failure_summary(exc, args.source, args.output), file=sys.stderr)
        return 1
    print(f"{args.source} -> {args.output} in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
