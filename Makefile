# The two commands of the README's quick start:
#   make train   set up .venv, then train a VAE on MNIST (the main job)
#   make test    set up .venv, then the unit tests and the notebooks (nbval, fast mode) side by side
# The tested version sets (README, "Tested versions"), each in its own .venvs/SET:
#   make test-floor / test-colab / test-pinned   install the set, then `pip install -e ".[test]"`,
#                                               check TensorFlow was kept, run the unit tests
#   make test-matrix                            all three; PYTEST_ARGS='-m "not slow"' skips
#                                               the end-to-end tests
#   make test-colab NOTEBOOKS=1                 then the notebooks too, in fast mode (as
#                                               Colab's learners run them; NOTEBOOKS=only
#                                               skips the unit tests). A set file may name
#                                               its Python (colab.txt: 3.13), built once
#                                               if missing (tools/build_python.sh)
#   make test-backends                          the core tests under JAX and PyTorch (Keras 3's
#                                               other backends), in .venv with both installed
#   make test-backends-and-floor                those and the floor's unit tests side by side
#                                               (what .ci/run does after `make test`)
# Point VAE_KERAS_DATA at a folder holding mnist/ and fashion-mnist/ to work offline.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
TRAIN_ARGS ?=
PYTEST_ARGS ?=
NOTEBOOKS ?= 0
VERSION_SETS := floor colab pinned

.PHONY: setup train test unit notebooks clean test-backends test-matrix $(VERSION_SETS:%=test-%)

$(BIN)/.installed: requirements.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt
	touch $@

setup: $(BIN)/.installed

train: setup
	$(BIN)/vae-keras train $(TRAIN_ARGS)

# The unit tests and the notebooks side by side (each part's output is printed whole when it
# ends). Measured on a 2-core machine (benchmarks/README.md, "CI's time"): 211 s and 344 s alone,
# 555 s one after the other, about 505 s side by side: a 9% gain, not more, since each part
# keeps more than one core busy. `make unit` and `make notebooks` run one of them.
test: setup
	$(MAKE) --no-print-directory -j2 --output-sync=target unit notebooks

unit: setup
	$(BIN)/python -m pytest tests

# Fast mode shrinks epochs and data, never the code path (see notebooks/README.md).
notebooks: setup
	@if ls notebooks/*.ipynb >/dev/null 2>&1; then \
		VAE_KERAS_FAST=1 MPLBACKEND=Agg $(BIN)/python -m pytest --nbval-lax --nbval-current-env \
			-p no:cacheprovider notebooks; \
	else echo "no notebooks yet"; fi

# The versions the other backends are tested at. torch is always named with its version: PyPI's
# default torch for Linux is a CUDA build of several GB; 2.13.0 is a CPU wheel on CI's disk.
JAX_VERSION ?= 0.10.2
TORCH_VERSION ?= 2.13.0
BACKEND_TESTS := tests/test_models.py tests/test_layers.py tests/test_losses.py tests/test_aggregate.py \
	tests/test_callbacks.py tests/test_evaluation.py tests/test_conditional.py tests/test_priors.py

$(BIN)/.backends: $(BIN)/.installed
	$(BIN)/python -m pip install --quiet "jax==$(JAX_VERSION)" "torch==$(TORCH_VERSION)"
	touch $@

# Four independent parts, two at a time: JAX spends most of its time compiling on one core, so
# two parts side by side finish sooner on a 2-core machine than one after the other. Each part's
# output is printed whole when it ends (--output-sync); make stops at the first that fails.
BACKEND_PARTS := backend-jax backend-torch backend-pairs backend-notebook
.PHONY: $(BACKEND_PARTS)

test-backends: $(BIN)/.backends
	$(MAKE) --no-print-directory -j2 --output-sync=target $(BACKEND_PARTS)

backend-jax: $(BIN)/.backends
	KERAS_BACKEND=jax $(BIN)/python -m pytest $(BACKEND_TESTS) -m "not slow" $(PYTEST_ARGS)

backend-torch: $(BIN)/.backends
	KERAS_BACKEND=torch $(BIN)/python -m pytest $(BACKEND_TESTS) -m "not slow" $(PYTEST_ARGS)

# Every pair of backends: a file saved on one loads on the others (each in its own process).
backend-pairs: $(BIN)/.backends
	$(BIN)/python -m pytest tests/test_backends.py $(PYTEST_ARGS)

# Notebook 02 shows the three train steps; it runs on JAX as it does on TensorFlow.
backend-notebook: $(BIN)/.backends
	KERAS_BACKEND=jax VAE_KERAS_FAST=1 MPLBACKEND=Agg $(BIN)/python -m pytest --nbval-lax \
		--nbval-current-env -p no:cacheprovider notebooks/02_vae.ipynb

# CI's second half: the backend parts and the floor's unit tests (PYTEST_ARGS='-m "not slow"'
# there), two at a time, longest first. The floor's environment must be built already
# (SETUP_ONLY=1 tools/test_versions.sh floor). Side by side they finish sooner than one after
# the other: the JAX part compiles on one core, the floor's tests leave the other busy.
floor-unit:
	PYTHON=$(PYTHON) NOTEBOOKS=0 tools/test_versions.sh floor -m "not slow"

.PHONY: floor-unit test-backends-and-floor
test-backends-and-floor: $(BIN)/.backends
	$(MAKE) --no-print-directory -j2 --output-sync=target floor-unit backend-jax backend-pairs \
		backend-torch backend-notebook

# `make -k test-matrix` goes on to the next set when one fails.
test-matrix: $(VERSION_SETS:%=test-%)

$(VERSION_SETS:%=test-%): test-%:
	PYTHON=$(PYTHON) NOTEBOOKS=$(NOTEBOOKS) tools/test_versions.sh $* $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .venvs runs
