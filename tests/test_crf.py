"""crf.py against brute force: every tag path of small cases enumerated in NumPy (docs/equations.md, 4d-4g)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tensorflow as tf

import crf


def brute_force(emissions: np.ndarray, mask: np.ndarray, transitions: np.ndarray, start: np.ndarray,
                end: np.ndarray) -> tuple[float, dict[tuple[int, ...], float]]:
    """(log Z, score of every path over the kept positions) for one sequence."""
    kept = [t for t in range(len(mask)) if mask[t]]
    scores = {}
    for path in itertools.product(range(emissions.shape[1]), repeat=len(kept)):
        if not path:
            scores[path] = 0.0
            continue
        s = start[path[0]] + end[path[-1]] + sum(emissions[t, y] for t, y in zip(kept, path))
        s += sum(transitions[a, b] for a, b in zip(path, path[1:]))
        scores[path] = float(s)
    values = np.array(list(scores.values()))
    return float(np.log(np.sum(np.exp(values - values.max()))) + values.max()), scores


def random_case(seed: int, batch: int = 4, length: int = 5, num_tags: int = 3):
    rng = np.random.default_rng(seed)
    emissions = rng.normal(size=(batch, length, num_tags)).astype(np.float32)
    mask = rng.random((batch, length)) < 0.7
    mask[0] = True  # one full sequence
    mask[1] = False  # one empty sequence
    mask[2, 0] = False  # one that starts late (and has holes)
    tags = rng.integers(0, num_tags, size=(batch, length)).astype(np.int32)
    transitions = rng.normal(size=(num_tags, num_tags)).astype(np.float32)
    start, end = rng.normal(size=num_tags).astype(np.float32), rng.normal(size=num_tags).astype(np.float32)
    return emissions, mask, tags, transitions, start, end


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_log_partition_score_and_viterbi_equal_brute_force(seed):
    emissions, mask, tags, transitions, start, end = random_case(seed)
    args = [tf.constant(x) for x in (transitions, start, end)]
    log_z = crf.log_partition(emissions, mask, *args).numpy()
    gold = crf.sequence_score(emissions, tags, mask, *args).numpy()
    best_paths, best_scores = (x.numpy() for x in crf.viterbi_decode(emissions, mask, *args))
    for b in range(len(mask)):
        expected_z, scores = brute_force(emissions[b], mask[b], transitions, start, end)
        kept = np.flatnonzero(mask[b])
        assert log_z[b] == pytest.approx(expected_z, abs=1e-4)
        assert gold[b] == pytest.approx(scores[tuple(tags[b, kept])], abs=1e-4)
        best = max(scores, key=scores.get)
        assert tuple(best_paths[b, kept]) == best
        assert best_scores[b] == pytest.approx(scores[best], abs=1e-4)
        assert (best_paths[b, ~mask[b]] == 0).all()
    ll = crf.log_likelihood(emissions, tags, mask, *args).numpy()
    np.testing.assert_allclose(ll, gold - log_z, atol=1e-5)
    assert (ll <= 1e-6).all()


def test_constraints_forbid_transitions_and_first_tags():
    emissions, mask, _, transitions, start, end = random_case(3, batch=6, length=6, num_tags=3)
    allowed = np.array([[True, True, False], [True, True, True], [True, False, True]])
    allowed_start = np.array([True, True, False])
    t, s = crf.constrain(tf.constant(transitions), tf.constant(start), allowed, allowed_start)
    paths = crf.viterbi_decode(emissions, mask, t, s, tf.constant(end))[0].numpy()
    for b in range(len(mask)):
        kept = np.flatnonzero(mask[b])
        _, scores = brute_force(emissions[b], mask[b], transitions, start, end)
        legal = {p: v for p, v in scores.items()
                 if (not p or allowed_start[p[0]]) and all(allowed[a, c] for a, c in zip(p, p[1:]))}
        assert tuple(paths[b, kept]) == max(legal, key=legal.get)


def test_crf_layer_learns_a_transition_rule():
    """Emissions that cannot tell tags 1 and 2 apart; the gold rule is 'tag 2 only after tag 1'. Training the layer
    on the log-likelihood must learn it from the transitions alone."""
    layer = crf.CRF(3)
    layer.build()
    emissions = tf.constant(np.tile([[2.0, 0.0, 0.0], [0.0, 1.0, 1.0], [0.0, 1.0, 1.0]], (8, 1, 1)), tf.float32)
    tags = tf.constant(np.tile([0, 1, 2], (8, 1)), tf.int32)
    mask = tf.ones([8, 3], tf.bool)
    optimizer = tf.keras.optimizers.Adam(0.1)
    for _ in range(50):
        with tf.GradientTape() as tape:
            loss = -tf.reduce_mean(layer.log_likelihood(emissions, tags, mask))
        optimizer.apply_gradients(zip(tape.gradient(loss, layer.trainable_variables), layer.trainable_variables))
    assert float(loss) < 0.1
    assert layer.decode(emissions, mask).numpy().tolist() == tags.numpy().tolist()


def test_runs_under_xla():
    emissions, mask, tags, transitions, start, end = random_case(4)
    args = [tf.constant(x) for x in (transitions, start, end)]
    eager = crf.viterbi_decode(emissions, mask, *args)[0].numpy()
    compiled = tf.function(crf.viterbi_decode, jit_compile=True)(tf.constant(emissions), tf.constant(mask), *args)
    np.testing.assert_array_equal(compiled[0].numpy(), eager)
    ll = tf.function(crf.log_likelihood, jit_compile=True)(tf.constant(emissions), tf.constant(tags),
                                                          tf.constant(mask), *args)
    np.testing.assert_allclose(ll.numpy(), crf.log_likelihood(emissions, tags, mask, *args).numpy(), atol=1e-5)
