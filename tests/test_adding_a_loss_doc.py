"""docs/adding-a-loss.md works as written (issue #17): its example module, dropped into a loss
package, is registered by discovery alone and passes the checks every loss must pass
(tests/losses/test_common.py); its params section validates, and check_params asks for tuning."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
import yaml

from dmlstudy.config import ParamsError, config_from_dict
from dmlstudy.losses import base, build_loss, discover_loss_modules, list_losses

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "adding-a-loss.md"
NAME = "norm_softmax"


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", DOC.read_text(), flags=re.S)


@pytest.fixture
def registered(tmp_path, monkeypatch) -> list[str]:
    """The doc's module as ``<tmp package>/norm_softmax.py``, discovered; the registry and
    sys.modules are restored afterwards."""
    monkeypatch.setattr(base, "_REGISTRY", dict(base._REGISTRY))
    package = tmp_path / "doc_losses_pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / f"{NAME}.py").write_text(_blocks("python")[0])
    monkeypatch.syspath_prepend(str(tmp_path))
    modules = discover_loss_modules("doc_losses_pkg", [str(package)])
    yield modules
    for module in [m for m in sys.modules if m.startswith("doc_losses_pkg")]:
        del sys.modules[module]


def _common_checks():
    path = REPO / "tests" / "losses" / "test_common.py"
    spec = importlib.util.spec_from_file_location("doc_test_common", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [getattr(module, n) for n in dir(module) if n.startswith("test_")]


def test_the_example_module_registers_through_discovery_and_passes_the_shared_checks(
    registered,
):
    assert registered == [f"doc_losses_pkg.{NAME}"]
    assert NAME in list_losses()
    loss = build_loss(NAME, num_classes=4, embedding_dim=8, temperature=0.1)
    assert loss.temperature == 0.1 and loss.param_groups(1e-3)[0]["lr"] == pytest.approx(1e-3)
    checks = _common_checks()
    assert len(checks) >= 5
    for check in checks:
        check(NAME)


def test_the_example_params_section_validates_and_check_params_asks_for_tuning(registered):
    snippet = yaml.safe_load(_blocks("yaml")[0])
    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["study"]["losses"] = [*raw["study"]["losses"], NAME]
    raw["losses"][NAME] = snippet["losses"][NAME]
    raw["tuning"]["space"][NAME] = snippet["tuning"]["space"][NAME]
    from dmlstudy.study.check_params import check_campaign, check_tuning_coverage

    with pytest.raises(ParamsError, match=f"add {NAME} to study.untuned"):
        check_tuning_coverage(config_from_dict(raw))
    raw["study"]["untuned"] = snippet["study"]["untuned"]
    config = config_from_dict(raw)
    (warning,) = check_tuning_coverage(config)
    assert f"--loss {NAME}" in warning
    assert check_campaign(config) >= 1  # its trial 0 and its space's corners build
