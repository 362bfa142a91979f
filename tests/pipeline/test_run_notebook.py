"""The papermill runner: parameters injected, figures embedded in the HTML, errors surface."""

from __future__ import annotations

import json

import pytest

from dmlstudy.pipeline.run_notebook import execute, parse_parameters

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


def test_failing_notebook_raises_and_still_renders(tmp_path):
    import papermill

    src = tmp_path / "bad.py"
    src.write_text(NOTEBOOK.replace('print(f"n={n} name={name}")', "raise RuntimeError('boom')"))
    with pytest.raises(papermill.PapermillExecutionError, match="boom"):
        execute(src, tmp_path / "bad.ipynb", html=tmp_path / "bad.html")
    assert (tmp_path / "bad.html").is_file()


def test_notebook_without_parameters_cell_is_rejected(tmp_path):
    src = tmp_path / "np.py"
    src.write_text("# %%\nx = 1\n")
    with pytest.raises(ValueError, match="parameters"):
        execute(src, tmp_path / "o.ipynb")
