"""vae_keras: Variational Autoencoders with Keras 3 and TensorFlow.

The pieces, one module each:

- ``layers``: :class:`Sampling`, the reparameterization trick.
- ``architectures``: dense and convolutional encoder/decoder builders.
- ``models``: :class:`Autoencoder` and :class:`VAE` (``train_step`` adds the KL term).
- ``conditional``: :class:`ConditionalVAE`, a VAE that draws a chosen class.
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
"""

import os

# Hides TensorFlow's C++ INFO and WARNING lines. TensorFlow 2.19+ prints a few while
# loading, before it reads the variable: _quiet_import filters those at the same level.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from vae_keras import _quiet_import  # noqa: E402

_quiet_import.import_tensorflow()  # first, so no module below loads TensorFlow unfiltered

from vae_keras import (  # noqa: E402
    aggregate,
    applications,
    architectures,
    callbacks,
    conditional,
    data,
    evaluation,
    latent,
    losses,
    performance,
    plotting,
    quality,
    runs,
)
from vae_keras import disentanglement, sprites  # noqa: E402
from vae_keras.architectures import build_decoder, build_encoder  # noqa: E402
from vae_keras.callbacks import CyclicalKLAnnealing, KLWarmup, NonFiniteLossGuard, TimeBudget  # noqa: E402
from vae_keras.conditional import ConditionalVAE  # noqa: E402
from vae_keras.data import load_fashion_mnist, load_mnist, make_dataset  # noqa: E402
from vae_keras.layers import Sampling  # noqa: E402
from vae_keras.models import VAE, Autoencoder  # noqa: E402

__version__ = "0.1.0"

__all__ = [
    "VAE", "Autoencoder", "ConditionalVAE", "Sampling", "KLWarmup", "CyclicalKLAnnealing", "NonFiniteLossGuard", "TimeBudget",
    "build_encoder", "build_decoder", "load_mnist", "load_fashion_mnist", "make_dataset",
    "aggregate", "applications", "architectures", "callbacks", "conditional", "data", "evaluation", "latent",
    "losses", "performance", "plotting", "quality", "runs",
    "disentanglement", "sprites",
]
