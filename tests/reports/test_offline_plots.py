"""The offline `dvc plots show` template inlines the libraries and keeps DVC's placeholder."""

from __future__ import annotations

from pathlib import Path

import pytest

from dmlstudy.reports.offline_plots import LIBRARIES, build_template, main

REPO = Path(__file__).resolve().parents[2]


def test_build_rejects_unsafe_script():
    with pytest.raises(ValueError, match="cannot be inlined"):
        build_template({"x": "a='</script>'"})


def test_main_names_missing_node_modules(tmp_path, capsys):
    assert main([str(tmp_path), str(tmp_path / "o.html")]) == 1
    assert "npm install" in capsys.readouterr().err


def test_main_builds_from_node_modules_layout(tmp_path):
    for name, rel in LIBRARIES.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(f"window['{name}'] = 1;")
    assert main([str(tmp_path), str(tmp_path / "o.html")]) == 0
    page = (tmp_path / "o.html").read_text()
    assert (
        page.index("window['vega']")
        < page.index("window['vega-lite']")
        < page.index("window['vega-embed']")
    )
    assert "{plot_divs}" in page and "<script src" not in page


def test_shipped_template_is_self_contained_if_built():
    page = REPO / "dvc_plots" / "offline.html"
    if not page.is_file():
        pytest.skip("dvc_plots/offline.html not built (see dmlstudy.reports.offline_plots)")
    text = page.read_text()
    assert "{plot_divs}" in text and "<script src" not in text and "vegaEmbed" in text
