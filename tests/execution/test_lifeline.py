"""No orphan training: the papermill kernel dies with the notebook driver, and under DVC the
driver with ``dvc repro`` (here a stand-in that starts it as DVC does: ``$SHELL -c`` with
``DVC_STAGE`` set), each within seconds of a ``kill -9``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from dmlstudy.execution.lifeline import kernel_exec_line

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux's")

REPO = Path(__file__).resolve().parents[2]

# writes (kernel pid, its parent = the driver, its parent-death signal, its user names), sleeps
NOTEBOOK = """# %% tags=["parameters"]
marker = ""

# %%
import os, time
from dmlstudy.execution.lifeline import parent_death_signal
names = sorted(k for k in globals() if not k.startswith("_") and k not in ("In", "Out"))
with open(marker + ".tmp", "w") as f:
    f.write(f"{os.getpid()} {os.getppid()} {parent_death_signal()} {','.join(names)}")
os.replace(marker + ".tmp", marker)
time.sleep(300)
"""


def _gone(pid: int) -> bool:
    """Exited (a zombie waiting for its reaper counts: it runs no more)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError):
        return True


def _wait_gone(pids: list[int], seconds: float = 10.0) -> float:
    start = time.monotonic()
    while not all(_gone(p) for p in pids):
        if time.monotonic() - start > seconds:
            for p in pids:  # clean up before failing
                if not _gone(p):
                    os.kill(p, signal.SIGKILL)
            pytest.fail(f"still running {seconds} s after the kill: {pids}")
        time.sleep(0.05)
    return time.monotonic() - start


def _start(tmp_path: Path, argv: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, list]:
    marker = tmp_path / "kernel"
    src = tmp_path / "sleep.py"
    src.write_text(NOTEBOOK)
    driver = [sys.executable, "-m", "dmlstudy.execution.run_notebook", str(src)]
    driver += [str(tmp_path / "out.ipynb"), "-p", "marker", str(marker)]
    proc = subprocess.Popen(
        [*argv, subprocess.list2cmdline(driver)] if argv else driver,
        cwd=REPO,
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 120
    while not marker.is_file():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            pytest.fail(f"the notebook never started:\n{proc.communicate()[0][-3000:]!r}")
        time.sleep(0.1)
    kernel, driver_pid, sig, names = marker.read_text().split(" ")
    return proc, [int(kernel), int(driver_pid), int(sig), names.split(",")]


@pytest.mark.slow
def test_kernel_dies_with_a_sigkilled_driver(tmp_path: Path) -> None:
    proc, (kernel, driver, sig, names) = _start(tmp_path, [], {"DVC_STAGE": ""})
    assert driver == proc.pid
    assert sig == signal.SIGKILL  # set in the kernel before the first cell
    # ... leaving no name in the notebook's namespace (IPython's own, then the cell's)
    assert set(names) == {"exit", "get_ipython", "open", "quit", "marker", "os", "time"} | {
        "parent_death_signal"
    }
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    print(f"kernel gone {_wait_gone([kernel]):.2f} s after the driver's kill -9")


@pytest.mark.slow
@pytest.mark.parametrize("shell", ["bash", "sh"])  # bash execs `-c CMD`, dash does not
def test_killing_dvc_alone_stops_the_driver_and_its_kernel(tmp_path: Path, shell: str) -> None:
    shell = shutil.which(shell) or pytest.skip(f"no {shell}")
    fake_dvc = [
        sys.executable,
        "-c",
        "import subprocess, sys; subprocess.Popen(sys.argv[1:]).wait()",
        shell,
        "-c",
    ]
    proc, (kernel, driver, _, _) = _start(tmp_path, fake_dvc, {"DVC_STAGE": "train@x-0"})
    assert driver != proc.pid and not _gone(driver)
    proc.send_signal(signal.SIGKILL)  # dvc alone
    proc.wait()
    seconds = _wait_gone([driver, kernel])
    print(f"{shell}: driver and kernel gone {seconds:.2f} s after dvc's kill -9")


def test_kernel_exec_line_is_one_expression() -> None:
    line = kernel_exec_line(123)
    compile(line, "<exec_line>", "eval")
    assert line.endswith(".die_with_parent(123)")
