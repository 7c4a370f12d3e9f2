"""Classification task data: processors (task files -> examples), feature conversion with a cache, outputs.

Processors. One class per file format, one registry entry per task (``PROCESSORS``); adding a task is a
subclass (or an instance of an existing one with other file names/labels) and a ``register`` call. How each task's
rows become ``InputExample(text_a, text_b, label)`` (the formats are also each processor's ``format_help``, which
a file in another format names in its error):

=====================  ============================================  ==============================================
task                   files (in --data_dir)                         row -> text_a / text_b / label
=====================  ============================================  ==============================================
lcqmc_pair (lcqmc)     train.txt dev.txt test.txt                    ``a \\t b \\t label``, no header; labels 0 1
bq (bq_corpus)         train.tsv dev.tsv test.tsv (or .txt)          BQ corpus, LCQMC's layout; labels 0 1
sentence_pair          train_0827.tsv dev_0827.tsv test_0827.tsv     ``label \\t a \\t b``; labels 0 1
chnsenticorp           train.tsv dev.tsv test.tsv                    ``label \\t a`` under the header
                                                                     ``label \\t text_a`` (ERNIE, Chinese-BERT-wwm);
                                                                     labels 0 1 (1 positive); other copies' headers
                                                                     (``qid \\t text_a``, ``qid \\t label \\t
                                                                     text_a``, ``text_a \\t label``) are mapped
text_classification    train.tsv dev.tsv test.tsv                    ``label \\t text`` -> text_a; labels: the
(sentiment)                                                          sorted label values of train + dev
xnli                   CLUE: train.json dev.json test.json           each file's form is told from its content:
                       BERT: multinli/multinli.train.zh.tsv (or in   CLUE: premise / hypo / label;
                       data_dir), xnli.dev.tsv, xnli.test.tsv        BERT: train: ``premise \\t hypo \\t label``;
                       ERNIE / ChineseGLUE: train.tsv dev.tsv        dev/test: only rows whose column 0
                       test.tsv                                      (language) is ``zh``; text_a = column 6
                                                                     (sentence1), text_b = column 7 (sentence2),
                                                                     label = column 1 (gold_label);
                                                                     ERNIE: ``a \\t b \\t label``, header or not;
                                                                     "contradictory" -> "contradiction"; "-" rows
                                                                     as in CLUE
afqmc                  train.json dev.json test.json (CLUE)          sentence1 / sentence2 / label; labels 0 1
tnews                  "                                             sentence / - / label (as the original);
                                                                     CLUE's 15 codes 100..116 without 105, 111
tnews_keywords         "                                             sentence / keywords (when non-empty) / label
iflytek                "                                             sentence / - / label; labels 0..118
cmnli, ocnli           "                                             sentence1 / sentence2 / label; labels
                                                                     contradiction entailment neutral
csl                    "                                             keywords joined by spaces / abst / label;
                                                                     labels 0 1
wsc, cluewsc2020       " (cluewsc2020: CLUE 1.1's file names,        text with span1 (the candidate) wrapped in
                       the same fields)                              ``_..._`` and span2 (the pronoun) in
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

Any split's file can be given by path instead (``use_files``; run_classifier's --train_file, --dev_file,
--test_file), and any task's labels by a list (``use_labels``; --label_list, a file with one label a line or
``a,b,c``; the order gives the label ids): a row with another label is malformed.

CLUE's rows labelled "-" (annotators did not agree: cmnli, ocnli, and XNLI's copies) have no gold label: in a
train/dev file they are left out and counted ("N rows without a gold label ('-') left out"), never a class; in a
test file they are kept, unlabelled.

TSV files are split on tabs (no quoting, like the original's ``csv`` reader with ``quotechar=None``), blank lines are
ignored. A header is *detected*, not assumed (the original skipped the first line of every file, dropping the first
example of header-less LCQMC files). A first row made only of known column names (``HEADER_COLUMNS``: label,
gold_label, text_a, text_b, text, sentence, sentence1, sentence2, premise, hypothesis, qid, id, ...) is a header
that maps the columns, in any order, for every TSV task (a data row always holds some text or label that is no
column name). Otherwise the task's fixed layout applies, and the first row is a header when its label field is not a
label and looks like a column name (an ASCII identifier); for tasks whose labels come from the data, when that value
also occurs in no other row. Test files may lack the label column (or hold a dummy label): their examples get
``label=None`` unless the value is a valid label. CLUE's test.json has no labels and an ``id`` that
``<task>_predict.json`` reports (a header's qid/id column gives TSV examples their id too).

A file in another format than the task reads (JSON lines for a TSV task, TSV for a CLUE task, one text column for a
pair task, a comma-separated CSV, a header naming columns the task cannot use) raises one ``DataFormatError`` line
naming the file and line and the formats the task reads, with or without ``skip_bad_lines``. A malformed row (wrong
column count, a label outside the task's list, bad JSON, a missing field, WSC spans that are not in the text) raises
``DataFormatError`` naming the file and line; with ``skip_bad_lines`` it is counted, reported and left out (a file
none of whose rows fit is still an error).

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
TAB = "\t"
_COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_ .-]*$")


class DataFormatError(ValueError):
    """A row of a task file that does not fit the task's format; the message starts with ``file:line:``."""


class _BadRow(ValueError):
    """Raised by row parsers; the reader adds file and line."""


class _BadFormat(_BadRow):
    """A row whose shape (column count, not JSON) is not the task's: the error also says which formats it reads."""


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
    left_out: int = 0  # rows the task leaves out on purpose (CLUE's "-" rows, other XNLI languages)
    no_gold: int = 0  # of left_out: rows labelled "-" (no gold label)
    columns: tuple[str | None, ...] | None = None  # the roles a header named, when the columns came from it

    def summary(self, num_examples: int) -> str:
        parts = [f"{num_examples} examples from {self.path}"]
        if self.header:
            named = "" if self.columns is None else f" (columns: {' '.join(c or '_' for c in self.columns)})"
            parts.append(f"header line skipped{named}")
        if self.no_gold:
            parts.append(f"{self.no_gold} rows without a gold label ('-') left out")
        if self.left_out - self.no_gold:
            parts.append(f"{self.left_out - self.no_gold} rows left out by the task")
        if self.bad_lines:
            parts.append(f"{len(self.bad_lines)} malformed lines skipped (--skip_bad_lines), e.g. "
                         + "; ".join(self.bad_lines[:3]))
        return ", ".join(parts)


def _looks_like_column_name(value: str) -> bool:
    return bool(_COLUMN_NAME.match(value.strip()))


# Column names that a TSV header of the published files uses (lower-cased) -> the column's role in a layout: "a"
# (text_a), "b" (text_b), "label", "id" (kept as the example id) and "language" (XNLI); None: a known column the
# classifier does not read (XNLI's parses and annotator labels, label descriptions).
HEADER_COLUMNS: dict[str, str | None] = {
    **dict.fromkeys(("label", "gold_label"), "label"),
    **dict.fromkeys(("text_a", "text", "sentence", "sentence1", "premise", "query", "query1", "question1"), "a"),
    **dict.fromkeys(("text_b", "sentence2", "hypothesis", "hypo", "query2", "question2"), "b"),
    **dict.fromkeys(("qid", "id", "guid", "idx"), "id"),
    "language": "language",
    **dict.fromkeys(("label_des", "label_desc", "genre", "promptid", "pairid", "match", "sentence1_binary_parse",
                     "sentence2_binary_parse", "sentence1_parse", "sentence2_parse", "sentence1_tokenized",
                     "sentence2_tokenized", "label1", "label2", "label3", "label4", "label5"), None),
}
_ROLE_NAMES = {"a": "text_a", "b": "text_b", "label": "label", "id": "id", "language": "language"}


def header_layout(row: Sequence[str]) -> tuple[str | None, ...] | None:
    """The roles of a header row's columns (see HEADER_COLUMNS), or None when the row is not a header: some field
    is not a known column name, or no column holds text_a. A data row never consists of column names only."""
    names = [value.strip().lower() for value in row]
    if not names or any(name not in HEADER_COLUMNS for name in names):
        return None
    layout = tuple(HEADER_COLUMNS[name] for name in names)
    return layout if "a" in layout else None


def parse_label_list(value: str) -> list[str]:
    """--label_list: a file (one label a line) or a comma-separated list; the order gives the label ids."""
    if tf.io.gfile.exists(value) and not tf.io.gfile.isdir(value):
        with tf.io.gfile.GFile(value) as f:
            labels = [line.strip() for line in f if line.strip()]
        source = f"--label_list={value} (one label a line)"
    else:
        labels = [label.strip() for label in value.split(",") if label.strip()]
        source = f"--label_list={value} (no such file)" if len(labels) == 1 else f"--label_list={value}"
    if len(labels) < 2:
        raise ValueError(f"{source}: {len(labels)} label(s); give a file with one label a line or a comma-separated "
                         f"list of at least two labels")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise ValueError(f"{source}: labels listed twice: {', '.join(repeated)}")
    return labels


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
    format_help = "?"  # the file formats the task reads, for the docstring table and format errors
    no_gold_label: str | None = None  # a label value meaning "no gold label" (CLUE's "-"): left out, counted

    def __init__(self, skip_bad_lines: bool = False):
        self.skip_bad_lines = skip_bad_lines
        self.reports: dict[str, ReadReport] = {}
        self.overrides: dict[str, str] = {}  # split -> a file given by path (--train_file, ...), consulted first
        # Lines that are not UTF-8, while a file is read with skip_bad_lines (None: they raise DataFormatError).
        self._undecodable: list[str] | None = [] if skip_bad_lines else None

    # -- files and labels ------------------------------------------------------------------------------------
    def use_files(self, overrides: dict[str, str]) -> None:
        """Reads ``split`` from ``overrides[split]`` (any path) instead of the task's file name in data_dir."""
        unknown = set(overrides) - set(SPLITS)
        if unknown:
            raise ValueError(f"unknown splits {sorted(unknown)}; expected {SPLITS}")
        self.overrides = dict(overrides)

    def data_file(self, data_dir: str | None, split: str) -> str:
        """The file of ``split``: its override, else the first candidate found in ``data_dir``; FileNotFoundError
        naming the candidates when none exists."""
        if split in self.overrides:
            path = self.overrides[split]
            if not tf.io.gfile.exists(path):
                raise FileNotFoundError(f"task {self.name}: the {split} file {path} does not exist")
            return path
        if not data_dir:
            raise FileNotFoundError(f"task {self.name}: no {split} file: pass --{split}_file, or --data_dir with "
                                    f"{' or '.join(self.files[split])}")
        candidates = [os.path.join(data_dir, name) for name in self.files[split]]
        for path in candidates:
            if tf.io.gfile.exists(path):
                return path
        raise FileNotFoundError(f"task {self.name}: no {split} file in {data_dir} (looked for "
                                f"{', '.join(self.files[split])})")

    def has_file(self, data_dir: str | None, split: str) -> bool:
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

    def use_labels(self, labels: Sequence[str]) -> None:
        """Sets the labels (order = label ids; --label_list, or those a trained model recorded): rows with another
        label are malformed."""
        self.labels = tuple(labels)

    def format_error(self, path: str, line: int, problem: str) -> DataFormatError:
        """A file that is in another format than the task's: one line naming the file, the line and the formats."""
        return DataFormatError(f"{path}:{line}: {problem}; task {self.name} reads {self.format_help}")

    # -- examples ---------------------------------------------------------------------------------------------
    def get_train_examples(self, data_dir: str) -> list[InputExample]:
        return self.get_examples(data_dir, "train")

    def get_dev_examples(self, data_dir: str) -> list[InputExample]:
        return self.get_examples(data_dir, "dev")

    def get_test_examples(self, data_dir: str) -> list[InputExample]:
        return self.get_examples(data_dir, "test")

    def get_examples(self, data_dir: str | None, split: str) -> list[InputExample]:
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
        if rows and self._start_file(path, rows, split, valid, report):
            report.header = True
            rows = rows[1:]
        no_gold = self.no_gold_label if valid is None or self.no_gold_label not in valid else None
        examples: list[InputExample] = []
        for number, row in rows:
            try:
                parsed = self._parse(row, split)
                if parsed is None:
                    report.left_out += 1
                    continue
                parsed = parsed if isinstance(parsed, list) else [parsed]  # a row may give several examples
                if no_gold is not None and any(label == no_gold for _, _, label, _ in parsed):
                    if labelled:  # never a class: annotators did not agree
                        report.left_out += 1
                        report.no_gold += 1
                        continue
                    parsed = [(a, b, None, i) for a, b, _, i in parsed]
                parsed = [(a, b, self._check_label(label, labelled, valid), i) for a, b, label, i in parsed]
            except _BadRow as err:
                where = f"{path}:{number}: {err}"
                if not self.skip_bad_lines:
                    formats = f"; task {self.name} reads {self.format_help}" if isinstance(err, _BadFormat) else ""
                    raise DataFormatError(f"{where}{formats} (pass --skip_bad_lines to skip malformed lines)") from None
                report.bad_lines.append(where)
                continue
            row_id = len(examples)
            for text_a, text_b, label, example_id in parsed:
                index = len(examples)
                examples.append(InputExample(guid=f"{split}-{index}", text_a=text_a, text_b=text_b, label=label,
                                             example_id=row_id if example_id is None else example_id, line=number))
        if rows and not examples and len(report.bad_lines) >= len(rows):  # skipping every line: another format
            raise DataFormatError(f"{report.bad_lines[0]}; no line of the file fits: task {self.name} reads "
                                  f"{self.format_help}")
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
            raise _BadRow(f"label {label!r} is not one of the task's labels {sorted(valid)} (--label_list sets "
                          f"them)")
        return label

    def _start_file(self, path: str, rows: list[tuple[int, Any]], split: str, valid: set[str] | None,
                    report: ReadReport) -> bool:
        """Checks that the file is in the task's format (else raises ``format_error``) and prepares reading it;
        True when the first row is a header. Header rows exist only in TSV tasks (see TsvProcessor)."""
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


_TSV_HEADER_HELP = "or any column order under a header naming the columns (label, text_a, text_b, qid, ...)"


class TsvProcessor(DataProcessor):
    """Tab-separated rows; ``layout`` names each column: "a", "b", "label", "id" or None (ignored).

    A row must have exactly ``len(layout)`` columns (at least, when ``extra_columns``); a test row may also lack the
    label column. A first row made of known column names (``header_layout``) is a header that gives the file's
    layout instead; otherwise ``_is_header`` decides whether the first row is a header of the fixed layout.
    """

    layout: tuple[str | None, ...] = ("a", "b", "label")
    extra_columns = False

    def __init__(self, skip_bad_lines: bool = False):
        super().__init__(skip_bad_lines)
        self._layout = self.layout  # the layout of the file being read
        self._mapped = False  # whether a header gave it

    @property
    def pair(self) -> bool:
        """Whether the task reads text pairs."""
        return "b" in self.layout

    def _rows(self, path: str) -> Iterator[tuple[int, list[str]]]:
        for number, line in _read_lines(path, self._undecodable):
            yield number, line.split("\t")

    def layout_for(self, split: str, first: Sequence[str] | None = None) -> tuple[str | None, ...]:
        """The fixed layout of a header-less file of ``split`` whose first row is ``first``."""
        return self.layout

    def _start_file(self, path, rows, split, valid, report) -> bool:
        number, first = rows[0]
        self._layout, self._mapped = self.layout_for(split, first), False
        self._check_not_json_or_csv(path, number, first)
        mapped = header_layout(first)
        if mapped is not None:
            self._layout, self._mapped = self._check_header(path, number, mapped, split), True
            report.columns = mapped
            return True
        header = self._is_header(rows, split, valid)
        self._check_label_column(path, rows[1:] if header else rows, split, valid)
        return header

    def _check_not_json_or_csv(self, path: str, number: int, first: list[str]) -> None:
        line = "\t".join(first).strip()
        if line.startswith("{") and line.endswith("}"):
            raise self.format_error(path, number, "a JSON object (CLUE's format?), not tab-separated columns")
        if len(first) == 1 and "," in line and header_layout(line.split(",")) is not None:
            raise self.format_error(path, number, "a comma-separated (CSV) header; convert the file to "
                                                  "tab-separated columns")

    def _check_header(self, path: str, number: int, layout: tuple[str | None, ...],
                      split: str) -> tuple[str | None, ...]:
        """A header's layout, when it names the columns the task needs exactly once."""
        roles = [role for role in layout if role is not None]
        twice = sorted({_ROLE_NAMES[role] for role in roles if roles.count(role) > 1})
        if twice:
            raise self.format_error(path, number, f"the header names more than one {' and '.join(twice)} column")
        if self.pair and "b" not in layout:
            raise self.format_error(path, number, "the header names one text column, but the task classifies text "
                                                  "pairs (text_a and text_b)")
        if not self.pair and "b" in layout:
            raise self.format_error(path, number, "the header names a second text column (text_b), but the task "
                                                  "classifies single texts")
        if split != "test" and "label" not in layout:
            raise self.format_error(path, number, f"the header names no label column, which a {split} file needs")
        return layout

    def _check_label_column(self, path: str, rows: list[tuple[int, list[str]]], split: str,
                            valid: set[str] | None) -> None:
        """A header-less test file whose rows all lack the label column but all hold a label in their first or
        last field (``text \\t label`` for a pair task, ``label,text`` CSV) would be read with the label as text."""
        layout = self._layout
        if split != "test" or valid is None or "label" not in layout or self.extra_columns or not rows:
            return
        if any(len(row) != len(layout) - 1 for _, row in rows):
            return
        if len(layout) == 2:  # one text column: a CSV row "label,text"
            if all("," in row[0] and row[0].split(",", 1)[0].strip() in valid for _, row in rows):
                raise self.format_error(path, rows[0][0], "every row is 'label,text': a comma-separated (CSV) "
                                                          "file; convert it to tab-separated columns")
            return
        for end in (0, -1):
            if all(row[end].strip() in valid for _, row in rows):
                raise self.format_error(path, rows[0][0], f"{len(layout) - 1} columns, one of them a label in every "
                                                          f"row: not this task's layout")

    def _fields(self, row: list[str], split: str) -> dict[str, str]:
        layout = self._layout
        n = len(layout)
        if split == "test" and len(row) == n - 1 and "label" in layout and (self._mapped or not self.extra_columns):
            layout = tuple(c for c in layout if c != "label")
        elif len(row) < n or (len(row) > n and (self._mapped or not self.extra_columns)):
            names = " TAB ".join(_ROLE_NAMES.get(c, "_") if c else "_" for c in layout)
            hint = " (no tab but commas: a CSV file?)" if len(row) == 1 and "," in row[0] else ""
            raise _BadFormat(f"{len(row)} tab-separated columns, expected {n} ({names}){hint}")
        return {name: row[i].strip() for i, name in enumerate(layout) if name is not None}

    def _parse(self, row: list[str], split: str):
        fields = self._fields(row, split)
        return fields["a"], fields.get("b"), fields.get("label"), fields.get("id") or None

    def _is_header(self, rows, split, valid) -> bool:
        """The first row's label field is no label and looks like a column name (and, for data-derived labels, is
        used by no other row). A test file without a label column: every field is a column name."""
        first, layout = rows[0][1], self._layout
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
    format_help = f"text_a TAB text_b TAB label lines (labels 0 1; test: the label may be missing), {_TSV_HEADER_HELP}"


class BqProcessor(LcqmcProcessor):
    """BQ corpus (bank questions, LCQMC's authors): LCQMC's layout, as ChineseGLUE's bq_corpus (``.tsv``) or as
    LCQMC's ``.txt`` names."""
    name = "bq"
    files = {split: (f"{split}.tsv", f"{split}.txt") for split in SPLITS}


class SentencePairProcessor(TsvProcessor):
    """The original's ``sentence_pair``: ``label \\t text_a \\t text_b``."""
    name = "sentence_pair"
    files = _split_files("train_0827.tsv", "dev_0827.tsv", "test_0827.tsv")
    labels = ("0", "1")
    layout = ("label", "a", "b")
    format_help = f"label TAB text_a TAB text_b lines (labels 0 1), {_TSV_HEADER_HELP}"


class ChnSentiCorpProcessor(TsvProcessor):
    """ChnSentiCorp as ERNIE / Chinese-BERT-wwm publish it: a header ``label \\t text_a``, labels 0 1 (1 =
    positive); copies with other headers (``qid \\t text_a``, ``qid \\t label \\t text_a``, ``text_a \\t label``) are
    read by their header."""
    name = "chnsenticorp"
    files = _split_files("train.tsv", "dev.tsv", "test.tsv")
    labels = ("0", "1")
    layout = ("label", "a")
    format_help = f"label TAB text_a lines (labels 0 1), {_TSV_HEADER_HELP}"


class TextClassificationProcessor(TsvProcessor):
    """Single sentences, ``label \\t text``; the labels are the sorted label values of train + dev."""
    name = "text_classification"
    files = _split_files("train.tsv", "dev.tsv", "test.tsv")
    labels = None
    layout = ("label", "a")
    format_help = f"label TAB text lines (the labels: those of train + dev), {_TSV_HEADER_HELP}"

    def __init__(self, skip_bad_lines: bool = False):
        super().__init__(skip_bad_lines)
        self._labels: list[str] | None = None

    def get_labels(self, data_dir: str | None = None) -> list[str]:
        """The label values of the train and dev files, sorted. A file's first row counts only when its label is
        used by another row of either file or does not look like a column name (else it is a header); a header of
        known column names says which column holds the labels."""
        if self._labels is None:
            found, first_rows = set(), set()
            for split in ("train", "dev"):
                if not self.has_file(data_dir, split):
                    continue
                rows = [row for _, row in self._rows(self.data_file(data_dir, split))]
                mapped = header_layout(rows[0]) if rows else None
                if mapped is not None:
                    if "label" in mapped:
                        index = mapped.index("label")
                        found.update(row[index].strip() for row in rows[1:] if len(row) > index)
                    continue
                index = self.layout.index("label")
                rows = [row for row in rows if len(row) > index]
                found.update(row[index].strip() for row in rows[1:])
                first_rows.update(row[index].strip() for row in rows[:1])
            found |= {v for v in first_rows if not _looks_like_column_name(v)}
            found.discard("")
            if not found:
                where = f"in {data_dir} ({', '.join(self.files['train'] + self.files['dev'])})" if data_dir else ""
                raise FileNotFoundError(f"task {self.name}: the labels come from the train/dev files (or "
                                        f"--label_list), and there are no labelled train/dev rows {where}".rstrip())
            self._labels = sorted(found)
        return list(self._labels)

    def use_labels(self, labels: Sequence[str]) -> None:
        """Sets the labels (e.g. those a trained model recorded) instead of reading them from train/dev."""
        self._labels = list(labels)

    def get_examples(self, data_dir: str | None, split: str) -> list[InputExample]:
        if self._labels is None and (self.has_file(data_dir, "train") or self.has_file(data_dir, "dev")):
            self.get_labels(data_dir)  # headers are told from data by the label list
        return super().get_examples(data_dir, split)

    def _valid_labels(self) -> set[str] | None:
        return set(self._labels) if self._labels is not None else None


def _starts_with_json_object(path: str) -> bool:
    """Whether the file's first non-blank character is ``{`` (CLUE's JSON lines), from its first bytes."""
    with tf.io.gfile.GFile(path, "rb") as f:
        head = f.read(4096)
    return head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{")


class XnliProcessor(TsvProcessor):
    """XNLI in each published form, told apart by a file's content: CLUE's JSON lines (premise, hypo, label;
    train/dev/test.json, found first, as the original albert_zh's CLUE script reads it), BERT's TSVs (MultiNLI's
    translated train file; xnli.dev/test.tsv with all 15 languages, Chinese only kept), or the 3-column
    ``text_a \\t text_b \\t label`` train/dev/test.tsv of ERNIE / ChineseGLUE copies (see the module docstring)."""
    name = "xnli"
    language = "zh"
    files = {"train": ("train.json", f"multinli/multinli.train.{language}.tsv", f"multinli.train.{language}.tsv",
                       "train.tsv"),
             "dev": ("dev.json", "xnli.dev.tsv", "dev.tsv"), "test": ("test.json", "xnli.test.tsv", "test.tsv")}
    labels = ("contradiction", "entailment", "neutral")
    # xnli.dev/test.tsv columns: language, gold_label, 4 parse columns, sentence1, sentence2, ids, genre, ...
    bert_layout = ("language", "label", None, None, None, None, "a", "b")
    layout = ("a", "b", "label")  # MultiNLI's translation and the ERNIE/ChineseGLUE files
    no_gold_label = "-"
    format_help = ("CLUE's JSON lines (premise, hypo, label), BERT's XNLI TSV (language TAB gold_label TAB ... "
                   "sentence1 TAB sentence2 ..., with its header) or text_a TAB text_b TAB label lines (labels "
                   "contradiction/contradictory entailment neutral), " + _TSV_HEADER_HELP)

    def __init__(self, skip_bad_lines: bool = False):
        super().__init__(skip_bad_lines)
        self._clue = ClueProcessor("xnli", self.labels, "premise", "hypo", skip_bad_lines)

    def use_labels(self, labels: Sequence[str]) -> None:
        super().use_labels(labels)
        self._clue.use_labels(labels)

    def read_file(self, path: str, split: str) -> list[InputExample]:
        if not _starts_with_json_object(path):
            self.extra_columns = False
            return super().read_file(path, split)
        self.is_clue = True  # CLUE's files: xnli_predict.json in CLUE's submission format too
        examples = self._clue.read_file(path, split)
        self.reports[split] = self._clue.reports[split]
        return examples

    def layout_for(self, split: str, first: Sequence[str] | None = None) -> tuple[str | None, ...]:
        # BERT's dev/test files have 15+ columns (and a header); every other form three (two: a test without labels)
        bert = first is not None and len(first) >= len(self.bert_layout)
        self.extra_columns = bert
        return self.bert_layout if bert else self.layout

    def _parse(self, row, split):
        fields = self._fields(row, split)
        if "language" in fields and fields["language"] != self.language:
            return None
        label = fields.get("label")
        if label == "contradictory":  # MultiNLI's translation and ERNIE's files say so
            label = "contradiction"
        return fields["a"], fields["b"], label, fields.get("id") or None


class JsonLinesProcessor(DataProcessor):
    """CLUE's format: one JSON object a line in train.json / dev.json / test.json. A row labelled "-" has no gold
    label: left out of train/dev (counted), kept unlabelled in a test file."""
    files = _split_files("train.json", "dev.json", "test.json")
    is_clue = True
    no_gold_label = "-"
    fields_help = "?"  # the fields a row needs, for format_help

    @property
    def format_help(self) -> str:  # type: ignore[override]
        return f"CLUE's JSON lines, one object a line with {self.fields_help}"

    def _rows(self, path: str) -> Iterator[tuple[int, Any]]:
        for number, line in _read_lines(path, self._undecodable):
            yield number, line

    def _start_file(self, path, rows, split, valid, report) -> bool:
        number, line = rows[0]
        start = line.lstrip()
        if start.startswith("{"):
            return False
        if start.startswith("["):
            problem = "a JSON array; CLUE's files hold one JSON object a line"
        elif "\t" in line:
            problem = f"{len(line.split(TAB))} tab-separated columns (TSV), not a JSON object"
        else:
            problem = "not a JSON object"
        raise self.format_error(path, number, problem)

    @staticmethod
    def json_object(row: str) -> dict:
        try:
            obj = json.loads(row)
        except json.JSONDecodeError as err:
            raise _BadFormat(f"not JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(obj, dict):
            raise _BadFormat(f"a JSON {type(obj).__name__}, expected an object")
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
        keys = [text_a_key] + ([text_b_key] if text_b_key else [])
        self.fields_help = f"{', '.join(keys)}, label ({' '.join(self.labels[:6])}{' ...' if len(labels) > 6 else ''})"

    def texts(self, obj):
        b = None if self.text_b_key is None else str(self.field(obj, self.text_b_key))
        return str(self.field(obj, self.text_a_key)), b


NLI_LABELS = ("contradiction", "entailment", "neutral")


class CmnliProcessor(ClueProcessor):
    """CMNLI: rows whose label is "-" (annotators did not agree) have no gold label and are left out (as in every
    CLUE task, see JsonLinesProcessor)."""

    def __init__(self, skip_bad_lines: bool = False):
        super().__init__("cmnli", NLI_LABELS, "sentence1", "sentence2", skip_bad_lines)


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
    fields_help = "keyword (a list), abst, label (0 1)"

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
    fields_help = "text, target (span1_text, span1_index, span2_text, span2_index), label (true false)"

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


class ClueWsc2020Processor(WscProcessor):
    """CLUE 1.1's WSC (cluewsc2020_public: train.json dev.json test.json): the fields of ``wsc``."""
    name = "cluewsc2020"


class CopaProcessor(JsonLinesProcessor):
    """CLUE COPA as the original albert_zh's CLUE script: two binary examples per row, one per choice, in the order
    of time ((premise, choice) for an effect, (choice, premise) for a cause), label "1" for the right choice. Dev
    accuracy counts these examples, as the original's did; copa_predict.json gives each row the choice whose
    P("1") is higher."""
    name = "copa"
    labels = ("0", "1")
    fields_help = "premise, choice0, choice1, question (cause/effect), label (0 1)"

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
    fields_help = CopaProcessor.fields_help
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
    "bq": BqProcessor,
    "bq_corpus": BqProcessor,
    "chnsenticorp": ChnSentiCorpProcessor,
    "sentence_pair": SentencePairProcessor,
    "text_classification": TextClassificationProcessor,
    "sentiment": TextClassificationProcessor,
    "xnli": XnliProcessor,
    "afqmc": _clue("afqmc", ("0", "1"), "sentence1", "sentence2"),
    "tnews": TnewsProcessor,
    "tnews_keywords": lambda skip_bad_lines=False: TnewsProcessor(skip_bad_lines, keywords=True),
    "iflytek": _clue("iflytek", [str(i) for i in range(119)], "sentence"),
    "cmnli": CmnliProcessor,
    "ocnli": _clue("ocnli", NLI_LABELS, "sentence1", "sentence2"),
    "csl": CslProcessor,
    "wsc": WscProcessor,
    "cluewsc2020": ClueWsc2020Processor,
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


def load_split(processor: DataProcessor, data_dir: str | None, split: str, labels: Sequence[str],
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


__all__ = ["DataFormatError", "DataProcessor", "HEADER_COLUMNS", "InputExample", "PROCESSORS", "SplitData",
           "classification_metrics", "convert_example", "encode_text", "feature_cache_key", "get_processor",
           "header_layout", "load_split", "num_train_steps", "parse_label_list", "register", "truncate_pair",
           "write_clue_predictions", "write_features", "write_test_results"]
