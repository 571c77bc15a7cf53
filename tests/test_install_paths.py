"""The deepforest pin lives in one place, and every install path fetches the tree-crown images with it.

pyproject.toml cannot say `pip install --no-deps`, so the wheel that carries the NEON images is pinned in
retinanet_lite/data/trees.py (``DEEPFOREST_WHEEL``) and fetched by one command,
``python -m retinanet_lite data trees --fetch-only``. make, Binder's postBuild, the Colab cell and the
README's conda instructions (conda cannot run a command after an install) all run that command.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from notebook_runner import load_tool
from retinanet_lite.__main__ import main
from retinanet_lite.data.trees import DEEPFOREST_WHEEL

ROOT = Path(__file__).resolve().parent.parent
FETCH = "retinanet_lite data trees --fetch-only"


def tracked_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    return [ROOT / name for name in names if (ROOT / name).is_file()]


def test_the_pin_is_written_in_one_place():
    pins = []
    for path in tracked_files():
        if path.suffix in {".png", ".pt", ".whl", ".jpg"} or path.parts[len(ROOT.parts)] == "tests":
            continue
        text = path.read_text(errors="ignore")
        if re.search(r"deepforest\s*[=<>~]=", text) and path.suffix != ".md":  # prose may quote it
            pins.append(path.relative_to(ROOT).as_posix())
    assert pins == ["retinanet_lite/data/trees.py"], f"deepforest pinned in {pins}: keep it in trees.py only"
    assert re.fullmatch(r"deepforest==\d+\.\d+\.\d+", DEEPFOREST_WHEEL)


def test_every_install_path_fetches_the_images_with_the_one_command():
    makefile = (ROOT / "Makefile").read_text()
    stamp_recipe = makefile[makefile.index("$(STAMP): pyproject.toml"):].split("\n\n")[0]
    assert "$(FETCH_TREES)" in stamp_recipe and f"-m {FETCH}" in makefile, "make's set-up must fetch the images"
    assert f"python -m {FETCH}" in (ROOT / "binder" / "postBuild").read_text(), "Binder's postBuild must fetch them"
    colab = load_colab_source()
    assert '"retinanet_lite", "data", "trees", "--fetch-only"' in colab, "the Colab cell must fetch them"
    readme = (ROOT / "README.md").read_text()
    conda = readme[readme.index("conda users:"):].split("\n\n")[0]
    assert f"python -m {FETCH}" in conda, "the README's conda instructions must fetch them"
    assert FETCH in (ROOT / "environment.yml").read_text(), "environment.yml must say how (conda runs no command)"


def load_colab_source() -> str:
    return load_tool("colab_cell").SOURCE


def test_fetch_only_is_refused_for_the_shapes():
    with pytest.raises(SystemExit) as stopped:
        main(["data", "shapes", "--fetch-only"])
    assert "--fetch-only is for `data trees`" in str(stopped.value.code)


def test_fetch_only_names_the_folder_of_the_images(tree_data, capsys):
    main(["data", "trees", "--fetch-only"])  # the images are there already (the fixture fetched them): reused
    assert str(tree_data) in capsys.readouterr().out
