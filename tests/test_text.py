"""The sentence corpus, its parser, and the text VAE (vae_keras.sentences, vae_keras.text_models).

Small on purpose: a few hundred sentences, a small GRU, a few epochs. The model
tests run on whichever backend KERAS_BACKEND names (TensorFlow by default; the
whole file passes under jax and torch too); ``test_other_backends_smoke`` also
trains, saves and loads under JAX and PyTorch from a TensorFlow run.
"""

import numpy as np
import pytest

from vae_keras import sentences


# ---------------------------------------------------------------------- the corpus

def test_the_corpus_is_deterministic_per_seed():
    first, again = sentences.make_sentences(300, seed=3), sentences.make_sentences(300, seed=3)
    np.testing.assert_array_equal(first.tokens, again.tokens)
    np.testing.assert_array_equal(first.factors, again.factors)
    other = sentences.make_sentences(300, seed=4)
    assert not np.array_equal(first.factors, other.factors)


def test_the_corpus_has_the_documented_shapes_and_sizes():
    data = sentences.make_sentences(500, seed=0)
    assert data.tokens.shape == (500, sentences.MAX_LENGTH) and data.tokens.dtype == np.int32
    assert data.factors.shape == (500, 6) and data.factor_names == sentences.FACTOR_NAMES
    assert len(data.vocabulary) == 88 and data.vocabulary.words[:4] == (
        "<pad>", "<bos>", "<eos>", "<unk>")
    # Distinct sentences, each ending in <eos> followed by padding only.
    assert len({tuple(row) for row in data.tokens}) == 500
    rows = np.arange(500)
    assert np.all(data.tokens[rows, data.lengths - 1] == sentences.EOS_ID)
    assert np.all((data.tokens == 0) == (np.arange(sentences.MAX_LENGTH) >= data.lengths[:, None]))
    assert np.prod(sentences.FACTOR_SIZES) == 103_680


def test_every_sentence_parses_to_its_own_factors():
    data = sentences.make_sentences(None, seed=0)  # the whole grammar
    np.testing.assert_array_equal(sentences.parse_all(data.tokens), data.factors)
    assert data.texts()[0].startswith("the ")
    # Strings and word lists parse the same way as ids.
    text = data.texts()[0]
    assert sentences.parse(text) == sentences.parse(text.split()) == tuple(data.factors[0])


@pytest.mark.parametrize("text", [
    "the cat chase the red ball",          # no agreement in the present
    "the cats chases the red ball",
    "the cat will chased the red ball",    # "will" takes the base form
    "the cat chases the ball",             # no adjective
    "the cat chases the red",              # no object
    "cat chases the red ball",
    "the cat chases the red ball ball",
    "the red chases the cat ball",
])
def test_a_corrupted_sentence_does_not_parse(text):
    assert sentences.parse(text) is None


def test_corrupted_rows_of_ids_do_not_parse():
    data = sentences.make_sentences(50, seed=1)
    row = data.tokens[0].copy()
    assert sentences.parse(row) is not None
    swapped = row.copy()
    swapped[[1, 2]] = swapped[[2, 1]]           # subject and verb swapped
    unfinished = row.copy()
    unfinished[data.lengths[0] - 1] = 0         # the <eos> removed
    after_end = row.copy()
    after_end[-1] = row[1]                       # a word after <eos>
    if data.lengths[0] == sentences.MAX_LENGTH:
        after_end = np.append(row, row[1])
    unknown = row.copy()
    unknown[1] = sentences.UNK_ID
    for bad in (swapped, unfinished, after_end, unknown):
        assert sentences.parse(bad) is None
    assert sentences.grammatical_share(np.stack([row, swapped])) == 0.5


def test_the_split_keeps_every_sentence_once_and_new_share_counts_unseen_grammatical_rows():
    data = sentences.make_sentences(400, seed=2)
    train, test = sentences.train_test_split(data, test_fraction=0.25, seed=0)
    assert (len(train), len(test)) == (300, 100)
    together = {tuple(r) for r in train.tokens} | {tuple(r) for r in test.tokens}
    assert len(together) == 400
    assert sentences.new_share(test.tokens, train) == 1.0
    assert sentences.new_share(train.tokens, train) == 0.0
    # Wider padding compares equal; a row that does not parse is not new.
    padded = np.pad(train.tokens[:4], ((0, 0), (0, 3)))
    assert sentences.new_share(padded, train) == 0.0
    garbage = np.full((2, 8), 5, np.int32)
    assert sentences.new_share(garbage, train) == 0.0
    np.testing.assert_array_equal(sentences.train_test_split(data, 0.25, seed=0)[1].tokens,
                                  test.tokens)


def test_factor_agreement_reads_each_factor_back_with_the_parser():
    data = sentences.make_sentences(60, seed=5)
    np.testing.assert_array_equal(sentences.factor_agreement(data.factors, data.tokens), np.ones(6))
    # Ask for the future everywhere: the future rows agree on tense, the others do not.
    wanted = data.factors.copy()
    wanted[:, 3] = 2
    shares = sentences.factor_agreement(wanted, data.tokens)
    assert shares[3] == np.mean(data.factors[:, 3] == 2) and np.all(np.delete(shares, 3) == 1)
    # A row that does not parse agrees with nothing.
    broken = data.tokens.copy()
    broken[:30, 0] = sentences.UNK_ID
    np.testing.assert_allclose(sentences.factor_agreement(data.factors, broken), 0.5)
    with pytest.raises(ValueError, match="rows"):
        sentences.factor_agreement(data.factors[:3], data.tokens)


def test_the_grammar_entropy_is_the_log_of_its_number_of_sentences():
    assert sentences.grammar_entropy() == pytest.approx(np.log(103_680))


def test_token_accuracy_counts_words_and_eos_only():
    data = sentences.make_sentences(10, seed=0)
    assert sentences.token_accuracy(data.tokens, data.tokens) == 1.0
    wrong = data.tokens.copy()
    wrong[:, 0] = 5
    expected = 1 - 10 / data.lengths.sum()
    assert sentences.token_accuracy(data.tokens, wrong) == pytest.approx(expected)


@pytest.mark.parametrize("call, error, match", [
    (lambda: sentences.make_sentences(0), ValueError, ">= 1"),
    (lambda: sentences.make_sentences(10**6), ValueError, "more than"),
    (lambda: sentences.make_sentences(2.5), TypeError, "whole number"),
    (lambda: sentences.train_test_split(np.zeros((3, 8), int)), TypeError, "Sentences"),
    (lambda: sentences.train_test_split(sentences.make_sentences(3), 0.01), ValueError, "empty"),
    (lambda: sentences.realize(np.array([[0, 2, 0, 0, 0, 0]])), ValueError, "number"),
    (lambda: sentences.realize(np.zeros((1, 6))), TypeError, "integer"),
    (lambda: sentences.parse_all(np.zeros((2, 8))), TypeError, "integer"),
    (lambda: sentences.parse_all(np.zeros(8, int)), ValueError, "batch axis"),
])
def test_corpus_functions_name_bad_arguments(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------------- the model
# Imported here, not at the top: the corpus tests above need no Keras backend.

import json  # noqa: E402
import os  # noqa: E402
import pathlib  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import keras  # noqa: E402
from keras import ops  # noqa: E402

import vae_keras as vk  # noqa: E402
from vae_keras import text_models  # noqa: E402

SMALL = dict(latent_dim=4, embedding_dim=16, hidden_units=32)
VOCABULARY_SIZE = len(sentences.VOCABULARY)


def small_model(max_length=sentences.MAX_LENGTH, **kwargs):
    return vk.TextVAE(VOCABULARY_SIZE, max_length, **dict(SMALL, seed=1, **kwargs))


@pytest.fixture(scope="module")
def corpus():
    return sentences.train_test_split(sentences.make_sentences(480, seed=0), 0.2, seed=0)


@pytest.fixture(scope="module")
def trained(corpus):
    """A small TextVAE trained for three epochs with KL warm-up, and its history."""
    train, _ = corpus
    keras.utils.set_random_seed(0)
    model = small_model(word_dropout=0.2)
    model.compile(optimizer=keras.optimizers.Adam(5e-3))
    history = model.fit(train.tokens, epochs=3, batch_size=32, verbose=0,
                        callbacks=[vk.KLWarmup(warmup_epochs=2)])
    return model, history.history


def loss_terms_with_noise_state(model, tokens, state):
    """compute_loss_terms with the Sampling layer's stream set to ``state``: repeatable draws."""
    model.sampling.seed_generator.state.assign(state)
    terms = model.compute_loss_terms(ops.convert_to_tensor(tokens), training=False)
    return {name: float(ops.convert_to_numpy(value)) for name, value in terms.items()}


def test_categorical_log_likelihood_matches_numpy_and_ignores_padded_positions():
    rng = np.random.default_rng(0)
    tokens = np.array([[5, 6, 2, 0, 0], [7, 2, 0, 0, 0]], np.int32)
    logits = rng.normal(size=(2, 5, 9)).astype(np.float32)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = [sum(log_p[i, t, tokens[i, t]] for t in range(5) if tokens[i, t] != 0)
                for i in range(2)]
    got = ops.convert_to_numpy(text_models.categorical_log_likelihood(tokens, logits))
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    changed = logits.copy()
    changed[tokens == 0] = rng.normal(size=changed[tokens == 0].shape) * 10
    np.testing.assert_allclose(
        ops.convert_to_numpy(text_models.categorical_log_likelihood(tokens, changed)), got,
        rtol=1e-6)


def test_shapes_of_every_output(corpus):
    _, test = corpus
    model = small_model()
    tokens = test.tokens[:6]
    assert model.predict(tokens, verbose=0).shape == (6, sentences.MAX_LENGTH, VOCABULARY_SIZE)
    z_mean, z_log_var = model.encode(tokens)
    assert z_mean.shape == z_log_var.shape == (6, 4)
    decoded = model.decode(z_mean)
    assert decoded.shape == (6, sentences.MAX_LENGTH) and decoded.dtype == np.int32
    assert model.reconstruct(tokens, temperature=1.0, seed=0).shape == (6, sentences.MAX_LENGTH)
    samples = model.sample(5, seed=0, temperature=0.5)
    assert samples.shape == (5, sentences.MAX_LENGTH)
    assert not np.isin(samples, [sentences.BOS_ID]).any()  # never emitted
    assert model.elbo(tokens, per_sentence=True, seed=0).shape == (6,)
    assert model.nll(tokens, num_samples=3, per_sentence=True, seed=0).shape == (6,)
    terms = model.compute_loss_terms(ops.convert_to_tensor(tokens))
    assert set(terms) == {"loss", "reconstruction_loss", "kl_loss"}
    # Untrained, the decoder is near uniform: about log(88) nats per counted position.
    reconstruction = float(ops.convert_to_numpy(terms["reconstruction_loss"]))
    per_position = reconstruction / test.lengths[:6].mean()
    assert abs(per_position - np.log(VOCABULARY_SIZE)) < 0.5


def test_padding_adds_nothing_to_the_loss(corpus):
    _, test = corpus
    model = small_model(max_length=12)
    tokens = test.tokens[:16]
    wider = np.pad(tokens, ((0, 0), (0, 4)))
    state = ops.convert_to_numpy(model.sampling.seed_generator.state)
    narrow_terms = loss_terms_with_noise_state(model, tokens, state)
    wide_terms = loss_terms_with_noise_state(model, wider, state)
    for name in narrow_terms:
        assert wide_terms[name] == pytest.approx(narrow_terms[name], rel=1e-5, abs=1e-5)
    np.testing.assert_allclose(model.elbo(wider, per_sentence=True, seed=2),
                               model.elbo(tokens, per_sentence=True, seed=2), rtol=1e-5)
    np.testing.assert_allclose(model.encode_mean(wider), model.encode_mean(tokens), atol=1e-6)


def test_a_short_fit_lowers_the_loss_and_kl_warmup_moves_beta(trained):
    _, history = trained
    assert history["loss"][-1] < history["loss"][0] - 1.0
    assert history["beta"][0] < 1.0 and history["beta"][-1] == 1.0
    assert all(np.isfinite(history["kl_loss"]))


def test_evaluate_reports_the_three_terms(trained, corpus):
    model, _ = trained
    logs = model.evaluate(corpus[1].tokens, batch_size=32, verbose=0, return_dict=True)
    assert {"loss", "reconstruction_loss", "kl_loss"} <= set(logs)


def test_the_elbo_is_at_most_the_importance_weighted_bound(trained, corpus):
    model, _ = trained
    tokens = corpus[1].tokens[:64]
    # The ELBO's expectation, averaged over draws: one draw is noisier than the gap here
    # (a barely trained model's posterior is close to its prior, so the gap is small).
    elbo = np.mean([model.elbo(tokens, seed=seed) for seed in range(8)])
    bound = -model.nll(tokens, num_samples=200, seed=100)
    assert elbo <= bound
    # The exact form of Jensen's inequality, on one set of draws.
    rng = np.random.default_rng(3)
    noise = rng.standard_normal((50, 64, 4)).astype(np.float32)
    log_likelihood, log_prior_ratio, _ = model._log_weight_terms(tokens, noise)
    log_weights = ops.convert_to_numpy(log_likelihood + log_prior_ratio)
    iwae = ops.convert_to_numpy(vk.losses.importance_weighted_bound(log_weights))
    assert np.all(log_weights.mean(axis=0) <= iwae + 1e-4)


def test_save_and_load_give_identical_outputs(trained, corpus, tmp_path):
    model, _ = trained
    tokens = corpus[1].tokens[:8]
    path = tmp_path / "text_vae.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, vk.TextVAE)
    assert loaded.get_config() == model.get_config()
    np.testing.assert_array_equal(loaded.encode_mean(tokens), model.encode_mean(tokens))
    np.testing.assert_array_equal(loaded.predict(tokens, verbose=0),
                                  model.predict(tokens, verbose=0))
    np.testing.assert_array_equal(loaded.sample(6, seed=4, temperature=1.0),
                                  model.sample(6, seed=4, temperature=1.0))
    assert loaded.elbo(tokens, seed=0) == model.elbo(tokens, seed=0)
    # The seed streams are saved too: the next training draws continue where they were.
    np.testing.assert_array_equal(
        ops.convert_to_numpy(loaded.word_dropout_layer.seed_generator.state),
        ops.convert_to_numpy(model.word_dropout_layer.seed_generator.state))
    assert loaded.optimizer is not None  # comes back compiled, so fit can resume


def test_free_bits_floor_the_charged_kl_per_dimension(corpus):
    tokens = corpus[1].tokens[:32]
    plain, floored = small_model(), small_model(free_bits=2.0)
    floored.set_weights(plain.get_weights())
    state = ops.convert_to_numpy(plain.sampling.seed_generator.state)
    plain_terms = loss_terms_with_noise_state(plain, tokens, state)
    floored_terms = loss_terms_with_noise_state(floored, tokens, state)
    assert plain_terms["loss"] == pytest.approx(
        plain_terms["reconstruction_loss"] + plain_terms["kl_loss"], rel=1e-6)
    # An untrained encoder's KL is far below 2 nats in each of the 4 dimensions: all floored.
    assert floored_terms["kl_loss"] == pytest.approx(plain_terms["kl_loss"], rel=1e-6)
    assert floored_terms["kl_loss"] < 4 * 2.0
    assert floored_terms["loss"] == pytest.approx(
        floored_terms["reconstruction_loss"] + 4 * 2.0, rel=1e-6)
    floored.beta = 0.5
    assert loss_terms_with_noise_state(floored, tokens, state)["loss"] == pytest.approx(
        floored_terms["reconstruction_loss"] + 0.5 * 4 * 2.0, rel=1e-6)
    # The floor also holds per dimension: a large mean in one dimension is charged in full.
    z_mean = np.zeros((2, 4), np.float32)
    z_mean[:, 0] = 3.0  # KL 4.5 nats in dimension 0, 0 elsewhere
    charged = floored.kl_charged(text_models.kl_per_dimension(z_mean, np.zeros_like(z_mean)))
    assert float(ops.convert_to_numpy(charged)) == pytest.approx(4.5 + 3 * 2.0)


def test_word_dropout_replaces_words_only_in_training():
    layer = text_models.WordDropout(0.5, seed=0)
    tokens = np.tile(np.array([[1, 5, 6, 7, 8, 2, 0, 0]], np.int32), (500, 1))
    np.testing.assert_array_equal(ops.convert_to_numpy(layer(tokens)), tokens)
    dropped = ops.convert_to_numpy(layer(tokens, training=True))
    assert np.all(dropped[:, 0] == sentences.BOS_ID) and np.all(dropped[:, 6:] == 0)
    words = dropped[:, 1:6]
    share = np.mean(words == sentences.UNK_ID)
    assert 0.45 < share < 0.55 and np.all((words == tokens[:, 1:6]) | (words == sentences.UNK_ID))
    # At rate 1 every word goes (Bowman's inputless decoder), in evaluation too; the
    # protected ids stay.
    for training in (True, False):
        everything = ops.convert_to_numpy(text_models.WordDropout(1.0)(tokens, training=training))
        assert np.all(everything[:, 1:6] == sentences.UNK_ID)
        np.testing.assert_array_equal(everything[:, [0, 6, 7]], tokens[:, [0, 6, 7]])
    # The model's teacher-forced input goes through it in training only.
    model = small_model(word_dropout=0.5)
    inputs = model.word_dropout_layer(model.decoder_inputs(tokens[:, 1:]), training=True)
    assert np.mean(ops.convert_to_numpy(inputs) == sentences.UNK_ID) > 0.2


def test_an_inputless_decoder_decodes_from_unknown_words_only(corpus):
    tokens = corpus[1].tokens[:4]
    model = small_model(word_dropout=1.0)
    codes = model.encode_mean(tokens)
    # Teacher forcing with any sentence gives the same logits: the words never reach the decoder.
    shuffled = tokens.copy()
    shuffled[:, :6] = tokens[:, 5::-1]  # other words, the same padding (every sentence has 6+)
    np.testing.assert_allclose(
        ops.convert_to_numpy(model.decoder_output(codes, tokens)),
        ops.convert_to_numpy(model.decoder_output(codes, shuffled)), rtol=1e-6)
    assert model.decode(codes).shape == (4, sentences.MAX_LENGTH)


BAD_TOKENS = [
    (np.full((2, 8), 88), ValueError, "id 88 .*vocabulary of 88"),
    (np.full((2, 8), -1), ValueError, "id -1"),
    (np.ones((2, 8), np.float32) * 5, TypeError, "astype\\('int32'\\)"),
    (np.full((2, 8), 0.5), TypeError, "integers"),
    (np.ones((2, 8), bool), TypeError, "integer array"),
    (np.pad(np.full((2, 8), 5), ((0, 0), (0, 4))), ValueError, "tokens\\[:, :8\\]"),
    (np.full((2, 12), 5), ValueError, "max_length=12"),
    (np.zeros((0, 8), np.int32), ValueError, "empty"),
    (np.full(8, 5), ValueError, "tokens\\[None\\]"),
    ("the cat", TypeError, "integer array"),
    (None, ValueError, "None"),
]


@pytest.mark.parametrize("tokens, error, match", BAD_TOKENS)
def test_bad_tokens_get_a_clear_error_everywhere(tokens, error, match):
    model = small_model()
    for call in (lambda: model.encode(tokens), lambda: model.elbo(tokens),
                 lambda: model.nll(tokens, num_samples=2),
                 lambda: model.fit(tokens, epochs=1, verbose=0),
                 lambda: model.predict(tokens, verbose=0)):
        with pytest.raises(error, match=match):
            call()


def test_bad_tokens_in_a_dataset_are_caught_before_training():
    import tensorflow as tf

    model = small_model()
    model.compile()
    floats = tf.data.Dataset.from_tensor_slices(np.ones((4, 8), np.float32)).batch(2)
    with pytest.raises(TypeError, match="tf.cast"):
        model.fit(floats, epochs=1, verbose=0)
    outside = tf.data.Dataset.from_tensor_slices(np.full((4, 8), 100)).batch(2)
    with pytest.raises(ValueError, match="first dataset batch"):
        model.fit(outside, epochs=1, verbose=0)


@pytest.mark.parametrize("call, error, match", [
    (lambda: small_model(word_dropout=1.5), ValueError, "word_dropout"),
    (lambda: small_model(free_bits=-1.0), ValueError, "free_bits"),
    (lambda: small_model(max_length=1), ValueError, "max_length"),
    (lambda: vk.TextVAE(3, 8), ValueError, "vocabulary_size"),
    (lambda: vk.TextVAE(88, 8, unk_id=200), ValueError, "unk_id"),
    (lambda: vk.TextVAE(88, 8, unk_id=0), ValueError, "differ"),
    (lambda: vk.TextVAE(88.0, 8), TypeError, "vocabulary_size"),
    (lambda: small_model().decode(np.zeros((2, 3))), ValueError, "\\(n, 4\\)"),
    (lambda: small_model().decode(np.zeros((2, 4)), temperature=-1), ValueError, "temperature"),
    (lambda: small_model().sample(2.5), TypeError, "num_samples"),
    (lambda: small_model().compile(loss="mse"), ValueError, "own loss"),
])
def test_bad_arguments_get_a_clear_error(call, error, match):
    with pytest.raises(error, match=match):
        call()


OTHER_BACKEND_SCRIPT = """
import json
import numpy as np
import keras
import vae_keras as vk
keras.utils.set_random_seed(0)
data = vk.sentences.make_sentences(128, seed=0)
model = vk.TextVAE(len(data.vocabulary), 8, latent_dim=4, embedding_dim=16, hidden_units=32,
                   word_dropout=0.25, free_bits=0.1, seed=1)
model.compile(optimizer=keras.optimizers.Adam(5e-3))
history = model.fit(data.tokens, epochs=2, batch_size=32, verbose=0,
                    callbacks=[vk.KLWarmup(warmup_epochs=1)]).history
model.save({path!r})
loaded = keras.saving.load_model({path!r})
print("REPORT" + json.dumps({{
    "backend": keras.backend.backend(), "loss": history["loss"],
    "same_codes": bool(np.array_equal(loaded.encode_mean(data.tokens[:8]),
                                      model.encode_mean(data.tokens[:8]))),
    "same_samples": bool(np.array_equal(loaded.sample(4, seed=0), model.sample(4, seed=0))),
    "elbo": model.elbo(data.tokens[:32], seed=0),
    "bound": -model.nll(data.tokens[:32], num_samples=50, seed=0)}}))
"""


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_other_backends_smoke(backend, tmp_path):
    """Train, save, load, sample and bound under JAX and PyTorch, each in its own process."""
    pytest.importorskip(backend)
    root = pathlib.Path(__file__).resolve().parents[1]
    script = OTHER_BACKEND_SCRIPT.format(path=str(tmp_path / "model.keras"))
    environment = dict(os.environ, KERAS_BACKEND=backend, TF_CPP_MIN_LOG_LEVEL="2",
                       PYTHONPATH=str(root))
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            env=environment, cwd=root, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.split("REPORT")[-1])
    assert report["backend"] == backend
    assert report["loss"][-1] < report["loss"][0]
    assert report["same_codes"] and report["same_samples"]
    assert report["elbo"] <= report["bound"] + 1e-3
