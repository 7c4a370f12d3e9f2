"""Extractive reading comprehension (span extraction) data: readers, windows over long contexts, n-best decoding.

Everything a served span extractor needs before and after the model lives here, with no training code and no
TensorFlow at import time (TensorFlow is imported only to read ``gs://``-style paths and to write feature files).

Files (run_mrc.py's ``--task_name``: ``cmrc2018`` and ``drcd`` are Chinese, ``squad`` / ``squad_v2`` English; all
read the same formats, detected from the content):

* SQuAD v1.1 / v2.0 JSON, which CMRC2018 and DRCD also use: ``{"data": [{"title", "paragraphs": [{"context",
  "qas": [{"id", "question", "answers": [{"text", "answer_start"}], "is_impossible"?}]}]}]}``. v2: a question
  with ``is_impossible`` true or no answers has no answer (needs ``--version_2_with_negative``).
* The original CMRC2018 release: a JSON list (or ``{"data": [...]}``) of ``{"context_id", "context_text",
  "qas": [{"query_id", "query_text", "answers": ["text", ...]}]}``; answers carry no offsets.

Answer offsets are verified, never trusted: where ``context[start:start + len(text)] != text``, the answer is moved
to the occurrence of its text nearest the given start (the first occurrence is never taken blindly); without a
usable start (the original format, or ``-1``), a text occurring more than once takes the occurrence whose
surroundings share the most characters with the question. A gold text that does not occur in its context cannot
be a training label: in a training file that is an error naming the file and question id (``skip_bad`` skips the
question and counts it); in an evaluation file it is kept for scoring only (the metric compares texts) and
counted. Every repair is counted in the ``ReadReport``.

Windows: ``[CLS] question [SEP] context window [SEP]``, segment ids 0 then 1. The question keeps its first
``max_query_length`` pieces (truncations counted). A context longer than the room left is cut into windows that
start ``doc_stride`` pieces apart (BERT's rule: the last window ends at the context's end). A piece's *max-context*
window is where min(left, right) context + 0.01·window length is largest; answers are decoded only from a start
piece's max-context window, so each candidate comes from one window. A training window that does not hold the
whole gold answer is labelled at [CLS] (position 0), as BERT does.

Offsets: every context piece knows its character span in the original context (``tokenization.FullTokenizer
.tokenize_with_offsets``), so answers are always cut from the context by character offsets, never rebuilt from
pieces (an ``[UNK]`` piece keeps its characters, and whitespace inside an answer is kept as written).

Decoding (n-best, as BERT's ``run_squad.py``, across windows): in each window the ``n_best_size`` best start and end
pieces among the context pieces; pairs with start <= end, at most ``max_answer_length`` pieces, the start in its
max-context window; score = start logit + end logit; candidates from all windows sorted by score, de-duplicated by
their text, the best ``n_best_size`` kept, with softmax probabilities over them. v2: the null score is the lowest
[CLS] score (start + end logit at position 0) over the windows; the answer is empty when null score - best score
> ``null_score_diff_threshold``. A question whose context has pieces always gets a non-empty span of it (v1).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Any, Iterable, Iterator, Sequence

import numpy as np

import tokenization

FEATURE_NAMES = ("input_ids", "input_mask", "segment_ids", "start_positions", "end_positions")
CONTEXT_SEGMENT = 1  # segment id of the context pieces (and of the final [SEP])
REPORTED = 5  # named examples per kind of repair in a summary


class DataFormatError(ValueError):
    """A reading-comprehension file that cannot be read as such; the message names the file and question."""


# ---------------------------------------------------------------------------------------------------------------------
# Examples and reading
# ---------------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class MrcExample:
    """One question on one context.

    answers: every gold answer text as the file gives it (what the metric compares; may be empty: unlabelled test
    data, or a v2 question without an answer). spans: the character spans [start, end) of the answers found in the
    context, in the answers' order (the first is the training label).
    """
    qid: str
    question: str
    context: str
    answers: list[str]
    spans: list[tuple[int, int]]
    is_impossible: bool = False


@dataclasses.dataclass
class ReadReport:
    """What reading one file found besides the examples."""
    path: str
    repaired: list[str] = dataclasses.field(default_factory=list)  # "qid: start 11 -> 13"
    not_in_context: list[str] = dataclasses.field(default_factory=list)  # kept for scoring only
    skipped: list[str] = dataclasses.field(default_factory=list)  # questions left out (skip_bad)
    ambiguous: int = 0  # answers without a usable start whose text occurs more than once
    impossible: int = 0
    unlabelled: int = 0

    def summary(self, num_examples: int) -> str:
        parts = [f"{num_examples} questions from {self.path}"]
        if self.impossible:
            parts.append(f"{self.impossible} without an answer (v2)")
        if self.unlabelled:
            parts.append(f"{self.unlabelled} without gold answers")
        if self.repaired:
            parts.append(f"{len(self.repaired)} answer offsets repaired to the nearest occurrence, e.g. "
                         + "; ".join(self.repaired[:REPORTED]))
        if self.ambiguous:
            parts.append(f"{self.ambiguous} answers without a usable offset placed by the question's context")
        if self.not_in_context:
            parts.append(f"{len(self.not_in_context)} gold answers not in their context (kept for scoring only), "
                         f"e.g. " + "; ".join(self.not_in_context[:REPORTED]))
        if self.skipped:
            parts.append(f"{len(self.skipped)} questions skipped (--skip_bad_lines), e.g. "
                         + "; ".join(self.skipped[:REPORTED]))
        return ", ".join(parts)


def read_json(path: str, what: str = "") -> Any:
    """A UTF-8 JSON file (local, or any TensorFlow file system when the path has a scheme); a syntax error names
    the file, line and column. ``what``: the file's role ("gold file"), named in the messages when given."""
    if "://" in path:
        import tensorflow as tf  # only for gs:// and the like
        with tf.io.gfile.GFile(path, "rb") as f:
            raw = f.read()
    else:
        with open(path, "rb") as f:
            raw = f.read()
    role = f"the {what} is " if what else ""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise DataFormatError(f"{path}: {role}not UTF-8 (byte {err.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataFormatError(f"{path}:{err.lineno}:{err.colno}: {role}not valid JSON: {err.msg}") from None


def _context_overlap(context: str, start: int, end: int, question: str, width: int = 10) -> int:
    """How many distinct characters of ``question`` occur around context[start:end] (the placement heuristic for
    answers without an offset)."""
    around = set(context[max(0, start - width):start]) | set(context[end:end + width])
    return len(around & set(question))


def locate_answer(context: str, text: str, start: int | None, question: str) -> tuple[int | None, str]:
    """(character start of ``text`` in ``context`` or None, how it was found: "exact", "repaired", "placed",
    "missing"). ``start``: the file's offset (None or negative: none)."""
    if not text:
        return None, "missing"
    if start is not None and start >= 0 and context[start:start + len(text)] == text:
        return start, "exact"
    occurrences = []
    at = context.find(text)
    while at >= 0:
        occurrences.append(at)
        at = context.find(text, at + 1)
    if not occurrences:
        return None, "missing"
    if start is not None and start >= 0:
        return min(occurrences, key=lambda o: (abs(o - start), o)), "repaired"
    if len(occurrences) == 1:
        return occurrences[0], "exact"
    best = max(occurrences, key=lambda o: (_context_overlap(context, o, o + len(text), question), -o))
    return best, "placed"


# (qid, question, context, [(answer text, answer_start or None)], is_impossible): one question as read from a file
Question = tuple[str, str, str, list[tuple[str, int | None]], bool]


def _id_and_question(qa: Any, id_key: str, text_key: str, path: str, where: str) -> tuple[str, str]:
    """The id (as a string) and question text of one question object; ``where``: its place, for a missing id."""
    qid = qa.get(id_key) if isinstance(qa, dict) else None
    if qid is None:
        raise DataFormatError(f"{where} has no \"{id_key}\"")
    qid = str(qid)
    if not isinstance(qa.get(text_key), str):
        raise DataFormatError(f"{path}: question {qid} has no \"{text_key}\" string")
    return qid, qa[text_key]


def _answer_list(qa: dict, qid: str, path: str, require: bool) -> list:
    """The question's "answers" list; a missing one is [] (unlabelled data) unless ``require``."""
    answers = qa.get("answers")
    if answers is None and not require:
        return []
    if answers is None:
        raise DataFormatError(f"{path}: question {qid} has no \"answers\" list")
    if not isinstance(answers, list):
        raise DataFormatError(f"{path}: question {qid}: \"answers\" is not a list")
    return answers


def _iter_squad(data: list, path: str, require_answers: bool) -> Iterator[Question]:
    """The questions of SQuAD-style articles."""
    for a, article in enumerate(data):
        if not isinstance(article, dict) or not isinstance(article.get("paragraphs"), list):
            raise DataFormatError(f"{path}: data[{a}] has no \"paragraphs\" list")
        for p, paragraph in enumerate(article["paragraphs"]):
            where = f"{path}: data[{a}].paragraphs[{p}]"
            if not isinstance(paragraph, dict):
                raise DataFormatError(f"{where} is not an object")
            context = paragraph.get("context")
            if not isinstance(context, str):
                raise DataFormatError(f"{where} has no \"context\" string")
            for q, qa in enumerate(paragraph.get("qas") or []):
                qid, question = _id_and_question(qa, "id", "question", path, f"{where}.qas[{q}]")
                answers = []
                for answer in _answer_list(qa, qid, path, require_answers):
                    if not isinstance(answer, dict) or not isinstance(answer.get("text"), str):
                        raise DataFormatError(f"{path}: question {qid}: an answer without a \"text\" string")
                    start = answer.get("answer_start")
                    if start is not None and not isinstance(start, int):
                        raise DataFormatError(f"{path}: question {qid}: answer_start {start!r} is not an integer")
                    answers.append((answer["text"], start))
                yield qid, question, context, answers, bool(qa.get("is_impossible", False))


def _iter_cmrc_original(data: list, path: str, require_answers: bool) -> Iterator[Question]:
    """The questions of the original CMRC2018 format (answers as strings, no offsets)."""
    for c, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("context_text"), str):
            raise DataFormatError(f"{path}: item {c} has no \"context_text\" string")
        for q, qa in enumerate(item.get("qas") or []):
            where = f"{path}: item {c} ({item.get('context_id')}), qas[{q}]"
            qid, question = _id_and_question(qa, "query_id", "query_text", path, where)
            answers = _answer_list(qa, qid, path, require_answers)
            if not all(isinstance(t, str) for t in answers):
                raise DataFormatError(f"{path}: question {qid}: answers must be strings in this format")
            yield qid, question, item["context_text"], [(t, None) for t in answers], False


def iter_questions(data: Any, path: str, *, require_answers: bool = False) -> Iterator[Question]:
    """(qid, question, context, [(answer text, answer_start or None)], is_impossible) of every question of a parsed
    file in either format (see the module docstring), in the file's order; ids are strings.

    The format is the first item's: the original CMRC2018 one when it has "context_text", "context_id" or "qas"
    and no "paragraphs", else SQuAD-style. A question without "answers" has none (unlabelled data) unless
    ``require_answers`` (a gold file), where that is an error. Raises DataFormatError naming ``path`` and the
    question (its id, or its place when it has none) for anything malformed and for an id that repeats.
    """
    items = data.get("data") if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise DataFormatError(f"{path}: expected SQuAD-style {{\"data\": [...]}} or the original CMRC2018 list")
    first = items[0] if items and isinstance(items[0], dict) else {}
    original = "paragraphs" not in first and any(k in first for k in ("context_text", "context_id", "qas"))
    seen: set[str] = set()
    for record in (_iter_cmrc_original if original else _iter_squad)(items, path, require_answers):
        if record[0] in seen:
            raise DataFormatError(f"{path}: question id {record[0]} occurs twice")
        seen.add(record[0])
        yield record


def read_examples(path: str, *, training: bool, version_2: bool = False, skip_bad: bool = False
                  ) -> tuple[list[MrcExample], ReadReport]:
    """Reads a file in either format (see the module docstring) and places every answer in its context.

    training: answers must be placeable (a question whose first answer is not in its context is an error, or
    skipped with ``skip_bad``), and v1 questions must have one. version_2: questions may have no answer.
    """
    report = ReadReport(path)
    examples: list[MrcExample] = []
    for qid, question, context, answers, impossible in iter_questions(read_json(path), path):
        try:
            if not context.strip():
                raise DataFormatError(f"{path}: question {qid}: the context is empty")
            if impossible and not version_2:
                raise DataFormatError(f"{path}: question {qid} is marked is_impossible: a SQuAD v2 file needs "
                                      f"--version_2_with_negative (or --task_name=squad_v2)")
            impossible = version_2 and (impossible or not answers)
            texts, spans = [], []
            if not impossible:
                for n, (text, start) in enumerate(answers):
                    found, how = locate_answer(context, text, start, question)
                    texts.append(text)
                    if found is None:
                        if training and n == 0:
                            raise DataFormatError(f"{path}: question {qid}: the answer {text!r} is not in its "
                                                  f"context (answer_start {start})")
                        report.not_in_context.append(f"{qid}: {text!r}")
                        continue
                    if how == "repaired":
                        report.repaired.append(f"{qid}: {start} -> {found}")
                    elif how == "placed":
                        report.ambiguous += 1
                    spans.append((found, found + len(text)))
            if training and not impossible and not spans:
                raise DataFormatError(f"{path}: question {qid} has no answer to train on")
        except DataFormatError as err:
            if not skip_bad:
                raise
            report.skipped.append(str(err).removeprefix(f"{path}: "))
            continue
        report.impossible += impossible
        report.unlabelled += not impossible and not texts
        examples.append(MrcExample(qid, question, context, texts, spans, impossible))
    return examples, report


# ---------------------------------------------------------------------------------------------------------------------
# Windows and features
# ---------------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class EncodedContext:
    """A context's pieces, their ids, and each piece's character span [start, end) in the context."""
    tokens: list[str]
    offsets: list[tuple[int, int]]
    ids: list[int]


@dataclasses.dataclass
class Window:
    """One model input: example index, where its context pieces sit (input positions ``first`` .. ``first +
    length - 1`` are context pieces ``piece_start`` ..), which of them have their max context here, and the
    training label (input positions of the answer's first and last piece; 0 = [CLS]: not in this window)."""
    example: int
    first: int
    piece_start: int
    length: int
    max_context: list[bool]
    start_position: int = 0
    end_position: int = 0


def window_starts(num_pieces: int, room: int, stride: int) -> list[tuple[int, int]]:
    """(start, length) of each window over ``num_pieces`` context pieces with ``room`` pieces a window: BERT's
    rule (starts ``stride`` apart; the last window ends at the end)."""
    spans, start = [], 0
    while True:
        length = min(num_pieces - start, room)
        spans.append((start, length))
        if start + length >= num_pieces:
            return spans
        start += min(length, stride)


def max_context_flags(spans: Sequence[tuple[int, int]]) -> list[list[bool]]:
    """For each window, whether each of its pieces has its max context there (min(left, right) + 0.01·length;
    the first window on ties)."""
    best: dict[int, tuple[float, int]] = {}
    for w, (start, length) in enumerate(spans):
        for i in range(length):
            score = min(i, length - 1 - i) + 0.01 * length
            if start + i not in best or score > best[start + i][0]:
                best[start + i] = (score, w)
    return [[best[start + i][1] == w for i in range(length)] for w, (start, length) in enumerate(spans)]


class MrcEncoder:
    """Examples -> windows and their features (contexts tokenized once each: questions share them)."""

    def __init__(self, tokenizer: tokenization.FullTokenizer, max_seq_length: int, doc_stride: int = 128,
                 max_query_length: int = 64):
        if max_query_length < 1 or max_seq_length - max_query_length - 3 < 1:
            raise ValueError(f"--max_seq_length={max_seq_length} leaves no room for a context after a question of "
                             f"--max_query_length={max_query_length} pieces and 3 special tokens")
        if doc_stride < 1:
            raise ValueError(f"--doc_stride={doc_stride}: must be at least 1")
        self.tokenizer = tokenizer
        self.max_seq_length, self.doc_stride, self.max_query_length = max_seq_length, doc_stride, max_query_length
        self.cls_id, self.sep_id = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
        self._contexts: dict[str, EncodedContext] = {}
        self.truncated_questions = 0

    def context(self, text: str) -> EncodedContext:
        found = self._contexts.get(text)
        if found is None:
            tokens, offsets = self.tokenizer.tokenize_with_offsets(text)
            found = self._contexts[text] = EncodedContext(tokens, offsets, self.tokenizer.convert_tokens_to_ids(tokens))
        return found

    def question_ids(self, question: str) -> list[int]:
        ids = self.tokenizer.convert_tokens_to_ids(self.tokenizer.tokenize(question))
        if len(ids) > self.max_query_length:
            self.truncated_questions += 1
            ids = ids[:self.max_query_length]
        return ids

    def encode(self, examples: Sequence[MrcExample]) -> Iterator[tuple[Window, dict[str, np.ndarray]]]:
        """Yields each window with its features (int32 [T] arrays; start/end positions as scalars)."""
        t = self.max_seq_length
        for index, example in enumerate(examples):
            context = self.context(example.context)
            question = self.question_ids(example.question)
            first = len(question) + 2
            room = t - first - 1
            answer = None
            if example.spans and not example.is_impossible:
                answer = tokenization.char_to_token_index(context.offsets, *example.spans[0])
            ids = context.ids
            spans = window_starts(len(ids), room, self.doc_stride) if ids else [(0, 0)]
            for (start, length), flags in zip(spans, max_context_flags(spans)):
                window = Window(index, first, start, length, flags)
                if answer is not None and start <= answer[0] and answer[1] < start + length:
                    window.start_position = first + answer[0] - start
                    window.end_position = first + answer[1] - start
                input_ids = [self.cls_id] + question + [self.sep_id] + ids[start:start + length] + [self.sep_id]
                n = len(input_ids)
                row = np.zeros((3, t), np.int32)
                row[0, :n] = input_ids
                row[1, :n] = 1
                row[2, first:n] = CONTEXT_SEGMENT
                yield window, {"input_ids": row[0], "input_mask": row[1], "segment_ids": row[2],
                               "start_positions": np.int32(window.start_position),
                               "end_positions": np.int32(window.end_position)}


def feature_batch(rows: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Window features -> model inputs (int32 [N,T] and [N])."""
    return {k: np.stack([r[k] for r in rows]) for k in FEATURE_NAMES}


# ---------------------------------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Candidate:
    text: str
    start: int  # character offsets into the context, [start, end)
    end: int
    start_logit: float
    end_logit: float
    probability: float = 0.0

    @property
    def score(self) -> float:
        return self.start_logit + self.end_logit

    def to_json(self) -> dict[str, Any]:
        return {"text": self.text, "probability": self.probability, "start_logit": self.start_logit,
                "end_logit": self.end_logit, "start": self.start, "end": self.end}


@dataclasses.dataclass
class Answer:
    """A question's decoded answer: the text (empty: no answer, v2), the n-best list, and for v2 the null score
    minus the best span's score (``null_odds``; above the threshold means no answer)."""
    text: str
    nbest: list[Candidate]
    null_odds: float | None = None


def _softmax(scores: Sequence[float]) -> list[float]:
    top = max(scores)
    exps = [math.exp(s - top) for s in scores]
    total = sum(exps)
    return [e / total for e in exps]


def window_candidates(window: Window, context: EncodedContext, text: str, start_logits: np.ndarray,
                      end_logits: np.ndarray, n_best_size: int, max_answer_length: int) -> list[Candidate]:
    """Spans of one window: the n best starts × n best ends among its context pieces (see the module docstring)."""
    lo, hi = window.first, window.first + window.length
    if hi <= lo:
        return []
    starts = lo + np.argsort(-start_logits[lo:hi], kind="stable")[:n_best_size]
    ends = lo + np.argsort(-end_logits[lo:hi], kind="stable")[:n_best_size]
    out = []
    for s in starts:
        if not window.max_context[s - lo]:
            continue
        for e in ends:
            if e < s or e - s + 1 > max_answer_length:
                continue
            a = context.offsets[window.piece_start + s - lo][0]
            b = context.offsets[window.piece_start + e - lo][1]
            out.append(Candidate(text[a:b], a, b, float(start_logits[s]), float(end_logits[e])))
    return out


def best_single_piece(windows: Sequence[Window], context: EncodedContext, text: str, start_logits: np.ndarray,
                      end_logits: np.ndarray) -> Candidate | None:
    """The best one-piece span over the windows (the fallback when no n-best pair qualifies)."""
    best = None
    for w, window in enumerate(windows):
        for i in range(window.length):
            if not window.max_context[i]:
                continue
            p = window.first + i
            score = float(start_logits[w][p] + end_logits[w][p])
            if best is None or score > best[0]:
                a, b = context.offsets[window.piece_start + i]
                best = (score, Candidate(text[a:b], a, b, float(start_logits[w][p]), float(end_logits[w][p])))
    return None if best is None else best[1]


def decode_example(example: MrcExample, context: EncodedContext, windows: Sequence[Window],
                   start_logits: np.ndarray, end_logits: np.ndarray, *, n_best_size: int = 20,
                   max_answer_length: int = 50, version_2: bool = False,
                   null_score_diff_threshold: float = 0.0) -> Answer:
    """One question's answer from its windows' logits ([W,T] each, in ``windows``' order)."""
    candidates: list[Candidate] = []
    null_score = None
    for window, sl, el in zip(windows, start_logits, end_logits):
        candidates += window_candidates(window, context, example.context, sl, el, n_best_size, max_answer_length)
        score = float(sl[0] + el[0])
        if null_score is None or score < null_score:
            null_score, null_logits = score, (float(sl[0]), float(el[0]))
    candidates.sort(key=lambda c: -c.score)
    nbest, texts = [], set()
    for candidate in candidates:
        if candidate.text in texts or not candidate.text.strip():
            continue
        texts.add(candidate.text)
        nbest.append(candidate)
        if len(nbest) == n_best_size:
            break
    if not nbest:
        fallback = best_single_piece(windows, context, example.context, start_logits, end_logits)
        if fallback is not None:
            nbest.append(fallback)
    best = nbest[0] if nbest else None
    null_odds = None
    if version_2:
        null_odds = null_score - best.score if best is not None else math.inf
        if "" not in texts:
            nbest.append(Candidate("", -1, -1, *null_logits))
            nbest.sort(key=lambda c: -c.score)
    for candidate, p in zip(nbest, _softmax([c.score for c in nbest]) if nbest else []):
        candidate.probability = p
    if best is None or (version_2 and null_odds > null_score_diff_threshold):
        return Answer("", nbest, null_odds)
    return Answer(best.text, nbest, null_odds)


def decode(examples: Sequence[MrcExample], encoder: MrcEncoder, windows: Sequence[Window], start_logits: np.ndarray,
           end_logits: np.ndarray, **options) -> dict[str, Answer]:
    """{qid: Answer} for every example, from the logits [N,T] of ``windows`` (in order); options as
    ``decode_example``."""
    if len(windows) != len(start_logits) or len(windows) != len(end_logits):
        raise ValueError(f"{len(start_logits)} start and {len(end_logits)} end logit rows for {len(windows)} windows")
    by_example: dict[int, list[int]] = {}
    for i, window in enumerate(windows):
        by_example.setdefault(window.example, []).append(i)
    answers = {}
    for index, example in enumerate(examples):
        rows = by_example.get(index, [])
        answers[example.qid] = decode_example(example, encoder.context(example.context), [windows[i] for i in rows],
                                              start_logits[rows], end_logits[rows], **options)
    return answers


# ---------------------------------------------------------------------------------------------------------------------
# Outputs
# ---------------------------------------------------------------------------------------------------------------------

def write_json(path: str, value: Any) -> None:
    """UTF-8 JSON (not ASCII-escaped) at ``path``, under a temporary name until complete."""
    import tensorflow as tf  # any file system the flags name

    tmp = f"{path}.tmp-{os.getpid()}"
    with tf.io.gfile.GFile(tmp, "w") as f:
        f.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")
    tf.io.gfile.rename(tmp, path, overwrite=True)


def write_predictions(output_dir: str, answers: dict[str, Answer], version_2: bool) -> list[str]:
    """predictions.json ({qid: text}), nbest_predictions.json and, for v2, null_odds.json; returns the paths."""
    paths = [os.path.join(output_dir, "predictions.json"), os.path.join(output_dir, "nbest_predictions.json")]
    write_json(paths[0], {qid: a.text for qid, a in answers.items()})
    write_json(paths[1], {qid: [c.to_json() for c in a.nbest] for qid, a in answers.items()})
    if version_2:
        paths.append(os.path.join(output_dir, "null_odds.json"))
        write_json(paths[2], {qid: a.null_odds for qid, a in answers.items()})
    return paths


def gold_answers(examples: Iterable[MrcExample]) -> dict[str, list[str]]:
    """{qid: gold texts} for the metric ([""] for a v2 question without an answer)."""
    return {e.qid: ([""] if e.is_impossible else list(e.answers)) for e in examples}
