"""KL schedules and the NaN guard."""

import keras
import numpy as np
import pytest

import vae_keras as vk
from conftest import TOY_SHAPE, make_bar_images


def test_warmup_is_linear_then_flat():
    schedule = vk.KLWarmup(warmup_epochs=4, start=0.0, end=2.0)
    assert [schedule.beta_at(e) for e in (0, 1, 2, 4, 10)] == [0.0, 0.5, 1.0, 2.0, 2.0]


def test_cyclical_annealing_repeats_ramps_then_holds():
    schedule = vk.CyclicalKLAnnealing(cycle_epochs=4, ramp_fraction=0.5, num_cycles=2)
    values = [schedule.beta_at(e) for e in (0, 1, 2, 3, 4, 5, 6, 8, 9)]
    assert values == [0.0, 0.5, 1.0, 1.0, 0.0, 0.5, 1.0, 1.0, 1.0]


def test_warmup_sets_beta_during_fit_and_logs_it():
    images = make_bar_images(256)
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(16,))
    model.compile(steps_per_execution=1)  # batch hooks every step, whatever the device default
    history = model.fit(images, epochs=3, batch_size=64, verbose=0,
                        callbacks=[vk.KLWarmup(warmup_epochs=2)])
    # Logged at each epoch's end, after its last batch: progress 0.75, 1.75, then flat.
    np.testing.assert_allclose(history.history["beta"], [0.375, 0.875, 1.0])
    assert model.beta == 1.0


def test_schedules_refuse_models_without_beta():
    model = vk.Autoencoder(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(8,))
    model.compile()
    with pytest.raises(TypeError, match="beta"):
        model.fit(make_bar_images(64), epochs=1, verbose=0, callbacks=[vk.KLWarmup(1)])


@pytest.mark.parametrize("bad", [0, -1.0, float("nan")])
def test_schedules_validate_their_arguments(bad):
    with pytest.raises(ValueError):
        vk.KLWarmup(warmup_epochs=bad)


class PoisonWeights(keras.callbacks.Callback):
    """Writes a NaN into the encoder mid-epoch, as a diverging optimizer would."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.model.optimizer.iterations.numpy() == self.epoch * 4 + 2:
            kernel = self.model.encoder.layers[-1].kernel
            kernel.assign(np.full(kernel.shape, np.nan, np.float32))


def test_nan_loss_stops_training_with_a_message_and_restores_weights():
    images = make_bar_images(256)
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(16,))
    model.compile(steps_per_execution=1)
    with pytest.raises(FloatingPointError, match="learning rate"):
        model.fit(images, epochs=5, batch_size=64, verbose=0, callbacks=[PoisonWeights(epoch=1)])
    weights = model.get_weights()
    assert all(np.all(np.isfinite(w)) for w in weights)
    assert model.optimizer.iterations.numpy() == 8  # stopped at the end of the second epoch


# ---------------------------------------------------------------- the time budget

class FakeClock:
    """A clock that advances one second each time it is read: epochs of known length."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 1.0
        return self.now


def test_the_annealing_factors_fall_from_one_to_zero():
    cosine, linear, flat = (vk.TimeBudget(1, anneal=a) for a in ("cosine", "linear", None))
    np.testing.assert_allclose([cosine.learning_rate_factor(t) for t in (0, 0.5, 1, 2)],
                               [1.0, 0.5, 0.0, 0.0], atol=1e-12)
    assert [linear.learning_rate_factor(t) for t in (0, 0.25, 1)] == [1.0, 0.75, 0.0]
    assert [flat.learning_rate_factor(t) for t in (0, 0.9)] == [1.0, 1.0]


def test_the_budget_stops_before_an_epoch_that_would_overrun_and_anneals_on_the_way():
    keras.utils.set_random_seed(0)
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(16,))
    model.compile(optimizer=keras.optimizers.Adam(2e-3))
    # 8 batches per epoch: each epoch reads the clock 9 times (8 batches and its end).
    budget = vk.TimeBudget(minutes=0.5, clock=FakeClock())
    history = model.fit(make_bar_images(512), epochs=50, batch_size=64, verbose=0,
                        callbacks=[budget]).history
    assert budget.epochs == len(history["loss"]) == 3  # a 4th would end past 30 s
    assert budget.seconds <= 30
    rates = history["learning_rate"]
    assert 2e-3 > rates[0] > rates[1] > rates[2] > 0
    # The clock starts at 1 s; the last batch begins at 27 s, 26 s into the budget.
    np.testing.assert_allclose(rates[2], 2e-3 * budget.learning_rate_factor(26 / 30), rtol=1e-5)
    # The optimizer's own rate is given back for later training.
    np.testing.assert_allclose(float(model.optimizer.learning_rate), 2e-3, rtol=1e-6)


def test_the_budget_refuses_bad_settings_and_a_schedule_it_would_fight():
    with pytest.raises(ValueError, match="minutes"):
        vk.TimeBudget(0)
    with pytest.raises(ValueError, match="anneal"):
        vk.TimeBudget(1, anneal="exponential")
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(16,))
    schedule = keras.optimizers.schedules.ExponentialDecay(1e-3, 10, 0.9)
    model.compile(optimizer=keras.optimizers.Adam(schedule))
    with pytest.raises(TypeError, match="LearningRateSchedule"):
        model.fit(make_bar_images(64), epochs=1, verbose=0, callbacks=[vk.TimeBudget(1)])


@pytest.mark.parametrize("kind, shape", [("learned", ()), ("learned_per_pixel", TOY_SHAPE)])
def test_the_sigma_trace_records_sigma_and_the_rmse_it_chases_after_every_epoch(kind, shape):
    keras.utils.set_random_seed(0)
    images = make_bar_images(256) * 0.8 + 0.1
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(16,), likelihood="gaussian",
                   observation_scale=kind, seed=0)
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    trace = vk.callbacks.SigmaTrace(images[:64], seed=1)
    model.fit(images, epochs=3, batch_size=64, verbose=0, callbacks=[trace])
    assert len(trace.sigma) == len(trace.rmse) == 3
    assert np.shape(trace.sigma[-1]) == np.shape(trace.rmse[-1]) == shape
    np.testing.assert_allclose(trace.sigma[-1], model.observation_scale_value, rtol=1e-6)
    errors = vk.evaluation.reconstruction_errors(model, images[:64], seed=1)
    expected = np.sqrt(np.mean(errors.astype(np.float64) ** 2, axis=None if kind == "learned" else 0))
    np.testing.assert_allclose(trace.rmse[-1], expected, rtol=1e-5)


@pytest.mark.parametrize("options", [{}, {"likelihood": "gaussian", "observation_scale": 0.2}])
def test_the_sigma_trace_refuses_a_model_without_a_learned_sigma(options):
    model = vk.VAE(latent_dim=2, image_shape=TOY_SHAPE, hidden_units=(8,), **options)
    model.compile()
    with pytest.raises(ValueError, match="SigmaTrace follows a learned sigma"):
        model.fit(make_bar_images(64), epochs=1, verbose=0,
                  callbacks=[vk.callbacks.SigmaTrace(make_bar_images(8))])

