"""vae_keras: Variational Autoencoders with Keras 3, on TensorFlow, JAX or PyTorch.

The pieces, one module each:

- ``layers``: :class:`Sampling`, the reparameterization trick.
- ``architectures``: dense and convolutional encoder/decoder builders.
- ``models``: :class:`Autoencoder` and :class:`VAE` (``train_step`` adds the KL term).
- ``priors``: the VAE's prior p(z), saved with it: standard normal, Gaussian mixture,
  VampPrior, a second stochastic layer (HierarchicalPrior).
- ``course``: the notebooks' instruments: a quiet start, recorded values, seed tables.
- ``settings``: a training run's settings and their checks (no TensorFlow needed).
- ``conditional``: :class:`ConditionalVAE`, a VAE that draws a chosen class.
- ``autodiff``: gradients on any backend (tape, ``jax.grad``, ``backward()``).
- ``losses``: KL, Bernoulli and Gaussian log-likelihoods, ELBO, IWAE bound.
- ``evaluation``: streamed test-set ELBO and importance-weighted NLL.
- ``callbacks``: KL warm-up, cyclical annealing, a training time budget, NaN guard.
- ``performance``: defaults by device, mixed precision, distribution strategies.
- ``quality``: a digit classifier's verdict on samples, stroke thickness.
- ``applications``: anomaly scores and ROC AUC, denoising, compression in bits.
- ``data``: MNIST / Fashion-MNIST loaders and tf.data pipelines.
- ``latent``: interpolation and latent arithmetic.
- ``aggregate``: the aggregate posterior q(z), its mismatch with the prior, ex-post mixtures.
- ``plotting``: figures that return a ``Figure``.
- ``runs``: resumable training runs (what ``vae-keras train`` does), checkpoints.
- ``sprites``: binary sprite images made from known factors (shape, scale, rotation, x, y).
- ``disentanglement``: MIG and FactorVAE scores, active units, KL per dimension.
- ``sentences``: a corpus generated from a grammar with known factors, and its parser.
- ``text_models``: :class:`TextVAE`, a GRU sentence VAE (word dropout, free bits).
"""

import importlib
import os

# Hides TensorFlow's C++ INFO and WARNING lines. TensorFlow 2.19+ prints a few while
# loading, before it reads the variable: _quiet_import filters those at the same level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

# Nothing heavy is imported here (PEP 562): `vae-keras --help` and a usage error must
# answer at once, and TensorFlow alone takes seconds to load. The first use of anything
# below loads every module, as an eager import would, so the models' Keras registrations
# are in place before a `.keras` file is loaded through keras.saving.
_MODULES = ("aggregate", "applications", "architectures", "autodiff", "callbacks", "conditional",
            "course", "data", "disentanglement", "evaluation", "latent", "losses", "model_base",
            "performance", "plotting", "priors", "quality", "runs", "sentences", "settings",
            "sprites", "text_models")
_LIGHT_MODULES = ("course", "settings")  # no TensorFlow (course.setup loads it, quietly)
_NAMES = {
    "VAE": "models", "Autoencoder": "models", "ConditionalVAE": "conditional",
    "TextVAE": "text_models",
    "Sampling": "layers", "KLWarmup": "callbacks", "CyclicalKLAnnealing": "callbacks",
    "NonFiniteLossGuard": "callbacks", "TimeBudget": "callbacks",
    "build_encoder": "architectures", "build_decoder": "architectures",
    "load_mnist": "data", "load_fashion_mnist": "data", "make_dataset": "data",
}

__all__ = sorted(_NAMES) + list(_MODULES)


_loading = False


def _load_all():
    """Import every module of the library, as ``import vae_keras`` did before it was lazy."""
    for module in ("layers", "models") + _MODULES:
        importlib.import_module(f"vae_keras.{module}")


def __getattr__(name):
    global _loading
    if name in _NAMES:
        module_name = _NAMES[name]
    elif name in _MODULES or name in ("layers", "models"):
        module_name = name
    else:
        raise AttributeError(f"module 'vae_keras' has no attribute {name!r}")
    if name in _LIGHT_MODULES or _loading:  # inside the first load: just the one asked for
        module = importlib.import_module(f"vae_keras.{module_name}")
    else:
        _loading = True
        try:
            module = importlib.import_module(f"vae_keras.{module_name}")
            _load_all()
        finally:
            _loading = False
    value = getattr(module, name) if name in _NAMES else module
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__) | {"layers", "models"})
