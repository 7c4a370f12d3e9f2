"""Linear-chain conditional random field (Lafferty et al., 2001) for tagging: log-likelihood and Viterbi decoding.

A tag path y_1 … y_n over the positions where ``mask`` is 1 scores

    s(y) = start[y_1] + Σ_i emissions[i, y_i] + Σ_{i>1} transitions[y_{i-1}, y_i] + end[y_n]

and p(y | x) = exp(s(y)) / Z, Z = Σ_y' exp(s(y')) over every path. Positions where the mask is 0 ([CLS], [SEP],
padding, the second and later WordPiece pieces of a character) are skipped: the chain links each kept position to
the previous kept one wherever the mask puts them, so no compaction is needed. A sequence with no kept position
has score 0 and log Z = 0.

The recursions run over time with ``tf.foldl`` / ``tf.scan`` (XLA-friendly); emissions are float32.
"""

from __future__ import annotations

import keras
import tensorflow as tf

# Added to the score of a forbidden transition when decoding under constraints: far below any reachable score,
# finite so that sums stay finite.
FORBIDDEN = -1e4


def _time_major(x: tf.Tensor) -> tf.Tensor:
    return tf.transpose(x, [1, 0] + list(range(2, x.shape.rank)))


def log_partition(emissions: tf.Tensor, mask: tf.Tensor, transitions: tf.Tensor, start: tf.Tensor,
                  end: tf.Tensor) -> tf.Tensor:
    """log Z [B] by the forward algorithm.

    emissions [B,T,K], mask [B,T], transitions [K,K] (from, to), start/end [K]."""
    emissions = tf.cast(emissions, tf.float32)
    batch, num_tags = tf.shape(emissions)[0], tf.shape(emissions)[2]

    def step(carry, inputs):
        alpha, started = carry  # alpha [B,K]: log-sum of the scores of every path ending in each tag
        emission, keep = inputs
        continued = tf.reduce_logsumexp(alpha[:, :, None] + transitions[None], axis=1) + emission
        new = tf.where(started[:, None], continued, start[None] + emission)
        return tf.where(keep[:, None], new, alpha), started | keep

    alpha, started = tf.foldl(step, (_time_major(emissions), _time_major(tf.cast(mask, tf.bool))),
                              initializer=(tf.zeros([batch, num_tags]), tf.zeros([batch], tf.bool)))
    return tf.where(started, tf.reduce_logsumexp(alpha + end[None], axis=1), 0.0)


def sequence_score(emissions: tf.Tensor, tags: tf.Tensor, mask: tf.Tensor, transitions: tf.Tensor,
                   start: tf.Tensor, end: tf.Tensor) -> tf.Tensor:
    """s(y) [B] of the tag paths ``tags`` [B,T] (int; ignored where the mask is 0)."""
    emissions = tf.cast(emissions, tf.float32)
    tags = tf.cast(tags, tf.int32)
    keep = tf.cast(mask, tf.bool)
    emitted = tf.reduce_sum(tf.where(keep, tf.gather(emissions, tags, batch_dims=2), 0.0), axis=1)

    def step(carry, inputs):
        score, previous, started = carry
        tag, kept = inputs
        link = tf.where(started, tf.gather_nd(transitions, tf.stack([previous, tag], -1)), tf.gather(start, tag))
        return (score + tf.where(kept, link, 0.0), tf.where(kept, tag, previous), started | kept)

    batch = tf.shape(tags)[0]
    score, last, started = tf.foldl(step, (_time_major(tags), _time_major(keep)),
                                    initializer=(tf.zeros([batch]), tf.zeros([batch], tf.int32),
                                                 tf.zeros([batch], tf.bool)))
    return emitted + score + tf.where(started, tf.gather(end, last), 0.0)


def log_likelihood(emissions: tf.Tensor, tags: tf.Tensor, mask: tf.Tensor, transitions: tf.Tensor,
                   start: tf.Tensor, end: tf.Tensor) -> tf.Tensor:
    """log p(tags | x) = s(tags) − log Z, [B]."""
    return (sequence_score(emissions, tags, mask, transitions, start, end)
            - log_partition(emissions, mask, transitions, start, end))


def viterbi_decode(emissions: tf.Tensor, mask: tf.Tensor, transitions: tf.Tensor, start: tf.Tensor,
                   end: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """(best paths [B,T] int32, 0 where the mask is 0; their scores [B]) by Viterbi.

    Where the mask is 0 the back-pointers are the identity, so backtracking passes a kept position's tag straight
    through to the previous kept one.
    """
    emissions = tf.cast(emissions, tf.float32)
    keep_tm = _time_major(tf.cast(mask, tf.bool))
    batch, num_tags = tf.shape(emissions)[0], tf.shape(emissions)[2]
    identity = tf.broadcast_to(tf.range(num_tags)[None], [batch, num_tags])

    def step(carry, inputs):
        alpha, started, _ = carry  # alpha [B,K]: the best score of a path ending in each tag
        emission, keep = inputs
        scores = alpha[:, :, None] + transitions[None]  # [B, from, to]
        continued = tf.reduce_max(scores, axis=1) + emission
        new = tf.where(started[:, None], continued, start[None] + emission)
        pointers = tf.where((keep & started)[:, None], tf.argmax(scores, axis=1, output_type=tf.int32), identity)
        return tf.where(keep[:, None], new, alpha), started | keep, pointers

    alphas, started, pointers = tf.scan(step, (_time_major(emissions), keep_tm),
                                        initializer=(tf.zeros([batch, num_tags]), tf.zeros([batch], tf.bool),
                                                     identity))
    final = alphas[-1] + end[None]
    last = tf.argmax(final, axis=1, output_type=tf.int32)  # [B]
    # Backtracking runs from the end: a forward scan over the reversed pointers, then reversed back (not
    # ``tf.scan(reverse=True)``, which tf2onnx converts into a forward scan: wrong tags in ONNX exports).
    backwards = tf.scan(lambda tag, back: tf.gather(back, tag, batch_dims=1), tf.reverse(pointers[1:], [0]),
                        initializer=last)
    earlier = tf.reverse(backwards, [0])  # [T-1,B]: earlier[t] = the tag at position t
    path = tf.concat([earlier, last[None]], axis=0)
    path = tf.where(keep_tm, path, 0)
    return _time_major(path), tf.where(started[-1], tf.reduce_max(final, axis=1), 0.0)


class CRF(keras.layers.Layer):
    """The CRF's parameters: ``transitions`` [K,K] (from, to), ``start_transitions`` and ``end_transitions`` [K],
    float32, initialised to zero (the emissions break the symmetry)."""

    def __init__(self, num_tags: int, **kwargs):
        kwargs.setdefault("dtype", "float32")  # scores stay float32 under mixed precision
        super().__init__(**kwargs)
        self.num_tags = num_tags

    def build(self, input_shape=None):
        k = self.num_tags
        # autocast=False: the tagger calls log_likelihood/decode as methods, inside its own call, where a mixed
        # policy (bf16) would autocast these reads and the float32 scores would meet bfloat16 transitions.
        self.transitions = self.add_weight(name="transitions", shape=(k, k), initializer="zeros", autocast=False)
        self.start_transitions = self.add_weight(name="start_transitions", shape=(k,), initializer="zeros",
                                                 autocast=False)
        self.end_transitions = self.add_weight(name="end_transitions", shape=(k,), initializer="zeros",
                                               autocast=False)
        super().build(input_shape)

    def log_likelihood(self, emissions: tf.Tensor, tags: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        return log_likelihood(emissions, tags, mask, self.transitions, self.start_transitions, self.end_transitions)

    def decode(self, emissions: tf.Tensor, mask: tf.Tensor, allowed: tf.Tensor | None = None,
               allowed_start: tf.Tensor | None = None) -> tf.Tensor:
        """Best paths [B,T]; ``allowed`` [K,K] / ``allowed_start`` [K] (bool) forbid transitions and first tags."""
        transitions, start = constrain(tf.convert_to_tensor(self.transitions),
                                       tf.convert_to_tensor(self.start_transitions), allowed, allowed_start)
        return viterbi_decode(emissions, mask, transitions, start, self.end_transitions)[0]


def constrain(transitions: tf.Tensor, start: tf.Tensor, allowed: tf.Tensor | None,
              allowed_start: tf.Tensor | None) -> tuple[tf.Tensor, tf.Tensor]:
    """Transition and start scores with FORBIDDEN added where ``allowed`` / ``allowed_start`` is False."""
    if allowed is not None:
        transitions = transitions + tf.where(tf.cast(allowed, tf.bool), 0.0, FORBIDDEN)
    if allowed_start is not None:
        start = start + tf.where(tf.cast(allowed_start, tf.bool), 0.0, FORBIDDEN)
    return transitions, start
