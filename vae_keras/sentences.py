"""Sentences: a generated corpus whose factors are known, and the parser that reads them back.

A text VAE is usually shown on a real corpus, where nobody can say whether a
sample is grammatical or which latent dimension carries the tense. This module
is the text counterpart of :mod:`vae_keras.sprites`: a small grammar, every
sentence of which is made from known factors,

==========  =============================================================  =======
factor      values                                                         count
==========  =============================================================  =======
subject     ``"cat"``, ``"dog"``, ... (the noun that acts)                 12
number      ``"singular"``, ``"plural"`` (of the subject)                  2
verb        ``"chase"``, ``"see"``, ...                                    12
tense       ``"present"``, ``"past"``, ``"future"``                        3
adjective   ``"red"``, ``"big"``, ... (of the object)                      10
object      ``"ball"``, ``"box"``, ... (the noun acted on)                 12
==========  =============================================================  =======

as ``the SUBJECT [will] VERB the ADJECTIVE OBJECT``: "the cat chases the red
ball", "the dogs will see the old key", "the mice caught the big bone". The
subject's number shows in the noun ("dog"/"dogs", "mouse"/"mice") and, in the
present, in the verb ("chases"/"chase"), so a sample can fail to agree and
the parser rejects it. 12 x 2 x 12 x 3 x 10 x 12 = 103,680 sentences over a
vocabulary of 88 words (four of them special); :func:`make_sentences` draws a
few thousand, so most grammatical samples of a model are sentences it never saw.

Because the grammar is known, samples can be measured (:func:`parse`,
:func:`grammatical_share`, :func:`new_share`) and codes compared with factors
(:mod:`vae_keras.disentanglement`). Used with :class:`vae_keras.text_models.TextVAE`.
"""

import dataclasses

import numpy as np

from vae_keras import _checks

FACTOR_NAMES = ("subject", "number", "verb", "tense", "adjective", "object")
NUMBERS = ("singular", "plural")
TENSES = ("present", "past", "future")
# (singular, plural): irregular plurals are part of what a model must learn.
SUBJECTS = (("cat", "cats"), ("dog", "dogs"), ("bird", "birds"), ("fox", "foxes"),
            ("horse", "horses"), ("child", "children"), ("teacher", "teachers"),
            ("farmer", "farmers"), ("mouse", "mice"), ("girl", "girls"), ("boy", "boys"),
            ("wolf", "wolves"))
# (base form, present third person singular, past).
VERBS = (("chase", "chases", "chased"), ("see", "sees", "saw"),
         ("follow", "follows", "followed"), ("like", "likes", "liked"),
         ("watch", "watches", "watched"), ("find", "finds", "found"),
         ("catch", "catches", "caught"), ("carry", "carries", "carried"),
         ("push", "pushes", "pushed"), ("hear", "hears", "heard"),
         ("want", "wants", "wanted"), ("take", "takes", "took"))
ADJECTIVES = ("red", "big", "small", "old", "new", "blue", "green", "heavy", "shiny", "broken")
OBJECTS = ("ball", "box", "apple", "hat", "book", "car", "kite", "cake", "bone", "key", "stick",
           "cup")

PAD, BOS, EOS, UNK = "<pad>", "<bos>", "<eos>", "<unk>"
PAD_ID, BOS_ID, EOS_ID, UNK_ID = 0, 1, 2, 3
# The longest sentence, "the dogs will chase the red ball", has 7 words; one more for <eos>.
MAX_LENGTH = 8


@dataclasses.dataclass(frozen=True)
class Vocabulary:
    """The words of the grammar and their ids; ``<pad>`` is 0 so padding is all zeros.

    Attributes:
        words: every word, in id order: ``<pad>``, ``<bos>``, ``<eos>``, ``<unk>``, then
            the grammar's words.
        index: word -> id.
    """

    words: tuple
    index: dict = dataclasses.field(repr=False, compare=False)

    pad_id = PAD_ID
    bos_id = BOS_ID
    eos_id = EOS_ID
    unk_id = UNK_ID

    def __len__(self):
        return len(self.words)

    def encode(self, sentence):
        """Ids of a sentence given as a string or a list of words, ``<eos>`` appended.

        Unknown words become ``<unk>`` (they then do not parse).
        """
        words = sentence.split() if isinstance(sentence, str) else list(sentence)
        return [self.index.get(word, UNK_ID) for word in words] + [EOS_ID]

    def decode(self, ids):
        """The words of one row of ids, up to (not including) its ``<eos>``, padding dropped."""
        words = []
        for token in np.asarray(ids).ravel().tolist():
            if token == EOS_ID:
                break
            if token != PAD_ID:
                words.append(self.words[token] if 0 <= token < len(self.words) else UNK)
        return words

    def text(self, ids):
        """One row of ids as a string: ``"the cat chases the red ball"``."""
        return " ".join(self.decode(ids))


def _make_vocabulary():
    words = [PAD, BOS, EOS, UNK, "the", "will"]
    words += [form for pair in SUBJECTS for form in pair]
    words += [form for forms in VERBS for form in forms]
    words += list(ADJECTIVES) + list(OBJECTS)
    if len(set(words)) != len(words):  # a word in two roles would make parsing ambiguous
        raise AssertionError("the grammar's word lists overlap")
    return Vocabulary(words=tuple(words), index={word: i for i, word in enumerate(words)})


VOCABULARY = _make_vocabulary()
FACTOR_VALUES = (tuple(singular for singular, _ in SUBJECTS), NUMBERS,
                 tuple(base for base, _, _ in VERBS), TENSES, ADJECTIVES, OBJECTS)
FACTOR_SIZES = tuple(len(values) for values in FACTOR_VALUES)

# The parser's tables: which word can stand where, and what it says about the factors.
_SUBJECT_OF = {form: (subject, number) for subject, pair in enumerate(SUBJECTS)
               for number, form in enumerate(pair)}
_VERB_OF = {form: (verb, kind) for verb, forms in enumerate(VERBS)
            for kind, form in enumerate(forms)}  # kind: 0 base, 1 third person, 2 past
_ADJECTIVE_OF = {word: i for i, word in enumerate(ADJECTIVES)}
_OBJECT_OF = {word: i for i, word in enumerate(OBJECTS)}


@dataclasses.dataclass(frozen=True)
class Sentences:
    """Token ids of sentences and the factors that made them.

    Attributes:
        tokens: int32 array ``(n, MAX_LENGTH)``: each row the sentence's word ids,
            then ``<eos>``, then ``<pad>`` (0) to the end. No ``<bos>``: the model
            adds it in front of the decoder's input.
        lengths: int32 array ``(n,)``: words plus ``<eos>``, the positions that count
            in the loss.
        factors: int64 array ``(n, 6)``: the index of each factor's value in
            ``factor_values`` (columns in the order of ``factor_names``). The
            disentanglement metrics take these.
        vocabulary: the :class:`Vocabulary` the ids refer to.
        factor_names: ``("subject", "number", "verb", "tense", "adjective", "object")``.
        factor_values: one tuple per factor with the names of its values.
    """

    tokens: np.ndarray
    lengths: np.ndarray
    factors: np.ndarray
    vocabulary: Vocabulary
    factor_names: tuple
    factor_values: tuple

    def __len__(self):
        return len(self.tokens)

    def texts(self):
        """The sentences as strings, one per row of :attr:`tokens`."""
        return [self.vocabulary.text(row) for row in self.tokens]

    def subset(self, indices):
        """The sentences at ``indices`` (an index array or a boolean mask), as ``Sentences``."""
        return dataclasses.replace(self, tokens=self.tokens[indices],
                                   lengths=self.lengths[indices], factors=self.factors[indices])


def _check_factors(factors):
    array = np.asarray(factors)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"factors must be integer indices, one column per factor "
                        f"{FACTOR_NAMES}; got dtype {array.dtype}.")
    if array.ndim != 2 or array.shape[1] != len(FACTOR_NAMES):
        raise ValueError(f"factors must have shape (n, {len(FACTOR_NAMES)}), one column per "
                         f"factor {FACTOR_NAMES}; got {array.shape}.")
    for column, (name, size) in enumerate(zip(FACTOR_NAMES, FACTOR_SIZES)):
        if array.size and (array[:, column].min() < 0 or array[:, column].max() >= size):
            raise ValueError(f"factor {name!r} (column {column}) takes indices 0..{size - 1}; "
                             f"got {array[:, column].min()}..{array[:, column].max()}.")
    return array.astype(np.int64)


def realize(factors):
    """The words of the sentences that given factor indices make.

    Args:
        factors: integer array ``(n, 6)`` as in :attr:`Sentences.factors`.

    Returns:
        A list of ``n`` lists of words, such as ``["the", "cats", "will", "see",
        "the", "red", "ball"]``.

    Raises:
        TypeError: factors that are not integers.
        ValueError: a shape other than ``(n, 6)`` or an index outside a factor's values.
    """
    sentences = []
    for subject, number, verb, tense, adjective, obj in _check_factors(factors).tolist():
        base, third_person, past = VERBS[verb]
        if tense == 0:
            verb_words = [third_person if number == 0 else base]
        elif tense == 1:
            verb_words = [past]
        else:
            verb_words = ["will", base]
        sentences.append(["the", SUBJECTS[subject][number]] + verb_words
                         + ["the", ADJECTIVES[adjective], OBJECTS[obj]])
    return sentences


def encode(sentences, vocabulary=VOCABULARY, max_length=MAX_LENGTH):
    """Word lists (or strings) as a padded int32 array ``(n, max_length)`` ending in ``<eos>``.

    Raises:
        ValueError: a sentence longer than ``max_length - 1`` words (no room for ``<eos>``).
    """
    max_length = _checks.check_whole_number("max_length", max_length, minimum=2)
    tokens = np.full((len(sentences), max_length), PAD_ID, np.int32)
    for row, sentence in enumerate(sentences):
        ids = vocabulary.encode(sentence)
        if len(ids) > max_length:
            raise ValueError(f"sentence {row} has {len(ids) - 1} words, more than "
                             f"max_length={max_length} leaves room for (one position is "
                             f"<eos>); raise max_length.")
        tokens[row, :len(ids)] = ids
    return tokens


def make_sentences(num_sentences=4000, seed=0):
    """Distinct sentences of the grammar drawn at random, as token ids with their factors.

    Args:
        num_sentences: how many, at most the grammar's 103,680; None gives all of them.
        seed: int; fixes which sentences are drawn and their order.

    Returns:
        A :class:`Sentences` in an order that only ``seed`` decides.

    Raises:
        TypeError: a count or the seed is not a whole number.
        ValueError: a count < 1, or more sentences than the grammar has.
    """
    seed = _checks.check_whole_number("seed", seed, minimum=0)
    total = int(np.prod(FACTOR_SIZES))
    rng = np.random.default_rng(seed)
    if num_sentences is None:
        chosen = rng.permutation(total)
    else:
        num_sentences = _checks.check_whole_number("num_sentences", num_sentences)
        if num_sentences > total:
            raise ValueError(f"num_sentences={num_sentences} is more than the {total} "
                             f"sentences of the grammar; lower it (or pass None for all).")
        # Without replacement: every sentence once, so "new" means outside this set.
        chosen = rng.choice(total, size=num_sentences, replace=False)
    factors = np.stack(np.unravel_index(chosen, FACTOR_SIZES), axis=1).astype(np.int64)
    tokens = encode(realize(factors))
    return Sentences(tokens=tokens, lengths=np.sum(tokens != PAD_ID, axis=1).astype(np.int32),
                     factors=factors, vocabulary=VOCABULARY, factor_names=FACTOR_NAMES,
                     factor_values=FACTOR_VALUES)


def train_test_split(sentences, test_fraction=0.2, seed=0):
    """Split :class:`Sentences` at random into a training and a test set, no sentence in both.

    Args:
        sentences: what :func:`make_sentences` returns.
        test_fraction: share of sentences in the test set, in (0, 1).
        seed: int; fixes the split.

    Returns:
        ``(train, test)``, two :class:`Sentences`.

    Raises:
        TypeError: not ``Sentences``, or a seed that is not a whole number.
        ValueError: a fraction outside (0, 1), or one that leaves a set empty.
    """
    if not isinstance(sentences, Sentences):
        raise TypeError(f"sentences must be vae_keras.sentences.Sentences (from "
                        f"make_sentences), got {type(sentences).__name__}.")
    test_fraction = _checks.check_fraction("test_fraction", test_fraction, include_one=False)
    seed = _checks.check_whole_number("seed", seed, minimum=0)
    num_test = int(round(test_fraction * len(sentences)))
    if num_test == 0 or num_test == len(sentences):
        raise ValueError(f"test_fraction={test_fraction} of {len(sentences)} sentences leaves "
                         f"the training or the test set empty; choose a fraction in between.")
    order = np.random.default_rng(seed).permutation(len(sentences))
    return sentences.subset(np.sort(order[num_test:])), sentences.subset(np.sort(order[:num_test]))


def _words_of(sentence, vocabulary):
    """A sentence as a list of words and whether it ended with ``<eos>``."""
    if isinstance(sentence, str):
        return sentence.split(), True
    ids = np.asarray(sentence)
    if ids.dtype == bool or not np.issubdtype(ids.dtype, np.integer) or ids.ndim != 1:
        if ids.dtype.kind in "US" or ids.dtype == object:
            return [str(word) for word in ids.tolist()], True
        raise TypeError(f"a sentence to parse must be a string, a list of words or one row of "
                        f"integer ids, got an array of dtype {ids.dtype} and shape {ids.shape}.")
    ids = ids.tolist()
    ended = EOS_ID in ids
    if ended:
        # After <eos> only padding may follow; anything else is not a finished sentence.
        if any(token != PAD_ID for token in ids[ids.index(EOS_ID) + 1:]):
            return None, False
        ids = ids[:ids.index(EOS_ID)]
    elif ids and ids[-1] == PAD_ID:
        return None, False  # padding before any <eos>
    if any(not 0 <= token < len(vocabulary) or token in (PAD_ID, BOS_ID) for token in ids):
        return None, False
    return [vocabulary.words[token] for token in ids], ended


def parse(sentence, vocabulary=VOCABULARY):
    """The factors of a sentence if it is one of the grammar's, else None.

    The grammar is ``the SUBJECT [will] VERB the ADJECTIVE OBJECT``; the verb must
    agree with the subject's number in the present, take its base form after
    "will", and its past form in the past.

    Args:
        sentence: a string, a list of words, or one row of ids (then it must end in
            ``<eos>``, padding after it allowed: a decoder that never stopped has
            not made a sentence).
        vocabulary: the :class:`Vocabulary` of the ids.

    Returns:
        A tuple of six factor indices (the order of :data:`FACTOR_NAMES`), or None.
    """
    words, ended = _words_of(sentence, vocabulary)
    if words is None or not ended or len(words) not in (6, 7):
        return None
    if words[0] != "the" or words[-3] != "the" or words[1] not in _SUBJECT_OF:
        return None
    subject, number = _SUBJECT_OF[words[1]]
    if words[-2] not in _ADJECTIVE_OF or words[-1] not in _OBJECT_OF:
        return None
    if len(words) == 7:  # the future: "will" and the base form
        if words[2] != "will" or words[3] not in _VERB_OF or _VERB_OF[words[3]][1] != 0:
            return None
        verb, tense = _VERB_OF[words[3]][0], 2
    else:
        if words[2] not in _VERB_OF:
            return None
        verb, kind = _VERB_OF[words[2]]
        if kind == 2:
            tense = 1
        elif kind == (1 if number == 0 else 0):  # "the cat chases", "the cats chase"
            tense = 0
        else:
            return None
    return (subject, number, verb, tense, _ADJECTIVE_OF[words[-2]], _OBJECT_OF[words[-1]])


def _check_token_rows(tokens, what="tokens"):
    if isinstance(tokens, Sentences):
        tokens = tokens.tokens
    array = np.asarray(tokens)
    if array.dtype == bool or not np.issubdtype(array.dtype, np.integer):
        raise TypeError(f"{what} must be an integer array of ids (n, length), got dtype "
                        f"{array.dtype}; decode codes with TextVAE.decode or .sample first.")
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(f"{what} must be a non-empty array of shape (n, length), got "
                         f"{array.shape}. A single sentence needs a batch axis: ids[None].")
    return array


def parse_all(tokens, vocabulary=VOCABULARY):
    """The factors of every row of ``tokens``, with -1 in the rows that do not parse.

    Args:
        tokens: integer array ``(n, length)`` (or :class:`Sentences`).
        vocabulary: the :class:`Vocabulary` of the ids.

    Returns:
        int64 array ``(n, 6)``; a row of -1 where :func:`parse` returned None.
    """
    rows = _check_token_rows(tokens)
    factors = np.full((len(rows), len(FACTOR_NAMES)), -1, np.int64)
    for i, row in enumerate(rows):
        parsed = parse(row, vocabulary)
        if parsed is not None:
            factors[i] = parsed
    return factors


def grammatical_share(tokens, vocabulary=VOCABULARY):
    """The share of rows of ``tokens`` that parse under the grammar, in [0, 1]."""
    return float(np.mean(parse_all(tokens, vocabulary)[:, 0] >= 0))


def _keys(rows):
    """Each row up to and including its first <eos>, as a hashable key."""
    keys = []
    for row in rows.tolist():
        keys.append(tuple(row[:row.index(EOS_ID) + 1]) if EOS_ID in row else tuple(row))
    return keys


def new_share(tokens, training, vocabulary=VOCABULARY):
    """The share of rows of ``tokens`` that parse and are not among the ``training`` sentences.

    A row that does not parse counts as not new: "new" is meant as "a grammatical
    sentence the model did not see", the generalization that a language model
    that memorized its corpus would not show. Rows compare up to their ``<eos>``,
    so the width of the padding does not matter.

    Args:
        tokens: integer array ``(n, length)``, e.g. samples of a model.
        training: the training sentences, :class:`Sentences` or an integer array.
        vocabulary: the :class:`Vocabulary` of the ids.

    Returns:
        A float in [0, 1].
    """
    rows = _check_token_rows(tokens)
    seen = set(_keys(_check_token_rows(training, what="training")))
    grammatical = parse_all(rows, vocabulary)[:, 0] >= 0
    return float(np.mean([ok and key not in seen for ok, key in zip(grammatical, _keys(rows))]))


def token_accuracy(tokens, decoded):
    """The share of the sentences' positions (words and ``<eos>``) that ``decoded`` gets right.

    The course's reconstruction accuracy for text: position by position, over
    the non-padding positions of ``tokens``.

    Args:
        tokens: the original sentences, integer array ``(n, length)``.
        decoded: what a model made of them (e.g. ``TextVAE.reconstruct``), integer
            array ``(n, length2)``; it is padded or cut to ``length``.

    Returns:
        A float in [0, 1].
    """
    tokens = _check_token_rows(tokens)
    decoded = _check_token_rows(decoded, what="decoded")
    if len(decoded) != len(tokens):
        raise ValueError(f"tokens has {len(tokens)} rows and decoded {len(decoded)}; pass the "
                         f"decoding of every sentence, in order.")
    width = tokens.shape[1]
    decoded = np.pad(decoded, ((0, 0), (0, max(0, width - decoded.shape[1]))))[:, :width]
    counted = tokens != PAD_ID
    return float(np.sum((decoded == tokens) & counted) / max(1, np.sum(counted)))



def factor_agreement(factors, decoded, vocabulary=VOCABULARY):
    """Per factor, the share of decoded rows that parse and carry the given factor value.

    The text counterpart of a classifier's accuracy, read by the grammar's parser
    instead of a trained judge. Two uses in notebook 12:

    - reconstruction: ``factors`` are the sentences' own factors and ``decoded``
      their reconstructions; a code that carries the tense scores near 1 in the
      tense column, a code that carries nothing scores near the share of the most
      common value (what a guess that ignores the sentence gets right);
    - editing: ``factors`` are the factors the edit asks for (the originals with one
      factor changed) and ``decoded`` the edited sentences; that factor's column is
      the edit's success rate, the others say how much of the rest survived.

    A row that does not parse agrees with nothing.

    Args:
        factors: integer array ``(n, 6)``, the values expected (the order of
            :data:`FACTOR_NAMES`).
        decoded: integer ids ``(n, length)``, e.g. ``TextVAE.reconstruct(tokens)``.
        vocabulary: the :class:`Vocabulary` of the ids.

    Returns:
        float array ``(6,)`` in [0, 1], one share per factor.

    Raises:
        TypeError, ValueError: factors or ids of the wrong type or shape (see
            :func:`realize` and :func:`parse_all`), or a different number of rows.
    """
    factors = _check_factors(factors)
    parsed = parse_all(decoded, vocabulary)
    if len(parsed) != len(factors):
        raise ValueError(f"factors has {len(factors)} rows and decoded {len(parsed)}; pass one "
                         f"decoded sentence per row of factors, in order.")
    return np.mean(parsed == factors, axis=0)


def grammar_entropy():
    """``log`` of the number of sentences of the grammar, in nats: 103,680 sentences, 11.55 nats.

    The corpus draws sentences uniformly, so this is the entropy of the data: no model
    can assign held-out sentences a mean negative log-likelihood below it (the cross
    entropy is at least the entropy), and neither can a bound on it such as -ELBO.
    """
    return float(np.log(np.prod(FACTOR_SIZES, dtype=np.float64)))
