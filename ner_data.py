"""Named-entity recognition data: task readers, the tag set, windows over long sentences, entity metrics, outputs.

Tasks (``--task_name`` of run_ner.py; files in ``--data_dir``, the first name found wins; ``--train_file``,
``--dev_file``, ``--test_file`` name any file instead):

=================  ========================================  =======================================================
task               files                                     format
=================  ========================================  =======================================================
peoples_daily_ner  example.train example.dev example.test,   one ``char TAG`` a line (space or tab between), a blank
                   else train.txt dev.txt test.txt (ymcui's  line after each sentence (*column* format); BIO tags
                   split)                                    (``O``, ``B-PER``, ``I-PER``, ...)
msra_ner           msra_train_bio / train.txt /              column format (the BIO copies of MSRA-NER that
                   train_sentences.txt,                      circulate under these names), or lemonhu's *pair*
                   msra_dev_bio / dev.txt /                  format: ``*sentences*.txt``, one sentence a line, units
                   val_sentences.txt / dev_sentences.txt,    between spaces, and beside it the same name with
                   msra_test_bio / test.txt /                ``tags`` for ``sentences`` (``val_tags.txt``), its tags
                   test_sentences.txt (also ``train/``,      aligned 1:1 (``<split>/sentences.txt`` + ``tags.txt``
                   ``val/``, ``dev/``, ``test/`` +           too). MSRA has no official dev set: without a dev
                   ``sentences.txt``)                        file, dev is the test file (a note says so)
cluener            train.json dev.json test.json             CLUENER2020: ``{"id": .., "text": .., "label": {type:
                                                             {entity: [[start, end], ...]}}}`` a line, offsets into
                                                             ``text`` inclusive; test.json unlabelled. Spans become
                                                             B-/I- tags on the text's characters
weibo_ner          weiboNER_2nd_conll.train/.dev/.test,      column format, BIO over PER.NAM, PER.NOM, LOC.NAM, ...
                   else train.txt dev.txt test.txt           (types keep their dots); each unit is a character with
                                                             a segmentation digit glued on (``科0``): see below
resume_ner         train.char.bmes dev.char.bmes             column format, BMES tags (``B-NAME``, ``M-NAME``,
                   test.char.bmes                            ``E-NAME``, ``S-NAME``, ``O``)
conll_ner          train.txt dev.txt test.txt                column (or pair) format, any tag scheme: any other
                                                             character-level NER data
=================  ========================================  =======================================================

Every task but cluener reads both file formats and every tag scheme (tag_schemes.py): BIO, BIOES (BILOU's L-/U-
as E-/S-) and BMES. Each file's scheme is detected from its tags (``--tag_scheme`` imposes one); inside, tags are
BIO (B->B, I/M->I, E->I, S->B), and ``test_predictions.txt`` is written back in the test file's scheme (the
training file's when the test file has no tags), so a file read and written back with its own tags is the same
file. A tag invalid for the scheme (an ``E-`` in a BIO file, ``M-`` and ``I-`` mixed, a BMES file read with
``--tag_scheme=bio``) is an error naming file and line. A file whose every unit is one character followed by one
ASCII digit (Weibo NER's segmentation marks) is read as the characters (a note says so); the predictions keep the
digits. A JSON file given to a column task, a line with more than two fields, or a sentences file whose tags file
is missing or has another count of units is an error that says which formats are supported.

A *unit* is what one line of a BIO file holds (a character; some files hold a Latin word or a number) or one
character of a CLUENER text. Labels sit on units. Each unit is tokenized on its own (WordPiece may split a Latin
word into several pieces; whitespace, which the vocab has no piece for, becomes ``[UNK]``): its first piece carries
the label, the other pieces are masked out of the loss and of decoding.

Tag set: ``O`` first, then for each entity type found in the training file (sorted) ``B-type`` and ``I-type``;
saved as ``tag_list.txt`` in the output directory and used for eval and predict. Tags that are not ``O`` or a
letter of the file's scheme, a dash and a type, a line without a tag, a dev/test tag outside the training
tag set, CLUENER spans outside the text, whose entity string differs from the text, or that cross (a span inside
a longer one is left out, counted and named in the summary: BIO has one entity per character): each raises
``DataFormatError`` naming file and line (``--skip_bad_lines`` drops the sentence instead; in a test file it keeps
its place in the predictions, see write_bio_predictions and write_clue_predictions). An ``I-type`` that
does not continue a ``B-type``/``I-type`` of the same type (in BIOES/BMES also an ``E-`` that closes nothing, a
``B-`` that nothing closes) is *reported* (counted, the first few named with file and line), not changed: the
metrics read its BIO form the way conlleval does (an ``I-`` that continues nothing starts an entity).

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
import tag_schemes
import tokenization
from classifier_data import DataFormatError, feature_cache_key, read_text_lines

SPLITS = ("train", "dev", "test")
OUTSIDE = "O"
_SEPARATOR = re.compile(r"[ \t]+")
REPORTED_PER_FILE = 5  # inconsistencies and skipped lines named in a file's summary
FORMATS = ("supported: 'unit TAG' lines with a blank line after each sentence, *sentences*.txt + *tags*.txt pairs, "
           "CLUENER's JSON lines (--task_name=cluener); tags: " + tag_schemes.SUPPORTED)


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
    source_units: list[str] | None = None  # the units as the file writes them, where reading changed them (Weibo)


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
    nested: list[str] = dataclasses.field(default_factory=list)  # CLUENER spans inside a longer one, not tagged
    separator: str = " "
    skipped: list[SkippedSentence] = dataclasses.field(default_factory=list)
    scheme: str = "bio"  # the file's tag scheme (tag_schemes.SCHEMES), the one its predictions are written in
    scheme_source: str = "detected"  # how it was chosen, for the summary and errors
    companion: str | None = None  # the tags file of a sentences/tags pair

    def summary(self, num_examples: int) -> str:
        parts = [f"{num_examples} sentences from {self.path}"
                 + (f" + {self.companion}" if self.companion else "")
                 + f" ({self.scheme.upper()} tags, {self.scheme_source})"]
        if self.inconsistent:
            parts.append(f"{len(self.inconsistent)} tags out of {self.scheme.upper()} sequence (kept as they are, "
                         f"read as conlleval reads their BIO form: an I- that continues no entity starts one), "
                         f"e.g. " + "; ".join(self.inconsistent[:REPORTED_PER_FILE]))
        if self.nested:
            parts.append(f"{len(self.nested)} entities nested inside a longer one left out (BIO tags one entity "
                         f"per character; the outer one is kept), e.g. " + "; ".join(self.nested[:REPORTED_PER_FILE]))
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
    """``tag`` if it is a tag of some supported scheme (tag_schemes.split_tag), else a _BadSentence."""
    try:
        tag_schemes.split_tag(tag)
    except ValueError as err:
        raise _BadSentence(line, f"{err} ({FORMATS})") from None
    return tag


def tag_type(tag: str) -> str | None:
    return None if tag == OUTSIDE else tag[2:]


# ---------------------------------------------------------------------------------------------------------------------
# Processors
# ---------------------------------------------------------------------------------------------------------------------

class NerProcessor:
    """File names per split and a reader; subclasses implement ``_sentences(lines, labelled, report)``, which
    yields ``(first line, units, tags or None, line of each unit, example id, text)`` per sentence, or a
    ``_BadSentence`` for a malformed one (yielded, not raised: reading goes on with --skip_bad_lines).

    ``tag_scheme``: ``auto`` (each file's own, tag_schemes.detect) or a tag_schemes.SCHEMES name every file must
    follow. ``overrides``: {split: path} read instead of the task's file names in the data directory.
    ``train_scheme``: the training data's scheme (set by reading the train split, or by the caller from a saved
    run): breaks detection ties and is the scheme of a file without tags."""

    name = ""
    files: dict[str, tuple[str, ...]] = {}
    dev_falls_back_to_test = False
    writes_clue_predictions = False
    fixed_scheme: str | None = None  # the task's format defines the tags (CLUENER's spans)
    drops_glued_digits = False  # Weibo NER's segmentation digits (read_file)

    def __init__(self, skip_bad_lines: bool = False, tag_scheme: str = "auto",
                 overrides: dict[str, str] | None = None):
        if tag_scheme != "auto" and tag_scheme not in tag_schemes.SCHEMES:
            raise ValueError(f"--tag_scheme={tag_scheme}: expected auto or one of {', '.join(tag_schemes.SCHEMES)}")
        self.skip_bad_lines = skip_bad_lines
        self.tag_scheme = tag_scheme
        self.overrides = dict(overrides or {})
        self.train_scheme: str | None = None
        self.dev_is_test = False
        self.reports: dict[str, NerReport] = {}

    def data_file(self, data_dir: str | None, split: str) -> str:
        if split in self.overrides:
            return self.overrides[split]
        for name in self.files[split] if data_dir else ():
            if tf.io.gfile.exists(os.path.join(data_dir, name)):
                return os.path.join(data_dir, name)
        if split == "dev" and self.dev_falls_back_to_test:
            path = self.data_file(data_dir, "test")
            print(f"note: task {self.name} has no dev file in {data_dir} (looked for {', '.join(self.files['dev'])});"
                  f" the dev set is {path}", flush=True)
            self.dev_is_test = True
            return path
        where = f"in {data_dir} (looked for {', '.join(self.files[split])})" if data_dir else "(no --data_dir)"
        raise FileNotFoundError(f"task {self.name}: no {split} file {where}; --{split}_file names one anywhere")

    def get_examples(self, data_dir: str | None, split: str, tags: Sequence[str] | None = None) -> list[NerExample]:
        return self.read_file(self.data_file(data_dir, split), split, tags)

    def read_file(self, path: str, split: str, tags: Sequence[str] | None = None) -> list[NerExample]:
        """Reads ``path``, its tags in BIO (from its scheme, see choose_scheme); ``tags``: the BIO tag set they must
        belong to (None: any, as in training)."""
        report = NerReport(path)
        parsed = list(self._parse(path, labelled=split != "test", report=report))
        good = [p for p in parsed if not isinstance(p, _BadSentence)]
        scheme = self.choose_scheme(path, [p[2] for p in good if p[2] is not None], report)
        if split == "train":
            self.train_scheme = scheme.name
        glued = self.drops_glued_digits and glued_digits([p[1] for p in good])
        if glued:
            print(f"note: every unit of {path} is a character followed by a digit (Weibo NER's segmentation marks, "
                  f"e.g. {good[0][1][0]!r}): each unit is read as its character, predictions keep the digits",
                  flush=True)
        allowed = set(tags) if tags is not None else None
        examples: list[NerExample] = []
        for position, parsed_sentence in enumerate(parsed):
            try:
                if isinstance(parsed_sentence, _BadSentence):
                    raise parsed_sentence
                first, units, unit_tags, unit_lines, example_id, text = parsed_sentence
                bio = None if unit_tags is None else self._to_bio(unit_tags, unit_lines, scheme, report, allowed)
            except _BadSentence as err:
                if err.units is None and not isinstance(parsed_sentence, _BadSentence):
                    err.units, err.example_id = units, example_id
                where = f"{path}:{err.line}: {err}"
                if not self.skip_bad_lines:
                    raise DataFormatError(f"{where} (pass --skip_bad_lines to skip malformed sentences)") from None
                report.bad.append(where)
                report.skipped.append(SkippedSentence(len(examples), f"{path}:{err.line}", err.units,
                                                      position if err.example_id is None else err.example_id))
                continue
            if unit_tags is not None:
                report.inconsistent += [f"{path}:{unit_lines[i]}: {what}"
                                        for i, what in tag_schemes.sequence_problems(unit_tags, scheme)]
            source = None
            if glued:
                source, units = units, [u[0] for u in units]
            # the id without CLUENER's: the sentence's index in the file (skipped sentences count: ids stay the file's)
            examples.append(NerExample(f"{split}-{len(examples)}", units, bio,
                                       position if example_id is None else example_id, first, text, source))
        self.reports[split] = report
        return examples

    def choose_scheme(self, path: str, tag_lists: list[list[str]], report: NerReport) -> tag_schemes.Scheme:
        """The scheme ``path``'s tags are read in: the task's, --tag_scheme's, else detected from the tags (ties:
        a ``.bmes`` name, then the training data's scheme), or the training data's for a file without tags."""
        if self.fixed_scheme or self.tag_scheme != "auto":
            name = self.fixed_scheme or self.tag_scheme
            report.scheme, report.scheme_source = name, ("the task's format" if self.fixed_scheme
                                                         else f"--tag_scheme={name}")
        elif not tag_lists:
            report.scheme = self.train_scheme or "bio"
            report.scheme_source = ("no tags: predictions in the training data's scheme" if self.train_scheme
                                    else "no tags, no training data's scheme known: BIO")
        else:
            prefer = (["bmes"] if path.lower().endswith(".bmes") else []) + [self.train_scheme or "bio"]
            scheme, ties = tag_schemes.detect(tag_lists, prefer)
            report.scheme = scheme.name
            others = "/".join(t.upper() for t in ties[1:])
            report.scheme_source = f"detected; its tags also fit {others}" if others else "detected"
        return tag_schemes.SCHEMES[report.scheme]

    def _to_bio(self, unit_tags: list[str], unit_lines: list[int], scheme: tag_schemes.Scheme, report: NerReport,
                allowed: set[str] | None) -> list[str]:
        bad = tag_schemes.invalid(unit_tags, scheme)
        if bad:
            tag = unit_tags[bad[0]]
            mixed = "; M- and I- mixed in one file" if {tag[0], scheme.inside} == {"I", "M"} else ""
            raise _BadSentence(unit_lines[bad[0]], f"tag {tag!r} is not {scheme.title}, this file's scheme "
                                                   f"({report.scheme_source}{mixed}; {FORMATS})")
        bio = tag_schemes.to_bio(unit_tags)
        if allowed is not None:
            for tag, original, line in zip(bio, unit_tags, unit_lines):
                if tag not in allowed:
                    shown = repr(tag) if tag == original else f"{original!r} ({tag} in BIO)"
                    raise _BadSentence(line, f"tag {shown} is not in the training data's tag set "
                                             f"({' '.join(sorted(allowed))})")
        return bio

    def _parse(self, path: str, labelled: bool, report: NerReport) -> Iterator[tuple | _BadSentence]:
        return self._sentences(read_text_lines(path), labelled, report)  # a line not UTF-8 is an error naming it

    def _sentences(self, lines: list[str], labelled: bool, report: NerReport) -> Iterator[tuple]:
        raise NotImplementedError


def glued_digits(sentences: Sequence[Sequence[str]]) -> bool:
    """Whether every unit is one character and one ASCII digit (Weibo NER: ``科0``); a file of two-digit numbers
    alone is not."""
    units = [u for s in sentences for u in s]
    return (bool(units) and all(len(u) == 2 and u[1] in "0123456789" for u in units)
            and not all(u[0] in "0123456789" for u in units))


def parallel_tags_path(path: str) -> str | None:
    """The tags file of a sentences file (``val_sentences.txt`` -> ``val_tags.txt``, ``train/sentences.txt`` ->
    ``train/tags.txt``), None when the name has no ``sentences``."""
    name = os.path.basename(path)
    return os.path.join(os.path.dirname(path), name.replace("sentences", "tags")) if "sentences" in name else None


class BioProcessor(NerProcessor):
    """``unit TAG`` lines, a blank line after each sentence; unlabelled (test) files may hold the unit alone. A file
    whose name holds ``sentences`` and that has a sibling named with ``tags`` instead is one sentence a line (units
    between spaces), its tags aligned in the sibling (lemonhu's MSRA copy); a test file of whole sentences a line
    with such a name needs no tags file."""

    drops_glued_digits = True

    def __init__(self, name: str, files: dict[str, tuple[str, ...]], dev_falls_back_to_test: bool = False,
                 skip_bad_lines: bool = False, tag_scheme: str = "auto", overrides: dict[str, str] | None = None):
        super().__init__(skip_bad_lines, tag_scheme, overrides)
        self.name, self.files, self.dev_falls_back_to_test = name, files, dev_falls_back_to_test

    def _parse(self, path, labelled, report):
        lines = read_text_lines(path)
        first = next((line for line in lines if line.strip()), "")
        tags_path = parallel_tags_path(path)
        # a pair: the tags file is there, or (a test file's tags are optional) the lines hold whole sentences
        if tags_path is not None and (tf.io.gfile.exists(tags_path)
                                      or (not labelled and len(_SEPARATOR.split(first.strip(" \t"))) > 2)):
            return self._parallel(path, lines, tags_path, report)
        if first.lstrip().startswith(("{", "[")):  # a whole-file mistake: one error, not one per sentence
            raise DataFormatError(f"{path}:{lines.index(first) + 1}: JSON, but task {self.name} reads 'unit TAG' "
                                  f"lines ({FORMATS})")
        return self._sentences(lines, labelled, report)

    def _parallel(self, path: str, lines: list[str], tags_path: str, report: NerReport) -> Iterator[tuple]:
        lines = [line.strip(" \t") for line in lines]
        has_tags = tf.io.gfile.exists(tags_path)
        tag_lines = [line.strip(" \t") for line in read_text_lines(tags_path)] if has_tags else None
        if tag_lines is not None:
            report.companion = tags_path
            while lines and not lines[-1]:
                lines.pop()
            while tag_lines and not tag_lines[-1]:
                tag_lines.pop()
            if len(lines) != len(tag_lines):
                raise DataFormatError(f"{path} has {len(lines)} sentence lines but {tags_path} has {len(tag_lines)} "
                                      f"tag lines: they must be aligned line by line")
        for number, line in enumerate(lines, start=1):
            units = _SEPARATOR.split(line) if line else []
            tags = None
            if tag_lines is not None:
                tags = _SEPARATOR.split(tag_lines[number - 1]) if tag_lines[number - 1] else []
                if len(tags) != len(units):
                    err = _BadSentence(number, f"{len(units)} units but {tags_path}:{number} has {len(tags)} tags")
                    err.units = units
                    yield err
                    continue
                try:
                    for tag in tags:
                        check_tag(tag, number)
                except _BadSentence as err:
                    err.units = units
                    yield err
                    continue
            if units:
                yield number, units, tags, [number] * len(units), None, None

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
                                               f"between), got {line!r}; files with more columns are not read: "
                                               f"keep the unit and its tag ({FORMATS})")
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
    fixed_scheme = "bio"

    def _sentences(self, lines, labelled, report):
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                yield self._row(line, number, labelled, report)
            except _BadSentence as err:
                yield err

    @staticmethod
    def _row(line: str, number: int, labelled: bool, report: NerReport) -> tuple:
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise _BadSentence(number, f"not JSON ({err.msg} at column {err.colno}); task cluener reads CLUENER's "
                                       f"JSON lines ({FORMATS})") from None
        if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
            err = _BadSentence(number, "expected an object with a 'text' string")
            err.example_id = obj.get("id") if isinstance(obj, dict) else None
            raise err
        text = obj["text"]
        label = obj.get("label")
        try:
            if label is None and labelled:
                raise _BadSentence(number, "no 'label' field (train and dev rows need one)")
            tags, nested = (None, []) if label is None else spans_to_tags(text, label, number)
        except _BadSentence as err:
            err.units, err.example_id = list(text), obj.get("id")
            raise
        report.nested += [f"{report.path}:{number}: {span}" for span in nested]
        return number, list(text), tags, [number] * len(text), obj.get("id"), text


def spans_to_tags(text: str, label: Any, line: int) -> tuple[list[str], list[str]]:
    """CLUENER's ``{type: {entity: [[start, end], ...]}}`` (inclusive offsets) -> a BIO tag per character, and the
    spans dropped because they lie inside a longer one (BIO tags one entity per character: the outer one is kept,
    as in CLUENER's own train.json line 1507, a company name inside a book title). Spans that cross (overlap
    without one containing the other) are an error: neither reading is the file's."""
    if not isinstance(label, dict):
        raise _BadSentence(line, f"'label' is a JSON {type(label).__name__}, expected an object")
    spans = []
    for kind, entities in label.items():
        if not isinstance(entities, dict):
            raise _BadSentence(line, f"label[{kind!r}] is not an object of entity -> spans")
        for entity, entity_spans in entities.items():
            for span in entity_spans if isinstance(entity_spans, list) else [None]:
                if not (isinstance(span, list) and len(span) == 2 and all(isinstance(x, int) for x in span)):
                    raise _BadSentence(line, f"label[{kind!r}][{entity!r}]: spans must be [start, end] pairs")
                start, end = span
                if not 0 <= start <= end < len(text):
                    raise _BadSentence(line, f"span [{start}, {end}] of {entity!r} is outside the text "
                                             f"({len(text)} characters)")
                if text[start:end + 1] != entity:
                    raise _BadSentence(line, f"span [{start}, {end}] holds {text[start:end + 1]!r}, not {entity!r}")
                spans.append((start, end, kind, entity))
    tags, owner = [OUTSIDE] * len(text), [None] * len(text)
    nested = []
    for start, end, kind, entity in sorted(spans, key=lambda s: s[0] - s[1]):  # longest first
        holders = set(owner[start:end + 1])
        if holders != {None}:
            outer = next(iter(holders - {None}))
            if len(holders) == 1 and outer[0] <= start and end <= outer[1]:
                nested.append(f"{kind} {entity!r} [{start}, {end}] inside {outer[2]} {outer[3]!r}")
                continue
            raise _BadSentence(line, f"span [{start}, {end}] ({kind} {entity!r}) crosses another entity")
        tags[start:end + 1] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start)
        owner[start:end + 1] = [(start, end, kind, entity)] * (end - start + 1)
    return tags, nested


def _bio(name: str, train: Sequence[str], dev: Sequence[str], test: Sequence[str], dev_falls_back: bool = False):
    files = {"train": tuple(train), "dev": tuple(dev), "test": tuple(test)}
    return lambda **kwargs: BioProcessor(name, files, dev_falls_back, **kwargs)


def _lemonhu(split: str) -> list[str]:
    return [f"{split}_sentences.txt", f"{split}/sentences.txt"]


PROCESSORS = {
    "peoples_daily_ner": _bio("peoples_daily_ner", ["example.train", "train.txt"], ["example.dev", "dev.txt"],
                              ["example.test", "test.txt"]),
    "msra_ner": _bio("msra_ner", ["msra_train_bio", "train.txt", *_lemonhu("train")],
                     ["msra_dev_bio", "dev.txt", *_lemonhu("val"), *_lemonhu("dev")],
                     ["msra_test_bio", "test.txt", *_lemonhu("test")], dev_falls_back=True),
    "cluener": ClueNerProcessor,
    "weibo_ner": _bio("weibo_ner", ["weiboNER_2nd_conll.train", "train.txt"], ["weiboNER_2nd_conll.dev", "dev.txt"],
                      ["weiboNER_2nd_conll.test", "test.txt"]),
    "resume_ner": _bio("resume_ner", ["train.char.bmes"], ["dev.char.bmes"], ["test.char.bmes"]),
    "conll_ner": _bio("conll_ner", ["train.txt"], ["dev.txt"], ["test.txt"]),
}


def get_processor(task_name: str, skip_bad_lines: bool = False, tag_scheme: str = "auto",
                  overrides: dict[str, str] | None = None) -> NerProcessor:
    """The task's processor; ``tag_scheme`` and ``overrides``: see NerProcessor."""
    key = (task_name or "").lower()
    if key not in PROCESSORS:
        raise ValueError(f"--task_name: unknown NER task {task_name!r}; known: {', '.join(sorted(PROCESSORS))}")
    return PROCESSORS[key](skip_bad_lines=skip_bad_lines, tag_scheme=tag_scheme, overrides=overrides)


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


def load_split(processor: NerProcessor, data_dir: str | None, split: str, tags: Sequence[str] | None,
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
    companion = processor.reports[split].companion  # a tags file: its changes must not reuse stale features
    if companion:
        stat = tf.io.gfile.stat(companion)
        companion = f"/tags={companion}:{stat.length}:{stat.mtime_nsec}"
    key, _ = feature_cache_key(path, task=f"{processor.name}/ner/stride={encoder.stride}{companion or ''}",
                               labels=list(tags or []),
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
    return tag_schemes.chunks(tags)


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
                          separator: str = " ", skipped: Sequence[SkippedSentence] = (), scheme: str = "bio") -> None:
    """``unit TAG`` lines, a blank line after each sentence: the test file's units as it writes them (Weibo's
    digits kept), in its order, the BIO tags ``predicted`` written in ``scheme`` (tag_schemes.from_bio). A sentence
    that --skip_bad_lines dropped (``skipped``) keeps its place: its units tagged ``O``, or a ``# skipped:
    file:line`` line when its units cannot be told."""
    with tf.io.gfile.GFile(path, "w") as f:
        for sentence, row in with_skipped(examples, predicted, skipped):
            if row is not None:
                units = sentence.source_units or sentence.units
                tags = tag_schemes.from_bio(row, scheme)
                f.write("".join(f"{unit}{separator}{tag}\n" for unit, tag in zip(units, tags, strict=True)))
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
