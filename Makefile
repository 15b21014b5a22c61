# Two commands set everything up on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: venv demo test lint bench screenshot clean

venv: $(STAMP)

# torch==2.13.0 first and alone: it is the CPU build on this machine's disk; an unpinned
# torch pulled in by another package would be a multi-GB CUDA download.
$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m SAFNetSpineLib segment Resources/SampleData/SAFNetSpinePhantom.nii.gz -o out/demo --format both --overlay --measure

test: $(STAMP)
	$(PY) -m pytest -q Testing

# ruff, then vulture's dead-code check (configured in pyproject.toml [tool.vulture]).
lint: $(STAMP)
	$(PY) -m ruff check SAFNetSpineLib SAFNetSpine Testing
	$(PY) -m vulture

screenshot: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(PY) Testing/slicer/render_panel_screenshot.py --icons

bench: $(STAMP)
	$(PY) Testing/benchmarks/bench_model_speed.py
	$(PY) Testing/benchmarks/bench_segment.py

clean:
	rm -rf out .pytest_cache
