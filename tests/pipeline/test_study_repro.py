"""The whole study under ``dvc repro`` in a temporary copy of the repository (tiny profile, two
losses, one seed, one ablation, the multi-modal experiment): every notebook runs under papermill.

One session-scoped run (``tiny_study``, tests/support/run_fixtures.py) is shared by all tests
here (kernels are slow). Needs the offline Omniglot archives (``shared_omniglot_dir`` skips
visibly without them).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.tiny_repo import LOSSES, dvc

pytestmark = (
    pytest.mark.slow
)  # one shared tiny `dvc repro` of the whole study: minutes, not seconds


def test_every_stage_ran_and_rendered(tiny_study):
    repo, _, repro = tiny_study
    for page in [
        "omniglot/prepare.html",
        "omniglot/train/contrastive-seed0.html",
        "omniglot/train/rsw-seed0.html",
        "omniglot/evaluate.html",
        "geometry.html",
        "omniglot/ablation-m_per_class.html",
        "omniglot/multimodal.html",
        "report.html",
        "index.html",
    ]:
        assert (repo / "reports" / page).is_file(), (
            f"missing reports/{page}\n{repro.stdout[-3000:]}"
        )
    html = (repo / "reports" / "omniglot" / "evaluate.html").read_text()
    assert "data:image/png;base64" in html
    index = (repo / "reports" / "index.html").read_text()
    assert 'href="omniglot/evaluate.html"' in index and "contrastive" in index


def test_metrics_and_results(tiny_study):
    repo, env, _ = tiny_study
    shown = json.loads(dvc(repo, env, "metrics", "show", "--json").stdout)
    files = next(iter(shown.values()))["data"]
    # one metrics file per loss: `dvc metrics show` reads as the table (a row per loss)
    assert set(files) == {f"results/omniglot/metrics/{loss}.json" for loss in LOSSES}
    for loss in LOSSES:
        row = files[f"results/omniglot/metrics/{loss}.json"]["data"]
        assert len(row) == 7 and 1 < row["recall@1"] <= 100  # percent, as every report
    for csv in (
        "table.csv",
        "runs.csv",
        "findings.json",
        "recall_at_k.csv",
        "val_curves.csv",
        "multimodal.csv",
        "multimodal-comparison.csv",
        "multimodal.json",
        "ablations/m_per_class.csv",
        "ablations/m_per_class-comparison.csv",
        "ablations/m_per_class.json",
    ):
        assert (repo / "results" / "omniglot" / csv).is_file(), csv


def test_every_result_file_is_a_declared_uncached_output(tiny_study):
    """What the lead commits under results/ is exactly what dvc.lock records (no stray file)."""
    repo, _, _ = tiny_study
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    outs = {
        o["path"]
        for stage in lock["stages"].values()
        for kind in ("outs",)
        for o in stage.get(kind, [])
        if o["path"].startswith("results/")
    }
    for path in (repo / "results").rglob("*"):
        rel = path.relative_to(repo).as_posix()
        if path.is_dir() or rel.startswith("results/tuning/"):
            continue
        assert any(rel == o or rel.startswith(o + "/") for o in outs), f"{rel} is no stage's out"
    status = subprocess.run(
        ["git", "status", "--porcelain", "--ignored", "results", "dvc.lock"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "!!" not in status, f"git ignores results files:\n{status}"


def test_readme_table_from_the_tiny_results(tiny_study):
    repo, env, _ = tiny_study
    proc = subprocess.run(
        [sys.executable, "-m", "dmlstudy.reports.readme_table"],
        cwd=repo,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    text = (repo / "README.md").read_text()
    section = text[text.index("<!-- results:start -->") : text.index("<!-- results:end -->")]
    assert "**omniglot, quick default study (`make study`)**" in section and "nan" not in section
    assert "| contrastive |" in section


def test_dvc_plots_show_works_offline(tiny_study, tmp_path):
    repo, env, _ = tiny_study
    dvc(
        repo, env, "plots", "show", "--html-template", "dvc_plots/offline.html", "-o", str(tmp_path)
    )
    page = (tmp_path / "index.html").read_text()
    assert "recall_at_k.csv" in page and "val_curves.csv" in page
    assert not re.search(r'<script[^>]+src="https?:', page)


_DATA_URI = re.compile(r"data:image/[a-z+]+;base64,[A-Za-z0-9+/=]+")


def _pages(repo: Path) -> dict[str, str]:
    return {
        p.relative_to(repo / "reports").as_posix(): _DATA_URI.sub("DATA", p.read_text())
        for p in sorted((repo / "reports").rglob("*.html"))
    }


def test_reports_have_no_stderr_warning_nan_or_machine_path(tiny_study):
    """Every page: no stderr or warning block, no NaN cell, no absolute path of this machine
    (the repository, the venv, a home), nothing loaded from the network."""
    repo, _, _ = tiny_study
    machine = [str(repo), str(repo.parent), sys.prefix, str(Path.home())]
    for name, html in _pages(repo).items():
        assert 'data-mime-type="application/vnd.jupyter.stderr"' not in html, f"{name}: stderr"
        assert not re.search(r"\b\w*Warning: ", html), f"{name}: a warning"
        assert not re.search(r"\bNaN\b|>\s*nan\s*<", html), f"{name}: a NaN cell"
        for path in machine:
            assert path not in html, f"{name}: names {path}"
        assert not re.search(r"(?<![\w.~-])/(home|root|tmp|work|usr)/", html), f"{name}: a path"
        assert not re.search(r'<(script|link|img)[^>]+(src|href)="(https?:)?//', html), (
            f"{name}: loads from the network"
        )


def test_index_leads_with_findings_and_links_every_page(tiny_study):
    repo, _, _ = tiny_study
    html = _pages(repo)["index.html"]
    marks = ["Which of 2 deep metric", 'id="headline"', 'id="takeaways"', 'id="published"']
    assert [html.index(m) for m in marks] == sorted(html.index(m) for m in marks)
    assert "There is no published retrieval number under this protocol" in html
    assert "Best MAP@R on omniglot:" in html and "Ablation m_per_class" in html
    assert "Trained on coarse labels only" in html
    for page in _pages(repo):
        if page != "index.html":
            assert f'href="{page}"' in html, f"index does not link {page}"
    evaluate = _pages(repo)["omniglot/evaluate.html"]
    assert "Equal effort: every loss had 4 training epochs of search" in evaluate
    assert "bootstrap over test classes" in evaluate and "What this shows" in evaluate
    # the committed paper-grade budget check (a dependency of the page), as a table
    assert "Budget check:" in evaluate and "stopped at" in evaluate


def test_repro_again_is_a_noop(tiny_study):
    repo, env, _ = tiny_study
    again = dvc(repo, env, "repro")
    assert "Running stage" not in again.stdout, again.stdout


def test_editing_one_loss_parameter_invalidates_only_its_consumers(tiny_study):
    repo, env, _ = tiny_study
    params = repo / "params.yaml"
    original = params.read_text()
    try:
        p = yaml.safe_load(original)
        # the key that decides contrastive's margin on Omniglot (its tuned value)
        p["losses"]["contrastive"]["per_dataset"]["omniglot"]["neg_margin"] = 0.6
        params.write_text(yaml.safe_dump(p, sort_keys=False))
        status = json.loads(dvc(repo, env, "status", "--json").stdout or "{}")
        # train@ of that loss only; plus the stages that read every loss section (the code
        # fingerprints read them for the regularizers' base losses: a cheap stage)
        assert set(status) == {
            "check_params",
            "fingerprint",
            "train@omniglot-contrastive-0",
            "geometry",
            "ablation@omniglot-m_per_class",
            "multimodal@omniglot",
        }, status
    finally:
        params.write_text(original)
    assert json.loads(dvc(repo, env, "status", "--json").stdout or "{}") == {}


def test_bad_params_fail_at_the_first_stage_naming_the_key(tiny_study):
    repo, env, _ = tiny_study
    params = repo / "params.yaml"
    original = params.read_text()
    try:
        p = yaml.safe_load(original)
        p["study"]["losses"] = ["contrastive", "tripplet"]
        p["losses"]["tripplet"] = {}
        params.write_text(yaml.safe_dump(p, sort_keys=False))
        proc = dvc(repo, env, "repro", check=False)
        out = proc.stdout + proc.stderr
        assert proc.returncode != 0
        assert "failed to reproduce 'check_params'" in out, out[-3000:]
        assert "unknown loss 'tripplet' (did you mean 'triplet'?)" in out and "Valid choices" in out
        assert "Running stage 'prepare" not in out and "Running stage 'train" not in out
    finally:
        params.write_text(original)
