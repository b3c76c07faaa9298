# Two commands do everything on a fresh machine with Python 3.11:
#   make demo   set up .venv, install trajalign (no test extras), run the main job on sample_data/
#   make test   set up .venv, install trajalign with its test extras, run the suite
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
DEMO   ?= demo_output
STAMP   = $(VENV)/.installed-test
BASE    = $(VENV)/.installed

.PHONY: demo test lint bench clean clean-cache

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The installs skip pip's byte-compilation of every installed module (some 20 s of the
# test extras' 35 s here): the demo and the suite run with bytecode writes allowed (see
# test), so the modules they import are compiled once, on first import, and the rest
# never (make PIP_COMPILE= restores pip's default).
PIP_COMPILE ?= --no-compile

# the demo needs trajalign and its dependencies only (not MDAnalysisTests, mdtraj, ...)
$(BASE): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(PIP_COMPILE) -e .
	touch $(BASE)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(PIP_COMPILE) -e ".[test]"
	touch $(STAMP) $(BASE)

# (as test: the demo's runs write Python's bytecode caches)
demo: export PYTHONDONTWRITEBYTECODE :=
demo: $(BASE)
	mkdir -p $(DEMO)
	$(BIN)/trajalign info sample_data/butane.dcd -t sample_data/butane.pdb
	$(BIN)/trajalign center sample_data/butane.dcd -t sample_data/butane.pdb -o $(DEMO)/butane_centered.h5 --force
	$(BIN)/trajalign rotate sample_data/butane.dcd -t sample_data/butane.pdb --fit-select "name C*" --reference average -o $(DEMO)/butane_aligned.h5 --write-traj $(DEMO)/butane_aligned.xtc --force
	$(BIN)/trajalign rotate sample_data/chain2d.npz --method principal -o $(DEMO)/chain2d_principal.h5 --plot $(DEMO)/figures/principal --force
	$(BIN)/trajalign diagnose sample_data/chain2d.npz --perturb-axis y -o $(DEMO)/chain2d_diagnostics.h5 --plot $(DEMO)/figures/diagnose --force
	$(BIN)/trajalign internal sample_data/butane.dcd -t sample_data/butane.pdb --dihedral-encoding sincos --transform inverse,rbf -o $(DEMO)/butane_internal.h5 --force
	@echo "# a periodic system as production runs write it: a dimer split across a triclinic box"
	$(BIN)/trajalign info sample_data/dimer.dcd -t sample_data/dimer.pdb -s "resname CHA" --pbc cluster
	$(BIN)/trajalign rotate sample_data/dimer.dcd -t sample_data/dimer.pdb -s "resname CHA" --pbc cluster -o $(DEMO)/dimer_aligned.h5 --force
	$(BIN)/trajalign diagnose sample_data/dimer.dcd -t sample_data/dimer.pdb -s "resname CHA" --pbc cluster --methods kabsch -o $(DEMO)/dimer_diagnostics.h5 --plot $(DEMO)/figures/dimer --force
	@echo
	@echo "demo outputs (HDF5 in the H5MD layout, XTC for viewers) are in $(DEMO)/,"
	@echo "figures in $(DEMO)/figures/:"
	@cd $(DEMO) && find . -type f | sort

# the suite in TEST_JOBS processes, a test file to each in turn (--dist loadfile keeps a
# file's module fixtures, Dask clusters among them, in one process), in the order of
# tests/conftest.py, the longest files first; every kernel is compiled first, by as many
# processes side by side, instead of by each worker on its own
TEST_JOBS ?= 2
# the suite's subprocesses write and reuse Python's bytecode caches: where the environment
# sets PYTHONDONTWRITEBYTECODE (some sandboxes and CI images do), each of them compiled
# trajalign's modules again (an empty value is unset for Python)
test: export PYTHONDONTWRITEBYTECODE :=
test: $(STAMP)
	$(BIN)/trajalign compile -q --jobs $(TEST_JOBS)
	$(BIN)/python -m pytest -q -n $(TEST_JOBS) --dist loadfile --no-loadscope-reorder --durations=15

lint: $(STAMP)
	$(BIN)/ruff check trajalign tests benchmarks sample_data
	$(BIN)/ruff format --check trajalign tests benchmarks sample_data

# make bench [BENCH_ARGS=--quick]: every table (in-memory kernels, scaling, whole-process
# rotate on a 20000-frame XTC, start-up); a few minutes, --quick about one
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet -e ".[test,bench]"
	$(BIN)/python benchmarks/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .hypothesis

# Numba's cache beside the sources. Numba checks a kernel's own file only: after editing
# a kernel module that others import (kernels/box.py, _borrow.py, ...), their cached
# kernels still hold the old code until this runs (a fresh install rewrites every file)
clean-cache:
	find trajalign -name '*.nbi' -delete -o -name '*.nbc' -delete
