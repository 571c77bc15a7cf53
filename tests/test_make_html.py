"""tools/make_html.py (``make html``) on two tiny lessons: pages with embedded figures, explorers and
progress bars frozen into static HTML, an index, and a failing lesson reported rather than hidden.
(The real lessons take about 8 minutes to run; ``make html`` itself is run by hand.)"""
from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

EXPLORER = '''\
import ipywidgets as widgets
import matplotlib.pyplot as plt
from retinanet_lite.widgets import explore

def draw(slope=1.0):
    plt.plot([0, 1], [0, slope])

explore(draw, slope=widgets.FloatSlider(value=1.5, min=0, max=2, description="slope"))'''
TIMEOUT = 60  # seconds per cell
PROGRESS = 'from tqdm.auto import tqdm\nfor _ in tqdm(range(3), desc="steps"):\n    pass'


def lesson(path: Path, title: str, *code: str) -> Path:
    notebook = new_notebook(cells=[new_markdown_cell(f"# {title}\n\nWhat this *lesson* is about."),
                                   *map(new_code_cell, code)],
                            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}})
    nbformat.write(notebook, path)
    return path


@pytest.mark.notebook  # nbconvert runs the two lessons in Jupyter kernels
def test_render_course(tmp_path, tool):
    make_html = tool("make_html")
    good = lesson(tmp_path / "98_widgets.ipynb", "Lesson 98 — Widgets", EXPLORER, PROGRESS)
    bad = lesson(tmp_path / "99_broken.ipynb", "Lesson 99 — Broken", "1 / 0", "print('never runs')")
    out = tmp_path / "html"
    # each cell takes seconds; the short timeout caps what a kernel that never answers can cost (one CI run
    # spent 304 s in this test when it allowed 300 s per cell, on a machine loaded with other kernels)
    failed = make_html.render_course([good, bad], out, workdir=tmp_path / "run", timeout=TIMEOUT)
    assert failed == ["99_broken.ipynb"]

    index = (out / "index.html").read_text()
    assert "href='98_widgets.html'>Lesson 98 — Widgets</a>" in index and "What this lesson is about." in index
    assert "FAILED" in index.split("99_broken.html")[1]

    page = (out / "98_widgets.html").read_text()
    assert "Interactive in JupyterLab; shown here with slope = 1.5." in page, "the explorer's knobs are listed"
    assert page.count("data:image/png;base64,") >= 1, "the explorer's figure is embedded in the page"
    assert "<progress" in page and "100%" in page and "3/3" in page, "the progress bar shows its final state"
    assert "widget-view+json" not in page and "widget-state+json" not in page, "no widget needs a kernel or a CDN"
    assert "ZeroDivisionError" in (out / "99_broken.html").read_text(), "a failing lesson shows its error"

    # re-rendering one lesson keeps the other's page in the index
    assert make_html.render_course([bad], out, workdir=tmp_path / "run", timeout=TIMEOUT) == ["99_broken.ipynb"]
    index = (out / "index.html").read_text()
    assert "98_widgets.ipynb · rendered by an earlier run" in index and "99_broken.html" in index
