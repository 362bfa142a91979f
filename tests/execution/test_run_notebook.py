"""The papermill runner: parameters injected, figures embedded in the HTML; a failure ends with
the notebook's own error, keeps the partial notebook, renders no page and leaves no empty folder."""

from __future__ import annotations

import json

import pytest

from dmlstudy.execution.run_notebook import (
    MAX_TRACEBACK_LINES,
    execute,
    failure_summary,
    main,
    parse_parameters,
)

NOTEBOOK = """# %% [markdown]
# # toy

# %% tags=["parameters"]
n = 1
name = "x"

# %%
# %matplotlib inline
import matplotlib.pyplot as plt
fig, ax = plt.subplots()
ax.plot(range(n))
print(f"n={n} name={name}")
"""


def test_parse_parameters_types():
    assert parse_parameters(
        [("a", "1e-3"), ("b", "2"), ("c", "[0, 1]"), ("d", "seed0"), ("e", "true")]
    ) == {"a": 0.001, "b": 2, "c": [0, 1], "d": "seed0", "e": True}


def test_execute_injects_parameters_and_embeds_figures(tmp_path, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")  # the runner must still capture figures
    src = tmp_path / "toy.py"
    src.write_text(NOTEBOOK)
    out = tmp_path / "deep" / "out.ipynb"
    execute(src, out, {"n": 3, "name": "hello"}, html=tmp_path / "html" / "toy.html")
    nb = json.loads(out.read_text())
    text = json.dumps(nb)
    assert "n=3 name=hello" in text
    assert any("image/png" in o.get("data", {}) for c in nb["cells"] for o in c.get("outputs", []))
    html = (tmp_path / "html" / "toy.html").read_text()
    assert "data:image/png;base64" in html and "plt.subplots" not in html  # code hidden


FAILING = NOTEBOOK.replace(
    'print(f"n={n} name={name}")',
    "def f():\n    try:\n        {}['x']\n    except KeyError as e:\n"
    "        raise ValueError(f'n must be even, got {n}') from e\nf()",
)


def test_failing_notebook_raises_keeps_the_partial_notebook_and_renders_nothing(tmp_path):
    import papermill

    src = tmp_path / "bad.py"
    src.write_text(FAILING)
    out = tmp_path / "work" / "nb" / "bad.ipynb"
    html = tmp_path / "reports" / "deep" / "bad.html"
    with pytest.raises(papermill.PapermillExecutionError, match="n must be even"):
        execute(src, out, {"n": 3}, html=html)
    assert out.is_file()  # the partial notebook, for debugging
    assert not (tmp_path / "reports").exists()  # no error page, no empty folder


def test_failed_stage_ends_with_the_root_error_and_the_partial_notebook(tmp_path, capsys):
    src = tmp_path / "bad.py"
    src.write_text(FAILING)
    out = tmp_path / "work" / "bad.ipynb"
    html = tmp_path / "reports" / "bad.html"
    assert main([str(src), str(out), "--html", str(html), "-p", "n", "3"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == "ERROR: ValueError: n must be even, got 3"
    assert err[-2] == f"the notebook executed up to the failure is kept at {out}"
    assert "caused by KeyError: 'x'" in err
    text = "\n".join(err)
    assert "raise ValueError" in text and "f()" in text  # the failing cell's frames
    for noise in ("papermill", "PapermillExecutionError", "Traceback (most recent", "\x1b["):
        assert noise not in text, noise
    assert out.is_file() and not html.exists() and not html.parent.exists()


def test_folders_created_for_a_run_that_wrote_nothing_are_removed(tmp_path, monkeypatch):
    import papermill

    def crash(*args, **kwargs):
        raise RuntimeError("kernel died")

    monkeypatch.setattr(papermill, "execute_notebook", crash)
    src = tmp_path / "toy.py"
    src.write_text(NOTEBOOK)
    (tmp_path / "work").mkdir()  # existed before: kept
    with pytest.raises(RuntimeError, match="kernel died"):
        execute(src, tmp_path / "work" / "a" / "b" / "o.ipynb", html=tmp_path / "r" / "o.html")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy.py", "work"]
    assert list((tmp_path / "work").iterdir()) == []
    summary = failure_summary(RuntimeError("kernel died"), src, tmp_path / "work" / "o.ipynb")
    assert summary.splitlines() == [f"{src} failed", "ERROR: RuntimeError: kernel died"]


def test_long_cell_tracebacks_are_cut_to_their_ends(tmp_path):
    import papermill

    frames = [f"\x1b[0;32mFile lib.py:{i}\x1b[0m, in g{i}()" for i in range(100)]
    exc = papermill.PapermillExecutionError(
        4,
        7,
        "g0()",
        "OSError",
        "disk full",
        ["-" * 75, "OSError   Traceback", *frames, "OSError: disk full"],
    )
    lines = failure_summary(exc, "nb.py", tmp_path / "absent.ipynb").splitlines()
    assert lines[0] == "nb.py failed in cell In [7]:" and lines[-1] == "ERROR: OSError: disk full"
    assert "File lib.py:0, in g0()" in lines and "File lib.py:99, in g99()" in lines
    assert "    ..." in lines and len(lines) <= MAX_TRACEBACK_LINES + 4


def test_notebook_without_parameters_cell_is_rejected(tmp_path):
    src = tmp_path / "np.py"
    src.write_text("# %%\nx = 1\n")
    with pytest.raises(ValueError, match="parameters"):
        execute(src, tmp_path / "o.ipynb")
