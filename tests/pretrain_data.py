"""Writes small pretraining TFRecords in the original's format, with a learnable signal.

The masked positions keep their real ids in input_ids, so MLM can learn to copy; the SOP label is 1 when the
first real token is in the upper half of the vocab. Loss falls within a few dozen steps, which lets tests check
training mechanics (XLA, bf16, resume, replicas) in seconds.
"""

from __future__ import annotations

import json

import numpy as np
import tensorflow as tf

VOCAB, SEQ, PRED = 97, 32, 5
CONFIG = {"vocab_size": VOCAB, "hidden_size": 32, "embedding_size": 16, "num_hidden_layers": 2,
          "num_attention_heads": 4, "intermediate_size": 48, "max_position_embeddings": 64,
          "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "ln_type": "postln"}


def _int64(values) -> tf.train.Feature:
    return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


def _float(values) -> tf.train.Feature:
    return tf.train.Feature(float_list=tf.train.FloatList(value=[float(v) for v in values]))


def write_records(path: str, n: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    with tf.io.TFRecordWriter(path) as writer:
        for _ in range(n):
            ids = rng.integers(5, VOCAB, SEQ)
            positions = np.sort(rng.choice(np.arange(1, SEQ), PRED, replace=False))
            weights = np.ones(PRED)
            weights[-1] = 0.0  # a padded prediction slot, as the original writes them
            feature = {
                "input_ids": _int64(ids), "input_mask": _int64(np.ones(SEQ)),
                "segment_ids": _int64(np.arange(SEQ) >= SEQ // 2),
                "masked_lm_positions": _int64(positions), "masked_lm_ids": _int64(ids[positions]),
                "masked_lm_weights": _float(weights), "next_sentence_labels": _int64([ids[1] > VOCAB // 2]),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def write_vocab(path: str) -> None:
    """A BERT-layout vocab of VOCAB entries: dynamic masking draws [MASK] and random ids from it."""
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"t{i}" for i in range(5, VOCAB)]
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(tokens) + "\n")


def write_dynamic_records(path: str, n: int, seed: int = 0) -> None:
    """Unmasked records (create_pretraining_data.py --masking=dynamic): [CLS] A [SEP] B [SEP] with each token's word
    role; the pipeline masks them. The SOP label is learnable as in write_records."""
    from masking import SPECIAL_WORD, WORD_CONTINUES, WORD_START

    rng = np.random.default_rng(seed)
    with tf.io.TFRecordWriter(path) as writer:
        for _ in range(n):
            ids = rng.integers(5, VOCAB, SEQ)
            sep = SEQ // 2 - 1
            ids[[0, sep, SEQ - 1]] = [2, 3, 3]
            roles = np.where(rng.random(SEQ) < 0.6, WORD_START, WORD_CONTINUES)
            roles[[1, sep + 1]] = WORD_START  # a segment starts a word
            roles[[0, sep, SEQ - 1]] = SPECIAL_WORD
            feature = {
                "input_ids": _int64(ids), "input_mask": _int64(np.ones(SEQ)),
                "segment_ids": _int64(np.arange(SEQ) > sep), "word_starts": _int64(roles),
                "next_sentence_labels": _int64([ids[1] > VOCAB // 2]),
            }
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


def write_config(path: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(CONFIG, f)
