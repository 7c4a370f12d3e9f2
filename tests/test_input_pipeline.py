"""input_pipeline's checks of pretraining data (13.19): every input file is checked, and each problem names its
file: a corrupt record among the first ones, another sequence length in a second file, ids beyond the vocab."""

from __future__ import annotations

import re

import pytest

import input_pipeline
from pretrain_data import PRED, SEQ, VOCAB, write_records


def test_every_file_is_checked_and_named(tmp_path):
    good, other = str(tmp_path / "a.tfrecord"), str(tmp_path / "b.tfrecord")
    write_records(good, 20, seed=0)
    write_records(other, 20, seed=1)
    input_pipeline.check_pretraining_data([good, other], SEQ, PRED, VOCAB)
    with pytest.raises(ValueError, match=rf"--max_seq_length=16 but {good} holds sequences of {SEQ}"):
        input_pipeline.check_pretraining_data([good, other], 16, PRED, VOCAB)
    with pytest.raises(ValueError, match=rf"{good} holds token id \d+ but the config's vocab_size is 50"):
        input_pipeline.check_pretraining_data([good], SEQ, PRED, 50)

    # A second file made with another --max_seq_length: named, with the fix (today's main read only the first).
    import pretrain_data
    longer = str(tmp_path / "c.tfrecord")
    pretrain_data.SEQ = SEQ * 2
    try:
        write_records(longer, 5)
    finally:
        pretrain_data.SEQ = SEQ
    with pytest.raises(ValueError, match=rf"--max_seq_length={SEQ} but {longer} holds sequences of {2 * SEQ}"):
        input_pipeline.check_pretraining_data([good, longer], SEQ, PRED, VOCAB)


def test_a_corrupt_record_near_the_start_is_named(tmp_path):
    path = tmp_path / "broken.tfrecord"
    write_records(str(path), 20)
    data = bytearray(path.read_bytes())
    data[len(data) // 3] ^= 0xFF  # a flipped byte inside a record: its CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=rf"{path}: record \d+ is corrupt or truncated \(DataLossError\)"):
        input_pipeline.check_pretraining_data([str(path)], SEQ, PRED, VOCAB)
    truncated = tmp_path / "short.tfrecord"
    write_records(str(truncated), 20)
    truncated.write_bytes(truncated.read_bytes()[:-7])
    with pytest.raises(ValueError, match=rf"{truncated}: record 20 is corrupt or truncated"):
        input_pipeline.check_pretraining_data([str(truncated)], SEQ, PRED, VOCAB)


def _file_with_a_large_id_late(tmp_path, name="late.tfrecord"):
    """A file whose first 40 records are fine and whose last 20 hold ids up to 2 * VOCAB: check_pretraining_data,
    which reads the first records, passes it."""
    import pretrain_data

    good, bad = tmp_path / "good.part", tmp_path / "bad.part"
    write_records(str(good), 40, seed=3)
    pretrain_data.VOCAB = 2 * VOCAB
    try:
        write_records(str(bad), 20, seed=4)
    finally:
        pretrain_data.VOCAB = VOCAB
    path = tmp_path / name
    path.write_bytes(good.read_bytes() + bad.read_bytes())  # TFRecord files concatenate
    return str(path)


@pytest.mark.parametrize("is_training", [True, False])
def test_a_token_id_past_the_vocab_later_in_a_file_is_named(tmp_path, is_training):
    import tensorflow as tf

    first = str(tmp_path / "a.tfrecord")
    write_records(first, 20, seed=0)
    late = _file_with_a_large_id_late(tmp_path)
    input_pipeline.check_pretraining_data([first, late], SEQ, PRED, VOCAB)  # the first records are fine
    ds = input_pipeline.make_dataset([first, late], input_pipeline.pretraining_features(SEQ, PRED), 8,
                                     is_training=is_training, vocab_size=VOCAB, shuffle_buffer=10)
    with pytest.raises(tf.errors.InvalidArgumentError) as caught:
        for _ in ds.take(40):
            pass
    message = str(input_pipeline.explain_id_error(caught.value))  # the one line the CLI prints
    assert re.fullmatch(rf"{re.escape(late)} holds token id \d+ but vocab_size is {VOCAB} in the config: .* or "
                        rf"leave it out of --input_file", message), message
    assert input_pipeline.explain_id_error(ValueError("another error")) is None
    clean = input_pipeline.make_dataset([first], input_pipeline.pretraining_features(SEQ, PRED), 8,
                                        is_training=is_training, vocab_size=VOCAB)
    assert sum(1 for _ in clean.take(5)) == (5 if is_training else 3)


def test_the_id_check_keeps_the_data_order_and_covers_dynamic_records(tmp_path):
    import numpy as np

    import masking
    import tokenization
    from pretrain_data import write_dynamic_records, write_vocab

    files = [str(tmp_path / f"{i}.tfrecord") for i in range(2)]
    for i, path in enumerate(files):
        write_records(path, 30, seed=i)
    spec = input_pipeline.pretraining_features(SEQ, PRED)
    plain = input_pipeline.make_dataset(files, spec, 8, is_training=True, skip_batches=2)
    checked = input_pipeline.make_dataset(files, spec, 8, is_training=True, skip_batches=2, vocab_size=VOCAB)
    for a, b in zip(plain.take(6), checked.take(6)):
        assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in spec)
    dynamic, vocab = str(tmp_path / "dynamic.tfrecord"), str(tmp_path / "vocab.txt")
    write_dynamic_records(dynamic, 16)
    write_vocab(vocab)
    special = masking.special_ids_from_vocab(tokenization.load_vocab(vocab))
    masker = input_pipeline.dynamic_masker(masking.InstanceConfig(SEQ, PRED), special, seed=1)
    ds = input_pipeline.make_dataset([dynamic], input_pipeline.unmasked_pretraining_features(SEQ), 8,
                                     is_training=True, masker=masker, vocab_size=VOCAB)
    assert set(next(iter(ds))) == set(spec)
    ds = input_pipeline.make_dataset([dynamic], input_pipeline.unmasked_pretraining_features(SEQ), 8,
                                     is_training=True, masker=masker, vocab_size=VOCAB // 2)
    with pytest.raises(Exception, match=rf"{dynamic} holds token id \d+ but vocab_size is {VOCAB // 2} in the config"):
        next(iter(ds))
