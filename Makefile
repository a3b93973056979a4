# The two commands of the README: `make demo` and `make test`. Each creates .venv and installs what it needs.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip --disable-pip-version-check -q

export PATH := $(abspath $(VENV))/bin:$(PATH)
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export AXOLOTL_DO_NOT_TRACK := 1
export WANDB_MODE := disabled
export PYTHONUNBUFFERED := 1

.PHONY: install test demo bench lint-schemas clean

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PIP) install --upgrade pip
	$(PIP) install torch==2.13.0
	$(PIP) install -e '.[axolotl,test]'
	touch $@

install: $(VENV)/.installed

test: install
	$(PY) -m pytest

demo: install
	$(PY) -m axolotl_multiturn.demo

bench: install
	$(PY) benchmarks/preprocess.py
	$(PY) benchmarks/lint.py

clean:
	rm -rf $(VENV) outputs demo .pytest_cache
