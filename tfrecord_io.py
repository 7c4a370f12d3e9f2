"""TFRecord files of tf.train.Example records, written without TensorFlow: the pretraining records'
encoding (static and dynamic masking) and the TFRecord framing with its masked CRC-32C. Tests compare the bytes with
tf.train.Example and tf.io.TFRecordWriter."""

from __future__ import annotations

import operator
import struct
from typing import TYPE_CHECKING, Iterator, Sequence

import numpy as np

from masking import SPECIAL_WORD, WORD_CONTINUES, WORD_START

if TYPE_CHECKING:
    from pretraining_instances import TrainingInstance


# --------------------------------------------------------------------------- tf.train.Example bytes (no TF)
# Workers serialize without TensorFlow (no TF import per process, and ~10x faster than
# building tf.train.Example protos): an Example is a map<string, Feature> whose entries are
# key (field 1) + Feature (field 2); a Feature holds a packed Int64List (field 3) or
# FloatList (field 2). Tests check the bytes against tf.train.Example.

def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _entry_header(name: str, payload_len: int, is_float: bool) -> bytes:
    """The bytes of one map entry up to its packed values: entry(key, Feature(list(payload)))."""
    key = b"\x0a" + _varint(len(name)) + name.encode()
    packed_len = 1 + len(_varint(payload_len)) + payload_len
    feature_len = 1 + len(_varint(packed_len)) + packed_len
    inner_len = len(key) + 1 + len(_varint(feature_len)) + feature_len
    list_tag = b"\x12" if is_float else b"\x1a"  # Feature.float_list / Feature.int64_list
    return b"".join((b"\x0a", _varint(inner_len), key, b"\x12", _varint(feature_len), list_tag,
                     _varint(packed_len), b"\x0a", _varint(payload_len)))


class ExampleEncoder:
    """An instance -> `tf.train.Example` bytes with the original's features, zero-padded.

    Same bytes as tf.train.Example (tests compare, and with a field-by-field encoder), fast: the shapes are fixed,
    so headers and the
    mask, weight and padding bytes are cached, and varints come from a table.
    """

    def __init__(self, max_seq_length: int, max_predictions_per_seq: int, vocab_size: int):
        self.max_seq_length = max_seq_length
        self.max_predictions_per_seq = max_predictions_per_seq
        self._varints = [_varint(i) for i in range(max(vocab_size, max_seq_length) + 1)]
        longest = max(max_seq_length, max_predictions_per_seq) + 1
        self._zeros = [bytes(i) for i in range(longest)]
        self._ones = [b"\x01" * i for i in range(longest)]
        self._headers: dict[tuple[str, int], bytes] = {}
        self._mask_entries = [self._entry("input_mask", self._ones[n] + self._zeros[max_seq_length - n])
                              for n in range(max_seq_length + 1)]
        self._weight_entries = [
            self._entry("masked_lm_weights", np.asarray([1.0] * k + [0.0] * (max_predictions_per_seq - k),
                                                        dtype="<f4").tobytes())
            for k in range(max_predictions_per_seq + 1)]
        self._label_entries = [self._entry("next_sentence_labels", bytes([label])) for label in (0, 1)]

    def _entry(self, name: str, payload: bytes) -> bytes:
        key = (name, len(payload))
        header = self._headers.get(key)
        if header is None:
            header = self._headers[key] = _entry_header(name, len(payload), name == "masked_lm_weights")
        return header + payload

    def _ints(self, values: Sequence[int], padding: bytes) -> bytes:
        table = self._varints
        if len(values) > 1:  # itemgetter looks them all up in C (it returns a tuple only for 2+)
            return b"".join(operator.itemgetter(*values)(table)) + padding
        return b"".join([table[v] for v in values]) + padding

    def encode_unmasked(self, instance: TrainingInstance) -> bytes:
        """A dynamic-masking record: input_ids, input_mask, segment_ids, word_starts (masking.WORD_START /
        WORD_CONTINUES / SPECIAL_WORD per token, 0 on padding), next_sentence_labels."""
        n, sep = len(instance.input_ids), instance.sep_index
        seq_pad = self._zeros[self.max_seq_length - n]
        roles = [WORD_CONTINUES] * n
        for start in instance.word_starts:
            roles[start] = WORD_START
        for position in (0, sep, n - 1):  # [CLS] and the two [SEP]s: never masked
            roles[position] = SPECIAL_WORD
        body = b"".join((
            self._entry("input_ids", self._ints(instance.input_ids, seq_pad)),
            self._mask_entries[n],
            self._entry("segment_ids", self._zeros[sep + 1] + self._ones[n - sep - 1] + seq_pad),
            self._entry("word_starts", self._ints(roles, seq_pad)),
            self._label_entries[instance.sop_label],
        ))
        return b"\x0a" + _varint(len(body)) + body

    def encode(self, instance: TrainingInstance) -> bytes:
        n, k, sep = len(instance.input_ids), len(instance.masked_lm_positions), instance.sep_index
        seq_pad = self._zeros[self.max_seq_length - n]
        pred_pad = self._zeros[self.max_predictions_per_seq - k]
        body = b"".join((
            self._entry("input_ids", self._ints(instance.input_ids, seq_pad)),
            self._mask_entries[n],
            self._entry("segment_ids", self._zeros[sep + 1] + self._ones[n - sep - 1] + seq_pad),
            self._entry("masked_lm_positions", self._ints(instance.masked_lm_positions, pred_pad)),
            self._entry("masked_lm_ids", self._ints(instance.masked_lm_ids, pred_pad)),
            self._weight_entries[k],
            self._label_entries[instance.sop_label],
        ))
        return b"\x0a" + _varint(len(body)) + body


# --------------------------------------------------------------------------- TFRecord frames (no TF)
# A TFRecord file is a sequence of frames: uint64 length, masked CRC-32C of those 8 bytes,
# the record, masked CRC-32C of the record (all little-endian). Writing them here keeps
# TensorFlow out of this script altogether (its import alone takes seconds and ~0.5 GB).
# CRCs of a whole batch of records take a few numpy calls: the CRC register is linear over
# GF(2), so a record's CRC is the XOR of one table entry per byte (the byte's value pushed
# through as many zero bytes as follow it) and one per length (the initial register pushed
# through the whole record). Tests compare the bytes with tf.io.TFRecordWriter.

def _crc32c_table() -> np.ndarray:
    table = np.arange(256, dtype=np.uint32)
    for _ in range(8):  # reflected Castagnoli polynomial
        table = np.where(table & 1, (table >> 1) ^ np.uint32(0x82F63B78), table >> 1).astype(np.uint32)
    return table


_CRC32C_TABLE = _crc32c_table()
# _CRC_BYTE[d, b]: what byte b adds to the register when d bytes follow it; _CRC_INIT[n]: the
# initial register 0xFFFFFFFF after n bytes. Grown on demand to the longest record seen.
_CRC_BYTE = _CRC32C_TABLE[np.newaxis, :].copy()
_CRC_INIT = np.array([0xFFFFFFFF], dtype=np.uint32)
_CRC_BATCH_BYTES = 1 << 18  # bounds the work arrays (8 bytes per record byte)


def _crc32c_zero_byte(register: np.ndarray) -> np.ndarray:
    """The register after one zero byte (a linear map)."""
    return (register >> 8) ^ _CRC32C_TABLE[register & 0xFF]


def _crc32c_tables(length: int) -> tuple[np.ndarray, np.ndarray]:
    """(_CRC_BYTE, _CRC_INIT), grown to cover records of `length` bytes."""
    global _CRC_BYTE, _CRC_INIT
    have = len(_CRC_INIT) - 1
    if length > have:
        size = max(length, 2 * have, 1024)
        byte_rows, init = [_CRC_BYTE], list(_CRC_INIT.tolist())
        row, register = _CRC_BYTE[-1], _CRC_INIT[-1:]
        for _ in range(size - have):
            row = _crc32c_zero_byte(row)
            register = _crc32c_zero_byte(register)
            byte_rows.append(row[np.newaxis, :])
            init.append(int(register[0]))
        _CRC_BYTE = np.concatenate(byte_rows)[:size]
        _CRC_INIT = np.asarray(init, dtype=np.uint32)
    return _CRC_BYTE, _CRC_INIT


def _crc32c_work_buffers(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Two arrays of at least `size` elements (int32, uint32), kept for the next batch: fresh
    arrays of this size would be mapped and unmapped by malloc on every call (page faults)."""
    global _CRC_WORK
    if _CRC_WORK[0].size < size:
        _CRC_WORK = (np.empty(size, dtype=np.int32), np.empty(size, dtype=np.uint32))
    return _CRC_WORK[0][:size], _CRC_WORK[1][:size]


_CRC_WORK = (np.empty(0, dtype=np.int32), np.empty(0, dtype=np.uint32))


def _masked_crc32c_batch(chunks: Sequence[bytes]) -> list[int]:
    lengths = np.fromiter(map(len, chunks), dtype=np.int32, count=len(chunks))
    byte_table, init_table = _crc32c_tables(int(lengths.max()))
    register = init_table[lengths]
    data = np.frombuffer(b"".join(chunks), dtype=np.uint8)
    if data.size:
        index, terms = _crc32c_work_buffers(data.size)
        nonempty = lengths > 0
        starts = (np.cumsum(lengths, dtype=np.int32) - lengths)[nonempty]
        # How many bytes follow each byte in its chunk: a count-down restarting at each chunk
        # (the previous chunk's count ended at 0, so the step there is the new length - 1).
        index.fill(-1)
        index[starts] = lengths[nonempty] - 1
        np.cumsum(index, out=index)
        # Row (bytes that follow) and column (the byte) in _CRC_BYTE, flattened.
        np.left_shift(index, 8, out=index)
        np.bitwise_or(index, data, out=index)
        np.take(byte_table.ravel(), index, out=terms)
        register[nonempty] ^= np.bitwise_xor.reduceat(terms, starts)
    crc = register ^ np.uint32(0xFFFFFFFF)
    return (((crc >> 15) | (crc << 17)) + np.uint32(0xA282EAD8)).tolist()


def masked_crc32c(chunks: Sequence[bytes]) -> list[int]:
    """TFRecord's masked CRC-32C of every chunk."""
    result: list[int] = []
    start = 0
    while start < len(chunks):
        end, size = start, 0
        while end < len(chunks) and (end == start or size + len(chunks[end]) <= _CRC_BATCH_BYTES):
            size += len(chunks[end])
            end += 1
        result += _masked_crc32c_batch(chunks[start:end])
        start = end
    return result


def tfrecord_frames(records: Sequence[bytes]) -> bytes:
    """The records as TFRecord frames, in order."""
    headers = [struct.pack("<Q", len(r)) for r in records]
    pack_header, pack_crc = struct.Struct("<8sI").pack, struct.Struct("<I").pack
    parts = []
    for header, header_crc, record, record_crc in zip(headers, masked_crc32c(headers), records,
                                                      masked_crc32c(records)):
        parts += (pack_header(header, header_crc), record, pack_crc(record_crc))
    return b"".join(parts)


def iter_frames(data: bytes) -> Iterator[bytes]:
    """Splits bytes of whole TFRecord frames into frames (CRCs are not checked)."""
    pos = 0
    while pos < len(data):
        (length,) = struct.unpack_from("<Q", data, pos)
        yield data[pos:pos + length + 16]
        pos += length + 16
