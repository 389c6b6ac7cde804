"""Sprites: small binary images whose generative factors are known.

The disentanglement literature measures codes against data whose true factors
of variation are known; its standard set, dSprites (Matthey et al. 2017), is a
64x64 grid of shapes, scales, rotations and positions. This module draws a
smaller grid of the same kind with NumPy, in seconds, so the course
needs no download: every combination of

============  =========================================================  ====================
factor        values                                                     default grid
============  =========================================================  ====================
shape         ``"square"``, ``"ellipse"``, ``"heart"`` (indices 0, 1, 2)  3 values
scale         ``0.5`` to ``1.0`` times the largest size, evenly spaced    6 values
orientation   ``0`` to ``pi/4`` radians (0 to 45 degrees), evenly spaced  6 values
x             ``0`` (left) to ``1`` (right) of the allowed centres        10 values
y             ``0`` (top) to ``1`` (bottom) of the allowed centres        10 values
============  =========================================================  ====================

is rendered as a ``image_size x image_size`` binary image (28x28 by default,
the shape the default architectures take). At scale 1 the square's side is
``0.35 * image_size`` (9.7 pixels at 28), the ellipse ``0.46 * image_size`` wide
and half as high, the heart ``0.42 * image_size`` wide; the centres span the
image minus a margin that keeps the largest sprite, at any orientation, inside
it with a blank pixel to spare. Orientations stop at 45 degrees so that no two
values look alike: the square repeats every 90 degrees and the ellipse every 180.

Used by notebook 10 (beta-VAE and disentanglement) with
:mod:`vae_keras.disentanglement`.
"""

import dataclasses
import math

import numpy as np

from vae_keras import _checks

SHAPES = ("square", "ellipse", "heart")
FACTOR_NAMES = ("shape", "scale", "orientation", "x", "y")
DEFAULT_IMAGE_SIZE = 28
_RADIUS = 0.23            # the largest sprite's "radius" as a fraction of the image size
_MAX_EXTENT = 1.07        # a sprite's farthest pixel, in radii, at any orientation
_CHUNK = 2048             # images rendered at once: keeps the temporary arrays small


@dataclasses.dataclass(frozen=True)
class Sprites:
    """Sprite images and the factors that made them.

    Attributes:
        images: float32 array ``(n, image_size, image_size, 1)`` of 0s and 1s.
        factors: int64 array ``(n, 5)``: the index of each factor's value in
            ``factor_values`` (columns in the order of ``factor_names``). The
            disentanglement metrics take these.
        values: float32 array ``(n, 5)``: the factor values themselves (shape
            index, scale, orientation in radians, x and y in [0, 1]).
        factor_names: ``("shape", "scale", "orientation", "x", "y")``.
        factor_values: one array per factor with the values of its grid.
    """

    images: np.ndarray
    factors: np.ndarray
    values: np.ndarray
    factor_names: tuple
    factor_values: tuple

    def __len__(self):
        return len(self.images)


def factor_grid(num_scales=6, num_orientations=6, num_positions=10):
    """The values each factor takes, in the order of :data:`FACTOR_NAMES`.

    Args:
        num_scales: number of scales between 0.5 and 1, >= 1.
        num_orientations: number of orientations between 0 and pi/4, >= 1.
        num_positions: number of x (and of y) positions between 0 and 1, >= 1.

    Returns:
        A tuple of five float32 arrays: shape indices, scales, orientations in
        radians, x, y. A count of 1 gives the middle of the range.
    """
    def spaced(low, high, count, name):
        count = _checks.check_whole_number(name, count)
        if count == 1:
            return np.array([(low + high) / 2], np.float32)
        return np.linspace(low, high, count, dtype=np.float32)

    return (np.arange(len(SHAPES), dtype=np.float32),
            spaced(0.5, 1.0, num_scales, "num_scales"),
            spaced(0.0, math.pi / 4, num_orientations, "num_orientations"),
            spaced(0.0, 1.0, num_positions, "num_positions"),
            spaced(0.0, 1.0, num_positions, "num_positions"))


def _inside(shape_index, u, v):
    """Whether points ``(u, v)`` of a sprite's own frame (unit radius) are inside the shape."""
    if shape_index == 0:  # square
        return np.maximum(np.abs(u), np.abs(v)) <= 0.75
    if shape_index == 1:  # ellipse, twice as wide as high
        return u ** 2 + (v / 0.5) ** 2 <= 1.0
    # The heart curve (x^2 + y^2 - 1)^3 = x^2 y^3 with y pointing up (image rows point
    # down), centred and shrunk so that its farthest point is 1.07 from the centre.
    x, y = 1.25 * u, 0.12 - 1.25 * v
    return (x ** 2 + y ** 2 - 1.0) ** 3 <= x ** 2 * y ** 3


def render(values, image_size=DEFAULT_IMAGE_SIZE):
    """Draw sprites from factor values.

    Args:
        values: array ``(n, 5)`` of shape index, scale (0 to 1], orientation in
            radians, x and y in [0, 1], as in :attr:`Sprites.values`.
        image_size: height and width in pixels, >= 8.

    Returns:
        float32 images ``(n, image_size, image_size, 1)`` of 0s and 1s.

    Raises:
        ValueError: ``values`` not of shape ``(n, 5)``, an unknown shape index,
            or a scale, x or y outside its range.
    """
    image_size = _checks.check_whole_number("image_size", image_size, minimum=8)
    values = np.asarray(values, dtype=np.float32)
    if values.ndim != 2 or values.shape[1] != len(FACTOR_NAMES):
        raise ValueError(f"values must have shape (n, {len(FACTOR_NAMES)}), one column per "
                         f"factor {FACTOR_NAMES}; got {values.shape}.")
    shapes, scales, orientations, x, y = values.T
    if not np.all(np.isin(shapes, np.arange(len(SHAPES)))):
        raise ValueError(f"shape indices must be 0, 1 or 2 ({', '.join(SHAPES)}).")
    if np.any(scales <= 0) or np.any(scales > 1):
        raise ValueError("scales must lie in (0, 1]; 1 is the largest sprite that fits.")
    if np.any((x < 0) | (x > 1) | (y < 0) | (y > 1)):
        raise ValueError("x and y must lie in [0, 1] (the range of allowed centres).")
    radius = _RADIUS * image_size
    margin = _MAX_EXTENT * radius + 1.0  # and one blank pixel along the border
    centres = np.arange(image_size, dtype=np.float32) + 0.5  # pixel centres, in pixels from the top-left corner
    images = np.empty((len(values), image_size, image_size, 1), np.float32)
    for start in range(0, len(values), _CHUNK):
        part = slice(start, start + _CHUNK)
        column = margin + x[part] * (image_size - 2 * margin)
        row = margin + y[part] * (image_size - 2 * margin)
        across = centres[None, None, :] - column[:, None, None]
        down = centres[None, :, None] - row[:, None, None]
        cos, sin = np.cos(orientations[part])[:, None, None], np.sin(orientations[part])[:, None, None]
        size = (radius * scales[part])[:, None, None]
        # Rotate the pixel offsets by minus the orientation: the sprite turns clockwise on screen.
        u = (cos * across + sin * down) / size
        v = (-sin * across + cos * down) / size
        for shape_index in range(len(SHAPES)):
            mine = shapes[part] == shape_index
            images[start + np.flatnonzero(mine), ..., 0] = _inside(shape_index, u[mine], v[mine])
    return images


def make_sprites(num_scales=6, num_orientations=6, num_positions=10, num_images=None, seed=0,
                 image_size=DEFAULT_IMAGE_SIZE):
    """Every combination of the factor grid (or a random subset), as images with factors.

    With the defaults that is 3 x 6 x 6 x 10 x 10 = 10,800 images of 28x28,
    drawn in seconds (the time is printed in notebook 10).

    Args:
        num_scales: number of scales (see :func:`factor_grid`).
        num_orientations: number of orientations.
        num_positions: number of x and of y positions.
        num_images: optional: draw this many combinations at random without
            replacement instead of all of them.
        seed: int; fixes the order of the images (shuffled) and the subset.
        image_size: height and width in pixels, >= 8.

    Returns:
        A :class:`Sprites` with images, factor indices and values, in a random
        order that only ``seed`` decides.

    Raises:
        TypeError: a count or the seed is not a whole number.
        ValueError: a count < 1, or ``num_images`` larger than the grid.
    """
    grid = factor_grid(num_scales, num_orientations, num_positions)
    seed = _checks.check_whole_number("seed", seed, minimum=0)
    sizes = [len(values) for values in grid]
    total = int(np.prod(sizes))
    rng = np.random.default_rng(seed)
    if num_images is None:
        chosen = rng.permutation(total)
    else:
        num_images = _checks.check_whole_number("num_images", num_images)
        if num_images > total:
            raise ValueError(f"num_images={num_images} is more than the {total} combinations of "
                             f"this grid; lower it or use more grid values.")
        chosen = rng.choice(total, size=num_images, replace=False)
    factors = np.stack(np.unravel_index(chosen, sizes), axis=1).astype(np.int64)
    values = np.stack([grid[k][factors[:, k]] for k in range(len(grid))], axis=1)
    return Sprites(images=render(values, image_size), factors=factors,
                   values=values.astype(np.float32), factor_names=FACTOR_NAMES,
                   factor_values=grid)
