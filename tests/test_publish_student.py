"""`make publish-student` writes the student edition to its own branch, with links that open that branch."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from notebook_runner import load_tool

ROOT = Path(__file__).resolve().parent.parent


def git(root: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout


@pytest.fixture
def clone(tmp_path) -> Path:
    """A clone of this repository's HEAD with a stand-in trained model (publishing only copies it)."""
    target = tmp_path / "course"
    subprocess.run(["git", "clone", "--quiet", "--no-hardlinks", str(ROOT), str(target)], check=True)
    (target / "notebooks" / "checkpoints").mkdir(exist_ok=True)
    (target / "notebooks" / "checkpoints" / "shapes-cpu.pt").write_bytes(b"model weights")
    return target


def test_publish_writes_a_student_branch_and_leaves_the_work_tree_alone(clone):
    publish = load_tool("publish_student")
    head, status = git(clone, "rev-parse", "HEAD"), git(clone, "status", "--porcelain")
    commit, release = publish.publish("student", root=clone)
    assert git(clone, "rev-parse", "HEAD") == head and git(clone, "status", "--porcelain") == status
    assert git(clone, "rev-parse", "student").strip() == commit
    files = git(clone, "ls-tree", "-r", "--name-only", "student").split()
    lessons = sorted(p.name for p in (clone / "notebooks").glob("*.ipynb"))
    assert sorted(f.removeprefix("notebooks/") for f in files if f.endswith(".ipynb")) == lessons
    assert "notebooks/edition.json" in files and "notebooks/checkpoints/shapes-cpu.pt" in files
    assert "retinanet_lite/workbook/core.py" in files  # the rest of the course comes along
    edition = json.loads(git(clone, "show", "student:notebooks/edition.json"))
    assert edition == {**edition, "edition": "student", "release": release}
    for lesson in lessons:
        text = git(clone, "show", f"student:notebooks/{lesson}")
        assert "BEGIN SOLUTION" not in text
        colab = "".join(json.loads(text)["cells"][1]["source"])
        assert '"--branch", "student"' in colab, f"{lesson}: its Colab cell must clone the student branch"
    readme = git(clone, "show", "student:README.md")
    assert "/blob/student/notebooks/" in readme and "/retinanet-course/student?urlpath" in readme
    assert "/blob/main/" not in readme and "/HEAD?urlpath" not in readme
    again, _ = publish.publish("student", root=clone)
    assert git(clone, "rev-parse", f"{again}^").strip() == commit, "publishing again adds a commit on top"


def test_publishing_without_the_trained_model_is_a_clear_error(clone):
    (clone / "notebooks" / "checkpoints" / "shapes-cpu.pt").unlink()
    with pytest.raises(ValueError, match="shapes-cpu.pt is missing"):
        load_tool("publish_student").publish("student", root=clone)
    shutil.rmtree(clone)
