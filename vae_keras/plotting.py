"""Matplotlib figures for VAEs.

Every function takes an optional ``ax`` (draws there) or makes its own figure,
returns the ``Figure``, and never calls ``plt.show()``: notebooks display the
figure, the command line saves it.
"""

import statistics

import matplotlib.pyplot as plt
import numpy as np

DEFAULT_DPI = 80  # small figures keep notebooks with outputs well under 1 MB


def _new_axes(ax, figsize):
    if ax is not None:
        return ax.figure, ax
    figure, ax = plt.subplots(figsize=figsize, dpi=DEFAULT_DPI)
    return figure, ax


def tile_images(images, ncols=10, padding=1, fill=0.0):
    """Arrange images ``(n, h, w[, 1])`` into one 2-D mosaic with ``ncols`` columns.

    ``fill`` is the value between images: 0 (no ink) shows as white gaps under
    the ``gray_r`` colour map the grids use.

    Returns:
        A 2-D array (grayscale) or 3-D array (colour) ready for ``imshow``.
    """
    images = np.asarray(images, dtype=np.float32)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim not in (3, 4):
        raise ValueError(f"images must have shape (n, height, width[, channels]), got {images.shape}.")
    count, height, width = images.shape[:3]
    ncols = max(1, min(int(ncols), count))
    nrows = -(-count // ncols)
    mosaic = np.full((nrows * (height + padding) - padding, ncols * (width + padding) - padding)
                     + images.shape[3:], fill, dtype=np.float32)
    for index, image in enumerate(images):
        row, col = divmod(index, ncols)
        top, left = row * (height + padding), col * (width + padding)
        mosaic[top:top + height, left:left + width] = image
    return mosaic


def image_grid(images, ncols=10, ax=None, title=None):
    """Show images in a grid (samples, a dataset's first images...).

    Args:
        images: array ``(n, h, w[, c])`` with values in [0, 1].
        ncols: images per row.
        ax: optional axes to draw into.
        title: optional title.

    Returns:
        The ``matplotlib.figure.Figure``.
    """
    images = np.asarray(images)
    ncols = max(1, min(int(ncols), len(images)))
    nrows = -(-len(images) // ncols)
    figure, ax = _new_axes(ax, (0.7 * ncols, 0.7 * nrows + (0.3 if title else 0)))
    ax.imshow(tile_images(images, ncols), cmap="gray_r", vmin=0.0, vmax=1.0,
              interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return figure


def reconstruction_rows(originals, reconstructions, n=10, ax=None, title=None):
    """Originals on the top row, their reconstructions below.

    Returns:
        The ``matplotlib.figure.Figure``.
    """
    originals, reconstructions = np.asarray(originals[:n]), np.asarray(reconstructions[:n])
    if originals.shape != reconstructions.shape:
        raise ValueError(f"originals {originals.shape} and reconstructions "
                         f"{reconstructions.shape} must have the same shape.")
    figure = image_grid(np.concatenate([originals, reconstructions]), ncols=len(originals),
                        ax=ax, title=title or "top: original, bottom: reconstruction")
    return figure


def latent_scatter(codes, labels=None, ax=None, class_names=None, title=None, max_points=5000):
    """Scatter the first two code dimensions, coloured by label.

    Args:
        codes: array ``(n, latent_dim)`` with ``latent_dim >= 2``.
        labels: optional integer labels ``(n,)`` for colours and a legend.
        ax: optional axes.
        class_names: optional names for the labels' legend.
        title: optional title.
        max_points: plot at most this many points (the first ones), to keep files small.

    Returns:
        The ``matplotlib.figure.Figure``.
    """
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.shape[1] < 2:
        raise ValueError(f"codes must have shape (n, latent_dim >= 2), got {codes.shape}.")
    codes = codes[:max_points]
    figure, ax = _new_axes(ax, (5, 4.5))
    if labels is None:
        ax.scatter(codes[:, 0], codes[:, 1], s=3, alpha=0.5)
    else:
        labels = np.asarray(labels)[:max_points]
        scatter = ax.scatter(codes[:, 0], codes[:, 1], c=labels, cmap="tab10", s=3, alpha=0.6,
                             vmin=-0.5, vmax=9.5)
        classes = np.unique(labels)
        handles = [plt.Line2D([], [], marker="o", linestyle="", markersize=5,
                              color=scatter.cmap(scatter.norm(c))) for c in classes]
        names = [class_names[c] if class_names else str(c) for c in classes]
        ax.legend(handles, names, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8,
                  frameon=False)
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    if title:
        ax.set_title(title)
    return figure


def manifold_codes(grid_size=15, quantile_range=(0.05, 0.95)):
    """The codes of the 2-D manifold plot: a grid at standard-Normal quantiles.

    Spacing by quantiles, not evenly, gives each row and column equal prior
    probability, as in Kingma & Welling (2014), figure 4.

    Returns:
        Array ``(grid_size**2, 2)``; row-major, top row = largest z[1].
    """
    probabilities = np.linspace(quantile_range[0], quantile_range[1], int(grid_size))
    values = np.array([statistics.NormalDist().inv_cdf(p) for p in probabilities], np.float32)
    z0, z1 = np.meshgrid(values, values[::-1])
    return np.stack([z0.ravel(), z1.ravel()], axis=1)


def latent_manifold(model, grid_size=15, quantile_range=(0.05, 0.95), ax=None, title=None):
    """Decode a grid of 2-D codes (in one batched call) and show the images.

    Args:
        model: a trained model with ``latent_dim == 2`` and a ``decode`` method.
        grid_size: images per side.
        quantile_range: the prior quantiles the grid spans.
        ax: optional axes.
        title: optional title.

    Returns:
        The ``matplotlib.figure.Figure``.
    """
    if model.latent_dim != 2:
        raise ValueError(f"The manifold plot needs a 2-D code space; this model has "
                         f"latent_dim={model.latent_dim}. Train with latent_dim=2.")
    codes = manifold_codes(grid_size, quantile_range)
    images = np.asarray(model.decode(codes))
    figure, ax = _new_axes(ax, (5, 5))
    image_grid(images, ncols=grid_size, ax=ax, title=title)
    # Ticks in code units at the first, middle and last tile, so the grid can be read against
    # a scatter of codes (whose axes are in the same units).
    ax.set_axis_on()
    for spine in ax.spines.values():
        spine.set_visible(False)
    step = images.shape[2] + 1  # tile width plus tile_images' one-pixel padding
    picks = sorted({0, grid_size // 2, grid_size - 1})
    centres = [pick * step + (step - 1) / 2 for pick in picks]
    label = lambda value: f"{value + 0.0:.2f}".replace("-0.00", "0.00")  # no "-0.00" at the centre
    ax.set_xticks(centres, [label(codes[pick, 0]) for pick in picks])
    ax.set_yticks(centres, [label(codes[pick * grid_size, 1]) for pick in picks])
    ax.set_xlabel("z[0]")
    ax.set_ylabel("z[1]")
    return figure


def draw_manifold_square(ax, quantile_range=(0.05, 0.95), **style):
    """Outline, on a scatter of 2-D codes, the square the manifold plot decodes.

    The manifold spans the prior's quantiles (5% to 95% by default) on each axis; codes
    outside the square are never drawn in it.

    Returns:
        The ``matplotlib.patches.Rectangle`` added to ``ax``.
    """
    low, high = (statistics.NormalDist().inv_cdf(p) for p in quantile_range)
    style = {"fill": False, "linestyle": "--", "edgecolor": "black", "linewidth": 1.2,
             "label": "decoded grid"} | style
    return ax.add_patch(plt.Rectangle((low, low), high - low, high - low, **style))


def interpolation_strip(images, ax=None, title=None):
    """One row of images, e.g. from :func:`vae_keras.latent.interpolate`."""
    return image_grid(images, ncols=len(images), ax=ax, title=title)


def loss_curves(history, keys=None, ax=None, title=None):
    """Plot per-epoch losses from a ``keras.callbacks.History`` or its ``.history`` dict.

    Args:
        history: the object ``fit`` returns, or a dict of lists.
        keys: which entries to plot; default every loss-like entry (training and
            ``val_`` versions together).
        ax: optional axes.
        title: optional title.

    Returns:
        The ``matplotlib.figure.Figure``.
    """
    logs = getattr(history, "history", history)
    if not isinstance(logs, dict) or not logs:
        raise ValueError("history must be what fit() returns (or its .history dict), non-empty.")
    keys = keys or [k for k in logs if "loss" in k]
    figure, ax = _new_axes(ax, (5, 3.5))
    for key in keys:
        values = logs[key]
        ax.plot(np.arange(1, len(values) + 1), values, label=key,
                linestyle="--" if key.startswith("val_") else "-")
    ax.set_xlabel("epoch")
    ax.set_ylabel("nats per image")
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title)
    return figure


def latent_traversals(model, images, num_steps=9, limit=2.5, base_index=0, ax=None, title=None):
    """Decode, for every latent dimension, a row of codes that vary that dimension alone.

    The rows start from the code (posterior mean) of ``images[base_index]``; in
    row ``j`` dimension ``j`` takes ``num_steps`` values from ``-limit`` to
    ``limit`` (the prior's range) while the others stay put. Rows are ordered
    by each dimension's mean KL over ``images``
    (:func:`vae_keras.disentanglement.kl_per_dimension`), largest first, and
    labelled with it: the dimensions the model does not use come last and show
    as flat rows. A disentangled code changes one factor per row (notebook 10).

    Args:
        model: a trained VAE (``encode`` returning ``(z_mean, z_log_var)``, ``decode``).
        images: array ``(n,) + image_shape``, n >= 1: the KL is averaged over them.
        num_steps: images per row, >= 2.
        limit: the largest absolute value a dimension takes, > 0.
        base_index: which image's code the rows start from.
        ax: optional axes.
        title: optional title.

    Returns:
        The ``matplotlib.figure.Figure``.
    """
    from vae_keras import _checks, disentanglement  # here: plotting stays importable on its own

    num_steps = _checks.check_whole_number("num_steps", num_steps, minimum=2)
    limit = _checks.check_positive("limit", limit)
    z_mean, z_log_var = model.encode(images)
    base_index = _checks.check_whole_number("base_index", base_index, minimum=0)
    if base_index >= len(z_mean):
        raise ValueError(f"base_index={base_index} but there are only {len(z_mean)} images.")
    kl = disentanglement.kl_per_dimension(z_mean, z_log_var)
    order = np.argsort(-kl, kind="stable")
    values = np.linspace(-limit, limit, num_steps, dtype=np.float32)
    codes = np.repeat(z_mean[base_index][None], len(order) * num_steps, axis=0).astype(np.float32)
    for row, dimension in enumerate(order):
        codes[row * num_steps:(row + 1) * num_steps, dimension] = values
    decoded = model.decode(codes)
    figure, ax = _new_axes(ax, (0.55 * num_steps + 1.2, 0.55 * len(order) + 0.6))
    # Gray gaps frame each image, so that a sprite moving inside its frame shows.
    ax.imshow(tile_images(decoded, ncols=num_steps, fill=0.25), cmap="gray_r", vmin=0.0,
              vmax=1.0, interpolation="nearest")
    height, width = decoded.shape[1:3]
    ax.set_yticks([(height + 1) * row + (height - 1) / 2 for row in range(len(order))])
    ax.set_yticklabels([f"z{d}  KL {kl[d]:.2f}" for d in order], fontsize=8)
    ax.set_xticks([(width + 1) * step + (width - 1) / 2 for step in (0, num_steps - 1)])
    ax.set_xticklabels([f"{-limit:g}", f"{limit:g}"], fontsize=8)
    ax.tick_params(length=0)
    for spine in ax.spines.values():
        spine.set_visible(False)
    if title:
        ax.set_title(title)
    return figure
