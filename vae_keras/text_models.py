"""A VAE for sentences: GRU encoder, GRU decoder that reads the code, categorical tokens.

:class:`TextVAE` is the sequence counterpart of :class:`vae_keras.VAE` (after
Bowman et al. 2016, "Generating Sentences from a Continuous Space"). The
encoder embeds the tokens and runs a GRU over them (padding masked) to the mean
and log-variance of ``q(z | x)``; the course's :class:`~vae_keras.layers.Sampling`
layer draws ``z``; the decoder is a GRU whose initial state is computed from
``z`` and whose input at every step is the previous token's embedding
concatenated with ``z``. It is trained with teacher forcing: at step t it reads
the true token t - 1 (``<bos>`` at the first step) and is scored on token t.
The likelihood is categorical over the vocabulary, summed over the positions of
each sentence with a padding mask, so losses read in nats per sentence.

Such a decoder can model the sentences without the code, and the KL term then
falls to zero (posterior collapse). Two remedies are constructor arguments:
``word_dropout`` (Bowman et al.: some of the decoder's input words become
``<unk>``, so it must lean on ``z``) and ``free_bits`` (Kingma et al. 2016: KL
below a floor per dimension costs nothing). ``beta`` is a variable, so the
KL schedules of :mod:`vae_keras.callbacks` (``KLWarmup``) work as for images.

The train steps (one per backend) are the image models' own
(:class:`vae_keras.models._ImageModel`, through ``compute_loss_terms``), and so
are ``compile``, ``fit``, ``evaluate`` and ``predict``; what is text-specific is
here: the token checks, the likelihood, decoding word by word, and the bounds.
The corpus it is meant for is :mod:`vae_keras.sentences`.
"""

from vae_keras import _tensorflow  # noqa: F401  (first: TensorFlow loads quietly)
import math
import numbers

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from vae_keras import _checks, losses, models
from vae_keras.layers import Sampling, SeedStateMixin, reparameterize
from vae_keras.sentences import BOS_ID, EOS_ID, PAD_ID, UNK_ID


# ---------------------------------------------------------------------- the likelihood

def categorical_log_likelihood(tokens, logits, pad_id=PAD_ID):
    """``log p(x | z)`` of sentences: log-softmax of the logits at each true token, summed.

    Positions holding ``pad_id`` add nothing (a padding mask), so a sentence's
    value does not depend on how far it was padded.

    Args:
        tokens: integer ids ``(..., length)``.
        logits: next-token logits ``(..., length, vocabulary_size)``; position t
            scores ``tokens[..., t]``.
        pad_id: the padding id.

    Returns:
        float32 log-likelihood per sentence in nats, shape ``tokens.shape[:-1]``.
    """
    tokens = ops.cast(tokens, "int32")
    log_probabilities = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
    per_token = ops.take_along_axis(log_probabilities, ops.expand_dims(tokens, -1), axis=-1)
    mask = ops.cast(ops.not_equal(tokens, pad_id), "float32")
    return ops.sum(per_token[..., 0] * mask, axis=-1)


def kl_per_dimension(z_mean, z_log_var):
    """``KL(q(z_d | x) || N(0, 1))`` for each latent dimension d, shape ``(batch, latent_dim)``.

    :func:`vae_keras.losses.gaussian_kl` on one dimension at a time (a trailing
    axis of size 1), so the closed form stays written in one place.
    """
    return losses.gaussian_kl(ops.expand_dims(z_mean, -1), ops.expand_dims(z_log_var, -1))


# ---------------------------------------------------------------------- checks

def _token_array_problem(array, vocabulary_size, max_length, what):
    """The check of one array of ids: returns it as int32, or raises."""
    if array.dtype == bool or array.dtype == object or array.dtype.kind in "USV":
        raise TypeError(f"{what} must be an integer array of token ids, got dtype {array.dtype}. "
                        f"Encode words with vae_keras.sentences.encode (or Vocabulary.encode).")
    if not np.issubdtype(array.dtype, np.integer):
        hint = (" They are whole numbers: convert them with tokens.astype('int32')."
                if np.issubdtype(array.dtype, np.floating) and np.all(np.isfinite(array))
                and np.all(array == np.round(array)) else "")
        raise TypeError(f"{what} have dtype {array.dtype}, but token ids are integers.{hint}")
    if array.ndim != 2:
        hint = " A single sentence needs a batch axis: tokens[None]." if array.ndim == 1 else ""
        raise ValueError(f"{what} must have shape (batch, length), one row of ids per sentence; "
                         f"got {array.shape}.{hint}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise ValueError(f"{what} are empty (shape {array.shape}); pass at least one sentence.")
    if array.shape[1] > max_length:
        fits = not np.any(array[:, max_length:] != 0)
        hint = (f"Their positions after {max_length} are all padding: cut them with "
                f"tokens[:, :{max_length}]." if fits else
                f"Build the model with max_length={array.shape[1]} or more for them.")
        raise ValueError(f"{what} have {array.shape[1]} positions, but this model was built for "
                         f"sentences of at most max_length={max_length}. {hint}")
    low, high = int(array.min()), int(array.max())
    if low < 0 or high >= vocabulary_size:
        bad = low if low < 0 else high
        row, column = np.argwhere(array == bad)[0]
        raise ValueError(
            f"{what} hold id {bad} (row {row}, position {column}), outside this model's "
            f"vocabulary of {vocabulary_size} ids (0..{vocabulary_size - 1}). Encode them with "
            f"the vocabulary the model was built for, or build it with vocabulary_size="
            f"len(vocabulary).")
    return array.astype(np.int32)


def check_tokens(data, vocabulary_size, max_length, what="tokens"):
    """Check a batch of token ids (array, tensor or ``tf.data.Dataset``) before a model uses it.

    Arrays and tensors are checked whole; a dataset through its element spec
    (dtype, width) and its first batch (values). Other inputs (generators,
    ``keras.utils.PyDataset``) pass unchecked.

    Args:
        data: the ids, shape ``(batch, length)``, or what ``fit`` receives as ``x``.
        vocabulary_size: ids must lie in ``0..vocabulary_size - 1``.
        max_length: the most positions a row may have.
        what: how to name the data in an error message.

    Returns:
        The ids as an int32 NumPy array, or None for a dataset or other input.

    Raises:
        TypeError: not ids at all (a string, a dict), or float or boolean ids.
        ValueError: a shape other than ``(batch, length)``, an empty batch, more than
            ``max_length`` positions, or ids outside the vocabulary.
    """
    if data is None:
        raise ValueError(f"{what} are None; pass an integer array of shape (batch, length).")
    if isinstance(data, (str, bytes, dict)):
        raise TypeError(f"{what} must be an integer array of token ids (batch, length), a "
                        f"tensor or a tf.data.Dataset, got {type(data).__name__}.")
    if isinstance(data, tf.data.Dataset):
        spec = data.element_spec
        spec = spec[0] if isinstance(spec, (tuple, list)) else spec
        if not isinstance(spec, tf.TensorSpec):
            return None
        if not spec.dtype.is_integer:
            raise TypeError(f"{what} (dataset batches) have dtype {spec.dtype.name}, but token "
                            f"ids are integers: map them with tf.cast(tokens, tf.int32).")
        for first in data.take(1):
            first = first[0] if isinstance(first, (tuple, list)) else first
            _token_array_problem(first.numpy(), vocabulary_size, max_length,
                                 f"{what} (first dataset batch)")
        return None
    if isinstance(data, (list, tuple)) or isinstance(data, np.ndarray):
        array = np.asarray(data)
    elif ops.is_tensor(data) or tf.is_tensor(data):
        array = np.asarray(ops.convert_to_numpy(data))
    else:
        return None
    return _token_array_problem(array, vocabulary_size, max_length, what)


def _check_temperature(temperature):
    if isinstance(temperature, bool) or not isinstance(temperature, numbers.Real):
        raise TypeError(f"temperature must be a number >= 0 (0 decodes greedily), got "
                        f"{temperature!r}.")
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 decodes greedily, 1 "
                         f"samples the model's own distribution), got {temperature!r}.")
    return float(temperature)


# ---------------------------------------------------------------------- word dropout

@keras.saving.register_keras_serializable(package="vae_keras")
class WordDropout(SeedStateMixin, layers.Layer):
    """Replaces a share ``rate`` of the decoder's input words by ``<unk>`` in training.

    Bowman et al. (2016): a decoder that cannot always see the previous word
    has to take more of the sentence from the code. Padding and ``<bos>`` are
    never replaced. Below rate 1 it acts in training only, as dropout does; at
    rate 1 it replaces every word always, in evaluation and decoding too (the
    inputless decoder). Like :class:`~vae_keras.layers.Sampling`, the layer owns a
    ``keras.random.SeedGenerator`` whose state is saved with the model.

    Args:
        rate: share of words replaced, in [0, 1]; 1 leaves the decoder no words at all,
            in training and after it (Bowman's "inputless" decoder, which must take the
            sentence from the code).
        unk_id: the id that replaces them.
        protected_ids: ids left alone (padding, ``<bos>``).
        seed: optional int for the layer's random stream.
        **kwargs: passed to ``keras.layers.Layer``.
    """

    def __init__(self, rate=0.0, unk_id=UNK_ID, protected_ids=(PAD_ID, BOS_ID), seed=None,
                 **kwargs):
        super().__init__(**kwargs)
        self.rate = _checks.check_fraction("word_dropout", rate)
        self.unk_id = int(unk_id)
        self.protected_ids = tuple(int(i) for i in protected_ids)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.built = True  # no weights; built, so Keras never traces the model to build it

    def call(self, tokens, training=False):
        if self.rate == 0 or (not training and self.rate < 1):
            return tokens
        if self.rate == 1:
            # Always, in evaluation and decoding too: a decoder that never saw a word in
            # training is an inputless decoder, and real words at test time would be inputs
            # it was never trained on (a first measurement: test -ELBO 16.9 against 12.1 in
            # training, and a third of its greedy samples ungrammatical).
            dropped = ops.ones_like(tokens, dtype="bool")
        else:
            dropped = keras.random.uniform(ops.shape(tokens), seed=self.seed_generator) < self.rate
        for protected in self.protected_ids:
            dropped = ops.logical_and(dropped, ops.not_equal(tokens, protected))
        return ops.where(dropped, ops.cast(self.unk_id, tokens.dtype), tokens)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(rate=self.rate, unk_id=self.unk_id, protected_ids=list(self.protected_ids),
                      seed=self.seed)
        return config


# ---------------------------------------------------------------------- the model

_FIRST_FIT_DONE = False  # TextVAE.fit filters TensorFlow's one oneDNN notice in the first fit

@keras.saving.register_keras_serializable(package="vae_keras")
class TextVAE(models._ImageModel):
    """A VAE over sentences of token ids (Bowman et al. 2016), trained on the ELBO in nats.

    ``x`` is an integer array ``(batch, length)``, ``length <= max_length``: each
    row the word ids, then ``<eos>``, then padding (id 0), as
    :func:`vae_keras.sentences.make_sentences` returns them. Training minimizes
    ``reconstruction_loss + beta * KL term``, with the reconstruction summed over
    each sentence's non-padding positions and the KL in closed form; both are
    averaged over the batch. ``kl_loss`` reports the true KL even when
    ``free_bits`` changes what the loss charges for it.

    Example::

        data = vk.sentences.make_sentences(4000, seed=0)
        model = vk.TextVAE(len(data.vocabulary), data.tokens.shape[1], latent_dim=16,
                           word_dropout=0.3)
        model.compile()
        model.fit(data.tokens, epochs=10, batch_size=64, callbacks=[vk.KLWarmup(5)])
        model.sample(10, seed=0)           # greedy sentences from prior codes

    Args:
        vocabulary_size: number of ids, ``len(vocabulary)``.
        max_length: the most positions (words and ``<eos>``) a sentence may have;
            decoding runs this many steps.
        latent_dim: size of the code.
        embedding_dim: width of the token embedding (shared by encoder and decoder).
        hidden_units: width of the two GRUs.
        word_dropout: share of the decoder's input words replaced by ``<unk>`` in
            training, in [0, 1] (Bowman et al. 2016); 0 turns it off, 1 gives an
            inputless decoder that reads only the code (and its own position), in
            evaluation and decoding as well.
        free_bits: nats per latent dimension the KL term gets for free (Kingma et
            al. 2016): the loss charges ``sum_d max(free_bits, KL_d)``, with
            ``KL_d`` averaged over the batch; 0 turns it off.
        beta: weight of the KL term (1 is the ELBO); a variable that
            :class:`~vae_keras.callbacks.KLWarmup` moves.
        seed: optional int for the random streams (sampling, word dropout).
        pad_id, bos_id, eos_id, unk_id: the special ids (those of
            :mod:`vae_keras.sentences` by default).
        **kwargs: passed to ``keras.Model`` (``name``...).

    Raises:
        TypeError, ValueError: for arguments of the wrong type or out of range.
    """

    metric_names = ("loss", "reconstruction_loss", "kl_loss")

    def __init__(self, vocabulary_size, max_length, *, latent_dim=16, embedding_dim=32,
                 hidden_units=64, word_dropout=0.0, free_bits=0.0, beta=1.0, seed=None,
                 pad_id=PAD_ID, bos_id=BOS_ID, eos_id=EOS_ID, unk_id=UNK_ID, **kwargs):
        vocabulary_size = _checks.check_whole_number("vocabulary_size", vocabulary_size,
                                                     minimum=5)
        max_length = _checks.check_whole_number("max_length", max_length, minimum=2)
        latent_dim = _checks.check_latent_dim(latent_dim)
        embedding_dim = _checks.check_whole_number("embedding_dim", embedding_dim)
        hidden_units = _checks.check_whole_number("hidden_units", hidden_units)
        word_dropout = _checks.check_fraction("word_dropout", word_dropout)
        free_bits = _checks.check_positive("free_bits", free_bits, allow_zero=True)
        beta = _checks.check_positive("beta", beta, allow_zero=True)
        seed = _checks.check_seed(seed)
        special = {"pad_id": pad_id, "bos_id": bos_id, "eos_id": eos_id, "unk_id": unk_id}
        for name, value in special.items():
            _checks.check_whole_number(name, value, minimum=0)
            if value >= vocabulary_size:
                raise ValueError(f"{name}={value} is outside the vocabulary of "
                                 f"{vocabulary_size} ids; special ids lie in "
                                 f"0..{vocabulary_size - 1}.")
        if len(set(special.values())) != len(special):
            raise ValueError(f"The special ids must differ, got {special}.")
        # "Images" of the base class are rows of max_length ids; the likelihood is categorical.
        super().__init__((max_length,), "categorical", **kwargs)
        self.vocabulary_size, self.max_length, self.latent_dim = (vocabulary_size, max_length,
                                                                  latent_dim)
        self.embedding_dim, self.hidden_units = embedding_dim, hidden_units
        self.word_dropout, self.free_bits, self.seed = word_dropout, free_bits, seed
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = pad_id, bos_id, eos_id, unk_id

        self.embedding = layers.Embedding(vocabulary_size, embedding_dim, name="embedding")
        self.encoder_gru = layers.GRU(hidden_units, name="encoder_gru")
        self.z_mean_layer = layers.Dense(latent_dim, name="z_mean")
        self.z_log_var_layer = layers.Dense(latent_dim, name="z_log_var")
        # float32 whatever the policy: the noise and the code feed the float32 losses.
        self.sampling = Sampling(seed=seed, name="sampling", dtype="float32")
        # Its own stream (seed + 1): the same seed would tie its draws to the code's noise.
        self.word_dropout_layer = WordDropout(
            word_dropout, unk_id, (pad_id, bos_id), seed=None if seed is None else seed + 1,
            name="word_dropout")
        self.initial_state_layer = layers.Dense(hidden_units, activation="tanh",
                                                name="decoder_initial_state")
        self.decoder_gru = layers.GRU(hidden_units, return_sequences=True, return_state=True,
                                      name="decoder_gru")
        self.output_layer = layers.Dense(vocabulary_size, name="next_token_logits")
        # A variable, not a float: callbacks change it between batches without retracing.
        self._beta = keras.Variable(beta, dtype="float32", trainable=False, name="beta")
        self._initial_beta = beta
        # Built now, with shapes known from the arguments: the weights exist before the first
        # batch (JAX's trainer needs them; a loaded model gets its weights at once).
        self.embedding.build((None, None))
        self.encoder_gru.build((None, None, embedding_dim))
        self.z_mean_layer.build((None, hidden_units))
        self.z_log_var_layer.build((None, hidden_units))
        self.initial_state_layer.build((None, latent_dim))
        self.decoder_gru.build((None, None, embedding_dim + latent_dim))
        self.output_layer.build((None, None, hidden_units))
        self.built = True

    @property
    def beta(self):
        """The current weight of the KL term in the loss."""
        return float(ops.convert_to_numpy(self._beta))

    @beta.setter
    def beta(self, value):
        self._beta.assign(_checks.check_positive("beta", value, allow_zero=True))

    # ------------------------------------------------------------------ checks

    def check_tokens(self, tokens, what="tokens"):
        """``tokens`` as an int32 array if they fit this model (see :func:`check_tokens`)."""
        return check_tokens(tokens, self.vocabulary_size, self.max_length, what=what)

    def check_images(self, images, what="images"):
        """The base class's ``fit``, ``evaluate`` and ``predict`` call this: here it checks ids."""
        self.check_tokens(images, what=what.replace("images", "sentences"))

    # ------------------------------------------------------------------ the forward pass

    def posterior(self, tokens, training=False):
        """``(z_mean, z_log_var)`` of ``q(z | x)``: the encoder GRU's last state, padding masked."""
        tokens = ops.cast(tokens, "int32")
        # Masked steps carry the state over, so the code is the state after the <eos>.
        state = self.encoder_gru(self.embedding(tokens), mask=ops.not_equal(tokens, self.pad_id),
                                 training=training)
        return (ops.cast(self.z_mean_layer(state), "float32"),
                ops.cast(self.z_log_var_layer(state), "float32"))

    def decoder_inputs(self, tokens):
        """Teacher forcing's inputs: ``<bos>`` then the sentence shifted right by one."""
        tokens = ops.cast(tokens, "int32")
        return ops.concatenate([ops.ones_like(tokens[:, :1]) * self.bos_id, tokens[:, :-1]],
                               axis=1)

    def decoder_steps(self, codes, input_tokens, state=None, training=False):
        """Run the decoder GRU over ``input_tokens`` given ``codes``; return logits and state.

        The code enters twice, as Bowman's decoder reads it: through the initial
        state (``state=None``: a dense layer of the code) and concatenated to
        every step's input embedding, so the decoder cannot forget it over a
        long sentence. Decoding word by word passes the state back in.

        Returns:
            ``(logits, state)``: float32 logits ``(batch, steps, vocabulary_size)``
            and the GRU's state after the last step.
        """
        codes = ops.cast(codes, "float32")
        embedded = self.embedding(ops.cast(input_tokens, "int32"))
        steps = ops.shape(embedded)[1]
        codes_each_step = ops.tile(ops.expand_dims(ops.cast(codes, embedded.dtype), 1),
                                   [1, steps, 1])
        if state is None:
            state = self.initial_state_layer(codes)
        outputs, state = self.decoder_gru(ops.concatenate([embedded, codes_each_step], axis=-1),
                                          initial_state=state, training=training)
        return ops.cast(self.output_layer(outputs), "float32"), state

    def decoder_output(self, codes, tokens, training=False):
        """Teacher-forced next-token logits of ``tokens`` from ``codes``, after word dropout."""
        inputs = self.word_dropout_layer(self.decoder_inputs(tokens), training=training)
        return self.decoder_steps(codes, inputs, training=training)[0]

    def log_likelihood(self, tokens, logits):
        """``log p(x | z)`` per sentence in nats (:func:`categorical_log_likelihood`)."""
        return categorical_log_likelihood(tokens, logits, self.pad_id)

    def kl_charged(self, kl_by_dimension):
        """The KL term the loss charges: the batch's mean KL, floored per dimension by free bits.

        ``sum_d max(free_bits, mean_batch KL_d)``; with ``free_bits=0`` the plain
        mean KL. Below the floor a dimension's KL gets no gradient, so the
        optimizer has no reason to push it to zero (Kingma et al. 2016).
        """
        mean_by_dimension = ops.mean(kl_by_dimension, axis=0)
        if self.free_bits == 0:
            return ops.sum(mean_by_dimension)
        return ops.sum(ops.maximum(mean_by_dimension, self.free_bits))

    def compute_loss_terms(self, tokens, training=False):
        """The loss and its two terms for a batch of sentences, each averaged over the batch.

        ``reconstruction_loss = -mean log p(x | z)``, ``z ~ q(z | x)`` drawn by the
        Sampling layer; ``kl_loss = mean KL(q(z | x) || p(z))`` in closed form;
        ``loss = reconstruction_loss + beta * kl_charged``, where ``kl_charged`` is
        ``kl_loss`` unless free bits floor it (:meth:`kl_charged`). The train steps
        take the gradient of ``loss``.
        """
        z_mean, z_log_var = self.posterior(tokens, training)
        z = self.sampling([z_mean, z_log_var])
        log_likelihood = self.log_likelihood(tokens, self.decoder_output(z, tokens, training))
        kl_by_dimension = kl_per_dimension(z_mean, z_log_var)
        reconstruction_loss = -ops.mean(log_likelihood)
        loss = reconstruction_loss + ops.cast(self._beta, "float32") * self.kl_charged(
            kl_by_dimension)
        return {"loss": loss, "reconstruction_loss": reconstruction_loss,
                "kl_loss": ops.sum(ops.mean(kl_by_dimension, axis=0))}

    def call(self, tokens, training=False):
        """Teacher-forced next-token probabilities ``(batch, length, vocabulary_size)``.

        From a sampled code in training, from the posterior mean otherwise
        (what ``predict`` returns).
        """
        z_mean, z_log_var = self.posterior(tokens, training)
        z = self.sampling([z_mean, z_log_var]) if training else z_mean
        return ops.softmax(self.decoder_output(z, tokens, training), axis=-1)

    # ------------------------------------------------------------------ NumPy conveniences

    def _batches(self, count, batch_size):
        batch_size = _checks.check_whole_number("batch_size", batch_size)
        return [slice(start, start + batch_size) for start in range(0, count, batch_size)]

    def encode(self, tokens, batch_size=256):
        """The posterior's parameters ``(z_mean, z_log_var)`` of sentences, as NumPy.

        Args:
            tokens: integer ids ``(n, length)``.
            batch_size: how many sentences to encode at once.

        Returns:
            Two float32 arrays ``(n, latent_dim)``.
        """
        tokens = self.check_tokens(tokens)
        parts = [self.posterior(tokens[part]) for part in self._batches(len(tokens), batch_size)]
        return tuple(np.concatenate([ops.convert_to_numpy(p[i]) for p in parts]) for i in (0, 1))

    def encode_mean(self, tokens, batch_size=256):
        """The posterior means of sentences ``(n, latent_dim)``: the usual 'code'."""
        return self.encode(tokens, batch_size=batch_size)[0]

    def decode(self, codes, temperature=0.0, seed=None, batch_size=256):
        """Decode codes word by word into sentences of ids, as NumPy.

        Each step feeds the chosen word back in. ``temperature=0`` takes the most
        likely word (greedy: the code alone decides the sentence); ``temperature >
        0`` samples from ``softmax(logits / temperature)`` (1 is the model's own
        distribution). ``<pad>`` and ``<bos>`` are never chosen: the decoder was
        never trained to predict them. Decoding stops at ``<eos>`` (padding after
        it) or after ``max_length`` words; a row without ``<eos>`` did not finish.

        Args:
            codes: array ``(n, latent_dim)``.
            temperature: a number >= 0.
            seed: optional int for the sampled words (unused when greedy).
            batch_size: how many codes to decode at once.

        Returns:
            int32 ids ``(n, max_length)``, in the layout of the corpus.
        """
        codes = self.check_codes(codes)
        temperature = _check_temperature(temperature)
        rng = np.random.default_rng(_checks.check_seed(seed))
        parts = [self._decode_batch(codes[part], temperature, rng)
                 for part in self._batches(len(codes), batch_size)]
        return np.concatenate(parts) if parts else np.zeros((0, self.max_length), np.int32)

    def _decode_batch(self, codes, temperature, rng):
        count = len(codes)
        tokens = np.full((count, self.max_length), self.pad_id, np.int32)
        previous = np.full((count, 1), self.bos_id, np.int32)
        finished = np.zeros(count, bool)
        state = None
        for step in range(self.max_length):
            # Through word dropout, which passes words on unless the decoder is inputless.
            logits, state = self.decoder_steps(codes, self.word_dropout_layer(previous), state)
            logits = ops.convert_to_numpy(logits[:, 0]).astype(np.float64)
            logits[:, [self.pad_id, self.bos_id]] = -np.inf
            if temperature == 0:
                chosen = np.argmax(logits, axis=-1)
            else:  # the Gumbel-max trick: an exact draw from softmax(logits / temperature)
                chosen = np.argmax(logits / temperature + rng.gumbel(size=logits.shape), axis=-1)
            tokens[:, step] = np.where(finished, self.pad_id, chosen)
            finished |= chosen == self.eos_id
            if finished.all():
                break
            previous = chosen[:, None].astype(np.int32)
        return tokens

    def reconstruct(self, tokens, temperature=0.0, seed=None, batch_size=256):
        """Encode sentences to their mean code and decode it again (greedy by default)."""
        return self.decode(self.encode_mean(tokens, batch_size), temperature, seed, batch_size)

    def sample(self, num_samples, seed=None, temperature=0.0, batch_size=256):
        """Sentences decoded from codes drawn from the prior ``N(0, I)``.

        Greedy by default, so that each sentence is a function of its code alone:
        if the model ignores the code (posterior collapse) every sample is the
        same sentence. ``temperature=1`` samples the words too.

        Args:
            num_samples: how many sentences, >= 1.
            seed: optional int for the codes and the words; without it NumPy's
                global generator, which ``keras.utils.set_random_seed`` seeds.
            temperature: see :meth:`decode`.
            batch_size: how many codes to decode at once.

        Returns:
            int32 ids ``(num_samples, max_length)``.
        """
        num_samples = _checks.check_whole_number("num_samples", num_samples)
        seed = _checks.check_seed(seed)
        if seed is None:
            seed = int(np.random.randint(0, 2**31 - 1))
        codes = np.random.default_rng(seed).standard_normal((num_samples, self.latent_dim))
        return self.decode(codes.astype(np.float32), temperature, seed + 1, batch_size)

    def _log_weight_terms(self, tokens, noise):
        """``log p(x | z_k)`` and ``log p(z_k) - log q(z_k | x)``, each ``(K, batch)``, and the KL.

        ``noise`` ``(K, batch, latent_dim)`` gives the K codes per sentence through
        the one reparameterization, so the ELBO and the bound share the forward pass.
        """
        z_mean, z_log_var = self.posterior(tokens)
        num_samples, batch = noise.shape[0], noise.shape[1]
        z = reparameterize(z_mean[None], z_log_var[None], noise)  # (K, batch, latent)
        repeated = np.tile(tokens, (num_samples, 1))  # K-major, like the reshape of z
        logits = self.decoder_output(ops.reshape(z, (-1, self.latent_dim)), repeated)
        log_likelihood = ops.reshape(self.log_likelihood(repeated, logits), (num_samples, batch))
        log_prior_ratio = (losses.standard_normal_log_prob(z)
                           - losses.diagonal_gaussian_log_prob(z, z_mean[None], z_log_var[None]))
        return log_likelihood, log_prior_ratio, losses.gaussian_kl(z_mean, z_log_var)

    def elbo(self, tokens, batch_size=256, per_sentence=False, seed=None):
        """The ELBO of sentences in nats (one posterior sample each, analytic KL).

        Args:
            tokens: integer ids ``(n, length)``.
            batch_size: how many sentences at once.
            per_sentence: return one value per sentence instead of the mean.
            seed: optional int for the posterior noise.

        Returns:
            The mean ELBO (a float), or an array ``(n,)``.
        """
        tokens = self.check_tokens(tokens)
        rng = np.random.default_rng(_checks.check_seed(seed))
        values = []
        for part in self._batches(len(tokens), batch_size):
            noise = rng.standard_normal((1, len(tokens[part]), self.latent_dim)).astype(np.float32)
            log_likelihood, _, kl = self._log_weight_terms(tokens[part], noise)
            values.append(ops.convert_to_numpy(losses.elbo(log_likelihood[0], kl)))
        values = np.concatenate(values)
        return values if per_sentence else float(np.mean(values))

    def nll(self, tokens, num_samples=100, batch_size=64, per_sentence=False, seed=None):
        """Negative log-likelihood estimate ``-log p(x)`` in nats, from the importance weights.

        ``log p(x) >= log (1/K) sum_k p(x, z_k) / q(z_k | x)`` (Burda et al. 2015),
        computed with log-sum-exp; it is at least the ELBO in expectation and
        tightens as K grows, so ``nll <= -elbo`` up to noise.

        Args:
            tokens: integer ids ``(n, length)``.
            num_samples: K, codes drawn per sentence.
            batch_size: sentences at once (``batch_size * num_samples`` are decoded together).
            per_sentence: return one value per sentence instead of the mean.
            seed: optional int for the posterior noise.

        Returns:
            The mean estimate (a float), or an array ``(n,)``.
        """
        tokens = self.check_tokens(tokens)
        num_samples = _checks.check_whole_number("num_samples", num_samples)
        rng = np.random.default_rng(_checks.check_seed(seed))
        values = []
        for part in self._batches(len(tokens), batch_size):
            noise = rng.standard_normal((num_samples, len(tokens[part]), self.latent_dim))
            log_likelihood, log_prior_ratio, _ = self._log_weight_terms(
                tokens[part], noise.astype(np.float32))
            bound = losses.importance_weighted_bound(log_likelihood + log_prior_ratio)
            values.append(-ops.convert_to_numpy(bound))
        values = np.concatenate(values)
        return values if per_sentence else float(np.mean(values))

    def fit(self, x=None, y=None, **kwargs):
        """``keras.Model.fit`` after checking the ids (the base class's ``fit``).

        The first ``fit`` of a process on TensorFlow runs with stderr through the
        library's start-up filter (:mod:`vae_keras._quiet_import`), which drops the one
        notice TensorFlow logs at ERROR level when oneDNN falls back to Eigen for the
        GRUs' boolean padding mask (``oneDNN supports DT_BOOL only ...``): it reports no
        error, and a notebook's stored outputs should not carry it. Every other line, C++
        errors included, passes as ``TF_CPP_MIN_LOG_LEVEL`` says.
        """
        global _FIRST_FIT_DONE
        if _FIRST_FIT_DONE or keras.backend.backend() != "tensorflow":
            return super().fit(x, y, **kwargs)
        _FIRST_FIT_DONE = True
        from vae_keras import _quiet_import

        with _quiet_import.filtered_stderr(_quiet_import.min_log_level()):
            return super().fit(x, y, **kwargs)

    def get_config(self):
        # keras.Model's own config (name, trainable, dtype), not the image base's, which
        # would save sub-models: this model is rebuilt from its sizes, its weights loaded.
        config = keras.Model.get_config(self)
        config.update(
            vocabulary_size=self.vocabulary_size, max_length=self.max_length,
            latent_dim=self.latent_dim, embedding_dim=self.embedding_dim,
            hidden_units=self.hidden_units, word_dropout=self.word_dropout,
            free_bits=self.free_bits, beta=self._initial_beta, seed=self.seed,
            pad_id=self.pad_id, bos_id=self.bos_id, eos_id=self.eos_id, unk_id=self.unk_id)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
