"""The sentence corpus, its parser, and the text VAE (vae_keras.sentences, vae_keras.text_models).

Small on purpose: a few hundred sentences, a small GRU, one or two epochs. The
model tests run on whichever backend KERAS_BACKEND names (TensorFlow by default);
``test_other_backends_smoke`` also runs a short script under JAX and PyTorch.
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
