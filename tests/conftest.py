"""Shared test set-up: the matplotlib backend, figures closed after every test, scripts from tools/,
the lesson runner, Jupyter kernels, the trained lesson model — and the markers that keep the inner
loop fast.

Markers (registered in pyproject.toml; ``make test-fast`` deselects all three):

* ``notebook`` — starts a Jupyter kernel or runs notebook cells. Given automatically to nbval's
  cells and to every test that uses the ``start_kernel``, ``student_run`` or ``lesson_kernel`` fixture;
  any other test that starts a kernel fails, saying so.
* ``training`` — trains a model beyond a few in-process steps (or under torchrun). Given
  automatically to every test that uses the ``lesson_checkpoint`` or ``lesson_model`` fixture; a
  test with none of the three markers whose training run asks for more than ``MAX_UNMARKED_STEPS``
  steps fails, saying so. (A ``notebook`` test whose lesson cells load lesson 07's model trains it
  first if it is missing: see ``notebook_runner.lesson_checkpoint``.)
* ``browser`` — drives a real browser (given to every test that uses the ``browser`` fixture).

``make test`` runs the suite on three pytest-xdist workers, a file at a time each (``--dist loadfile``), with
torch on one thread each, in the order set here: the browser test and two of the three files that train the
shared models first (one per worker; the browser test's worker then takes the third), then the tests that need no
trained model, then those that do (the longest files first in each). Two
processes that need the same model take turns (``retinanet_lite.train.checkpoint_lock``): each model is trained
once per run. The kernels the tests start are forked from a server that has imported torch and torchvision
(tests/preloaded_kernel.py): a lesson's first cell no longer spends ~4 s importing them.
"""
from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # once, before any test imports pyplot: no windows, same pixels everywhere
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from jupyter_client.manager import KernelManager  # noqa: E402

import notebook_runner  # noqa: E402
import preloaded_kernel  # noqa: E402
from notebook_runner import load_tool, loads_a_model  # noqa: E402
from student_run_all import run_all  # noqa: E402
import retinanet_lite.train  # noqa: E402
from retinanet_lite.train import load_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
#: Tests with none of the markers may train for at most this many steps.
MAX_UNMARKED_STEPS = 200
#: Fixture → the marker every test using it (directly or through another fixture) gets.
FIXTURE_MARKERS = {"student_run": "notebook", "lesson_kernel": "notebook", "start_kernel": "notebook",
                   "lesson_checkpoint": "training", "lesson_model": "training", "shared_runs": "training",
                   "browser": "browser"}


#: The files that train the shared models (lesson 07's model; the runs of lessons 09 and 11, which two workers
#: share: notebook_runner.shared_runs): first in the run, so that under ``make test`` each worker starts on one.
TRAINS_FIRST = ("tests/test_lesson_07.py", "tests/test_lesson_11.py", "tests/test_lesson_09.py")
#: Before even those: the browser test, which mostly waits (for the disk, JupyterLab and Chromium: over a minute
#: when their files are not in the page cache). Its worker then takes the third of TRAINS_FIRST, whose share of the
#: shared runs is the shorter one (it trains lesson 09's and 11's short runs, then waits for lesson 11's model):
#: so the wait costs nothing, while the two other workers train. (Later in the run it held up a worker while both
#: others were busy: bench/README.md, *Test suite*.)
STARTS_FIRST = ("tests/test_browser.py",)
#: The files that take longest (a minute or more under ``make test``), longest first: first within their group, so
#: that no worker starts one of them when the others are nearly done (the run would wait for it alone).
LONGEST_FIRST = ("tests/test_student_edition_trained.py", "tests/test_grade.py", "notebooks/11_tree_crowns.ipynb",
                 "tests/test_student_edition.py", "tests/test_drill.py", "notebooks/10_classical_baseline.ipynb")
#: Fixtures that need a shared trained model (as do the lesson notebooks from lesson 07 on: loads_a_model).
NEEDS_MODELS = {"lesson_checkpoint", "lesson_model", "shared_runs"}


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist (``make test``), each worker gets its share of the cores for torch (at least one
    thread) — and passes it on to the kernels and grader processes it starts. Two torch processes with two
    threads each on two cores run 3–5× slower than with one each (bench/README.md, *Test suite*)."""
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        threads = max(1, (os.cpu_count() or 1) // int(workers))
        os.environ["OMP_NUM_THREADS"] = str(threads)
        torch.set_num_threads(threads)


#: The kernel server this process started, and its folder (kernelspec, socket).
KERNEL_SERVER = pytest.StashKey[tuple[Path, subprocess.Popen]]()


def pytest_collection_finish(session: pytest.Session) -> None:
    """If this process will run notebooks or start kernels, start the server that forks them with torch and
    torchvision already imported (tests/preloaded_kernel.py): ~4 processor-seconds less per kernel."""
    if preloaded_kernel.available() and any(item.get_closest_marker("notebook") for item in session.items):
        folder = Path(tempfile.mkdtemp(prefix="kernels-"))
        session.config.stash[KERNEL_SERVER] = folder, preloaded_kernel.install(folder)


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop this process's kernel server (its kernels have been shut down by the tests that started them)."""
    if KERNEL_SERVER in config.stash:
        folder, server = config.stash[KERNEL_SERVER]
        server.terminate()
        server.wait()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.suffix == ".ipynb":  # a cell that nbval runs
            item.add_marker("notebook")
        for fixture in getattr(item, "fixturenames", ()):
            if fixture in FIXTURE_MARKERS:
                item.add_marker(FIXTURE_MARKERS[fixture])
    needs_models = {item.path for item in items if NEEDS_MODELS & set(getattr(item, "fixturenames", ()))
                    or (item.path.suffix == ".ipynb" and loads_a_model(item.path))}

    trainers = {item.path for item in items if NEEDS_MODELS & set(getattr(item, "fixturenames", ()))}
    idle = [name for name in TRAINS_FIRST if ROOT / name in {item.path for item in items} and ROOT / name not in trainers]
    if idle:
        raise pytest.UsageError(f"conftest.TRAINS_FIRST names {idle}, but no test there uses one of the fixtures "
                                f"{sorted(NEEDS_MODELS)}: nothing would train the shared models first")
    gone = [name for name in LONGEST_FIRST + STARTS_FIRST if not (ROOT / name).is_file()]
    if gone:
        raise pytest.UsageError(f"conftest.LONGEST_FIRST or STARTS_FIRST names files that do not exist: {gone}")

    def order(item: pytest.Item) -> tuple[int, int]:
        """(group, rank): STARTS_FIRST, then group 0 trains the shared models (in TRAINS_FIRST's order), 1 needs
        none, 2 waits for them; within groups 1 and 2 the LONGEST_FIRST files first, then the rest in file order."""
        name = item.path.relative_to(ROOT).as_posix()
        if name in STARTS_FIRST:
            return -1, STARTS_FIRST.index(name)
        if name in TRAINS_FIRST:
            return 0, TRAINS_FIRST.index(name)
        group = 2 if item.path in needs_models else 1
        return group, LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
    items.sort(key=order)  # stable: each file's tests stay together and in order


@pytest.fixture(autouse=True)
def close_figures():
    """Close every matplotlib figure a test leaves open."""
    yield
    plt.close("all")


@pytest.fixture(autouse=True)
def unmarked_tests_stay_fast(request, monkeypatch):
    """A test without the ``notebook`` marker may not start a Jupyter kernel, and a test without any
    of the three markers may not train for more than MAX_UNMARKED_STEPS steps: each fails with a
    message naming the marker it needs (so ``make test-fast`` never runs either by accident)."""
    name = request.node.nodeid
    markers = {marker.name for marker in request.node.iter_markers()}
    if "notebook" not in markers:
        def refuse_kernel(*args, **kwargs):
            raise RuntimeError(f"{name} starts a Jupyter kernel: mark it @pytest.mark.notebook "
                               "(or use the start_kernel fixture)")
        monkeypatch.setattr(KernelManager, "_async_pre_start_kernel", refuse_kernel)
    if not markers & {"notebook", "training", "browser"}:
        fit = retinanet_lite.train.fit

        def short_fit(model, train_set, val_set, recipe, *args, **kwargs):
            if recipe.steps > MAX_UNMARKED_STEPS and recipe.max_seconds is None:
                raise RuntimeError(f"{name} trains for {recipe.steps} steps: mark it @pytest.mark.training "
                                   "(or use the lesson_model / lesson_checkpoint fixture)")
            return fit(model, train_set, val_set, recipe, *args, **kwargs)
        monkeypatch.setattr(retinanet_lite.train, "fit", short_fit)


@pytest.fixture(scope="session")
def tool():
    """``tool("make_html")``: the module of the script ``tools/make_html.py``."""
    return load_tool


@pytest.fixture
def start_kernel():
    """``start_kernel(cwd)`` → a fresh :class:`notebook_runner.Kernel` in ``cwd``, shut down after the test."""
    kernels: list[notebook_runner.Kernel] = []

    def start(cwd: Path) -> notebook_runner.Kernel:
        kernels.append(notebook_runner.Kernel(cwd))
        return kernels[-1]

    yield start
    for kernel in kernels:
        kernel.close()


@pytest.fixture(scope="session")
def student_dir(tmp_path_factory) -> Path:
    """A freshly generated student edition (in a temporary folder, not build/)."""
    out = tmp_path_factory.mktemp("course") / "student"
    load_tool("make_student_edition").make_student_edition(notebook_runner.NOTEBOOKS, out)
    return out


@pytest.fixture
def student_run(student_dir):
    """``student_run(lesson)``: Run All on the untouched student edition's copy of ``lesson`` in a fresh kernel →
    {cell index: (exception name or None, output messages)} (:func:`student_run_all.run_all`)."""
    return functools.partial(run_all, student_dir)


@pytest.fixture(scope="session")
def lesson_checkpoint() -> Path:
    """notebooks/checkpoints/shapes-cpu.pt, trained by lesson 07's recipe: trained once per test run
    at most (a couple of minutes), then reused by every test, nbval's lessons 07–12 and the student
    edition (see :func:`notebook_runner.lesson_checkpoint`)."""
    return notebook_runner.lesson_checkpoint()


@pytest.fixture(scope="session")
def shared_runs() -> list[Path]:
    """The runs lessons 09 and 11 save (notebook_runner.SHARED_RUNS): trained once per test run at most,
    then reused by those lessons under nbval and by the student edition."""
    return notebook_runner.shared_runs()


@pytest.fixture(scope="session")
def lesson_model(lesson_checkpoint):
    """The trained model of lesson 07 (eval mode, on the CPU). Shared: do not change it in a test."""
    return load_checkpoint(lesson_checkpoint)


@pytest.fixture(scope="session")
def tree_data() -> Path:
    """The folder of the DeepForest tree-crown images and XML files: fetched at most once per test run
    into the cache folder (``data/deepforest``; a ~20 MB wheel from the package registry), then reused."""
    from retinanet_lite.data import deepforest_data

    return deepforest_data()
