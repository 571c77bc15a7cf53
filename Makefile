# `make lab` opens the course, `make test` runs every test (`make test-fast`: the quick unit tests only); all
# create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# Jupyter refuses to start as root unless told that this is intended (containers, Binder-like boxes).
ROOT_FLAG := $(if $(filter 0,$(shell id -u)),--allow-root,)

.PHONY: lab test test-fast bench data student publish-student grade html clean

# The NEON tree-crown images (retinanet_lite.data.TreeCrowns) come from the deepforest wheel, pinned in retinanet_lite/data/trees.py (pip cannot
# say --no-deps in pyproject.toml). Every install path runs this same command (tests/test_install_paths.py); if
# it fails (offline), the lesson fetches the images on first use instead.
FETCH_TREES = $(BIN)/python -m retinanet_lite data trees --fetch-only || echo "warning: the tree-crown images were not fetched; they will be on first use"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e ".[dev]"
	bash tools/hide_grader_extensions.sh $(BIN)/jupyter
	$(FETCH_TREES)
	touch $(STAMP)

lab: $(STAMP)
	@echo "Starting JupyterLab on notebooks/ — open the http://127.0.0.1:... URL printed below."
	$(BIN)/jupyter lab --notebook-dir=notebooks --ip=127.0.0.1 $(ROOT_FLAG)

# Three worker processes, a test file each at a time, in tests/conftest.py's order, torch on one thread each: on
# CI's two cores, while one waits (for a kernel, the browser, a model another is training) the others keep both
# busy. The 25 slowest steps are listed at the end (the whole run must stay within 15 minutes on 2 cores).
TEST_WORKERS ?= 3
test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder --durations=25

# The inner loop (under two minutes): every unit test that needs no notebook, no training run and no browser.
test-fast: $(STAMP)
	$(BIN)/python -m pytest tests -m "not notebook and not training and not browser"

bench: $(STAMP)
	$(BIN)/python bench/step_time.py
	$(BIN)/python bench/train_vs_torchvision.py
	$(BIN)/python bench/focal_loss_grid.py --seeds 0,1,2
	$(BIN)/python bench/focal_loss_grid.py --full --seeds 0
	$(BIN)/python bench/debug_drill.py --seeds 0,1,2
	$(BIN)/python bench/ablations.py --seeds 0,1,2
	$(BIN)/python bench/trees.py --seeds 0,1,2

data: $(STAMP)
	$(BIN)/python -m retinanet_lite data shapes --out data/shapes

# The lessons with every exercise solution replaced by nbgrader's stub → build/student/ (hand this out).
student: $(STAMP)
	$(BIN)/python tools/make_student_edition.py

# The student edition as branch `student` (Binder and Colab links included) for `git push origin student`.
publish-student: $(STAMP)
	$(BIN)/python tools/publish_student.py

# Grade SUBMISSIONS=folder/<student>/<lesson>.ipynb against the edition handed out (RELEASE, default build/student)
# → build/grades/grades.csv and one feedback page per student. TIMEOUT: seconds per exercise (default 120).
RELEASE ?= build/student
grade: $(STAMP)
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=folder  (folder/<student>/<lesson>.ipynb)"; exit 2; }
	$(BIN)/python tools/grade.py "$(SUBMISSIONS)" --release "$(RELEASE)" $(if $(TIMEOUT),--timeout $(TIMEOUT),)

# Run every lesson and render the course as a static website → build/html/index.html (about 8 minutes on a quiet 2-core CPU).
html: $(STAMP)
	$(BIN)/python tools/make_html.py

clean:
	rm -rf $(VENV) build runs .pytest_cache
