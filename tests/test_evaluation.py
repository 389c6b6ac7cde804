"""The ELBO and importance-weighted estimates on a trained toy model."""

import numpy as np
import pytest

from vae_keras import evaluation


def test_iwae_bound_is_above_the_elbo_and_rises_with_k(trained_toy_vae):
    model, images = trained_toy_vae
    elbo = evaluation.elbo_per_image(model, images, seed=0).mean()
    bounds = [evaluation.importance_weighted_log_likelihood(model, images, num_samples=k, seed=k).mean()
              for k in (1, 10, 100, 1000)]
    # K=1 is an unbiased estimate of the ELBO itself; larger K tightens the bound.
    assert bounds[0] == pytest.approx(elbo, abs=0.5)
    assert bounds[1] > elbo
    assert all(later > earlier for earlier, later in zip(bounds, bounds[1:])), bounds


def test_results_do_not_depend_on_chunking_or_batching(trained_toy_vae):
    model, images = trained_toy_vae
    reference = evaluation.importance_weighted_log_likelihood(
        model, images[:20], num_samples=50, batch_size=20, max_decoded=10_000, seed=3)
    # Chunks of 3 codes per decode call, batches of 20: the same draws, the same numbers.
    chunked = evaluation.importance_weighted_log_likelihood(
        model, images[:20], num_samples=50, batch_size=20, max_decoded=60, seed=3)
    np.testing.assert_allclose(chunked, reference, rtol=1e-5)


def test_seeded_evaluations_repeat(trained_toy_vae):
    model, images = trained_toy_vae
    first = evaluation.elbo_per_image(model, images, seed=5)
    np.testing.assert_array_equal(first, evaluation.elbo_per_image(model, images, seed=5))


def test_negative_log_likelihood_reports_nats_and_bits(trained_toy_vae):
    model, images = trained_toy_vae
    result = evaluation.negative_log_likelihood(model, images[:32], num_samples=10, seed=0)
    assert result["num_samples"] == 10
    assert result["bits_per_dim"] == pytest.approx(result["nll_nats"] / (64 * np.log(2)))
    # A trained model beats the uniform model, 64 * log(2) = 44.4 nats per 8x8 image.
    assert 0 < result["nll_nats"] < 64 * np.log(2)
