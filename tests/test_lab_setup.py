"""The course environment's JupyterLab has nbgrader's grader extensions switched off (the set-up in the
Makefile and Binder's postBuild run tools/hide_grader_extensions.sh), and the script really does it."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NBGRADER_SERVER = ("formgrader", "validate_assignment", "assignment_list", "course_list")


def enabled_extensions(config_dir: Path) -> tuple[dict[str, bool], list[str]]:
    """(server extension → enabled, disabled JupyterLab extensions) as written under ``config_dir``."""
    server: dict[str, bool] = {}
    for path in sorted((config_dir / "jupyter_server_config.d").glob("*.json")):
        server.update(json.loads(path.read_text())["ServerApp"]["jpserver_extensions"])
    page_config = config_dir / "labconfig" / "page_config.json"
    disabled = json.loads(page_config.read_text()).get("disabledExtensions", {}) if page_config.exists() else {}
    return server, [name for name, off in disabled.items() if off]


@pytest.mark.skipif(not (Path(sys.prefix) / ".installed").exists(),
                    reason="not the environment `make` creates (.venv/.installed missing)")
def test_make_switched_nbgrader_off_in_the_course_environment():
    server, disabled_lab = enabled_extensions(Path(sys.prefix) / "etc" / "jupyter")
    for name in NBGRADER_SERVER:
        assert server.get(f"nbgrader.server_extensions.{name}") is False, f"nbgrader {name} still enabled"
    assert "@jupyter/nbgrader" in disabled_lab, "nbgrader's JupyterLab menus are still on"
    assert server.get("jupyterlab") is True, "JupyterLab itself must stay enabled"


def test_binder_post_build_runs_the_same_script():
    post_build = (ROOT / "binder" / "postBuild").read_text()
    assert "tools/hide_grader_extensions.sh" in post_build
    assert os.access(ROOT / "binder" / "postBuild", os.X_OK), "Binder runs postBuild only if it is executable"
