"""Working in the code space: interpolation, attribute vectors, arithmetic.

Codes are the posterior means of images (``model.encode_mean``). Notebook 05
uses these functions; each returns NumPy arrays.
"""

import numpy as np

from vae_keras import _checks


def _as_code(name, code):
    code = np.asarray(code, dtype=np.float32)
    if code.ndim != 1:
        raise ValueError(f"{name} must be one code of shape (latent_dim,), got shape {code.shape}.")
    return code


def _check_steps(steps):
    # Two points at least: both ends are included.
    return _checks.check_whole_number("steps", steps, minimum=2)


def lerp(z_start, z_end, steps=8):
    """Points on the straight line from ``z_start`` to ``z_end``, ends included.

    Returns:
        Array of shape ``(steps, latent_dim)``.
    """
    z_start, z_end = _as_code("z_start", z_start), _as_code("z_end", z_end)
    t = np.linspace(0.0, 1.0, _check_steps(steps), dtype=np.float32)[:, None]
    return (1.0 - t) * z_start + t * z_end


def slerp(z_start, z_end, steps=8):
    """Spherical interpolation: along the great circle, with the norm interpolated too.

    Under a Gaussian prior in many dimensions almost all probability lies near a
    sphere of radius ``sqrt(latent_dim)``; the midpoint of a straight line between
    two typical codes falls inside it, where codes are atypical (White, 2016).
    Slerp follows the angle between the codes instead.

    Returns:
        Array of shape ``(steps, latent_dim)``; equals :func:`lerp` for parallel codes.
    """
    z_start, z_end = _as_code("z_start", z_start), _as_code("z_end", z_end)
    steps = _check_steps(steps)
    norm_start, norm_end = np.linalg.norm(z_start), np.linalg.norm(z_end)
    if norm_start == 0 or norm_end == 0:
        return lerp(z_start, z_end, steps)
    cosine = np.clip(np.dot(z_start / norm_start, z_end / norm_end), -1.0, 1.0)
    omega = np.arccos(cosine)
    if omega < 1e-6:
        return lerp(z_start, z_end, steps)
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    return (np.sin((1.0 - t) * omega) * z_start + np.sin(t * omega) * z_end) / np.sin(omega)


def interpolate(model, image_start, image_end, steps=8, method="lerp"):
    """Decode the path between the codes of two images.

    Args:
        model: a trained ``VAE`` (or ``Autoencoder``).
        image_start, image_end: single images of shape ``model.image_shape``.
        steps: number of images in the strip, ends included.
        method: ``"lerp"`` or ``"slerp"``.

    Returns:
        Decoded images of shape ``(steps,) + model.image_shape``.
    """
    if method not in ("lerp", "slerp"):
        raise ValueError(f"Unknown method {method!r}: choose 'lerp' or 'slerp'.")
    codes = model.encode_mean(np.stack([image_start, image_end]))
    path = (lerp if method == "lerp" else slerp)(codes[0], codes[1], steps)
    return model.decode(path)


def attribute_vector(codes_with, codes_without):
    """The direction from one group of codes to another: difference of their means.

    For example the mean code of bold digits minus that of thin digits gives a
    "boldness" direction (the idea of "smiling vector" in White, 2016, and of
    word-vector arithmetic).

    Args:
        codes_with: codes of images that have the attribute, ``(n, latent_dim)``.
        codes_without: codes of images that lack it, ``(m, latent_dim)``.

    Returns:
        The attribute vector, shape ``(latent_dim,)``.
    """
    codes_with = np.asarray(codes_with, dtype=np.float32)
    codes_without = np.asarray(codes_without, dtype=np.float32)
    if codes_with.ndim != 2 or codes_without.ndim != 2 or codes_with.shape[1] != codes_without.shape[1]:
        raise ValueError(f"Both groups must be arrays of codes (n, latent_dim) of the same width; "
                         f"got {codes_with.shape} and {codes_without.shape}.")
    if len(codes_with) == 0 or len(codes_without) == 0:
        raise ValueError("Each group needs at least one code.")
    return codes_with.mean(axis=0) - codes_without.mean(axis=0)


def add_attribute(codes, vector, strength=1.0):
    """Move codes along an attribute vector: ``codes + strength * vector``."""
    codes = np.asarray(codes, dtype=np.float32)
    return codes + float(strength) * np.asarray(vector, dtype=np.float32)


def arithmetic(model, image_a, image_b, image_c):
    """Decode ``code(a) - code(b) + code(c)``: "a is to b as ? is to c".

    Returns:
        One decoded image of shape ``model.image_shape``.
    """
    codes = model.encode_mean(np.stack([image_a, image_b, image_c]))
    return model.decode((codes[0] - codes[1] + codes[2])[None])[0]


def grid_step_distances(images, grid_size, offsets=(1, 2, 4, 8)):
    """How far apart the decoded images of a square code grid are, by grid distance.

    A decoded grid "morphs smoothly" when a step to a neighbouring code changes the
    image a little and far-apart codes decode to different images: the pixel
    distance grows with the code distance. This measures that, so a claim about a
    manifold plot rests on numbers rather than on the eye.

    Args:
        images: the decoded grid, ``(grid_size**2, ...)`` in row-major order (as
            :func:`vae_keras.plotting.manifold_codes` lays the codes out).
        grid_size: images per side.
        offsets: grid distances to measure, each below ``grid_size``.

    Returns:
        A dict from each offset ``k`` to the Euclidean pixel distances between every
        image and the image ``k`` steps to its right or ``k`` steps below it (a 1-D
        array of ``2 * grid_size * (grid_size - k)`` values).
    """
    grid_size = _checks.check_whole_number("grid_size", grid_size, minimum=2)
    images = np.asarray(images, dtype=np.float32)
    if len(images) != grid_size**2:
        raise ValueError(f"A {grid_size} x {grid_size} grid has {grid_size**2} images; got "
                         f"{len(images)}. Pass the decoded grid in row-major order.")
    grid = images.reshape(grid_size, grid_size, -1)
    distances = {}
    for offset in offsets:
        offset = _checks.check_whole_number("offset", offset, minimum=1)
        if offset >= grid_size:
            raise ValueError(f"offset {offset} does not fit a grid of {grid_size} per side; "
                             f"use offsets below {grid_size}.")
        across = np.linalg.norm(grid[:, offset:] - grid[:, :-offset], axis=-1).ravel()
        down = np.linalg.norm(grid[offset:] - grid[:-offset], axis=-1).ravel()
        distances[offset] = np.concatenate([across, down])
    return distances
