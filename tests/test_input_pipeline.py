"""input_pipeline's checks of pretraining data (13.19): every input file is checked, and each problem names its
file: a corrupt record among the first ones, another sequence length in a second file, ids beyond the vocab."""

from __future__ import annotations

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
