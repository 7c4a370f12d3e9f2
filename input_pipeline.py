"""tf.data input pipelines: pretraining TFRecords (the original's feature spec) and classifier feature files.

Sharding: each input pipeline (one per worker, from ``tf.distribute.InputContext``) reads a disjoint set of
files when there are at least as many files as pipelines, else every pipeline reads all files and keeps every
n-th record. Training data is shuffled with a fixed seed, so skipping the batches a run has already consumed
puts a resumed run at the same data position as an uninterrupted one.
"""

from __future__ import annotations

import glob
import json
import os
import re
from typing import Callable, Iterable

import tensorflow as tf

from masking import MASKING_RECORD_RE, RECORDED_FLAGS, masking_record_path


def pretraining_features(max_seq_length: int, max_predictions_per_seq: int) -> dict[str, tf.io.FixedLenFeature]:
    """The original's TFRecord feature spec (create_pretraining_data.py writes exactly these)."""
    return {
        "input_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "masked_lm_positions": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_ids": tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64),
        "masked_lm_weights": tf.io.FixedLenFeature([max_predictions_per_seq], tf.float32),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }


def unmasked_pretraining_features(max_seq_length: int) -> dict[str, tf.io.FixedLenFeature]:
    """What ``create_pretraining_data.py --masking=dynamic`` writes: unmasked instances with their words marked."""
    return {
        "input_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "word_starts": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "next_sentence_labels": tf.io.FixedLenFeature([1], tf.int64),
    }


def dynamic_masker(cfg, special, seed: int) -> Callable[[dict[str, tf.Tensor], tf.Tensor, tf.Tensor],
                                                        dict[str, tf.Tensor]]:
    """(parsed unmasked batch, element ids [B], pipeline id) -> the static records' features, masked by
    ``masking.mask_batch`` (``cfg``: masking.InstanceConfig, ``special``: masking.SpecialIds) in the host's
    Python: the same rules as the static writer, one implementation."""
    import masking

    def mask(input_ids, input_mask, word_starts, element_ids, pipeline_id):
        return masking.mask_batch(input_ids, input_mask, word_starts, element_ids, cfg, special,
                                  seed=seed * 1_000_003 + int(pipeline_id))

    def apply(features: dict[str, tf.Tensor], element_ids: tf.Tensor, pipeline_id: tf.Tensor) -> dict[str, tf.Tensor]:
        ids, positions, labels, weights = tf.numpy_function(
            mask, [features["input_ids"], features["input_mask"], features["word_starts"], element_ids, pipeline_id],
            [tf.int32, tf.int32, tf.int32, tf.float32], stateful=False)
        batch, predictions = tf.shape(features["input_ids"])[0], cfg.max_predictions_per_seq
        out = {k: v for k, v in features.items() if k != "word_starts"}
        out["input_ids"] = tf.ensure_shape(ids, features["input_ids"].shape)
        for name, value in (("masked_lm_positions", positions), ("masked_lm_ids", labels),
                            ("masked_lm_weights", weights)):
            out[name] = tf.reshape(value, [batch, predictions])
        return out

    return apply


def classifier_features(max_seq_length: int) -> dict[str, tf.io.FixedLenFeature]:
    """Feature spec of the classifier's cached TFRecords (the original's run_classifier names)."""
    return {
        "input_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "input_mask": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "segment_ids": tf.io.FixedLenFeature([max_seq_length], tf.int64),
        "label_ids": tf.io.FixedLenFeature([], tf.int64),
        "is_real_example": tf.io.FixedLenFeature([], tf.int64),
    }


def mrc_features(max_seq_length: int) -> dict[str, tf.io.FixedLenFeature]:
    """Feature spec of run_mrc.py's training TFRecords (mrc_data.FEATURE_NAMES: BERT run_squad.py's names)."""
    spec = {k: tf.io.FixedLenFeature([max_seq_length], tf.int64) for k in ("input_ids", "input_mask", "segment_ids")}
    spec.update({k: tf.io.FixedLenFeature([], tf.int64) for k in ("start_positions", "end_positions")})
    return spec


def expand_files(patterns: str | list[str]) -> list[str]:
    """Comma-separated globs (the original's --input_file syntax) -> sorted file list; an empty match is an error."""
    if isinstance(patterns, str):
        patterns = [p for p in patterns.split(",") if p.strip()]
    files: list[str] = []
    for pattern in patterns:
        matched = sorted(tf.io.gfile.glob(pattern.strip())) or sorted(glob.glob(pattern.strip()))
        if not matched:
            raise FileNotFoundError(f"no input file matches {pattern!r}")
        # A bare "*" matches dynamic records' hidden settings files too (masking.MASKING_RECORD_RE): not records.
        matched = [path for path in matched if not MASKING_RECORD_RE.search(path)] or matched
        for path in matched:
            if _PARTIAL_RE.search(path):
                raise ValueError(f"--input_file={pattern!r} matches {path}, a partial file that a killed "
                                 f"create_pretraining_data.py left; delete it (the next run there removes it) "
                                 f"or narrow the pattern")
        files.extend(matched)
    return files


# What create_pretraining_data.py writes before an output is complete: files in its hidden temporary folders, and
# the NAME.tmp-PID files of earlier versions. Training on one would read a truncated tail hours into a run.
_PARTIAL_RE = re.compile(r"(^|/)\.create_pretraining_data-[^/]*(/|$)|\.tmp-\d+$|\.partial$")


def _parse(spec: dict[str, tf.io.FixedLenFeature]) -> Callable[[tf.Tensor], dict[str, tf.Tensor]]:
    """Parses a batch of serialized examples; int64 -> int32 (TPUs and XLA prefer int32)."""

    def parse(serialized: tf.Tensor) -> dict[str, tf.Tensor]:
        example = tf.io.parse_example(serialized, spec)
        return {k: tf.cast(v, tf.int32) if v.dtype == tf.int64 else v for k, v in example.items()}

    return parse


def make_dataset(files: list[str], spec: dict[str, tf.io.FixedLenFeature], batch_size: int, *, is_training: bool,
                 input_context: tf.distribute.InputContext | None = None, seed: int = 12345,
                 skip_batches: int = 0, shuffle_buffer: int = 10000, drop_remainder: bool | None = None,
                 masker: Callable | None = None, vocab_size: int | None = None) -> tf.data.Dataset:
    """TFRecord files -> batches of parsed features.

    batch_size is per input pipeline (the loop passes the per-replica batch). Training: files shuffled, records
    interleaved (deterministically), shuffled, repeated forever, remainder dropped. Eval: one ordered pass.
    masker (dynamic_masker): masks each parsed batch; it gets every record's position in this pipeline's stream
    (counted after the shuffle, across epochs), so masks are fresh every epoch and the same after a resume.
    vocab_size: every batch's input_ids (and masked_lm_ids) are checked to be below it, and an error names the file
    of the record with the largest id (check_pretraining_data reads only the first records of each file; an id past
    the embedding table fails on a CPU in the middle of a step with no file named, and a GPU gather returns zeros).
    """
    n, index = (input_context.num_input_pipelines, input_context.input_pipeline_id) if input_context else (1, 0)
    ds = tf.data.Dataset.from_tensor_slices(files)
    shard_files = n > 1 and len(files) >= n
    if shard_files:
        ds = ds.shard(n, index)
    if vocab_size is None:
        read = tf.data.TFRecordDataset
    else:  # (file name, record): the id check names the file
        def read(path):
            return tf.data.TFRecordDataset(path).map(lambda record: (path, record))
    if is_training:
        ds = ds.shuffle(len(files), seed=seed, reshuffle_each_iteration=True).repeat()
        ds = ds.interleave(read, cycle_length=min(4, len(files)),
                           num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    else:
        ds = ds.flat_map(read)
    if n > 1 and not shard_files:
        ds = ds.shard(n, index)
    if is_training:
        ds = ds.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if masker is not None:
        ds = ds.enumerate()  # (position in the stream, record)
    ds = ds.batch(batch_size, drop_remainder=is_training if drop_remainder is None else drop_remainder)
    if skip_batches:
        ds = ds.skip(skip_batches)  # before parsing: skipped batches cost a read, not a parse
    parse = _parse(spec)
    if vocab_size is not None:
        parse = _checking_ids(parse, vocab_size)
    if masker is None:
        ds = ds.map(parse, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda ids, element: masker(parse(*element) if isinstance(element, tuple) else parse(element),
                                                ids, tf.constant(index, tf.int64)),
                    num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def _checking_ids(parse: Callable[[tf.Tensor], dict[str, tf.Tensor]], vocab_size: int
                  ) -> Callable[[tf.Tensor, tf.Tensor], dict[str, tf.Tensor]]:
    """parse((file names [B], records [B])) with a check that every token id is below vocab_size: one max per batch,
    and an error naming the file that holds the largest id."""

    def parse_and_check(paths: tf.Tensor, records: tf.Tensor) -> dict[str, tf.Tensor]:
        features = parse(records)
        ids = [features[k] for k in ("input_ids", "masked_lm_ids") if k in features]
        row_max = tf.reduce_max(tf.concat(ids, axis=1), axis=1)
        worst = tf.argmax(row_max, output_type=tf.int32)
        message = tf.strings.join([paths[worst], " holds token id ", tf.strings.as_string(row_max[worst]),
                                   f" but vocab_size is {vocab_size} in the config: the data was made with a "
                                   f"larger vocab than the config describes; re-create it with the vocab of the "
                                   f"model or leave it out of --input_file"])
        check = tf.debugging.Assert(row_max[worst] < vocab_size, [message], name="token_ids_below_vocab_size")
        with tf.control_dependencies([check]):
            return {k: tf.identity(v) for k, v in features.items()}

    return parse_and_check


def find_corrupt_file(files: list[str]) -> str | None:
    """Reads every file to the end; returns the first that TensorFlow cannot read (truncated or corrupt)."""
    for path in files:
        try:
            for _ in tf.data.TFRecordDataset(path):
                pass
        except (tf.errors.DataLossError, tf.errors.OutOfRangeError, tf.errors.InvalidArgumentError):
            return path
    return None


def explain_data_error(files: list[str], err: Exception) -> Exception:
    """A DataLossError from inside tf.data does not name the file; find it and say which."""
    bad = find_corrupt_file(files)
    where = f"{bad} is corrupt or truncated" if bad else "an input file could not be read"
    return RuntimeError(f"{where} ({type(err).__name__}: {str(err).splitlines()[0]}); "
                        f"re-create it or leave it out of --input_file")


def read_masking_records(files: list[str]) -> tuple[dict | None, list[str]]:
    """The masking settings the dynamic records ``files`` were made with (masking.masking_record_path), and the
    files that have none (older data). Files whose settings differ are refused, naming both."""
    found: dict[str, dict] = {}
    missing = []
    for path in files:
        record_file = masking_record_path(path)
        if not tf.io.gfile.exists(record_file):
            missing.append(path)
            continue
        try:
            with tf.io.gfile.GFile(record_file) as f:
                found[path] = json.loads(f.read())
        except ValueError as err:
            raise ValueError(f"{record_file}: not a masking settings file ({err}); re-create {path} or delete "
                             f"{record_file}") from None
    if not found:
        return None, missing
    first_path, first = next(iter(found.items()))
    for path, record in found.items():
        keys = ("vocab_sha256", *RECORDED_FLAGS)
        differ = [k for k in keys if record.get(k) != first.get(k)]
        if differ:
            k = differ[0]
            raise ValueError(f"{first_path} was made with {k}={first.get(k)} but {path} with {k}={record.get(k)} "
                             f"({masking_record_path(path)}): give --input_file records made with one setting")
    return first, missing


def masking_flags_from_record(record: dict, values: dict, passed: set[str], vocab_sha256: str | None,
                              vocab_file: str | None) -> tuple[dict, list[str]]:
    """run_pretraining's masking flags for dynamic records made with ``record`` (read_masking_records): a flag
    not ``passed`` takes the recorded value; a passed flag that contradicts it, or a vocab whose sha256 differs, is
    refused naming both. ``values``: the flags' current values. Returns the values and the lines to print."""
    made_with = f"create_pretraining_data.py --vocab_file={record.get('vocab_file')}"
    if vocab_sha256 is not None and record.get("vocab_sha256") not in (None, vocab_sha256):
        raise ValueError(f"--vocab_file={vocab_file} (sha256 {vocab_sha256[:12]}...) is not the vocab the records "
                         f"were made with ({record.get('vocab_file')}, sha256 {record['vocab_sha256'][:12]}...): its "
                         f"[MASK] and token ids would mask them wrongly; pass the vocab of {made_with}")
    out, taken = dict(values), []
    for name in RECORDED_FLAGS:
        if name not in record:
            continue
        if name in passed:
            if record[name] != values[name]:
                raise ValueError(f"--{name}={values[name]} but the records were made with --{name}={record[name]} "
                                 f"(recorded beside them in .NAME.masking.json): drop --{name} to use the recorded "
                                 f"value, or re-create the records with --{name}={values[name]}")
        else:
            out[name] = record[name]
            taken.append(f"--{name}={record[name]}")
    lines = [f"dynamic masking: from the records' settings file: {' '.join(taken)}"] if taken else []
    return out, lines


def explain_id_error(err: Exception) -> Exception | None:
    """The one-line error of make_dataset's id check (vocab_size), from the InvalidArgumentError tf.data raises
    around it; None for any other error."""
    match = _ID_CHECK_RE.search(str(err))
    return ValueError(match.group(1)) if match else None


_ID_CHECK_RE = re.compile(r"assertion failed: \[(.+? holds token id \d+ but vocab_size is .+?)\]\s*$", re.MULTILINE)


STATIC, DYNAMIC = "static", "dynamic"  # masked records (the original's), or unmasked ones with word_starts


def check_pretraining_data(files: list[str], max_seq_length: int, max_predictions_per_seq: int,
                           vocab_size: int, num_records: int = 256, other_records: int = 16) -> str:
    """Checks the first records of every file (``num_records`` of the first, ``other_records`` of the others)
    against the flags and the config, with errors that name the file: a corrupt or truncated record, a sequence
    length or prediction count other than the flags', an id the vocab does not have. Returns the records' masking,
    STATIC or DYNAMIC (every file must have the same)."""
    kinds = {}
    for index, path in enumerate(files):
        kinds[path] = check_pretraining_file(path, max_seq_length, max_predictions_per_seq, vocab_size,
                                             num_records if index == 0 else other_records)
    if len(set(kinds.values())) > 1:
        dynamic = next(p for p, k in kinds.items() if k == DYNAMIC)
        static = next(p for p, k in kinds.items() if k == STATIC)
        raise ValueError(f"{static} holds masked (static) records but {dynamic} unmasked (dynamic) ones: give "
                         f"--input_file files of one kind")
    return next(iter(kinds.values()))


def _first_records(path: str, count: int) -> list[bytes]:
    records: list[bytes] = []
    try:
        for raw in tf.data.TFRecordDataset(path).take(count).as_numpy_iterator():
            records.append(raw)
    except (tf.errors.DataLossError, tf.errors.OutOfRangeError) as err:
        raise ValueError(f"{path}: record {len(records) + 1} is corrupt or truncated ({type(err).__name__}); "
                         f"re-create the file or leave it out of --input_file") from None
    return records


def check_pretraining_file(path: str, max_seq_length: int, max_predictions_per_seq: int, vocab_size: int,
                           num_records: int) -> str:
    """Checks the first ``num_records`` records of ``path`` (see check_pretraining_data); returns its masking."""
    records = _first_records(path, num_records)
    if not records:
        raise ValueError(f"{path}: holds no records")
    lengths = {}
    try:
        example = tf.train.Example.FromString(records[0])
    except Exception:  # protobuf's DecodeError
        raise ValueError(f"{path}: record 1 is not a tf.train.Example: not pretraining data") from None
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        lengths[name] = len(getattr(feature, kind).value)
    kind = DYNAMIC if "word_starts" in lengths and "masked_lm_positions" not in lengths else STATIC
    expected = (unmasked_pretraining_features(max_seq_length) if kind == DYNAMIC else
                pretraining_features(max_seq_length, max_predictions_per_seq))
    missing = sorted(set(expected) - set(lengths))
    if missing:
        raise ValueError(f"{path}: not pretraining data, features {missing} are missing (has {sorted(lengths)})")
    if lengths["input_ids"] != max_seq_length:
        raise ValueError(f"--max_seq_length={max_seq_length} but {path} holds sequences of "
                         f"{lengths['input_ids']}: pass --max_seq_length={lengths['input_ids']} (every input file "
                         f"must have the same length)")
    if kind == STATIC and lengths["masked_lm_positions"] != max_predictions_per_seq:
        raise ValueError(f"--max_predictions_per_seq={max_predictions_per_seq} but {path} holds "
                         f"{lengths['masked_lm_positions']}: pass "
                         f"--max_predictions_per_seq={lengths['masked_lm_positions']} (every input file must match)")
    try:
        parsed = tf.io.parse_example(tf.constant(records, dtype=tf.string), expected)
    except tf.errors.InvalidArgumentError as err:
        first = str(err).splitlines()[0]
        raise ValueError(f"{path}: a record among the first {len(records)} differs from the first in its features "
                         f"({first})") from None
    top = int(max(tf.reduce_max(parsed[name]) for name in ("input_ids", "masked_lm_ids") if name in parsed))
    if top >= vocab_size:
        raise ValueError(f"{path} holds token id {top} but the config's vocab_size is {vocab_size}: "
                         f"the data was made with a larger vocab than the config describes")
    return kind


def write_int_records(path: str, rows: Iterable[dict]) -> int:
    """Rows of integer features ({name: int or int array}) -> tf.train.Example TFRecord at ``path``, written under a
    temporary name and renamed when complete (a killed run leaves no half file that a later run would take for a
    cache); returns the row count."""
    tmp, n = f"{path}.tmp-{os.getpid()}", 0
    with tf.io.TFRecordWriter(tmp) as writer:
        for row in rows:
            feature = {k: tf.train.Feature(int64_list=tf.train.Int64List(value=_flat(v)))
                       for k, v in row.items()}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
            n += 1
    tf.io.gfile.rename(tmp, path, overwrite=True)
    return n


def _flat(value) -> list[int]:
    """An int, a NumPy scalar or an array -> a flat list of Python ints."""
    return value.reshape(-1).tolist() if hasattr(value, "reshape") else [int(value)]
