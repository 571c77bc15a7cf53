"""Render the course as a static website: run every lesson, then write one HTML page per lesson.

    python tools/make_html.py              # all lessons → build/html/index.html   (= make html)
    python tools/make_html.py 06 07        # only the lessons whose names start with 06 or 07

Each lesson is executed top to bottom in a fresh kernel (nbconvert's engine, nbclient), in lesson
order, with a scratch folder as working directory (build/run/, a copy of the non-notebook files of
notebooks/) — so lesson 07's checkpoint is where lessons 08–09 look for it, and nothing is written
into notebooks/. The executed notebook is turned into HTML by nbconvert's HTML exporter; figures
are embedded in the page as PNG data, so the folder can be copied to any web server (e.g. GitHub
Pages) or opened from disk. (Formulas are typeset by MathJax, which the pages load from a CDN.)

Widgets need a running kernel to react, so a static page cannot move a slider. Each explorer is
therefore rendered as what it showed when the lesson ran — its figure at the default knob values —
under a one-line note listing the knobs and their values; a progress bar shows its final state.

A lesson that fails is still rendered (up to and including the error, shown in the page and marked
in the index); the script then exits with status 1. Rendering only some lessons keeps the pages of
the others from earlier runs in the index.
"""
from __future__ import annotations

import argparse
import html
import re
import shutil
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError
from nbconvert import HTMLExporter

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/ is a folder of scripts
from make_student_edition import not_course_files  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
OUT = ROOT / "build" / "html"
WORKDIR = ROOT / "build" / "run"
CELL_TIMEOUT = 3600  # seconds per cell: lessons 07–09 train detectors on a CPU
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


# ------------------------------------------------------------------------------------ widgets
#: Widget models a student turns or types into; the static page lists their values.
CONTROLS = ("SliderModel", "DropdownModel", "CheckboxModel", "ToggleButtonModel", "ToggleButtonsModel",
            "RadioButtonsModel", "SelectModel", "TextModel", "IntTextModel", "FloatTextModel")


def _control_text(state: dict) -> str:
    """'description = value' of a slider / dropdown / checkbox / text box."""
    value = state.get("value")
    if "_options_labels" in state and state.get("index") is not None:  # dropdowns, toggle buttons
        value = state["_options_labels"][state["index"]]
    if isinstance(value, float):
        value = f"{value:g}"
    return f"{state.get('description') or '?'} = {value}"


def _walk_widget(model_id: str, widgets: dict, found: dict) -> None:
    """Collect, depth first under ``model_id``: the controls' texts, the Output widgets' outputs, and
    a static HTML rendering of text and progress widgets (e.g. a tqdm progress bar)."""
    state = widgets.get(model_id, {})
    name = state.get("_model_name", "")
    if name.endswith(CONTROLS):
        found["controls"].append(_control_text(state))
    elif name == "OutputModel":
        found["outputs"].extend(state.get("outputs", []))
    elif name == "HTMLModel":
        found["html"].append(str(state.get("value", "")))
    elif name == "LabelModel":
        found["html"].append(html.escape(str(state.get("value", ""))))
    elif name.endswith("ProgressModel"):
        found["html"].append(f"<progress value='{state.get('value', 0)}' max='{state.get('max', 100)}'></progress>")
    for child in state.get("children", []):
        _walk_widget(str(child).removeprefix("IPY_MODEL_"), widgets, found)


def freeze_widgets(notebook: nbformat.NotebookNode, widgets: dict[str, dict]) -> None:
    """Replace every widget output by what it showed when the lesson ran: a note on its knobs and the
    figures of its output area (explorers), or its text and bars (progress bars)."""
    for cell in notebook.cells:
        if cell.cell_type != "code":
            continue
        frozen = []
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            if not view:
                frozen.append(output)
                continue
            found: dict[str, list] = {"controls": [], "outputs": [], "html": []}
            _walk_widget(view["model_id"], widgets, found)
            parts = []
            if found["controls"]:
                parts.append("<p class='frozen-widget'><em>Interactive in JupyterLab; shown here with "
                             + html.escape(", ".join(found["controls"])) + ".</em></p>")
            if found["html"]:
                parts.append("<div class='frozen-widget'>" + " ".join(found["html"]) + "</div>")
            if parts:
                frozen.append(nbformat.v4.new_output("display_data", data={"text/html": "\n".join(parts)}))
            frozen.extend(nbformat.from_dict(o) for o in found["outputs"])
        cell.outputs = frozen
    notebook.metadata.pop("widgets", None)


# ------------------------------------------------------------------------------------ lessons
def title_and_summary(notebook: nbformat.NotebookNode, fallback: str) -> tuple[str, str]:
    """The lesson's '# ' title and the first paragraph after it (plain text, for the index)."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            lines = cell.source.strip().split("\n")
            if lines and lines[0].startswith("# "):
                paragraph = []
                for line in lines[1:]:
                    if not line.strip():
                        if paragraph:
                            break
                        continue
                    if line.startswith("#"):
                        break
                    paragraph.append(line.strip())
                summary = re.sub(r"[*`$]", "", " ".join(paragraph))
                return lines[0][2:].strip(), summary[:300] + ("…" if len(summary) > 300 else "")
    return fallback, ""


def execute(notebook: nbformat.NotebookNode, workdir: Path, timeout: int) -> str | None:
    """Run ``notebook`` in place (cwd ``workdir``), freeze its widgets; returns the error, or None."""
    client = NotebookClient(notebook, timeout=timeout, kernel_name="python3", store_widget_state=True,
                            resources={"metadata": {"path": str(workdir)}})
    error = None
    try:
        client.execute()
    except CellExecutionError as exc:  # a cell raised: its traceback is in the page
        error = f"{exc.ename}: {exc.evalue}"
    except Exception as exc:  # the kernel died (nbclient may then also fail to clean up), a cell timed out, …
        if isinstance(exc.__context__, (DeadKernelError, CellTimeoutError)):
            exc = exc.__context__
        message = str(exc).strip().splitlines()
        error = f"{type(exc).__name__}: {message[0] if message else ''}"
    freeze_widgets(notebook, client.widget_state)
    return error


INDEX = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body {{ font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem; line-height: 1.5; }}
 li {{ margin-bottom: 1rem; }} .meta {{ color: #666; font-size: 0.9em; }} .failed {{ color: #b00; font-weight: bold; }}
</style></head>
<body>
<h1>{title}</h1>
<p>Every lesson below was executed (last run: {date}); the pages show its code, text, figures and self-checks.
To run the lessons yourself, see the repository's README (<code>make lab</code>, Binder or Colab).</p>
<ul>
{items}
</ul>
</body></html>
"""


def render_course(lessons: list[Path], out: Path, workdir: Path = WORKDIR, timeout: int = CELL_TIMEOUT) -> list[str]:
    """Execute ``lessons`` (cwd ``workdir``) and render them into ``out``; write ``out/index.html``.
    Returns the names of the lessons that failed."""
    out.mkdir(parents=True, exist_ok=True)
    # the files the lessons may read (data, images, checkpoints/), without the notebooks; lesson 07
    # trains its model again and saves it there, where lessons 08–12 load it
    shutil.copytree(NOTEBOOKS, workdir, dirs_exist_ok=True, ignore=not_course_files)
    exporter = HTMLExporter(template_name="lab")
    items, failed = {}, []
    for path in lessons:
        notebook = nbformat.read(path, as_version=4)
        title, summary = title_and_summary(notebook, path.stem)
        print(f"running {path.name} …", flush=True)
        start = time.perf_counter()
        error = execute(notebook, workdir, timeout)
        seconds = time.perf_counter() - start
        body, _ = exporter.from_notebook_node(notebook, resources={"metadata": {"name": title}})
        page = out / f"{path.stem}.html"
        page.write_text(body, encoding="utf-8")
        status = f"{seconds:.0f} s" + (f" — <span class='failed'>FAILED: {html.escape(error)}</span>" if error else "")
        print(f"  {page.relative_to(ROOT) if page.is_relative_to(ROOT) else page}: {status if not error else 'FAILED: ' + error}")
        if error:
            failed.append(path.name)
        items[path.name] = index_item(page.name, title, summary, f"{path.name} · ran in {status}")
    for path in lessons[0].parent.glob("*.ipynb") if lessons else []:  # pages kept from earlier runs
        if path.name not in items and (out / f"{path.stem}.html").exists():
            title, summary = title_and_summary(nbformat.read(path, as_version=4), path.stem)
            items[path.name] = index_item(f"{path.stem}.html", title, summary, f"{path.name} · rendered by an earlier run")
    (out / "index.html").write_text(INDEX.format(title="RetinaNet, built piece by piece — the course",
                                                 date=time.strftime("%Y-%m-%d %H:%M"),
                                                 items="\n".join(items[name] for name in sorted(items))),
                                    encoding="utf-8")
    return failed


def index_item(href: str, title: str, summary: str, meta: str) -> str:
    return (f"<li><a href='{href}'>{html.escape(title)}</a><br>{html.escape(summary)}"
            f"<br><span class='meta'>{meta}</span></li>")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("lessons", nargs="*", help="lesson name prefixes, e.g. 06 07 (default: all)")
    parser.add_argument("--out", type=Path, default=OUT, help="default: build/html/")
    parser.add_argument("--workdir", type=Path, default=WORKDIR, help="working directory of the lessons (default: build/run/)")
    parser.add_argument("--timeout", type=int, default=CELL_TIMEOUT, help="seconds allowed per cell")
    args = parser.parse_args(argv)
    lessons = [p for p in sorted(NOTEBOOKS.glob("*.ipynb"))
               if not args.lessons or any(p.name.startswith(prefix) for prefix in args.lessons)]
    if not lessons:
        parser.error(f"no lesson matches {args.lessons}")
    start = time.perf_counter()
    failed = render_course(lessons, args.out, args.workdir, args.timeout)
    print(f"{len(lessons)} lessons rendered in {time.perf_counter() - start:.0f} s: open {args.out / 'index.html'}")
    if failed:
        print("FAILED:", ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
