# The two commands a newcomer needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint bench clean bundle bundle-check gpu-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

run: $(STAMP)
	$(PY) main.py

test: $(STAMP)
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: $(STAMP)
	$(PY) benchmarks/analyze_speed.py

# The standalone program dist/cnnstudio/cnnstudio (PyInstaller, one folder; see build.spec).
# CPU-only by default; CNNSTUDIO_BUNDLE_CUDA=1 make bundle keeps the CUDA libraries for GPUs.
BUNDLE_STAMP := $(VENV)/.bundle-installed

$(BUNDLE_STAMP): $(STAMP)
	$(PY) -m pip install --quiet -e '.[bundle]'
	touch $(BUNDLE_STAMP)

bundle: $(BUNDLE_STAMP)
	$(PY) -m PyInstaller --noconfirm --clean --log-level WARN build.spec

# Start the built program offscreen: builds the window, trains one step, exits 0.
bundle-check:
	QT_QPA_PLATFORM=offscreen dist/cnnstudio/cnnstudio --self-test

# Every CUDA path checked in one command (under 8 minutes): one table, and $OUT/gpu_check.json
# (/tmp/gpu_check.json without $OUT). Uses .venv when there is one, else python3 as it is.
# The CPU version: make gpu-check GPU_CHECK_ARGS="--device cpu --quick"
GPU_CHECK_ARGS ?= --device cuda
gpu-check:
	QT_QPA_PLATFORM=offscreen PYTHONPATH=$(CURDIR) PYTHONUNBUFFERED=1 \
		$(if $(wildcard $(PY)),$(PY),$(PYTHON)) benchmarks/gpu_check.py $(GPU_CHECK_ARGS)

clean:
	rm -rf $(VENV) build dist .pytest_cache .ruff_cache
