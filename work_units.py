"""The corpus in work units, read by a pool of worker processes, and the output written from their results.

How it runs, and why:
  * The corpus is cut into work units of about `--work_unit_mb` at blank lines
    (document boundaries). A unit is read, tokenized and segmented with jieba
    ONCE; then its `--dupe_factor` passes are built and each pass is written to a
    temporary file as soon as it is made. Memory is bounded by the unit size, not
    by the corpus (the original kept every instance of every pass in RAM and re-ran
    jieba on every sentence in every pass).
  * Units are independent, so `--num_workers` processes share them. Each unit and
    pass has its own random stream (seeded from `--random_seed`, the file and unit
    index and the pass), so the output does not depend on `--num_workers`.
  * At the end the passes are written pass after pass; inside a pass the units
    come in a random order, `--interleave_units` at a time with their records
    alternating, and inside a unit the documents and instances are shuffled. This
    block shuffle stands in for the original's global shuffle with bounded memory,
    and keeps the dupes of a document a whole pass apart. Temporary files (in a
    hidden folder beside each output) need about as much disk as the output; the
    outputs get their final names only when complete.
  * TensorFlow is not needed (nor imported): examples and TFRecord frames are
    encoded here, byte-identical to tf.train.Example / tf.io.TFRecordWriter.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

import tokenization
from masking import InstanceConfig, SpecialIds, special_ids_from_vocab
from pretraining_instances import Document, Sentence, SentenceEncoder, TrainingInstance, create_instances_from_document
from tfrecord_io import ExampleEncoder, iter_frames, tfrecord_frames

PROG = "create_pretraining_data.py"  # the CLI whose messages these are


class InputError(Exception):
    """Bad input or configuration: reported as one message, without a traceback."""


class DiskFullError(RuntimeError):
    """No space left for an output or its temporary records: the message names the path, what was written and the
    fix (as training.CheckpointSaveError does for checkpoints)."""


def no_space(err: OSError, path: str, records: int | None, size: int) -> DiskFullError | None:
    """The DiskFullError for ``err`` when it is ENOSPC (None otherwise): ``records`` and ``size`` bytes of ``path``
    had been written (records None: ``size`` bytes of the units' temporary records, beside it)."""
    if err.errno != errno.ENOSPC and "No space left on device" not in str(err):
        return None
    done = (f"{size / 1e6:.1f} MB of temporary records" if records is None
            else f"{records:,} records ({size / 1e6:.1f} MB)")
    return DiskFullError(f"no space left to write {path}: {done} had been written; free space in "
                         f"{os.path.dirname(os.path.abspath(path))} or point --output_file elsewhere (the temporary "
                         f"files are removed)")


# --------------------------------------------------------------------------- corpus: work units

@dataclasses.dataclass(frozen=True)
class WorkUnit:
    """Bytes [start, end) of one input file; begins at a blank line unless split_document."""
    file_index: int
    unit_index: int
    path: str
    start: int
    end: int
    split_document: bool = False


def _next_boundary(f: Any, target: int, limit: int, size: int) -> tuple[int, bool]:
    """The first blank line at or after `target`, or (if none within `limit` bytes) the first
    line start at or after `target` (a document is then split). Returns (offset, split)."""
    f.seek(target - 1)
    f.readline()  # the rest of the line holding byte target-1: we are now at a line start
    first_line = pos = f.tell()
    while pos < size:
        raw = f.readline()
        if not raw.strip():
            return pos, False
        if pos - target > limit:
            return first_line, True
        pos += len(raw)
    return size, False


def plan_work_units(paths: Sequence[str], unit_bytes: int) -> list[WorkUnit]:
    """Cuts every file into units of about `unit_bytes`, at blank lines where possible.

    The cuts depend only on the files and `unit_bytes` (never on --num_workers).
    A document longer than about `unit_bytes` is cut at a line so memory stays bounded.
    """
    units = []
    for file_index, path in enumerate(paths):
        size = os.path.getsize(path)
        bounds, splits = [0], [False]
        with open(path, "rb") as f:
            k = 1
            while k * unit_bytes < size:
                offset, split = _next_boundary(f, k * unit_bytes, unit_bytes, size)
                if offset >= size:
                    break
                if offset > bounds[-1]:
                    bounds.append(offset)
                    splits.append(split)
                k = max(k + 1, offset // unit_bytes + 1)
        bounds.append(size)
        for i, (start, end) in enumerate(zip(bounds, bounds[1:])):
            if end > start:
                units.append(WorkUnit(file_index, i, path, start, end, splits[i]))
    return units


def _line_number(path: str, offset: int) -> int:
    """1-based number of the line that starts at byte `offset` (only used for error messages)."""
    count = 0
    with open(path, "rb") as f:
        while offset > 0:
            block = f.read(min(offset, 1 << 20))
            if not block:
                break
            count += block.count(b"\n")
            offset -= len(block)
    return count + 1


@dataclasses.dataclass
class Stats:
    """Counts summed over units (documents once; instances over all passes)."""
    documents: int = 0
    sentences: int = 0
    instances: int = 0
    tokens: int = 0
    masked: int = 0
    masked_mask: int = 0
    masked_keep: int = 0
    masked_random: int = 0
    swapped: int = 0
    single_sentence_documents: int = 0
    one_token_documents: int = 0
    documents_split_at_unit: int = 0
    skipped_lines: int = 0
    input_bytes: int = 0
    units_per_window: float = 0.0  # distinct work units per DIVERSITY_WINDOW consecutive output records
    long_sentences: int = 0  # lines with more tokens than an instance holds
    long_sentence_tokens_lost: int = 0  # their tokens past that limit: never in any instance

    def add(self, other: "Stats") -> None:
        for field in dataclasses.fields(self):
            setattr(self, field.name, getattr(self, field.name) + getattr(other, field.name))


_LONG_LINE_WARNINGS = 3  # per work unit; the summary counts them all


def _unit_lines(unit: WorkUnit, decode_errors: str, stats: Stats) -> list[str | None]:
    """The unit's lines, decoded (None for a line skipped as not UTF-8). One read and one decode for the unit in the
    usual case (units are about --work_unit_mb); line by line only when it holds bytes that are not UTF-8.

    Raises:
      InputError: a line is not UTF-8 and decode_errors == "fail".
    """
    with open(unit.path, "rb") as f:
        f.seek(unit.start)
        data = f.read(unit.end - unit.start)
    try:
        return data.decode("utf-8").split("\n")  # a b"\n" byte is only ever a newline in UTF-8
    except UnicodeDecodeError:
        pass
    lines: list[str | None] = []
    for index, raw in enumerate(data.split(b"\n")):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as e:
            if decode_errors == "fail":
                raise InputError(
                    f"{unit.path}:{_line_number(unit.path, unit.start) + index}: line is not UTF-8 "
                    f"({e.reason} at byte {e.start} of the line); fix the file or pass "
                    f"--decode_errors=skip") from None
            stats.skipped_lines += 1
            lines.append(None)
    return lines


def read_documents(unit: WorkUnit, encoder: SentenceEncoder, decode_errors: str,
                   stats: Stats, max_tokens: int | None = None) -> list[Document]:
    """Reads and tokenizes the documents of one unit. A line longer than ``max_tokens`` (what an instance holds)
    loses its tokens past that limit: counted in ``stats``, and the first few are named (file:line) on stderr.

    Raises:
      InputError: a line is not UTF-8 and decode_errors == "fail".
    """
    documents: list[Document] = []
    current: list[Sentence] = []
    for index, line in enumerate(_unit_lines(unit, decode_errors, stats)):
        if line is None:  # skipped: not UTF-8
            continue
        line = line.strip()
        if not line:  # a blank line ends a document
            if current:
                documents.append(Document(current))
                stats.sentences += len(current)
                current = []
            continue
        sentence = encoder.encode(line)
        if sentence is not None:
            current.append(sentence)
            if max_tokens is not None and len(sentence) > max_tokens:
                stats.long_sentences += 1
                stats.long_sentence_tokens_lost += len(sentence) - max_tokens
                if stats.long_sentences <= _LONG_LINE_WARNINGS:
                    print(f"[{PROG}] warning: {unit.path}:{_line_number(unit.path, unit.start) + index}: a line of "
                          f"{len(sentence):,} tokens; an instance holds at most {max_tokens}, so "
                          f"{len(sentence) - max_tokens:,} are dropped: put one sentence on each line",
                          file=sys.stderr, flush=True)
    if current:
        documents.append(Document(current))
        stats.sentences += len(current)
    stats.documents += len(documents)
    stats.documents_split_at_unit += int(unit.split_document)
    stats.input_bytes += unit.end - unit.start
    return documents


# --------------------------------------------------------------------------- worker

@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a worker needs (picklable)."""
    vocab_file: str | None
    spm_model_file: str | None
    do_lower_case: bool
    use_jieba: bool
    wwm_subword_labels: bool
    instance: InstanceConfig
    dupe_factor: int
    random_seed: int
    decode_errors: str
    tmp_dir: str
    log_examples: int
    segmenter: str = "rjieba"


@dataclasses.dataclass
class UnitResult:
    """A unit's temporary TFRecord file: pass p is bytes [offsets[p], offsets[p + 1]), pass_counts[p] records."""
    unit: WorkUnit
    path: str
    offsets: list[int]
    pass_counts: list[int]
    stats: Stats
    examples: list[str]


def _seed(*parts: int) -> np.random.SeedSequence:
    return np.random.SeedSequence([p & 0xFFFFFFFFFFFFFFFF for p in parts])


def make_tokenizer(vocab_file: str | None, do_lower_case: bool, spm_model_file: str | None) -> Any:
    """FullTokenizer, with bad vocab files reported as InputError."""
    try:
        return tokenization.FullTokenizer(vocab_file, do_lower_case=do_lower_case,
                                          spm_model_file=spm_model_file, split_special_tokens=True)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot load the vocabulary: {e}") from None


_WORKER_STATE: dict[RunConfig, tuple[SentenceEncoder, SpecialIds]] = {}


def _worker_state(config: RunConfig) -> tuple[SentenceEncoder, SpecialIds]:
    """The encoder of this process (tokenizer and jieba are loaded once per process)."""
    if config not in _WORKER_STATE:
        _WORKER_STATE.clear()
        tokenizer = make_tokenizer(config.vocab_file, config.do_lower_case, config.spm_model_file)
        encoder = SentenceEncoder(tokenizer, config.use_jieba, config.wwm_subword_labels, config.segmenter)
        _WORKER_STATE[config] = (encoder, special_ids_from_vocab(tokenizer.vocab))
    return _WORKER_STATE[config]


def format_instance(instance: TrainingInstance, tokenizer: Any) -> str:
    """A readable dump of an instance, like the original's log lines."""
    def tokens(ids: Sequence[int]) -> str:
        return " ".join(tokenization.printable_text(t) for t in tokenizer.convert_ids_to_tokens(ids))
    return (f"tokens: {tokens(instance.input_ids)}\n"
            f"segment_ids: {' '.join(map(str, instance.segment_ids))}\n"
            f"sop_label (1 = swapped): {instance.sop_label}\n"
            f"masked_lm_positions: {' '.join(map(str, instance.masked_lm_positions))}\n"
            f"masked_lm_labels: {tokens(instance.masked_lm_ids)}")


def process_unit(unit: WorkUnit, config: RunConfig) -> UnitResult:
    """Reads one unit once, then writes its dupe_factor passes to a temporary file."""
    encoder, special = _worker_state(config)
    stats = Stats()
    cfg = config.instance
    documents = read_documents(unit, encoder, config.decode_errors, stats, max_tokens=cfg.max_seq_length - 3)
    example_encoder = ExampleEncoder(cfg.max_seq_length, cfg.max_predictions_per_seq,
                                     len(encoder.tokenizer.inv_vocab))
    path = os.path.join(config.tmp_dir, f"f{unit.file_index:05d}-u{unit.unit_index:06d}.rec")
    offsets, pass_counts, examples = [0], [], []
    encode = example_encoder.encode_unmasked if cfg.dynamic else example_encoder.encode
    with open(path, "wb") as out:
        for pass_index in range(config.dupe_factor):
            rng = np.random.default_rng(_seed(config.random_seed, 0, unit.file_index,
                                              unit.unit_index, pass_index))
            records = []
            for doc_index in rng.permutation(len(documents)).tolist():
                document = documents[doc_index]
                if pass_index == 0 and document.num_sentences == 1:
                    stats.single_sentence_documents += 1
                    stats.one_token_documents += document.bounds[1] < 2
                for inst in create_instances_from_document(document, cfg, special, rng):
                    records.append(encode(inst))
                    stats.tokens += len(inst.input_ids)
                    stats.masked += len(inst.masked_lm_positions)
                    stats.masked_mask += inst.mask_counts[0]
                    stats.masked_keep += inst.mask_counts[1]
                    stats.masked_random += inst.mask_counts[2]
                    stats.swapped += inst.sop_label
                    if len(examples) < config.log_examples and unit.unit_index == 0 and pass_index == 0:
                        examples.append(format_instance(inst, encoder.tokenizer))
            stats.instances += len(records)
            pass_counts.append(len(records))
            out.write(tfrecord_frames([records[i] for i in rng.permutation(len(records)).tolist()]))
            offsets.append(out.tell())
    return UnitResult(unit, path, offsets, pass_counts, stats, examples)


def _process_unit_star(args: tuple[WorkUnit, RunConfig]) -> UnitResult:
    return process_unit(*args)


# --------------------------------------------------------------------------- progress and output

class Progress:
    """Rate and ETA lines on stderr, at most one every `interval` seconds."""

    def __init__(self, total: float, unit_name: str, interval: float = 2.0):
        self.total, self.unit_name, self.interval = total, unit_name, interval
        self.start = self.last = time.monotonic()
        self.shown: tuple[float, str] | None = None

    def update(self, done: float, instances: int, label: str, force: bool = False) -> None:
        now = time.monotonic()
        if (not force and now - self.last < self.interval) or (done, label) == self.shown:
            return
        self.last, self.shown = now, (done, label)
        elapsed = max(now - self.start, 1e-9)
        rate = done / elapsed
        eta = (self.total - done) / rate if rate > 0 else float("inf")
        eta_text = time.strftime("%H:%M:%S", time.gmtime(eta)) if eta != float("inf") else "?"
        pct = 100.0 * done / self.total if self.total else 100.0
        print(f"[{PROG}] {label}: {pct:5.1f}% ({done:,.1f}/{self.total:,.1f} {self.unit_name}), "
              f"{instances:,} instances, {instances / elapsed:,.0f} instances/s, ETA {eta_text}",
              file=sys.stderr, flush=True)


DIVERSITY_WINDOW = 1024  # records: about what a training batch and its shuffle buffer draw from at a time


class Diversity:
    """Mean number of distinct work units (places in the corpus) among each DIVERSITY_WINDOW consecutive records."""

    def __init__(self):
        self.windows, self.units_seen, self._current, self._count = 0, 0, set(), 0

    def add(self, unit: int) -> None:
        self._current.add(unit)
        self._count += 1
        if self._count == DIVERSITY_WINDOW:
            self.windows += 1
            self.units_seen += len(self._current)
            self._current, self._count = set(), 0

    @property
    def mean(self) -> float:
        return self.units_seen / self.windows if self.windows else float(len(self._current))


def _pass_frames(result: UnitResult, pass_index: int) -> list[bytes]:
    with open(result.path, "rb") as f:
        f.seek(result.offsets[pass_index])
        return list(iter_frames(f.read(result.offsets[pass_index + 1] - result.offsets[pass_index])))


def write_tfrecords(results: Sequence[UnitResult], output_files: Sequence[str], dupe_factor: int,
                    random_seed: int, tmp_dirs: Mapping[str, str], interleave_units: int = 1) -> Diversity:
    """Writes the passes in order, round-robin over the output files, to temporary files in ``tmp_dirs`` (by output
    folder) that are renamed only when everything is written; returns the records' source diversity.

    In each pass the units come in a shuffled order, ``interleave_units`` at a time, and the records of those units
    alternate (one from each in turn), so that any stretch of records mixes text from that many places in the
    corpus; memory holds that many units' records of one pass. The units' temporary files already hold finished
    frames: this only copies them."""
    total = sum(r.stats.instances for r in results)
    progress = Progress(float(total), "instances")
    temp_names = [partial_name(name, tmp_dirs[str(Path(name).resolve().parent)]) for name in output_files]
    writers = [open(name, "wb") for name in temp_names]
    diversity = Diversity()
    sizes, current = [0] * len(writers), 0  # bytes handed to each writer, the one being written: for a full disk
    written = 0
    try:
        for pass_index in range(dupe_factor):
            order = np.random.default_rng(_seed(random_seed, 1, pass_index)).permutation(len(results)).tolist()
            for group_start in range(0, len(order), interleave_units):
                group = order[group_start:group_start + interleave_units]
                frames = [_pass_frames(results[i], pass_index) for i in group]
                interleaved = []  # (unit, frame): each unit's first record, then each one's second, ...
                for rank in range(max(map(len, frames), default=0)):
                    interleaved += [(unit, f[rank]) for unit, f in zip(group, frames) if rank < len(f)]
                if len(writers) == 1:
                    data = b"".join(frame for _, frame in interleaved)
                    writers[0].write(data)
                    sizes[0] += len(data)
                else:
                    for offset, (_, frame) in enumerate(interleaved):
                        current = (written + offset) % len(writers)
                        writers[current].write(frame)
                        sizes[current] += len(frame)
                for unit, _ in interleaved:
                    diversity.add(unit)
                written += len(interleaved)
                progress.update(float(written), written, "writing")
        for current, writer in enumerate(writers):
            writer.close()  # flushes: may be where the disk fills
        for temp, final in zip(temp_names, output_files):
            os.replace(temp, final)
    except OSError as err:
        full = no_space(err, output_files[current], written, sum(sizes))
        if full is None:
            raise
        raise full from None
    finally:
        for writer in writers:
            with contextlib.suppress(OSError):  # a full disk fails the flush again: the temporaries go regardless
                writer.close()
        for temp in temp_names:
            if os.path.exists(temp):
                os.remove(temp)
    return diversity


# Temporary folders are named TEMP_PREFIX + the writer's pid + "-" + random, and hold TEMP_MARKER from their
# creation on; a run removes those of dead writers. The marker, not the name, makes a folder ours: a user's file
# or folder that happens to match the name is never removed.
TEMP_PREFIX = ".create_pretraining_data-"
TEMP_MARKER = "CREATED_BY_create_pretraining_data"
_TEMPORARY_RE = re.compile(r"^\.create_pretraining_data-(\d+)-")


def make_temporary_dir(directory: str) -> str:
    """A new hidden folder in ``directory`` for this process's partial outputs, marked as ours."""
    path = tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=directory)
    with open(os.path.join(path, TEMP_MARKER), "w", encoding="utf-8") as f:
        f.write(f"partial outputs of create_pretraining_data.py, pid {os.getpid()}; removed by its next run once "
                f"that process is gone\n")
    return path


def partial_name(output_file: str, tmp_dir: str) -> str:
    """Where ``output_file`` is written until it is complete."""
    return os.path.join(tmp_dir, Path(output_file).name + ".partial")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. another user's process
        return True
    return True


def remove_stale_temporaries(directory: str) -> None:
    """Removes the temporary folders that killed runs left in ``directory`` (make_temporary_dir's: the name and the
    marker inside), when the pid that made them is no longer running; says what it freed. Nothing else is touched,
    whatever its name."""
    for entry in os.scandir(directory):
        match = _TEMPORARY_RE.match(entry.name)
        if not (match and entry.is_dir(follow_symlinks=False)) or _pid_alive(int(match.group(1))):
            continue  # not ours, or another live run's
        if not os.path.isfile(os.path.join(entry.path, TEMP_MARKER)):
            print(f"[{PROG}] note: left {entry.path}: named like a killed run's temporary folder but without the "
                  f"marker this program writes (an older version's, or not ours): delete it if it is not yours",
                  file=sys.stderr)
            continue
        size = sum(f.stat().st_size for f in Path(entry.path).rglob("*") if f.is_file())
        shutil.rmtree(entry.path, ignore_errors=True)
        print(f"[{PROG}] removed {entry.path} ({size / 1e6:.1f} MB), left by a killed run", file=sys.stderr)


def run_units(units: Sequence[WorkUnit], config: RunConfig, num_workers: int,
              progress: Progress) -> tuple[list[UnitResult], Stats]:
    """Processes every unit, in ``num_workers`` processes (at most one per unit); returns the results in unit order
    (files, then units: never the order they finished in) and the summed statistics."""
    stats = Stats()
    results: dict[tuple[int, int], UnitResult] = {}

    def collect(result: UnitResult) -> None:
        results[(result.unit.file_index, result.unit.unit_index)] = result
        stats.add(result.stats)
        progress.update(stats.input_bytes / 1e6, stats.instances, "reading and masking")

    jobs = [(unit, config) for unit in units]
    workers = min(num_workers, len(units))
    if workers > 1:
        # "spawn", not fork: the caller (a test, a notebook) may run TensorFlow threads,
        # and forking a process with threads can deadlock.
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for result in pool.imap_unordered(_process_unit_star, jobs):
                collect(result)
    else:
        for job in jobs:
            collect(_process_unit_star(job))
    return [results[key] for key in sorted(results)], stats
