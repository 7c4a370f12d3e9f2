"""Named-entity recognition data: task readers, the tag set, windows over long sentences, entity metrics, outputs.

Tasks (``--task_name`` of run_ner.py; files in ``--data_dir``, the first name found wins):

=================  ========================================  =======================================================
task               files                                     format
=================  ========================================  =======================================================
peoples_daily_ner  example.train example.dev example.test    one ``char TAG`` a line (space or tab between), a blank
                                                             line after each sentence; BIO tags (``O``, ``B-PER``,
                                                             ``I-PER``, ...)
msra_ner           msra_train_bio / train.txt,               the same line format (the BIO copies of MSRA-NER that
                   msra_dev_bio / dev.txt,                   circulate under these names). MSRA has no official dev
                   msra_test_bio / test.txt                  set: without a dev file, dev is the test file (a note
                                                             says so)
cluener            train.json dev.json test.json             CLUENER2020: ``{"id": .., "text": .., "label": {type:
                                                             {entity: [[start, end], ...]}}}`` a line, offsets into
                                                             ``text`` inclusive; test.json unlabelled. Spans become
                                                             B-/I- tags on the text's characters
=================  ========================================  =======================================================

A *unit* is what one line of a BIO file holds (a character; some files hold a Latin word or a number) or one
character of a CLUENER text. Labels sit on units. Each unit is tokenized on its own (WordPiece may split a Latin
word into several pieces; whitespace, which the vocab has no piece for, becomes ``[UNK]``): its first piece carries
the label, the other pieces are masked out of the loss and of decoding.

Tag set: ``O`` first, then for each entity type found in the training file (sorted) ``B-type`` and ``I-type``;
saved as ``tag_list.txt`` in the output directory and used for eval and predict. Tags that are not ``O``,
``B-type`` or ``I-type`` (e.g. BIOES's ``E-``/``S-``), a line without a tag, a dev/test tag outside the training
tag set, CLUENER spans outside the text, whose entity string differs from the text, or that overlap: each raises
``DataFormatError`` naming file and line (``--skip_bad_lines`` drops the sentence instead; in a test file it keeps
its place in the predictions, see write_bio_predictions and write_clue_predictions). An ``I-type`` that
does not continue a ``B-type``/``I-type`` of the same type is *reported* (counted, the first few named with file
and line), not changed: the metrics read it the way conlleval does (it starts an entity).

Windows: a sentence longer than ``max_seq_length - 2`` pieces is cut into windows of that many pieces, each
starting ``doc_stride`` pieces after the previous one (fewer than a window: consecutive windows overlap, so a
unit at a window's first piece, where the BIO constraints forbid ``I-``, takes its tag from an earlier window)
and the last ending at the sentence's end. Training uses every window; at eval and predict time each unit takes
the tag predicted in the window where it has the most context on both sides (min(left, right) pieces, the earlier
window on ties), so every unit of every sentence gets a tag and nothing is truncated away; the eval loss and token
accuracy count each unit once, in that window.

Metrics: entity-level precision, recall and F1 (exact span and type), overall (micro) and per type, with
conlleval's chunk rules (an entity starts at ``B-x``, or at ``I-x`` after a tag of another type or ``O``, and ends
before ``O``, ``B-`` or another type; sentences never share an entity).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Any, Iterator, Sequence

import numpy as np
import tensorflow as tf

import input_pipeline
import tokenization
from classifier_data import DataFormatError, feature_cache_key, read_text_lines

SPLITS = ("train", "dev", "test")
OUTSIDE = "O"
TAG_PATTERN = re.compile(r"^[BI]-\S+$")
_SEPARATOR = re.compile(r"[ \t]+")
REPORTED_PER_FILE = 5  # inconsistencies and skipped lines named in a file's summary


@dataclasses.dataclass
class NerExample:
    """One sentence: its units, their tags (None for unlabelled test data), CLUENER's ``id`` (else the sentence's
    index) and text, and the file line it starts on."""
    guid: str
    units: list[str]
    tags: list[str] | None
    example_id: Any = None
    line: int = 0
    text: str | None = None


@dataclasses.dataclass
class SkippedSentence:
    """A sentence that --skip_bad_lines dropped, for the outputs that keep one entry per input sentence: where it
    goes (the number of sentences read before it), ``file:line``, its units when they can be told (else None) and
    its id (CLUENER's ``id``, else its index in the file)."""
    position: int
    where: str
    units: list[str] | None
    example_id: Any


@dataclasses.dataclass
class NerReport:
    """What reading one file found besides the examples."""
    path: str
    bad: list[str] = dataclasses.field(default_factory=list)  # "file:line: reason" of skipped sentences
    inconsistent: list[str] = dataclasses.field(default_factory=list)  # "file:line: I-x after y"
    separator: str = " "
    skipped: list[SkippedSentence] = dataclasses.field(default_factory=list)

    def summary(self, num_examples: int) -> str:
        parts = [f"{num_examples} sentences from {self.path}"]
        if self.inconsistent:
            parts.append(f"{len(self.inconsistent)} I- tags that continue no entity (kept as they are, read as "
                         f"entity starts), e.g. " + "; ".join(self.inconsistent[:REPORTED_PER_FILE]))
        if self.bad:
            parts.append(f"{len(self.bad)} malformed sentences skipped (--skip_bad_lines), e.g. "
                         + "; ".join(self.bad[:REPORTED_PER_FILE]))
        return ", ".join(parts)


class _BadSentence(ValueError):
    """Raised while parsing; carries the line number and, when the reader could tell them, the sentence's units
    and id (for SkippedSentence)."""

    def __init__(self, line: int, message: str):
        super().__init__(message)
        self.line = line
        self.units: list[str] | None = None
        self.example_id: Any = None


def check_tag(tag: str, line: int) -> str:
    if tag != OUTSIDE and not TAG_PATTERN.match(tag):
        raise _BadSentence(line, f"tag {tag!r} is not BIO (O, B-type or I-type)")
    return tag


def tag_type(tag: str) -> str | None:
    return None if tag == OUTSIDE else tag[2:]


def continuation_problems(tags: Sequence[str]) -> list[tuple[int, str]]:
    """(index, what precedes it) of each ``I-x`` that does not follow ``B-x`` or ``I-x``."""
    problems = []
    for i, tag in enumerate(tags):
        if tag.startswith("I-"):
            before = tags[i - 1] if i else "the sentence start"
            if not (i and before != OUTSIDE and tag_type(before) == tag_type(tag)):
                problems.append((i, before))
    return problems


# ---------------------------------------------------------------------------------------------------------------------
# Processors
# ---------------------------------------------------------------------------------------------------------------------

class NerProcessor:
    """File names per split and a reader; subclasses implement ``_sentences(lines, labelled, report)``, which
    yields ``(first line, units, tags or None, line of each unit, example id, text)`` per sentence, or a
    ``_BadSentence`` for a malformed one (yielded, not raised: reading goes on with --skip_bad_lines)."""

    name = ""
    files: dict[str, tuple[str, ...]] = {}
    dev_falls_back_to_test = False
    writes_clue_predictions = False

    def __init__(self, skip_bad_lines: bool = False):
        self.skip_bad_lines = skip_bad_lines
        self.reports: dict[str, NerReport] = {}

    def data_file(self, data_dir: str, split: str) -> str:
        for name in self.files[split]:
            if tf.io.gfile.exists(os.path.join(data_dir, name)):
                return os.path.join(data_dir, name)
        if split == "dev" and self.dev_falls_back_to_test:
            path = self.data_file(data_dir, "test")
            print(f"note: task {self.name} has no dev file in {data_dir} (looked for {', '.join(self.files['dev'])});"
                  f" the dev set is {path}", flush=True)
            return path
        raise FileNotFoundError(f"task {self.name}: no {split} file in {data_dir} (looked for "
                                f"{', '.join(self.files[split])})")

    def get_examples(self, data_dir: str, split: str, tags: Sequence[str] | None = None) -> list[NerExample]:
        return self.read_file(self.data_file(data_dir, split), split, tags)

    def read_file(self, path: str, split: str, tags: Sequence[str] | None = None) -> list[NerExample]:
        """Reads ``path``; ``tags``: the tag set the tags must belong to (None: any BIO tag, as in training)."""
        lines = read_text_lines(path)  # a line that is not UTF-8 is an error naming it
        report = NerReport(path)
        allowed = set(tags) if tags is not None else None
        examples: list[NerExample] = []
        for position, parsed in enumerate(self._sentences(lines, labelled=split != "test", report=report)):
            try:
                if isinstance(parsed, _BadSentence):
                    raise parsed
                first, units, unit_tags, unit_lines, example_id, text = parsed
                if unit_tags is not None and allowed is not None:
                    for tag, line in zip(unit_tags, unit_lines):
                        if tag not in allowed:
                            err = _BadSentence(line, f"tag {tag!r} is not in the training data's tag set "
                                                     f"({' '.join(sorted(allowed))})")
                            err.units, err.example_id = units, example_id
                            raise err
            except _BadSentence as err:
                where = f"{path}:{err.line}: {err}"
                if not self.skip_bad_lines:
                    raise DataFormatError(f"{where} (pass --skip_bad_lines to skip malformed sentences)") from None
                report.bad.append(where)
                report.skipped.append(SkippedSentence(len(examples), f"{path}:{err.line}", err.units,
                                                      position if err.example_id is None else err.example_id))
                continue
            if unit_tags is not None:
                report.inconsistent += [f"{path}:{unit_lines[i]}: {unit_tags[i]} after {before}"
                                        for i, before in continuation_problems(unit_tags)]
            # the id without CLUENER's: the sentence's index in the file (skipped sentences count: ids stay the file's)
            examples.append(NerExample(f"{split}-{len(examples)}", units, unit_tags,
                                       position if example_id is None else example_id, first, text))
        self.reports[split] = report
        return examples

    def _sentences(self, lines: list[str], labelled: bool, report: NerReport) -> Iterator[tuple]:
        raise NotImplementedError


class BioProcessor(NerProcessor):
    """``unit TAG`` lines, a blank line after each sentence. Unlabelled (test) files may hold the unit alone."""

    def __init__(self, name: str, files: dict[str, tuple[str, ...]], dev_falls_back_to_test: bool = False,
                 skip_bad_lines: bool = False):
        super().__init__(skip_bad_lines)
        self.name, self.files, self.dev_falls_back_to_test = name, files, dev_falls_back_to_test

    def _sentences(self, lines, labelled, report):
        units: list[str] = []
        tags: list[str | None] = []
        numbers: list[int] = []
        raw: list[str | None] = []  # each line's unit (its first field), None where a line has too many fields
        separators: set[str] = set()
        error: _BadSentence | None = None
        for number, line in enumerate(lines + [""], start=1):
            if not line.strip(" \t"):
                if error is not None:
                    error.units = None if None in raw else raw
                if units or error:
                    yield error or (numbers[0], units, None if None in tags else tags, numbers, None, None)
                units, tags, numbers, raw, error = [], [], [], [], None
                continue
            fields = _SEPARATOR.split(line.strip(" \t"))
            raw.append(fields[0] if len(fields) <= 2 else None)
            if error is not None:
                continue  # the rest of a bad sentence
            try:
                if len(fields) == 2:
                    unit, tag = fields[0], check_tag(fields[1], number)
                    separators.add(_SEPARATOR.search(line.strip(" \t")).group()[0])
                elif len(fields) == 1 and not labelled:
                    unit, tag = fields[0], None
                elif len(fields) == 1:
                    raise _BadSentence(number, f"no tag: expected 'unit TAG', got {line!r}")
                else:
                    raise _BadSentence(number, f"{len(fields)} fields: expected 'unit TAG' (one space or tab "
                                               f"between), got {line!r}")
            except _BadSentence as err:
                error = err
                continue
            if tags and (tag is None) != (tags[-1] is None):
                error = _BadSentence(number, "some lines of this sentence have a tag and some do not")
                continue
            units.append(unit)
            tags.append(tag)
            numbers.append(number)
        report.separator = "\t" if "\t" in separators and " " not in separators else " "


class ClueNerProcessor(NerProcessor):
    """CLUENER2020 JSON lines; spans -> B-/I- tags on the text's characters."""

    name = "cluener"
    files = {"train": ("train.json",), "dev": ("dev.json",), "test": ("test.json",)}
    writes_clue_predictions = True

    def __init__(self, skip_bad_lines: bool = False):
        super().__init__(skip_bad_lines)

    def _sentences(self, lines, labelled, report):
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield self._row(line, number, labelled)
            except _BadSentence as err:
                yield err

    @staticmethod
    def _row(line: str, number: int, labelled: bool) -> tuple:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise _BadSentence(number, f"not JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            err = _BadSentence(number, "expected an object with a 'text' string")
            err.example_id = obj.get("id") if isinstance(obj, dict) else None
            raise err
        text = obj["text"]
        label = obj.get("label")
        try:
            if label is None and labelled:
                raise _BadSentence(number, "no 'label' field (train and dev rows need one)")
            tags = None if label is None else spans_to_tags(text, label, number)
        except _BadSentence as err:
            err.units, err.example_id = list(text), obj.get("id")
            raise
        return number, list(text), tags, [number] * len(text), obj.get("id"), text


def spans_to_tags(text: str, label: Any, line: int) -> list[str]:
    """CLUENER's ``{type: {entity: [[start, end], ...]}}`` (inclusive offsets) -> a BIO tag per character."""
    tags = [OUTSIDE] * len(text)
    if not isinstance(label, dict):
        raise _BadSentence(line, f"'label' is a JSON {type(label).__name__}, expected an object")
    for kind, entities in label.items():
        if not isinstance(entities, dict):
            raise _BadSentence(line, f"label[{kind!r}] is not an object of entity -> spans")
        for entity, spans in entities.items():
            for span in spans if isinstance(spans, list) else [None]:
                if not (isinstance(span, list) and len(span) == 2 and all(isinstance(x, int) for x in span)):
                    raise _BadSentence(line, f"label[{kind!r}][{entity!r}]: spans must be [start, end] pairs")
                start, end = span
                if not 0 <= start <= end < len(text):
                    raise _BadSentence(line, f"span [{start}, {end}] of {entity!r} is outside the text "
                                             f"({len(text)} characters)")
                if text[start:end + 1] != entity:
                    raise _BadSentence(line, f"span [{start}, {end}] holds {text[start:end + 1]!r}, not {entity!r}")
                if any(t != OUTSIDE for t in tags[start:end + 1]):
                    raise _BadSentence(line, f"span [{start}, {end}] ({kind} {entity!r}) overlaps another entity")
                tags[start:end + 1] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start)
    return tags


def _bio(name: str, train: Sequence[str], dev: Sequence[str], test: Sequence[str], dev_falls_back: bool = False):
    files = {"train": tuple(train), "dev": tuple(dev), "test": tuple(test)}
    return lambda skip_bad_lines=False: BioProcessor(name, files, dev_falls_back, skip_bad_lines)


PROCESSORS = {
    "peoples_daily_ner": _bio("peoples_daily_ner", ["example.train"], ["example.dev"], ["example.test"]),
    "msra_ner": _bio("msra_ner", ["msra_train_bio", "train.txt"], ["msra_dev_bio", "dev.txt"],
                     ["msra_test_bio", "test.txt"], dev_falls_back=True),
    "cluener": ClueNerProcessor,
}


def get_processor(task_name: str, skip_bad_lines: bool = False) -> NerProcessor:
    key = (task_name or "").lower()
    if key not in PROCESSORS:
        raise ValueError(f"--task_name: unknown NER task {task_name!r}; known: {', '.join(sorted(PROCESSORS))}")
    return PROCESSORS[key](skip_bad_lines=skip_bad_lines)


def tag_set(examples: Sequence[NerExample]) -> list[str]:
    """``O``, then ``B-type``, ``I-type`` for each entity type in ``examples`` (sorted)."""
    kinds = sorted({tag_type(t) for e in examples for t in e.tags or [] if t != OUTSIDE})
    return [OUTSIDE] + [f"{prefix}-{kind}" for kind in kinds for prefix in "BI"]


def bio_constraints(tags: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(allowed [K,K] from→to, allowed_start [K]): ``I-x`` only after ``B-x`` or ``I-x``, never first."""
    k = len(tags)
    allowed = np.ones((k, k), bool)
    allowed_start = np.ones(k, bool)
    for j, tag in enumerate(tags):
        if tag.startswith("I-"):
            allowed_start[j] = False
            for i, before in enumerate(tags):
                allowed[i, j] = before != OUTSIDE and tag_type(before) == tag_type(tag)
    return allowed, allowed_start


# ---------------------------------------------------------------------------------------------------------------------
# Windows and features
# ---------------------------------------------------------------------------------------------------------------------

def window_stride(max_seq_length: int, doc_stride: int) -> tuple[int, int]:
    """(window, stride) in pieces for --max_seq_length and --doc_stride (0: half a window). Consecutive windows must
    overlap: at a window's first piece the BIO constraints forbid ``I-x``, so an entity that crosses the start of a
    window with no overlap before it is split in two. Raises ValueError naming the flags and the fix."""
    window = max_seq_length - 2
    if window < 2:
        raise ValueError(f"--max_seq_length={max_seq_length} leaves windows of {max(window, 0)} piece(s) "
                         f"([CLS] and [SEP] take 2), too few to overlap: pass --max_seq_length >= 4")
    if doc_stride < 0:
        raise ValueError(f"--doc_stride={doc_stride} is negative: pass 0 (half a window) or 1 to {window - 1}")
    stride = doc_stride or window // 2
    if stride >= window:
        raise ValueError(f"--doc_stride={doc_stride} leaves no overlap between windows of --max_seq_length - 2 = "
                         f"{window} pieces (an entity across a window start would be split): pass a --doc_stride "
                         f"below {window}, or 0 for half a window ({window // 2})")
    return window, stride


def window_spans(num_pieces: int, window: int, stride: int) -> list[tuple[int, int]]:
    """[start, end) piece ranges: one when it fits, else starts 0, stride, 2·stride, ... and one ending at the end."""
    if not 1 <= stride < window:
        raise ValueError(f"window {window} and stride {stride}: need 1 <= stride < window (windows overlap)")
    if num_pieces <= window:
        return [(0, num_pieces)]
    starts = list(range(0, num_pieces - window, stride)) + [num_pieces - window]
    return [(s, s + window) for s in starts]


def best_window(position: int, spans: Sequence[tuple[int, int]]) -> int:
    """Index of the span where ``position`` has the most context, min(left, right); the first on ties."""
    best, best_context = -1, -1
    for i, (start, end) in enumerate(spans):
        if start <= position < end:
            context = min(position - start, end - 1 - position)
            if context > best_context:
                best, best_context = i, context
    return best


@dataclasses.dataclass
class Window:
    """One model input: example index, the units it labels and where (token positions, [CLS] = 0), and which of
    them it owns (it is their most-context window: their predicted tags come from here)."""
    example: int
    units: list[int]
    positions: list[int]
    owned: list[bool]


class WindowEncoder:
    """Units -> pieces (cached: units repeat), windows and their features."""

    def __init__(self, tokenizer: tokenization.FullTokenizer, max_seq_length: int, doc_stride: int = 0):
        self.tokenizer = tokenizer
        self.max_seq_length = max_seq_length
        self.window, self.stride = window_stride(max_seq_length, doc_stride)
        vocab = tokenizer.vocab
        self.unk_id = vocab.get(tokenization.UNK_TOKEN, vocab.get("<unk>", 0))
        self.cls_id, self.sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
        self._ids: dict[str, list[int]] = {}

    def unit_ids(self, unit: str) -> list[int]:
        ids = self._ids.get(unit)
        if ids is None:
            pieces = self.tokenizer.tokenize(unit)
            ids = self.tokenizer.convert_tokens_to_ids(pieces)[:self.window] if pieces else [self.unk_id]
            self._ids[unit] = ids
        return ids

    def encode(self, examples: Sequence[NerExample], tag_ids: dict[str, int] | None
               ) -> tuple[list[Window], dict[str, np.ndarray]]:
        """Windows of every example and their features (int32 arrays [N,T]; label ids 0 without tags)."""
        windows: list[Window] = []
        columns: dict[str, list[list[int]]] = {k: [] for k in ("input_ids", "input_mask", "segment_ids",
                                                                "label_ids", "label_mask")}
        t = self.max_seq_length
        for index, example in enumerate(examples):
            ids: list[int] = []
            firsts: list[int] = []  # piece position of each unit's first piece
            for unit in example.units:
                firsts.append(len(ids))
                ids.extend(self.unit_ids(unit))
            spans = window_spans(len(ids), self.window, self.stride)
            owner = [best_window(p, spans) for p in firsts]
            for w, (start, end) in enumerate(spans):
                units = [u for u, p in enumerate(firsts) if start <= p < end]
                positions = [firsts[u] - start + 1 for u in units]
                input_ids = [self.cls_id] + ids[start:end] + [self.sep_id]
                pad = t - len(input_ids)
                label_ids, label_mask = [0] * t, [0] * t
                for u, p in zip(units, positions):
                    label_mask[p] = 1
                    if example.tags is not None and tag_ids is not None:
                        label_ids[p] = tag_ids[example.tags[u]]
                columns["input_ids"].append(input_ids + [0] * pad)
                columns["input_mask"].append([1] * len(input_ids) + [0] * pad)
                columns["segment_ids"].append([0] * t)
                columns["label_ids"].append(label_ids)
                columns["label_mask"].append(label_mask)
                windows.append(Window(index, units, positions, [owner[u] == w for u in units]))
        return windows, {k: np.asarray(v, np.int32).reshape(-1, t) for k, v in columns.items()}


def assemble(examples: Sequence[NerExample], windows: Sequence[Window], predicted: np.ndarray,
             tags: Sequence[str]) -> list[list[str]]:
    """Per-window predicted tag ids [N,T] -> one tag per unit of every example, from its most-context window."""
    if len(windows) != len(predicted):
        raise ValueError(f"{len(predicted)} predictions for {len(windows)} windows")
    out: list[list[str | None]] = [[None] * len(e.units) for e in examples]
    for window, row in zip(windows, predicted):
        for unit, position, owned in zip(window.units, window.positions, window.owned):
            if owned:
                out[window.example][unit] = tags[int(row[position])]
    for example, row in zip(examples, out):
        missing = [i for i, tag in enumerate(row) if tag is None]
        if missing:
            raise AssertionError(f"{example.guid}: units {missing[:5]} got no prediction")
    return out  # type: ignore[return-value]


def owned_mask(windows: Sequence[Window], max_seq_length: int) -> np.ndarray:
    """[N,T] int32: 1 at the positions of the units each window owns (where their tags are taken from)."""
    mask = np.zeros((len(windows), max_seq_length), np.int32)
    for row, window in zip(mask, windows):
        row[[p for p, owned in zip(window.positions, window.owned) if owned]] = 1
    return mask


def scored_unit_sums(features: dict[str, tf.Tensor], out: dict[str, tf.Tensor]
                     ) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    """Eval (sums, counts) of loss and token accuracy over the units each window owns (``features["owned_mask"]``,
    see owned_mask): a unit of two overlapping windows counts once, in the window its tag comes from, as the entity
    scores count it. The CRF's log-likelihood is a whole window's: each window adds the share of its labelled units
    that it owns."""
    owned = tf.cast(features["owned_mask"], tf.float32)
    labels = tf.cast(features["label_ids"], tf.int32)
    if "log_likelihood" in out:
        labelled = tf.reduce_sum(tf.cast(features["label_mask"], tf.float32), -1)
        share = tf.reduce_sum(owned, -1) / tf.maximum(labelled, 1.0)
        loss = -tf.reduce_sum(tf.cast(out["log_likelihood"], tf.float32) * share)
    else:
        loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels, tf.cast(out["logits"], tf.float32)) * owned)
    correct = tf.cast(tf.equal(tf.cast(out["tags"], tf.int32), labels), tf.float32)
    n = tf.reduce_sum(owned)
    return {"loss": loss, "accuracy": tf.reduce_sum(correct * owned)}, {"loss": n, "accuracy": n}


def ner_features(max_seq_length: int) -> dict:
    """Feature spec of the tagger's TFRecords."""
    return {k: tf.io.FixedLenFeature([max_seq_length], tf.int64)
            for k in ("input_ids", "input_mask", "segment_ids", "label_ids", "label_mask")}


def write_records(path: str, features: dict[str, np.ndarray]) -> None:
    """Features (columns [N,T]) -> TFRecord at ``path`` (input_pipeline.write_int_records)."""
    input_pipeline.write_int_records(path, ({k: v[i] for k, v in features.items()}
                                            for i in range(len(features["input_ids"]))))


@dataclasses.dataclass
class NerSplit:
    """One split: examples, windows, and the TFRecord of the windows' features."""
    split: str
    path: str
    examples: list[NerExample]
    windows: list[Window]
    features_file: str


def load_split(processor: NerProcessor, data_dir: str, split: str, tags: Sequence[str] | None,
               encoder: WindowEncoder, cache_dir: str, *, vocab_file: str | None, spm_model_file: str | None,
               do_lower_case: bool, examples: list[NerExample] | None = None) -> NerSplit:
    """Reads ``split`` (unless ``examples`` are given), windows it, and writes its features unless a file with the
    same key (data file, vocab, casing, lengths, stride, tags) exists."""
    path = processor.data_file(data_dir, split)
    if examples is None:
        examples = processor.read_file(path, split, tags)
    print(f"{split}: " + processor.reports[split].summary(len(examples)), flush=True)
    if not examples:
        raise ValueError(f"{path}: no {split} sentences")
    tag_ids = {tag: i for i, tag in enumerate(tags)} if tags is not None else None
    windows, features = encoder.encode(examples, tag_ids)
    key, _ = feature_cache_key(path, task=f"{processor.name}/ner/stride={encoder.stride}", labels=list(tags or []),
                               max_seq_length=encoder.max_seq_length, vocab_file=vocab_file,
                               spm_model_file=spm_model_file, do_lower_case=do_lower_case,
                               skip_bad_lines=processor.skip_bad_lines)
    tf.io.gfile.makedirs(cache_dir)
    features_file = os.path.join(cache_dir, f"ner-{split}-{key}.tf_record")
    if not tf.io.gfile.exists(features_file):
        write_records(features_file, features)
    extra = len(windows) - len(examples)
    print(f"  {split}: {len(windows)} windows of max_seq_length={encoder.max_seq_length}"
          + (f" ({extra} extra for long sentences, stride {encoder.stride})" if extra else "")
          + f" -> {features_file}", flush=True)
    return NerSplit(split, path, examples, windows, features_file)


# ---------------------------------------------------------------------------------------------------------------------
# Metrics and outputs
# ---------------------------------------------------------------------------------------------------------------------

def entities(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, first, last) of each entity, conlleval's chunk rules for BIO (see the module docstring)."""
    found = []
    kind, begin = None, 0
    for i, tag in enumerate(list(tags) + [OUTSIDE]):
        this = tag_type(tag)
        starts = tag.startswith("B-") or (tag.startswith("I-") and this != kind)
        if kind is not None and (tag == OUTSIDE or starts):
            found.append((kind, begin, i - 1))
            kind = None
        if starts:
            kind, begin = this, i
    return found


def entity_scores(gold: Sequence[Sequence[str]], predicted: Sequence[Sequence[str]]) -> dict[str, dict[str, float]]:
    """{"overall" and each type: {precision, recall, f1, support (gold entities), predicted}}: exact span and type."""
    if len(gold) != len(predicted):
        raise ValueError(f"{len(gold)} gold sentences but {len(predicted)} predicted")
    gold_set, predicted_set = set(), set()
    for i, (g, p) in enumerate(zip(gold, predicted)):
        if len(g) != len(p):
            raise ValueError(f"sentence {i}: {len(g)} gold tags but {len(p)} predicted")
        gold_set.update((i,) + e for e in entities(g))
        predicted_set.update((i,) + e for e in entities(p))
    kinds = sorted({e[1] for e in gold_set | predicted_set})
    scores = {}
    for name, keep in [("overall", lambda e: True)] + [(k, lambda e, k=k: e[1] == k) for k in kinds]:
        g = {e for e in gold_set if keep(e)}
        p = {e for e in predicted_set if keep(e)}
        hit = len(g & p)
        precision = hit / len(p) if p else 0.0
        recall = hit / len(g) if g else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        scores[name] = {"precision": precision, "recall": recall, "f1": f1, "support": len(g), "predicted": len(p)}
    return scores


def format_scores(scores: dict[str, dict[str, float]]) -> str:
    """A seqeval-style table."""
    rows = [f"{'':>12} {'precision':>9} {'recall':>9} {'f1':>9} {'support':>8}"]
    for name, s in sorted(scores.items(), key=lambda kv: (kv[0] == "overall", kv[0])):
        rows.append(f"{name:>12} {s['precision']:9.4f} {s['recall']:9.4f} {s['f1']:9.4f} {s['support']:8d}")
    return "\n".join(rows)


def with_skipped(examples: Sequence[NerExample], predicted: Sequence[Sequence[str]],
                 skipped: Sequence[SkippedSentence] = ()) -> Iterator[tuple[NerExample | SkippedSentence,
                                                                             Sequence[str] | None]]:
    """(example, its tags) in file order, with each skipped sentence (tags None) where it stood."""
    if len(examples) != len(predicted):
        raise ValueError(f"{len(examples)} sentences but {len(predicted)} predicted")
    pending = sorted(skipped, key=lambda s: s.position)
    for index, (example, row) in enumerate(zip(examples, predicted)):
        while pending and pending[0].position <= index:
            yield pending.pop(0), None
        yield example, row
    for sentence in pending:
        yield sentence, None


def write_bio_predictions(path: str, examples: Sequence[NerExample], predicted: Sequence[Sequence[str]],
                          separator: str = " ", skipped: Sequence[SkippedSentence] = ()) -> None:
    """``unit TAG`` lines, a blank line after each sentence: the test file's units, in its order. A sentence that
    --skip_bad_lines dropped (``skipped``) keeps its place: its units tagged ``O``, or a ``# skipped: file:line``
    line when its units cannot be told."""
    with tf.io.gfile.GFile(path, "w") as f:
        for sentence, row in with_skipped(examples, predicted, skipped):
            if row is not None:
                f.write("".join(f"{unit}{separator}{tag}\n" for unit, tag in zip(sentence.units, row, strict=True)))
            elif sentence.units:
                f.write("".join(f"{unit}{separator}{OUTSIDE}\n" for unit in sentence.units))
            else:
                f.write(f"# skipped: {sentence.where}\n")
            f.write("\n")


def clue_label(text: str, tags: Sequence[str]) -> dict[str, dict[str, list[list[int]]]]:
    """Entities of one sentence in CLUENER's ``{type: {entity: [[start, end], ...]}}``."""
    label: dict[str, dict[str, list[list[int]]]] = {}
    for kind, first, last in entities(tags):
        label.setdefault(kind, {}).setdefault(text[first:last + 1], []).append([first, last])
    return label


def write_clue_predictions(path: str, examples: Sequence[NerExample], predicted: Sequence[Sequence[str]],
                           skipped: Sequence[SkippedSentence] = ()) -> None:
    """CLUE's NER submission format: ``{"id": .., "label": {type: {entity: [[start, end]]}}}`` a line, one per
    test sentence: one that --skip_bad_lines dropped (``skipped``) keeps its id, with an empty label."""
    with tf.io.gfile.GFile(path, "w") as f:
        for sentence, row in with_skipped(examples, predicted, skipped):
            if row is None:
                label = {}
            else:
                label = clue_label(sentence.text if sentence.text is not None else "".join(sentence.units), row)
            f.write(json.dumps({"id": sentence.example_id, "label": label}, ensure_ascii=False) + "\n")
