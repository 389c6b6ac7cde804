"""Imported first by every module that uses Keras or TensorFlow: TensorFlow loads quietly.

``import vae_keras`` itself loads nothing heavy (so ``vae-keras --help`` answers at
once); the first module that needs Keras imports this one before ``import keras``,
so TensorFlow's C++ start-up lines go through :mod:`vae_keras._quiet_import`'s
filter however the library is entered (``vk.VAE``, ``from vae_keras.models import
VAE``, the command line).
"""

from vae_keras import _quiet_import

tensorflow = _quiet_import.import_tensorflow()
