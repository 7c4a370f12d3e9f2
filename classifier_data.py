"""Classification task data: processors (task files -> examples), feature conversion with a cache, outputs.

Processors. One class per file format, one registry entry per task (``PROCESSORS``); adding a task is a
subclass (or an instance of an existing one with other file names/labels) and a ``register`` call. How each task's
rows become ``InputExample(text_a, text_b, label)``:

=====================  ============================================  ==============================================
task                   files (in --data_dir)                         row -> text_a / text_b / label
=====================  ============================================  ==============================================
lcqmc_pair (lcqmc)     train.txt dev.txt test.txt                    ``a \\t b \\t label``; labels 0 1
sentence_pair          train_0827.tsv dev_0827.tsv test_0827.tsv     ``label \\t a \\t b``; labels 0 1
text_classification    train.tsv dev.tsv test.tsv                    ``label \\t text`` -> text_a; labels: the
(sentiment)                                                          sorted label values of train + dev
xnli                   CLUE: train.json dev.json test.json           CLUE: premise / hypo / label;
                       BERT: multinli/multinli.train.zh.tsv (or in   BERT: train: ``premise \\t hypo \\t label``
                       data_dir), xnli.dev.tsv, xnli.test.tsv        ("contradictory" -> "contradiction");
                                                                     dev/test: only rows whose column 0
                                                                     (language) is ``zh``; text_a = column 6
                                                                     (sentence1), text_b = column 7 (sentence2),
                                                                     label = column 1 (gold_label)
afqmc                  train.json dev.json test.json (CLUE)          sentence1 / sentence2 / label; labels 0 1
tnews                  "                                             sentence / - / label (as the original);
                                                                     CLUE's 15 codes 100..116 without 105, 111
tnews_keywords         "                                             sentence / keywords (when non-empty) / label
iflytek                "                                             sentence / - / label; labels 0..118
cmnli                  "                                             sentence1 / sentence2 / label; rows
                                                                     labelled "-" (no gold label) are left out
csl                    "                                             keywords joined by spaces / abst / label;
                                                                     labels 0 1
wsc                    "                                             text with span1 (the candidate) wrapped in
                                                                     ``_..._`` and span2 (the pronoun) in
                                                                     ``[...]`` / - / label; labels true false
copa                   "                                             as the original: two examples per row,
                                                                     premise / choice (cause: choice / premise),
                                                                     label 1 for the right choice, else 0;
                                                                     copa_predict.json: the choice with the
                                                                     higher P(1)
copa_one               "                                             premise + a cue for the question ("原因是什么？"
                                                                     for cause, "结果是什么？" for effect) /
                                                                     "choice0：… choice1：…" with both choices /
                                                                     label = the right choice (0 or 1), so one
                                                                     example (and one prediction) per CLUE row
=====================  ============================================  ==============================================

TSV files are split on tabs (no quoting, like the original's ``csv`` reader with ``quotechar=None``), blank lines are
ignored. A header is *detected*, not assumed (the original skipped the first line of every file, dropping the first
example of header-less LCQMC files): the first row is a header when its label field is not a label and looks like a
column name (an ASCII identifier such as ``label`` or ``gold_label``); for tasks whose labels come from the data,
when that value also occurs in no other row. Test files may lack the label column (or hold a dummy label): their
examples get ``label=None`` unless the value is a valid label. CLUE's test.json has no labels and an ``id`` that
``<task>_predict.json`` reports.

A malformed row (wrong column count, a label outside the task's list, bad JSON, a missing field, WSC spans that are
not in the text) raises ``DataFormatError`` naming the file and line; with ``skip_bad_lines`` it is counted,
reported and left out.

Features: BERT's ``[CLS] a [SEP] (b [SEP])`` with segment ids 0/1, the longer of the pair truncated first, zero
padding; TFRecords with the original's feature names (``input_pipeline.classifier_features``), cached under
``<output_dir>/features/`` in a file named by a hash of everything that determines them (see ``feature_cache_key``),
so a changed data file, vocab, casing, max_seq_length, task or label list makes new features.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import time
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import tensorflow as tf

import tokenization

SPLITS = ("train", "dev", "test")
# Bump when the conversion below changes, so caches made by older code are not reused.
FEATURE_FORMAT_VERSION = 2  # 2: literal [SEP]/[MASK]/... in the text are text (split_special_tokens)
_COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .-]*$")


class DataFormatError(ValueError):
    """A row of a task file that does not fit the task's format; the message starts with ``file:line:``."""


class _BadRow(ValueError):
    """Raised by row parsers; the reader adds file and line."""


@dataclasses.dataclass
class InputExample:
    """One example (BERT's names). ``label`` is None for unlabelled test rows; ``example_id`` is CLUE's ``id`` (else
    the example's index in its file), for ``<task>_predict.json``; ``line`` is its line in the file."""
    guid: str
    text_a: str
    text_b: str | None = None
    label: str | None = None
    example_id: Any = None
    line: int = 0


@dataclasses.dataclass
class ReadReport:
    """What reading one file found besides the examples."""
    path: str
    header: bool = False
    bad_lines: list[str] = dataclasses.field(default_factory=list)  # "file:line: reason"
    left_out: int = 0  # rows the task leaves out on purpose (cmnli "-", other XNLI languages)

    def summary(self, num_examples: int) -> str:
        parts = [f"{num_examples} examples from {self.path}"]
        if self.header:
            parts.append("header line skipped")
        if self.left_out:
            parts.append(f"{self.left_out} rows left out by the task")
        if self.bad_lines:
            parts.append(f"{len(self.bad_lines)} malformed lines skipped (--skip_bad_lines), e.g. "
                         + "; ".join(self.bad_lines[:3]))
        return ", ".join(parts)


def _looks_like_column_name(value: str) -> bool:
    return bool(_COLUMN_NAME.match(value.strip()))


def split_lines(text: str | bytes) -> list:
    """Lines split at ``\n`` only (a ``\r`` before it is dropped), as the original's readers did. ``str.splitlines``
    would also split at U+2028/U+2029/U+0085 and \x0b/\x0c/\x1c-\x1e, which occur inside Chinese web text and
    valid JSON strings. Bytes split the same way (``\n`` never occurs inside a UTF-8 sequence)."""
    newline, carriage = ("\n", "\r") if isinstance(text, str) else (b"\n", b"\r")
    lines = text.split(newline)
    if lines and not lines[-1]:
        lines.pop()
    return [line[:-1] if line.endswith(carriage) else line for line in lines]


def read_text_lines(path: str, undecodable: list[str] | None = None) -> list[str | None]:
    """Every line of ``path`` (local or gs://), split at ``\n`` only (see split_lines), a UTF-8 BOM dropped.

    A line that is not UTF-8 raises DataFormatError naming ``path:line``; with an ``undecodable`` list it is
    recorded there instead and comes back as None (line numbers stay those of the file).
    """
    with tf.io.gfile.GFile(path, "rb") as f:
        data = f.read()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return split_lines(data.decode("utf-8"))
    except UnicodeDecodeError:
        pass  # find the line: split the bytes, then decode line by line
    lines: list[str | None] = []
    for number, raw in enumerate(split_lines(data), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            where = f"{path}:{number}: not UTF-8 ({err.reason} at byte {err.start} of the line)"
            if undecodable is None:
                raise DataFormatError(f"{where}; convert the file to UTF-8 (e.g. iconv -f GBK -t UTF-8)") from None
            undecodable.append(where)
            lines.append(None)
    return lines


def _read_lines(path: str, undecodable: list[str] | None = None) -> Iterator[tuple[int, str]]:
    """(1-based line number, line without its newline) for every non-blank line (see read_text_lines)."""
    for number, line in enumerate(read_text_lines(path, undecodable), start=1):
        if line is not None and line.strip():
            yield number, line


# ---------------------------------------------------------------------------------------------------------------------
# Processors
# ---------------------------------------------------------------------------------------------------------------------

class DataProcessor:
    """Base class: file names per split, the label list, and the row reader.

    Subclasses implement ``_rows(path)`` -> (line number, raw row) and ``_parse(row, split)`` -> (text_a, text_b,
    label or None, example id or None), or None to leave the row out; ``_parse`` raises ``_BadRow`` for a
    malformed row. ``labels`` None: the subclass reads them from the data (TextClassificationProcessor).
    """

    name = ""
    files: dict[str, tuple[str, ...]] = {}  # split -> candidate paths relative to data_dir, first found wins
    labels: tuple[str, ...] | None = None
    is_clue = False  # writes <task>_predict.json in CLUE's submission format

    def __init__(self, skip_bad_lines: bool = False):
        self.skip_bad_lines = skip_bad_lines
        self.reports: dict[str, ReadReport] = {}
        # Lines that are not UTF-8, while a file is read with skip_bad_lines (None: they raise DataFormatError).
        self._undecodable: list[str] | None = [] if skip_bad_lines else None

    # -- files and labels ------------------------------------------------------------------------------------
    def data_file(self, data_dir: str, split: str) -> str:
        """The file of ``split`` in ``data_dir``; FileNotFoundError naming the candidates when none exists."""
        candidates = [os.path.join(data_dir, name) for name in self.files[split]]
        for path in candidates:
            if tf.io.gfile.exists(path):
                return path
        raise FileNotFoundError(f"task {self.name}: no {split} file in {data_dir} (looked for "
                                f"{', '.join(self.files[split])})")

    def has_file(self, data_dir: str, split: str) -> bool:
        try:
            self.data_file(data_dir, split)
            return True
        except FileNotFoundError:
            return False

    def get_labels(self, data_dir: str | None = None) -> list[str]:
        """The task's label list (index = label id)."""
        if self.labels is None:
            raise NotImplementedError(f"task {self.name}: a processor without a fixed label list must read them "
                                      f"from the data (see TextClassificationProcessor)")
        return list(self.labels)

    # -- examples ---------------------------------------------------------------------------------------------
    def get_train_examples(self, data_dir: str) -> list[InputExample]:
        return self.get_examples(data_dir, "train")

    def get_dev_examples(self, data_dir: str) -> list[InputExample]:
        return self.get_examples(data_dir, "dev")

    def get_test_examples(self, data_dir: str) -> list[InputExample]:
        return self.get_examples(data_dir, "test")

    def get_examples(self, data_dir: str, split: str) -> list[InputExample]:
        """Reads ``split``; bad rows raise DataFormatError (or are counted in ``self.reports[split]``)."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        path = self.data_file(data_dir, split)
        return self.read_file(path, split)

    def read_file(self, path: str, split: str) -> list[InputExample]:
        report = ReadReport(path)
        self._undecodable = [] if self.skip_bad_lines else None
        rows = list(self._rows(path))
        report.bad_lines += self._undecodable or []
        labelled = split != "test"
        valid = self._valid_labels()
        if rows and self._is_header(rows, split, valid):
            report.header = True
            rows = rows[1:]
        examples: list[InputExample] = []
        for number, row in rows:
            try:
                parsed = self._parse(row, split)
                if parsed is None:
                    report.left_out += 1
                    continue
                parsed = parsed if isinstance(parsed, list) else [parsed]  # a row may give several examples
                parsed = [(a, b, self._check_label(label, labelled, valid), i) for a, b, label, i in parsed]
            except _BadRow as err:
                where = f"{path}:{number}: {err}"
                if not self.skip_bad_lines:
                    raise DataFormatError(f"{where} (pass --skip_bad_lines to skip malformed lines)") from None
                report.bad_lines.append(where)
                continue
            row_id = len(examples)
            for text_a, text_b, label, example_id in parsed:
                index = len(examples)
                examples.append(InputExample(guid=f"{split}-{index}", text_a=text_a, text_b=text_b, label=label,
                                             example_id=row_id if example_id is None else example_id, line=number))
        self.reports[split] = report
        return examples

    def _valid_labels(self) -> set[str] | None:
        """The labels rows are checked against; None while data-derived labels are being collected."""
        return set(self.labels) if self.labels is not None else None

    def _check_label(self, label: str | None, labelled: bool, valid: set[str] | None) -> str | None:
        if not labelled:  # a test file's label column may hold a dummy: keep it only when it is a label
            return label if label is not None and (valid is None or label in valid) else None
        if label is None or label == "":
            raise _BadRow("no label")
        if valid is not None and label not in valid:
            raise _BadRow(f"label {label!r} is not one of the task's labels {sorted(valid)}")
        return label

    def _is_header(self, rows: list[tuple[int, Any]], split: str, valid: set[str] | None) -> bool:
        """Header rows exist only in TSV tasks (see TsvProcessor)."""
        return False

    def _rows(self, path: str) -> Iterator[tuple[int, Any]]:
        raise NotImplementedError

    def clue_predictions(self, examples: Sequence[InputExample], probabilities: np.ndarray,
                         labels: Sequence[str]) -> list[dict]:
        """CLUE's submission records, ``{"id", "label"}``: one per example, its most probable label."""
        if len(examples) != len(probabilities):
            raise ValueError(f"{len(examples)} examples but {len(probabilities)} predictions")
        return [{"id": e.example_id, "label": labels[int(np.argmax(row))]} for e, row in zip(examples, probabilities)]

    def _parse(self, row: Any, split: str) -> tuple[str, str | None, str | None, Any] | None:
        raise NotImplementedError


def _split_files(train: str, dev: str, test: str) -> dict[str, tuple[str, ...]]:
    return {"train": (train,), "dev": (dev,), "test": (test,)}


class TsvProcessor(DataProcessor):
    """Tab-separated rows; ``layout`` names each column: "a", "b", "label" or None (ignored).

    A row must have exactly ``len(layout)`` columns (at least, when ``extra_columns``); a test row may also lack the
    label column.
    """

    layout: tuple[str | None, ...] = ("a", "b", "label")
    extra_columns = False

    def _rows(self, path: str) -> Iterator[tuple[int, list[str]]]:
        for number, line in _read_lines(path, self._undecodable):
            yield number, line.split("\t")

    def layout_for(self, split: str) -> tuple[str | None, ...]:
        return self.layout

    def _fields(self, row: list[str], split: str) -> dict[str, str]:
        layout = self.layout_for(split)
        n = len(layout)
        if split == "test" and len(row) == n - 1 and "label" in layout and not self.extra_columns:
            layout = tuple(c for c in layout if c != "label")
        elif len(row) < n or (len(row) > n and not self.extra_columns):
            names = " TAB ".join(c or "_" for c in layout)
            raise _BadRow(f"{len(row)} tab-separated columns, expected {n} ({names})")
        return {name: row[i].strip() for i, name in enumerate(layout) if name is not None}

    def _parse(self, row: list[str], split: str):
        fields = self._fields(row, split)
        return fields["a"], fields.get("b"), fields.get("label"), None

    def _is_header(self, rows, split, valid) -> bool:
        """The first row's label field is no label and looks like a column name (and, for data-derived labels, is
        used by no other row). A test file without a label column: every field is a column name."""
        first, layout = rows[0][1], self.layout_for(split)
        if "label" not in layout:
            return False
        index = layout.index("label")
        if len(first) <= index or (split == "test" and len(first) == len(layout) - 1 and not self.extra_columns):
            return all(_looks_like_column_name(v) for v in first)
        value = first[index].strip()
        if not _looks_like_column_name(value):
            return False
        if valid is not None:
            return value not in valid
        return all(len(r) <= index or r[index].strip() != value for _, r in rows[1:])


class LcqmcProcessor(TsvProcessor):
    """LCQMC, as the original's ``lcqmc_pair``: ``text_a \\t text_b \\t label``."""
    name = "lcqmc_pair"
    files = _split_files("train.txt", "dev.txt", "test.txt")
    labels = ("0", "1")
    layout = ("a", "b", "label")


class SentencePairProcessor(TsvProcessor):
    """The original's ``sentence_pair``: ``label \\t text_a \\t text_b``."""
    name = "sentence_pair"
    files = _split_files("train_0827.tsv", "dev_0827.tsv", "test_0827.tsv")
    labels = ("0", "1")
    layout = ("label", "a", "b")


class TextClassificationProcessor(TsvProcessor):
    """Single sentences, ``label \\t text``; the labels are the sorted label values of train + dev."""
    name = "text_classification"
    files = _split_files("train.tsv", "dev.tsv", "test.tsv")
    labels = None
    layout = ("label", "a")

    def __init__(self, skip_bad_lines: bool = False):
        super().__init__(skip_bad_lines)
        self._labels: list[str] | None = None

    def get_labels(self, data_dir: str | None = None) -> list[str]:
        """The label values of the train and dev files, sorted. A file's first row counts only when its label is
        used by another row of either file or does not look like a column name (else it is a header)."""
        if self._labels is None:
            if data_dir is None:
                raise ValueError(f"task {self.name} reads its labels from the data: pass data_dir")
            index = self.layout.index("label")
            found, first_rows = set(), set()
            for split in ("train", "dev"):
                if self.has_file(data_dir, split):
                    rows = [row for _, row in self._rows(self.data_file(data_dir, split)) if len(row) > index]
                    found.update(row[index].strip() for row in rows[1:])
                    first_rows.update(row[index].strip() for row in rows[:1])
            found |= {v for v in first_rows if not _looks_like_column_name(v)}
            found.discard("")
            if not found:
                raise FileNotFoundError(f"task {self.name}: the labels come from the train/dev files, and {data_dir} "
                                        f"has no labelled rows in {', '.join(self.files['train'] + self.files['dev'])}")
            self._labels = sorted(found)
        return list(self._labels)

    def use_labels(self, labels: Sequence[str]) -> None:
        """Sets the labels (e.g. those a trained model recorded) instead of reading them from train/dev."""
        self._labels = list(labels)

    def get_examples(self, data_dir: str, split: str) -> list[InputExample]:
        if self._labels is None and (self.has_file(data_dir, "train") or self.has_file(data_dir, "dev")):
            self.get_labels(data_dir)  # headers are told from data by the label list
        return super().get_examples(data_dir, split)

    def _valid_labels(self) -> set[str] | None:
        return set(self._labels) if self._labels is not None else None


class XnliProcessor(TsvProcessor):
    """XNLI in CLUE's layout (train/dev/test.json: premise, hypo, label; found first, as the original albert_zh's
    CLUE script reads it) or in BERT's TSV layout, Chinese only (see the module docstring)."""
    name = "xnli"
    language = "zh"
    files = {"train": ("train.json", f"multinli/multinli.train.{language}.tsv", f"multinli.train.{language}.tsv"),
             "dev": ("dev.json", "xnli.dev.tsv"), "test": ("test.json", "xnli.test.tsv")}

    def __init__(self, skip_bad_lines: bool = False):
        super().__init__(skip_bad_lines)
        self._clue = ClueProcessor("xnli", self.labels, "premise", "hypo", skip_bad_lines)

    def read_file(self, path: str, split: str) -> list[InputExample]:
        if not path.endswith(".json"):
            return super().read_file(path, split)
        self.is_clue = True  # CLUE's files: xnli_predict.json in CLUE's submission format too
        examples = self._clue.read_file(path, split)
        self.reports[split] = self._clue.reports[split]
        return examples
    labels = ("contradiction", "entailment", "neutral")
    # xnli.dev/test.tsv columns: language, gold_label, 4 parse columns, sentence1, sentence2, ids, genre, ...
    layout = ("language", "label", None, None, None, None, "a", "b")
    train_layout = ("a", "b", "label")
    extra_columns = True

    def layout_for(self, split: str) -> tuple[str | None, ...]:
        return self.train_layout if split == "train" else self.layout  # MultiNLI's translation: three columns

    def _parse(self, row, split):
        fields = self._fields(row, split)
        if split != "train" and fields["language"] != self.language:
            return None
        label = fields.get("label")
        if label == "contradictory":
            label = "contradiction"
        return fields["a"], fields["b"], label, None


class JsonLinesProcessor(DataProcessor):
    """CLUE's format: one JSON object a line in train.json / dev.json / test.json."""
    files = _split_files("train.json", "dev.json", "test.json")
    is_clue = True

    def _rows(self, path: str) -> Iterator[tuple[int, Any]]:
        for number, line in _read_lines(path, self._undecodable):
            yield number, line

    @staticmethod
    def json_object(row: str) -> dict:
        try:
            obj = json.loads(row)
        except json.JSONDecodeError as err:
            raise _BadRow(f"not JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(obj, dict):
            raise _BadRow(f"a JSON {type(obj).__name__}, expected an object")
        return obj

    def _parse(self, row: str, split: str):
        obj = self.json_object(row)
        label = obj.get("label")
        if isinstance(label, bool):
            label = "true" if label else "false"
        label = None if label is None else str(label)
        texts = self.texts(obj)
        if texts is None:
            return None
        return texts[0], texts[1], label, obj.get("id")

    @staticmethod
    def field(obj: dict, key: str) -> Any:
        if key not in obj:
            raise _BadRow(f"no {key!r} field (has {sorted(obj)})")
        return obj[key]

    def texts(self, obj: dict) -> tuple[str, str | None] | None:
        """(text_a, text_b) of a row, or None to leave it out."""
        raise NotImplementedError


class ClueProcessor(JsonLinesProcessor):
    """A CLUE task whose text_a/text_b are fields as they are (``text_b_key`` None: single sentence)."""

    def __init__(self, name: str, labels: Sequence[str], text_a_key: str, text_b_key: str | None = None,
                 skip_bad_lines: bool = False):
        super().__init__(skip_bad_lines)
        self.name, self.labels = name, tuple(labels)
        self.text_a_key, self.text_b_key = text_a_key, text_b_key

    def texts(self, obj):
        b = None if self.text_b_key is None else str(self.field(obj, self.text_b_key))
        return str(self.field(obj, self.text_a_key)), b


class CmnliProcessor(ClueProcessor):
    """CMNLI: rows whose label is "-" (annotators did not agree) have no gold label and are left out."""

    def __init__(self, skip_bad_lines: bool = False):
        super().__init__("cmnli", ("contradiction", "entailment", "neutral"), "sentence1", "sentence2",
                         skip_bad_lines)

    def texts(self, obj):
        return None if obj.get("label") == "-" else super().texts(obj)


class TnewsProcessor(ClueProcessor):
    """TNEWS: the title is the one text, as in the original albert_zh's CLUE script (task ``tnews``); task
    ``tnews_keywords`` adds the keywords (comma-separated, often empty) as text_b when there are any."""

    def __init__(self, skip_bad_lines: bool = False, keywords: bool = False):
        labels = [str(100 + i) for i in range(17) if i not in (5, 11)]
        super().__init__("tnews_keywords" if keywords else "tnews", labels, "sentence", None, skip_bad_lines)
        self.keywords = keywords

    def texts(self, obj):
        keywords = str(obj.get("keywords") or "").strip() if self.keywords else ""
        return str(self.field(obj, "sentence")), keywords or None


class CslProcessor(JsonLinesProcessor):
    """CSL: are these keywords the paper's? text_a = the keywords joined by spaces, text_b = the abstract."""
    name = "csl"
    labels = ("0", "1")

    def texts(self, obj):
        keywords = self.field(obj, "keyword")
        if not isinstance(keywords, list):
            raise _BadRow(f"'keyword' is a {type(keywords).__name__}, expected a list")
        return " ".join(str(k) for k in keywords), str(self.field(obj, "abst"))


class WscProcessor(JsonLinesProcessor):
    """CLUEWSC: does the pronoun (span2) refer to the candidate (span1)? Both spans are marked in the text
    (candidate ``_..._``, pronoun ``[...]``, as CLUE's baseline marks them) and the text is the single input."""
    name = "wsc"
    labels = ("true", "false")

    def texts(self, obj):
        text = str(self.field(obj, "text"))
        target = self.field(obj, "target")
        if not isinstance(target, dict):
            raise _BadRow("'target' is not an object")
        spans = []
        for key, (left, right) in (("span1", ("_", "_")), ("span2", ("[", "]"))):
            span, index = self.field(target, f"{key}_text"), self.field(target, f"{key}_index")
            if not isinstance(index, int):
                raise _BadRow(f"target {key}_index is {index!r}, expected an integer")
            start = self._locate(text, str(span), index, key)
            spans.append((start, start + len(str(span)), left, right))
        # Insert from the right so the earlier offsets stay valid.
        for start, end, left, right in sorted(spans, reverse=True):
            text = text[:start] + left + text[start:end] + right + text[end:]
        return text, None

    @staticmethod
    def _locate(text: str, span: str, index: int, key: str) -> int:
        """The span's offset: ``index`` when the text has the span there, else its nearest occurrence (some
        CLUEWSC rows are off by a character); a span not in the text at all is a malformed row."""
        if text[index:index + len(span)] == span:
            return index
        found = [m.start() for m in re.finditer(re.escape(span), text)] if span else []
        if not found:
            raise _BadRow(f"target {key}_text {span!r} does not occur in the text")
        return min(found, key=lambda s: abs(s - index))


class CopaProcessor(JsonLinesProcessor):
    """CLUE COPA as the original albert_zh's CLUE script: two binary examples per row, one per choice, in the order
    of time ((premise, choice) for an effect, (choice, premise) for a cause), label "1" for the right choice. Dev
    accuracy counts these examples, as the original's did; copa_predict.json gives each row the choice whose
    P("1") is higher."""
    name = "copa"
    labels = ("0", "1")

    def _parse(self, row: str, split: str):
        obj = self.json_object(row)
        question = self.field(obj, "question")
        if question not in ("cause", "effect"):
            raise _BadRow(f"question {question!r} is neither 'cause' nor 'effect'")
        premise = str(self.field(obj, "premise"))
        label = obj.get("label")
        label = None if label is None else str(label)
        if label is not None and label not in ("0", "1"):
            raise _BadRow(f"label {label!r} is not a choice (0 or 1)")
        examples = []
        for index in (0, 1):
            choice = str(self.field(obj, f"choice{index}"))
            a, b = (premise, choice) if question == "effect" else (choice, premise)
            examples.append((a, b, None if label is None else str(int(label == str(index))), obj.get("id")))
        return examples

    def clue_predictions(self, examples, probabilities, labels):
        if len(examples) != len(probabilities) or len(examples) % 2:
            raise ValueError(f"{len(examples)} examples and {len(probabilities)} predictions: expected two per row")
        right = list(labels).index("1")
        return [{"id": examples[i].example_id, "label": str(int(probabilities[i + 1][right] > probabilities[i][right]))}
                for i in range(0, len(examples), 2)]


class CopaOneExampleProcessor(JsonLinesProcessor):
    """CLUE COPA, one example per row (task ``copa_one``): text_a = premise + a cue for the question, text_b = both
    choices; label = the right choice's index."""
    name = "copa_one"
    labels = ("0", "1")
    cues = {"cause": "原因是什么？", "effect": "结果是什么？"}

    def texts(self, obj):
        question = self.field(obj, "question")
        if question not in self.cues:
            raise _BadRow(f"question {question!r} is neither 'cause' nor 'effect'")
        premise = str(self.field(obj, "premise"))
        choices = f"choice0：{self.field(obj, 'choice0')} choice1：{self.field(obj, 'choice1')}"
        return premise + self.cues[question], choices


def _clue(name: str, labels: Sequence[str], a: str, b: str | None = None) -> Callable[[bool], DataProcessor]:
    return lambda skip_bad_lines=False: ClueProcessor(name, labels, a, b, skip_bad_lines)


# task name -> factory(skip_bad_lines). To add a task: a processor class (or a _clue(...) line) and an entry here.
PROCESSORS: dict[str, Callable[..., DataProcessor]] = {
    "lcqmc_pair": LcqmcProcessor,
    "lcqmc": LcqmcProcessor,
    "sentence_pair": SentencePairProcessor,
    "text_classification": TextClassificationProcessor,
    "sentiment": TextClassificationProcessor,
    "xnli": XnliProcessor,
    "afqmc": _clue("afqmc", ("0", "1"), "sentence1", "sentence2"),
    "tnews": TnewsProcessor,
    "tnews_keywords": lambda skip_bad_lines=False: TnewsProcessor(skip_bad_lines, keywords=True),
    "iflytek": _clue("iflytek", [str(i) for i in range(119)], "sentence"),
    "cmnli": CmnliProcessor,
    "csl": CslProcessor,
    "wsc": WscProcessor,
    "copa": CopaProcessor,
    "copa_one": CopaOneExampleProcessor,
}


def register(name: str, factory: Callable[..., DataProcessor]) -> None:
    """Adds a task (``factory(skip_bad_lines=...)`` -> a DataProcessor) under ``name``."""
    PROCESSORS[name.lower()] = factory


def get_processor(task_name: str, skip_bad_lines: bool = False) -> DataProcessor:
    key = (task_name or "").lower()
    if key not in PROCESSORS:
        raise ValueError(f"--task_name: unknown task {task_name!r}; known: {', '.join(sorted(PROCESSORS))}")
    return PROCESSORS[key](skip_bad_lines=skip_bad_lines)


# ---------------------------------------------------------------------------------------------------------------------
# Features
# ---------------------------------------------------------------------------------------------------------------------

def truncate_pair(tokens_a: list[str], tokens_b: list[str], max_length: int) -> bool:
    """Pops tokens from the end of the longer list (b on ties, as the original, BERT and HF) until both fit; True
    when something was cut.

    The longer one first: a token of a short text tends to carry more of its meaning.
    """
    cut = False
    while len(tokens_a) + len(tokens_b) > max_length:
        (tokens_a if len(tokens_a) > len(tokens_b) else tokens_b).pop()
        cut = True
    return cut


def encode_text(tokenizer: tokenization.FullTokenizer, text_a: str, text_b: str | None, max_seq_length: int,
                pad: bool = True) -> tuple[list[int], list[int], list[int], bool]:
    """``[CLS] a [SEP] (b [SEP])`` -> (input_ids, input_mask, segment_ids, truncated), zero-padded when ``pad``."""
    tokens_a = tokenizer.tokenize(text_a)
    tokens_b = tokenizer.tokenize(text_b) if text_b else []
    specials = 3 if tokens_b else 2  # a text_b with no tokens (e.g. only spaces) is a single text, as the original
    if max_seq_length < specials + 1:
        raise ValueError(f"max_seq_length={max_seq_length} leaves no room for text")
    truncated = truncate_pair(tokens_a, tokens_b, max_seq_length - specials)
    tokens = ["[CLS]"] + tokens_a + ["[SEP]"]
    segment_ids = [0] * len(tokens)
    if tokens_b:
        tokens += tokens_b + ["[SEP]"]
        segment_ids += [1] * (len(tokens_b) + 1)
    input_ids = tokenizer.convert_tokens_to_ids(tokens)
    input_mask = [1] * len(input_ids)
    if pad:
        padding = [0] * (max_seq_length - len(input_ids))
        input_ids, input_mask, segment_ids = input_ids + padding, input_mask + padding, segment_ids + padding
    return input_ids, input_mask, segment_ids, truncated


def convert_example(example: InputExample, label_map: dict[str, int], max_seq_length: int,
                    tokenizer: tokenization.FullTokenizer) -> tuple[dict[str, list[int]], bool]:
    """One example -> (features with the original's names, truncated). Unlabelled examples get label id 0; every
    example is real (``is_real_example`` 1): eval and predict never pad with fake examples here."""
    input_ids, input_mask, segment_ids, truncated = encode_text(tokenizer, example.text_a, example.text_b,
                                                                max_seq_length)
    if example.label is not None and example.label not in label_map:
        raise ValueError(f"{example.guid} (line {example.line}): label {example.label!r} is not in the label list "
                         f"{list(label_map)}")
    label_id = label_map[example.label] if example.label is not None else 0
    return {"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids,
            "label_ids": [label_id], "is_real_example": [1]}, truncated


def _file_identity(path: str) -> dict[str, Any]:
    stat = tf.io.gfile.stat(path)
    return {"path": os.path.abspath(path) if "://" not in path else path, "size": stat.length,
            "mtime_ns": stat.mtime_nsec}


def _content_hash(path: str | None) -> str | None:
    """sha1 of a (small) vocab or SentencePiece file: the same vocab under another path reuses features."""
    if not path:
        return None
    with tf.io.gfile.GFile(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


def feature_cache_key(data_file: str, *, task: str, labels: Sequence[str], max_seq_length: int,
                      vocab_file: str | None, spm_model_file: str | None, do_lower_case: bool,
                      skip_bad_lines: bool) -> tuple[str, dict[str, Any]]:
    """(hash, what it hashes): the data file (path, size, mtime), the vocab (content), casing, max_seq_length,
    task, label list, whether bad lines are skipped, and FEATURE_FORMAT_VERSION."""
    settings = {"data_file": _file_identity(data_file), "task": task.lower(), "labels": list(labels),
                "max_seq_length": max_seq_length, "vocab_sha1": _content_hash(vocab_file),
                "spm_sha1": _content_hash(spm_model_file), "do_lower_case": bool(do_lower_case),
                "skip_bad_lines": bool(skip_bad_lines), "format_version": FEATURE_FORMAT_VERSION}
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode("utf-8")).hexdigest()[:16]
    return digest, settings


def write_features(examples: Sequence[InputExample], labels: Sequence[str], max_seq_length: int,
                   tokenizer: tokenization.FullTokenizer, path: str, name: str = "",
                   progress_every: int = 10000) -> int:
    """Converts ``examples`` to a TFRecord at ``path`` (written to a temporary name, then renamed, so an interrupted
    run leaves no half file that a later run would take for a cache). Prints progress; returns the truncated count."""
    label_map = {label: i for i, label in enumerate(labels)}
    tmp = f"{path}.tmp-{os.getpid()}"
    truncated, start = 0, time.time()
    with tf.io.TFRecordWriter(tmp) as writer:
        for i, example in enumerate(examples):
            if i and i % progress_every == 0:
                print(f"  {name} features: {i}/{len(examples)} examples ({time.time() - start:.1f}s)", flush=True)
            features, cut = convert_example(example, label_map, max_seq_length, tokenizer)
            truncated += cut
            feature = {k: tf.train.Feature(int64_list=tf.train.Int64List(value=v)) for k, v in features.items()}
            writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    tf.io.gfile.rename(tmp, path, overwrite=True)
    print(f"  {name} features: {len(examples)}/{len(examples)} examples, {truncated} truncated to "
          f"max_seq_length={max_seq_length} ({time.time() - start:.1f}s) -> {path}", flush=True)
    return truncated


@dataclasses.dataclass
class SplitData:
    """One split, read and converted: its examples (in file order) and the TFRecord holding their features."""
    split: str
    examples: list[InputExample]
    features_file: str
    from_cache: bool

    @property
    def num_examples(self) -> int:
        return len(self.examples)


def load_split(processor: DataProcessor, data_dir: str, split: str, labels: Sequence[str],
               tokenizer: tokenization.FullTokenizer, max_seq_length: int, cache_dir: str, *,
               vocab_file: str | None, spm_model_file: str | None, do_lower_case: bool) -> SplitData:
    """Reads ``split`` (printing what was read) and returns its features file, converting only when no cached file
    has the same key (``feature_cache_key``)."""
    path = processor.data_file(data_dir, split)
    examples = processor.get_examples(data_dir, split)
    print(f"{split}: " + processor.reports[split].summary(len(examples)), flush=True)
    if not examples:
        raise ValueError(f"{path}: no {split} examples")
    key, settings = feature_cache_key(path, task=processor.name, labels=labels, max_seq_length=max_seq_length,
                                      vocab_file=vocab_file, spm_model_file=spm_model_file,
                                      do_lower_case=do_lower_case, skip_bad_lines=processor.skip_bad_lines)
    tf.io.gfile.makedirs(cache_dir)
    features_file = os.path.join(cache_dir, f"{split}-{key}.tf_record")
    meta_file = features_file + ".json"
    if tf.io.gfile.exists(features_file) and tf.io.gfile.exists(meta_file):
        try:
            with tf.io.gfile.GFile(meta_file) as f:
                meta = json.load(f)
        except (json.JSONDecodeError, UnicodeDecodeError):  # a half-written cache (older code): stale, convert again
            print(f"  {split} features: {meta_file} is unreadable; converting again", flush=True)
            meta = {}
        if meta.get("num_examples") == len(examples):
            print(f"  {split} features: cached {features_file} ({len(examples)} examples)", flush=True)
            return SplitData(split, examples, features_file, from_cache=True)
    truncated = write_features(examples, labels, max_seq_length, tokenizer, features_file, split)
    with tf.io.gfile.GFile(meta_file + ".tmp", "w") as f:  # renamed when complete: a kill leaves no half cache
        json.dump({"num_examples": len(examples), "truncated": truncated, "settings": settings}, f,
                  ensure_ascii=False, indent=1)
    tf.io.gfile.rename(meta_file + ".tmp", meta_file, overwrite=True)
    return SplitData(split, examples, features_file, from_cache=False)


# ---------------------------------------------------------------------------------------------------------------------
# Metrics and outputs
# ---------------------------------------------------------------------------------------------------------------------

def classification_metrics(probabilities: np.ndarray, label_ids: np.ndarray, num_labels: int) -> dict[str, float]:
    """accuracy, loss (mean cross-entropy) and macro_f1 of predictions against gold ids.

    macro_f1 averages F1 = 2TP / (2TP + FP + FN) over the classes present in the gold labels or the predictions
    (a class in neither has no defined F1), as scikit-learn's f1_score(average="macro") does.
    """
    probabilities = np.asarray(probabilities, np.float64)
    label_ids = np.asarray(label_ids, np.int64)
    predicted = probabilities.argmax(-1)
    gold_p = probabilities[np.arange(len(label_ids)), label_ids]
    f1s = []
    for c in range(num_labels):
        tp = int(np.sum((predicted == c) & (label_ids == c)))
        fp = int(np.sum((predicted == c) & (label_ids != c)))
        fn = int(np.sum((predicted != c) & (label_ids == c)))
        if tp + fp + fn:
            f1s.append(2 * tp / (2 * tp + fp + fn))
    return {"accuracy": float(np.mean(predicted == label_ids)),
            "loss": float(-np.mean(np.log(np.maximum(gold_p, 1e-30)))),
            "macro_f1": float(np.mean(f1s)) if f1s else 0.0}


def write_test_results(path: str, probabilities: np.ndarray) -> None:
    """test_results.tsv as the original wrote it: one line per example, its class probabilities tab-separated."""
    with tf.io.gfile.GFile(path, "w") as f:
        for row in probabilities:
            f.write("\t".join(repr(float(p)) for p in row) + "\n")


def write_clue_predictions(path: str, examples: Sequence[InputExample], probabilities: np.ndarray,
                           labels: Sequence[str], processor: DataProcessor | None = None) -> None:
    """CLUE's submission format: one ``{"id": ..., "label": "<label>"}`` JSON line per test row (``processor``
    decides how examples make rows; by default one example is one row)."""
    records = (processor or DataProcessor()).clue_predictions(examples, probabilities, labels)
    with tf.io.gfile.GFile(path, "w") as f:
        f.write("".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))


def num_train_steps(num_examples: int, epochs: float, batch_size: int) -> int:
    """ceil(examples × epochs / batch), at least 1 (the original's int() rounded a last partial batch away)."""
    return max(1, math.ceil(num_examples * epochs / batch_size))


__all__ = ["DataFormatError", "DataProcessor", "InputExample", "PROCESSORS", "SplitData", "classification_metrics",
           "convert_example", "encode_text", "feature_cache_key", "get_processor", "load_split", "num_train_steps",
           "register", "truncate_pair", "write_clue_predictions", "write_features", "write_test_results"]
