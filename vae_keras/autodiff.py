"""Gradients on whichever backend Keras runs: the three ways of automatic differentiation.

Keras 3 writes a model once in ``keras.ops`` but leaves differentiation to the
backend, and each backend asks for it its own way. :func:`gradients` shows the
three side by side, and the models' three train steps
(:mod:`vae_keras.models`) use the same three mechanisms:

- TensorFlow records the computation on a ``tf.GradientTape`` and asks the tape;
- JAX transforms the function itself: ``jax.value_and_grad(f)`` is a new function
  that returns the value and the gradient (pure: no variables are changed);
- PyTorch marks its inputs ``requires_grad``, runs the function, and calls
  ``backward()``, which fills each input's ``.grad``.

Notebook 02 checks the reparameterization trick's derivatives with it.
"""

from vae_keras import _tensorflow  # noqa: F401  (first: TensorFlow loads quietly)
import keras
import numpy as np


def gradients(function, *arrays):
    """The value of a scalar ``function(*arrays)`` and its gradient with respect to each array.

    Args:
        function: takes one tensor per array and returns a scalar tensor, written in
            ``keras.ops`` (or with Keras layers) so that it runs on any backend.
        *arrays: the points at which to differentiate (NumPy arrays or numbers).

    Returns:
        ``(value, [gradient, ...])`` as NumPy: the gradient of each array has its shape.

    Raises:
        TypeError: ``function`` is not callable, or no array is given.
    """
    if not callable(function):
        raise TypeError(f"function must be callable, got {type(function).__name__}.")
    if not arrays:
        raise TypeError("gradients(function, *arrays) needs at least one array to "
                        "differentiate with respect to.")
    arrays = [np.asarray(array, dtype=np.float32) for array in arrays]
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        positions = tuple(range(len(arrays)))
        value, grads = jax.value_and_grad(function, argnums=positions)(*arrays)
    elif backend == "torch":
        import torch

        inputs = [torch.tensor(array, requires_grad=True) for array in arrays]
        value = function(*inputs)
        value.backward()
        grads = [tensor.grad for tensor in inputs]
    else:
        import tensorflow as tf

        inputs = [tf.Variable(array) for array in arrays]
        with tf.GradientTape() as tape:
            value = function(*inputs)
        grads = tape.gradient(value, inputs)
    return (keras.ops.convert_to_numpy(value),
            [keras.ops.convert_to_numpy(gradient) for gradient in grads])
