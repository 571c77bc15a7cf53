"""What the notebook tests share: :class:`Kernel` runs lesson code in a fresh Jupyter kernel one piece at a
time and reports errors instead of raising them; :func:`load_tool` imports a script of tools/.

Lessons 08–12 load the model lesson 07 trains (``load_or_train``); :func:`lesson_checkpoint`
trains it once, by lesson 07's own recipe, so that neither these tests nor nbval train it again.
"""
from __future__ import annotations

import importlib.util
import sys
from functools import cache
from pathlib import Path
from types import ModuleType

import nbformat
from filelock import Timeout
from jupyter_client.manager import start_new_kernel

from retinanet_lite.train import LESSON_CHECKPOINT, TREES_CHECKPOINT, checkpoint_lock, train_or_reuse

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
#: The first lesson that loads a trained model (lesson 07 trains it; lessons 08–12 load it): lessons before it
#: need none.
FIRST_LESSON_WITH_MODEL = "07"


def loads_a_model(lesson: Path) -> bool:
    """Whether the lesson notebook ``lesson`` (``NN_name.ipynb``) loads a trained model (FIRST_LESSON_WITH_MODEL)."""
    return lesson.name[:2] >= FIRST_LESSON_WITH_MODEL


def load_tool(name: str) -> ModuleType:
    """Import ``tools/<name>.py`` (tools/ is a folder of scripts, not a package) once, under its own name,
    so that tools importing each other (the grader imports lesson_cells) find the same module."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, ROOT / "tools" / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


#: The arguments of lesson 07's ``train_or_reuse`` call (tests/test_lesson_07.py checks that they agree).
LESSON_07_TRAINING = {"preset": "shapes-cpu", "seed": 0, "eval_every": 500}
#: The other runs that lessons save with ``train_or_reuse`` (path → its arguments): lesson 09's re-runs of one
#: grid point and of one point of bench/results/ablations.json (one anchor per location), lesson 11's model (its
#: in-class schedule: 1 100 of the preset's 1 500 steps) and lesson 11's short run of the preset (its one-change
#: exercise compares with it). tests/test_lesson_09.py and tests/test_lesson_11.py check that the lessons call it
#: with these.
SHARED_RUNS = {  # the longest first: a second worker that needs them starts on the shorter ones meanwhile
    TREES_CHECKPOINT: {"preset": "trees-cpu", "seed": 0, "steps": 1100},
    Path("checkpoints/trees-short.pt"): {"preset": "trees-cpu", "seed": 0, "steps": 300, "warmup_steps": 50,
                                         "tta_views": 1, "tta_scales": (1.0,)},
    Path("checkpoints/focal-loss-rerun.pt"): {"preset": "shapes-cpu", "seed": 0, "steps": 250, "warmup_steps": 50,
                                              "num_train_images": 2000, "num_val_images": 300, "focal_gamma": 2.0,
                                              "focal_alpha": 0.25},
    Path("checkpoints/one-anchor-rerun.pt"): {"preset": "shapes-cpu", "seed": 0, "steps": 250, "warmup_steps": 50,
                                              "num_train_images": 2000, "num_val_images": 300, "focal_gamma": 2.0,
                                              "focal_alpha": 0.25, "anchor_ratios": (1.0,), "anchor_scales": (1.0,)},
}


@cache
def shared_runs() -> list[Path]:
    """The models of :data:`SHARED_RUNS` in notebooks/checkpoints/: trained here (about five minutes in all) if
    missing or made otherwise, else reused; the lessons under nbval and the student edition then reuse them.

    A run that another process is training already (``make test``'s other workers) is left to it at first and
    waited for at the end, so that the workers that need these runs share the training between them."""
    later = []
    for path, arguments in SHARED_RUNS.items():
        if being_trained(NOTEBOOKS / path):
            later.append((path, arguments))
        else:
            train_or_reuse(NOTEBOOKS / path, progress=False, **arguments)
    for path, arguments in later:  # waits for the other process, then reuses its file
        train_or_reuse(NOTEBOOKS / path, progress=False, **arguments)
    return [NOTEBOOKS / path for path in SHARED_RUNS]


def being_trained(path: Path) -> bool:
    """Whether another process holds ``path``'s checkpoint lock (is training or saving it) right now."""
    lock = checkpoint_lock(path)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        return True
    lock.release()
    return False


@cache
def lesson_checkpoint() -> Path:
    """notebooks/checkpoints/shapes-cpu.pt, made by lesson 07's recipe: trained here (a couple of
    minutes) if it is missing or was made otherwise, else reused. Lesson 07 (under nbval too) then
    reuses it, and lessons 08–12 load it."""
    path = NOTEBOOKS / LESSON_CHECKPOINT
    train_or_reuse(path, progress=False, **LESSON_07_TRAINING)
    return path


def tagged(cell: nbformat.NotebookNode, tag: str) -> bool:
    return tag in cell.get("metadata", {}).get("tags", [])


class Kernel:
    """A fresh IPython kernel in ``cwd``; :meth:`run` executes code and reports the error, if any. Under the test
    run it is forked from tests/preloaded_kernel.py's server, unless ``env`` (its environment) says otherwise."""

    def __init__(self, cwd: Path, env: dict[str, str] | None = None):
        self.manager, self.client = start_new_kernel(kernel_name="python3", cwd=str(cwd),
                                                     **({"env": env} if env is not None else {}))

    def run(self, source: str, timeout: float = 600) -> tuple[str | None, str]:
        """Execute ``source``; returns (error, text): ``error`` as :meth:`execute` gives it, ``text`` what it
        printed, displayed as text, and the error message."""
        error, messages = self.execute(source, timeout)
        text = []
        for kind, content in messages:
            if kind == "stream":
                text.append(content["text"])
            elif kind in ("execute_result", "display_data"):
                text.append(content["data"].get("text/plain", ""))
            elif kind == "error":
                text.append(f"{content['ename']}: {content['evalue']}")
        return error, "".join(text)

    def execute(self, source: str, timeout: float = 600) -> tuple[str | None, list[tuple[str, dict]]]:
        """Execute ``source``; returns (error, its output messages as (type, content)): ``error`` is None, the
        exception's name, or "aborted" if the kernel did not run it.

        An error does not make the kernel skip the next pieces (``stop_on_error=False``): with the default, ipykernel
        aborts the requests that reach it just after an error, so a piece sent at once would not run ("aborted")."""
        messages: list[tuple[str, dict]] = []

        def collect(message: dict) -> None:
            if message["msg_type"] in ("stream", "execute_result", "display_data", "error"):
                messages.append((message["msg_type"], message["content"]))

        reply = self.client.execute_interactive(source, timeout=timeout, output_hook=collect, stop_on_error=False)
        content = reply["content"]
        return (None if content["status"] == "ok" else content.get("ename", content["status"])), messages

    def close(self) -> None:
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)
