# The two commands of the README's quick start:
#   make train   set up .venv, then train a VAE on MNIST (the main job)
#   make test    set up .venv, then run the unit tests and the notebooks (nbval, fast mode)
# The tested version sets (README, "Tested versions"), each in its own .venvs/SET:
#   make test-floor / test-colab / test-pinned   install the set, then `pip install -e ".[test]"`,
#                                               check TensorFlow was kept, run the unit tests
#   make test-matrix                            all three; PYTEST_ARGS='-m "not slow"' skips
#                                               the end-to-end tests
# Point VAE_KERAS_DATA at a folder holding mnist/ and fashion-mnist/ to work offline.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TRAIN_ARGS ?=
PYTEST_ARGS ?=
VERSION_SETS := floor colab pinned

.PHONY: setup train test unit notebooks clean test-matrix $(VERSION_SETS:%=test-%)

$(BIN)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

setup: $(BIN)/.installed

train: setup
	$(BIN)/vae-keras train $(TRAIN_ARGS)

test: unit notebooks

unit: setup
	$(BIN)/python -m pytest tests

# Fast mode shrinks epochs and data, never the code path (see notebooks/README.md).
notebooks: setup
	@if ls notebooks/*.ipynb >/dev/null 2>&1; then \
		VAE_KERAS_FAST=1 MPLBACKEND=Agg $(BIN)/python -m pytest --nbval-lax --nbval-current-env \
			-p no:cacheprovider notebooks; \
	else echo "no notebooks yet"; fi

# `make -k test-matrix` goes on to the next set when one fails.
test-matrix: $(VERSION_SETS:%=test-%)

$(VERSION_SETS:%=test-%): test-%:
	PYTHON=$(PYTHON) tools/test_versions.sh $* $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .venvs runs
