# The two commands of the README's quick start:
#   make train   set up .venv, then train a VAE on MNIST (the main job)
#   make test    set up .venv, then run the unit tests and the notebooks (nbval, fast mode)
# Point VAE_KERAS_DATA at a folder holding mnist/ and fashion-mnist/ to work offline.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TRAIN_ARGS ?=

.PHONY: setup train test unit notebooks clean

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

clean:
	rm -rf $(VENV) runs
