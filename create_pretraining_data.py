# coding=utf-8
"""Creates ALBERT pre-training data: SOP sentence pairs with Chinese whole-word / n-gram masking.

Input: UTF-8 text files, one sentence a line, a blank line between documents.
Output: TFRecord files of `tf.train.Example`s with exactly the features the original
(brightmart/albert_zh) writes, so records from either script train in both:

  input_ids, input_mask, segment_ids           int64   [max_seq_length]
  masked_lm_positions, masked_lm_ids           int64   [max_predictions_per_seq]
  masked_lm_weights                            float32 [max_predictions_per_seq]
  next_sentence_labels                         int64   [1]   (SOP: 1 = segments swapped)

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
    come in a random order and inside a unit the documents and instances are
    shuffled. This block shuffle stands in for the original's global shuffle, and
    keeps the dupes of a document a whole pass apart. Temporary files (next to the
    first output) need about as much disk as the output; the outputs get their
    final names only when complete.
  * TensorFlow is not needed (nor imported): examples and TFRecord frames are
    encoded here, byte-identical to tf.train.Example / tf.io.TFRecordWriter.

Chinese whole-word masking (`--do_whole_word_mask`): the BERT tokenizer splits
Chinese into single characters; jieba's words (of any length; the original stopped at
3 characters) group them back into words, and `##` WordPieces group with the piece
before them. A word is masked as a whole, and the 80% [MASK] / 10% keep / 10%
random choice is made once per word. Labels are the ids of the tokens the model
sees as input: the original used `##字` ids as labels for word-internal characters
(even without whole-word masking), ids that never occur as inputs;
`--wwm_subword_labels` (old name `--seed_wwm_labels`) brings those labels back for users who must match an old run
(only the labels: the grouping stays jieba's full words). `--non_chinese` skips
jieba: words are then only WordPiece groups. With `--spm_model_file` a "▁" piece
starts a word and every piece holding a CJK character is a word of its own.
`--ngram=N` masks spans of 1..N consecutive whole words (never across [SEP]) with
p(n) proportional to 1/n; `--favor_shorter_ngram=false` reverses the weights,
p(n) proportional to 1/(N + 1 - n), so that N-grams are the most likely (upstream
Google ALBERT's semantics; the copy of Google's script in the original albert_zh
inverted the flag, so its `true` is this `false`). A span shrinks when the next word would exceed the budget
of round(len * masked_lm_prob) predictions (at most --max_predictions_per_seq).

Instances (sentence-order prediction, as the original builds them): sentences are
gathered into a chunk until the chunk reaches the target length (the full
length, or a random shorter one with `--short_seq_prob`); the chunk is split at
a random sentence boundary into A and B, and with p=0.5 they are swapped
(label 1). Differences from the original, on purpose:
  * a chunk always holds at least two sentences (a sentence longer than the
    target takes the next one with it, and truncation trims the pair). When only
    the last sentence of a document is left over, it is paired with the sentence
    before it (which is then used twice). For a one-sentence chunk, the original's
    loop `continue`d without advancing, appended the same sentence again and
    wrote an A == B pair (with a coin-flip label) instead (checked against its
    final revision: `if len(tokens_a)==0 or len(tokens_b)==0: continue` skips
    `i += 1` and keeps the chunk).
  * a document of one sentence is cut in two at a random word boundary (both
    parts non-empty); a one-token document gives no instance and is counted.
  * random replacement tokens come from the ordinary vocab entries (no [PAD],
    [unused*], [CLS], [SEP], [MASK], <S>, <T>, and no `##字` pieces, which never
    occur as inputs here); the original drew from the whole vocab.
"""

from __future__ import annotations

import argparse
import bisect
import dataclasses
import glob
import multiprocessing
import os
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

import tokenization
from cli import add_bool_flag, clean_errors, str2bool  # noqa: F401  (str2bool: part of this module's API)
from masking import (  # noqa: F401  (re-exported: the masking rules' old home)
    REQUIRED_TOKENS,
    SPECIAL_WORD,
    WORD_CONTINUES,
    WORD_START,
    InstanceConfig,
    SpecialIds,
    _apply_masks,
    _choose_ngrams,
    _choose_words,
    _random_indices,
    create_masked_lm_predictions,
    special_ids_from_vocab,
)
from tfrecord_io import (  # noqa: F401  (re-exported: their old home)
    ExampleEncoder,
    _crc32c_table,
    _masked_crc32c_batch,
    _varint,
    iter_frames,
    masked_crc32c,
    serialize_example,
    tfrecord_frames,
)

# The feature names of the original's TFRecords, in the order the original writes them.
FEATURE_NAMES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions",
                 "masked_lm_ids", "masked_lm_weights", "next_sentence_labels")
_PROG = "create_pretraining_data.py"


class InputError(Exception):
    """Bad input or configuration: reported as one message, without a traceback."""


# --------------------------------------------------------------------------- flags



def build_arg_parser() -> argparse.ArgumentParser:
    """The original's flags (same names, `--flag=value` or `--flag value`) plus the new ones."""
    p = argparse.ArgumentParser(prog=_PROG, description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--input_file", required=True,
                   help="Input raw text file(s): comma-separated paths or globs.")
    p.add_argument("--output_file", required=True,
                   help="Output TFRecord file(s), comma-separated; instances are dealt round-robin.")
    p.add_argument("--vocab_file", default=None,
                   help="BERT vocab file (one token a line). Required unless --spm_model_file.")
    p.add_argument("--spm_model_file", default=None,
                   help="SentencePiece model (Google ALBERT); tokens and vocab then come from it.")
    add_bool_flag(p, "do_lower_case", True, "Lower-case (and strip accents) before tokenizing")
    add_bool_flag(p, "do_whole_word_mask", False,
                   "Mask whole words: jieba words for Chinese, ##-WordPieces with their word")
    p.add_argument("--max_seq_length", type=int, default=128, help="Maximum sequence length.")
    p.add_argument("--max_predictions_per_seq", type=int, default=20,
                   help="Maximum number of masked LM predictions per sequence.")
    p.add_argument("--random_seed", type=int, default=12345, help="Random seed for data generation.")
    p.add_argument("--dupe_factor", type=int, default=10,
                   help="Number of passes over the data (each with different masks).")
    p.add_argument("--masked_lm_prob", type=float, default=0.15, help="Masked LM probability.")
    p.add_argument("--short_seq_prob", type=float, default=0.1,
                   help="Probability of a target length shorter than the maximum.")
    add_bool_flag(p, "non_chinese", False,
                   "The corpus is not Chinese: no jieba; whole words are ##-WordPiece groups only")
    p.add_argument("--segmenter", choices=SEGMENTERS, default="rjieba",
                   help="Chinese word segmenter for whole-word masking: rjieba (jieba-rs, the same words as jieba "
                        "on the CJK text it is given, ~13x faster) or jieba 0.42.1 (the reference)")
    p.add_argument("--ngram", type=int, default=1,
                   help="Mask spans of up to N whole words, p(n) ~ 1/n (ALBERT paper: 3).")
    add_bool_flag(p, "favor_shorter_ngram", True,
                  "p(n) ~ 1/n; false reverses the weights so that the longest n-grams are likeliest (upstream "
                  "Google ALBERT's meaning; the original albert_zh's copy of Google's script inverted the flag)")
    add_bool_flag(p, "wwm_subword_labels", False,
                  "Whole-word masking: label the characters inside a Chinese word with their ##字 subword ids, as the "
                  "original did (only to match an old run: the model never sees ##字 as input)",
                  aliases=("seed_wwm_labels",))
    p.add_argument("--masking", choices=("static", "dynamic"), default="static",
                   help="static: masked instances, --dupe_factor passes (the original's records); dynamic: each "
                        "instance once, unmasked, with its words marked (feature word_starts), for run_pretraining.py "
                        "to mask afresh every epoch (--masked_lm_prob, --ngram, --max_predictions_per_seq apply there)")
    p.add_argument("--num_workers", type=int, default=1,
                   help="Processes; the output does not depend on it.")
    p.add_argument("--work_unit_mb", type=float, default=1.0,
                   help="Input is processed in units of about this many MB cut at blank lines; "
                        "it sets the shuffle scope and bounds memory (changing it changes the output).")
    p.add_argument("--interleave_units", type=int, default=32,
                   help="Records of this many work units alternate in the output, so that a stretch of records (a "
                        "batch, a shuffle buffer) mixes text from across the corpus; memory holds that many units' "
                        "records of one pass. 1: each unit's records in one block (changing it changes the output).")
    p.add_argument("--decode_errors", choices=("fail", "skip"), default="fail",
                   help="A line that is not UTF-8: fail naming file and line, or skip and count it.")
    p.add_argument("--log_examples", type=int, default=1,
                   help="Print this many instances of the first unit to stderr.")
    return p


def parse_flags(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parses and checks the flags (exits with a usage message on a bad value)."""
    parser = build_arg_parser()
    args = parser.parse_args(argv)
    if not args.vocab_file and not args.spm_model_file:
        parser.error("--vocab_file is required (or --spm_model_file)")
    checks = [
        (args.max_seq_length >= 5, "--max_seq_length must be >= 5 ([CLS] A [SEP] B [SEP])"),
        (args.max_predictions_per_seq >= 1, "--max_predictions_per_seq must be >= 1"),
        (0.0 < args.masked_lm_prob < 1.0, "--masked_lm_prob must be in (0, 1)"),
        (0.0 <= args.short_seq_prob <= 1.0, "--short_seq_prob must be in [0, 1]"),
        (args.dupe_factor >= 1, "--dupe_factor must be >= 1"),
        (args.ngram >= 1, "--ngram must be >= 1"),
        (args.num_workers >= 1, "--num_workers must be >= 1"),
        (args.work_unit_mb > 0, "--work_unit_mb must be > 0"),
        (args.interleave_units >= 1, "--interleave_units must be >= 1"),
        (not (args.masking == "dynamic" and args.wwm_subword_labels),
         "--wwm_subword_labels needs --masking=static: dynamic masking labels each token with its input id"),
    ]
    for ok, message in checks:
        if not ok:
            parser.error(message)
    return args


# --------------------------------------------------------------------------- sentences

@dataclasses.dataclass
class Sentence:
    """A tokenized line (length n).

    ids:         n token ids.
    word_starts: n booleans, True where a whole word begins.
    label_ids:   the masked-LM label of each token: `ids` itself (the same list),
                 except with --wwm_subword_labels (then `##字` ids inside Chinese words).
    """
    ids: list[int]
    word_starts: list[bool]
    label_ids: list[int]

    def __len__(self) -> int:
        return len(self.ids)


class Document:
    """The sentences of one document, concatenated, so that A and B are list slices.

    ids:         N token ids.
    label_ids:   N label ids, or None when they are the ids.
    word_starts: ascending positions in 0..N-1 where a whole word begins.
    bounds:      sentence i is ids[bounds[i]:bounds[i + 1]]; len(bounds) = sentences + 1.
    """

    def __init__(self, sentences: Sequence[Sentence]):
        self.ids: list[int] = []
        self.word_starts: list[int] = []
        self.bounds = [0]
        has_labels = any(s.label_ids is not s.ids for s in sentences)
        self.label_ids: list[int] | None = [] if has_labels else None
        for s in sentences:
            base = len(self.ids)
            self.ids += s.ids
            if self.label_ids is not None:
                self.label_ids += s.label_ids
            self.word_starts += [base + i for i, start in enumerate(s.word_starts) if start]
            self.bounds.append(len(self.ids))

    @property
    def num_sentences(self) -> int:
        return len(self.bounds) - 1


# Whether a token is one CJK character (the BERT tokenizer splits those alone).
_IS_HAN = tokenization.Memo(lambda token: len(token) == 1 and tokenization.is_chinese_char(token))
# The character jieba sees for a token: the CJK character itself, or a space.
_JIEBA_CHAR = tokenization.Memo(lambda token: token if _IS_HAN[token] else " ")
# Whether a token can start a word (a "##" piece continues the word before it).
_CAN_START = tokenization.Memo(lambda token: not token.startswith("##"))


def chinese_word_starts(tokens: Sequence[str], cut: Callable[[str], list[str]] | None) -> list[bool]:
    """Marks where whole words start in WordPiece tokens.

    A `##` piece continues the word before it. CJK characters are grouped into words
    by `cut` (jieba.lcut), run once on a string with one character per token: the CJK
    character itself, or a space for any other token. jieba never joins across a
    space and keeps every character, so word lengths map straight back to tokens;
    and the tokenizer, not jieba, decides what a token is.

    Args:
      tokens: the sentence's tokens (length n).
      cut: a word segmenter, or None for no Chinese grouping.
    Returns:
      n booleans.
    """
    starts = list(map(_CAN_START.__getitem__, tokens))
    if cut is None:
        return starts
    text = "".join(map(_JIEBA_CHAR.__getitem__, tokens))
    if len(text) - text.count(" ") < 2:  # fewer than two CJK characters: nothing to group
        return starts
    position = 0
    for word in cut(text):
        if len(word) > 1:  # a word of several CJK characters: only its first one starts it
            starts[position + 1:position + len(word)] = [False] * (len(word) - 1)
        position += len(word)
    if position != len(tokens):  # cannot happen with jieba; stay safe
        return [not t.startswith("##") for t in tokens]
    return starts


def spm_word_starts(pieces: Sequence[str]) -> list[bool]:
    """Word starts for SentencePiece pieces: a "▁" piece starts a word; pieces with CJK
    characters are words on their own (Chinese has no "▁" between words)."""
    has_han = [any(tokenization.is_chinese_char(c) for c in p) for p in pieces]
    return [i == 0 or p.startswith(tokenization.SPIECE_UNDERLINE) or has_han[i] or has_han[i - 1]
            for i, p in enumerate(pieces)]


SEGMENTERS = ("rjieba", "jieba")


def segmenter_cut(name: str) -> Callable[[str], list[str]]:
    """The ``cut`` of a segmenter. Both see only CJK characters and spaces (chinese_word_starts), where rjieba
    (jieba-rs) gives jieba 0.42.1's words (tests/test_create_pretraining_data.py checks the demo corpus); they
    differ only inside ASCII runs (URLs, hyphens), which never reach them."""
    if name == "rjieba":
        import rjieba  # imported here: workers that do not segment skip it

        return rjieba.cut
    if name == "jieba":
        import logging

        import jieba
        jieba.setLogLevel(logging.WARNING)
        jieba.initialize()
        return jieba.lcut
    raise ValueError(f"--segmenter={name!r}: expected one of {', '.join(SEGMENTERS)}")


class SentenceEncoder:
    """Text line -> Sentence: tokenization and word segmentation, run once per sentence."""

    def __init__(self, tokenizer: Any, use_jieba: bool, wwm_subword_labels: bool, segmenter: str = "rjieba"):
        self.tokenizer = tokenizer
        self.is_spm = getattr(tokenizer, "sp_model", None) is not None
        self.wwm_subword_labels = wwm_subword_labels and not self.is_spm
        self._cut = segmenter_cut(segmenter) if use_jieba and not self.is_spm else None

    def encode(self, text: str) -> Sentence | None:
        """Tokenizes one line; None if it has no tokens."""
        tokens = self.tokenizer.tokenize(text)  # FullTokenizer memoizes WordPiece per word
        if not tokens:
            return None
        ids = self.tokenizer.convert_tokens_to_ids(tokens)
        starts = spm_word_starts(tokens) if self.is_spm else chinese_word_starts(tokens, self._cut)
        labels = ids
        if self.wwm_subword_labels:
            vocab = self.tokenizer.vocab
            labels = [vocab.get("##" + t, i) if not start and _IS_HAN[t] else i
                      for t, i, start in zip(tokens, ids, starts)]
        return Sentence(ids, starts, labels)


# --------------------------------------------------------------------------- instances (no TF)

@dataclasses.dataclass
class TrainingInstance:
    """One SOP pair, unpadded: n = 3 + len(A) + len(B) <= max_seq_length, k <= max_predictions_per_seq.

    input_ids:           n ids of [CLS] A [SEP] B [SEP], after masking.
    sep_index:           position of the first [SEP]; segment ids are 0 up to it, then 1.
    masked_lm_positions: k positions, ascending.
    masked_lm_ids:       k label ids.
    sop_label:           1 if A and B were swapped, else 0.
    original_ids:        n ids before masking.
    word_starts:         ascending positions where the words masking used begin
                         ([CLS] and [SEP] are one-token words of their own).
    mask_counts:         tokens replaced by [MASK], kept, replaced by a random token.
    """
    input_ids: list[int]
    sep_index: int
    masked_lm_positions: list[int]
    masked_lm_ids: list[int]
    sop_label: int
    original_ids: list[int]
    word_starts: list[int]
    mask_counts: tuple[int, int, int]

    @property
    def segment_ids(self) -> list[int]:
        return [0] * (self.sep_index + 1) + [1] * (len(self.input_ids) - self.sep_index - 1)


def truncate_seq_pair(len_a: int, len_b: int, max_num_tokens: int,
                      rng: np.random.Generator) -> tuple[slice, slice]:
    """Which tokens of A and B to keep so that len(A) + len(B) <= max_num_tokens.

    Same distribution as the original: one token at a time is removed from the longer
    segment (B on ties), from its front or back with p=0.5. In closed form: the
    longer one is cut down to the other's length, the rest alternates starting
    with B, and the front/back split of each side's cuts is Binomial(cuts, 0.5).
    """
    excess = len_a + len_b - max_num_tokens
    if excess <= 0:
        return slice(0, len_a), slice(0, len_b)
    cut_a = cut_b = 0
    if len_a > len_b:
        cut_a = min(excess, len_a - len_b)
    else:
        cut_b = min(excess, len_b - len_a)
    rest = excess - cut_a - cut_b
    cut_b += (rest + 1) // 2
    cut_a += rest // 2
    front_a = int(rng.binomial(cut_a, 0.5)) if cut_a else 0
    front_b = int(rng.binomial(cut_b, 0.5)) if cut_b else 0
    return (slice(front_a, len_a - (cut_a - front_a)),
            slice(front_b, len_b - (cut_b - front_b)))


def _add_word_starts(starts: list[int], document: Document, start: int, end: int, offset: int) -> None:
    """Appends the word starts of document tokens [start, end), moved to begin at `offset`;
    `start` always starts a word (a word that lost its head to truncation is a word of its own)."""
    word_starts = document.word_starts
    lo = bisect.bisect_right(word_starts, start)
    hi = bisect.bisect_left(word_starts, end, lo)
    starts.append(offset)
    starts += map((offset - start).__add__, word_starts[lo:hi])


def _make_instance(document: Document, first: tuple[int, int], second: tuple[int, int],
                   cfg: InstanceConfig, special: SpecialIds, rng: np.random.Generator) -> TrainingInstance:
    """[CLS] A [SEP] B [SEP] from two consecutive token ranges of a document, swapped with p=0.5."""
    sop_label = int(rng.random() < 0.5)
    (a0, a1), (b0, b1) = (second, first) if sop_label else (first, second)
    keep_a, keep_b = truncate_seq_pair(a1 - a0, b1 - b0, cfg.max_seq_length - 3, rng)
    a0, a1 = a0 + keep_a.start, a0 + keep_a.stop
    b0, b1 = b0 + keep_b.start, b0 + keep_b.stop
    cls, sep = special.cls_id, special.sep_id
    doc_ids = document.ids
    ids = [cls, *doc_ids[a0:a1], sep, *doc_ids[b0:b1], sep]
    labels = ids
    if document.label_ids is not None:
        doc_labels = document.label_ids
        labels = [cls, *doc_labels[a0:a1], sep, *doc_labels[b0:b1], sep]
    n, sep_a = len(ids), a1 - a0 + 1
    if cfg.do_whole_word_mask:
        starts = [0]
        _add_word_starts(starts, document, a0, a1, 1)
        sep_word = len(starts)
        starts.append(sep_a)
        _add_word_starts(starts, document, b0, b1, sep_a + 1)
        starts.append(n - 1)
        special_words: tuple[int, ...] = (0, sep_word, len(starts) - 1)
    else:
        starts, special_words = list(range(n)), (0, sep_a, n - 1)
    if cfg.dynamic:  # masked in the training pipeline (masking.mask_batch), with the same rules
        return TrainingInstance(ids, sep_a, [], [], sop_label, ids, starts, (0, 0, 0))
    output, positions, label_ids, counts = create_masked_lm_predictions(
        ids, labels, starts, special_words, cfg, special, rng)
    return TrainingInstance(output, sep_a, positions, label_ids, sop_label, ids, starts, counts)


def create_instances_from_document(document: Document, cfg: InstanceConfig, special: SpecialIds,
                                   rng: np.random.Generator) -> list[TrainingInstance]:
    """SOP instances of one document (see the module docstring for the chunking rules)."""
    max_num_tokens = cfg.max_seq_length - 3
    # One target length per document, as in the original and BERT.
    target = max_num_tokens
    if rng.random() < cfg.short_seq_prob:
        target = int(rng.integers(2, max_num_tokens + 1))
    bounds = document.bounds
    if document.num_sentences == 1:
        if bounds[1] < 2:
            return []
        # Cut at a word start if there is one, so that no word is split between A and B.
        cuts = [p for p in document.word_starts if p > 0]
        cut = cuts[int(rng.integers(len(cuts)))] if cuts else int(rng.integers(1, bounds[1]))
        return [_make_instance(document, (0, cut), (cut, bounds[1]), cfg, special, rng)]
    instances = []
    chunk_start, last = 0, document.num_sentences - 1
    for i in range(document.num_sentences):
        size = i - chunk_start + 1
        if not ((size >= 2 and bounds[i + 1] - bounds[chunk_start] >= target) or i == last):
            continue
        if size == 1:  # a lone leftover sentence is paired with the one before it
            chunk_start, size = i - 1, 2
        a_end = chunk_start + (int(rng.integers(1, size)) if size > 2 else 1)
        instances.append(_make_instance(document, (bounds[chunk_start], bounds[a_end]),
                                        (bounds[a_end], bounds[i + 1]), cfg, special, rng))
        chunk_start = i + 1
    return instances


def check_sop_semantics(num_documents: int = 400, seed: int = 12345,
                        max_seq_length: int = 64) -> dict[str, float]:
    """Asserts the SOP layout and label meaning on synthetic documents; returns statistics.

    Token ids increase through every document (and documents use disjoint ids), so
    the order of two segments can be read from their ids. For every instance it
    asserts: the layout is [CLS] A [SEP] B [SEP] with segment ids 0...0 1...1; A and B
    are non-empty, contiguous pieces of ONE document; label 0 means A comes before B
    in the document and label 1 means B comes before A. Across instances, label 1 has
    p = 0.5 within 4 standard errors. Needs no vocab, TensorFlow or jieba.

    Raises:
      AssertionError: a property does not hold.
    """
    rng = np.random.default_rng(seed)
    special = SpecialIds(cls_id=1, sep_id=2, mask_id=3, random_ids=np.arange(10, 20, dtype=np.int32))
    cfg = InstanceConfig(max_seq_length=max_seq_length, max_predictions_per_seq=max_seq_length // 4,
                         do_whole_word_mask=True, ngram=3)
    next_id, doc_ranges, instances = 1000, [], []
    for _ in range(num_documents):
        document, first_id = [], next_id
        for _ in range(int(rng.integers(1, 12))):
            n = int(rng.integers(1, 30))
            ids = list(range(next_id, next_id + n))
            document.append(Sentence(ids, (rng.random(n) < 0.6).tolist(), ids))
            next_id += n
        doc_ranges.append((first_id, next_id))
        instances.extend(create_instances_from_document(Document(document), cfg, special, rng))
    for inst in instances:
        ids, seg = np.asarray(inst.original_ids), np.asarray(inst.segment_ids)
        seps = np.flatnonzero(ids == special.sep_id)
        assert ids[0] == special.cls_id and len(seps) == 2 and seps[1] == len(ids) - 1, ids
        assert len(ids) <= max_seq_length
        assert (seg[:seps[0] + 1] == 0).all() and (seg[seps[0] + 1:] == 1).all(), seg
        a, b = ids[1:seps[0]], ids[seps[0] + 1:-1]
        assert len(a) and len(b), "empty segment"
        for part in (a, b):
            assert (np.diff(part) == 1).all(), f"segment is not a contiguous piece of a document: {part}"
        same_doc = [lo <= min(a[0], b[0]) and max(a[-1], b[-1]) < hi for lo, hi in doc_ranges]
        assert any(same_doc), "A and B come from different documents"
        if inst.sop_label == 0:
            assert a[-1] < b[0], f"label 0 but B precedes A: {a} / {b}"
        else:
            assert b[-1] < a[0], f"label 1 but A precedes B: {a} / {b}"
    total = len(instances)
    swapped = sum(inst.sop_label for inst in instances) / total
    assert abs(swapped - 0.5) <= 4 * (0.25 / total) ** 0.5, f"label 1 fraction {swapped:.3f} of {total}"
    return {"instances": float(total), "swapped_fraction": swapped}


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


def read_documents(unit: WorkUnit, encoder: SentenceEncoder, decode_errors: str,
                   stats: Stats, max_tokens: int | None = None) -> list[Document]:
    """Reads and tokenizes the documents of one unit. A line longer than ``max_tokens`` (what an instance holds)
    loses its tokens past that limit: counted in ``stats``, and the first few are named (file:line) on stderr.

    Raises:
      InputError: a line is not UTF-8 and decode_errors == "fail".
    """
    documents: list[Document] = []
    current: list[Sentence] = []
    with open(unit.path, "rb") as f:
        f.seek(unit.start)
        pos = unit.start
        while pos < unit.end:
            raw = f.readline()
            if not raw:
                break
            line_start, pos = pos, pos + len(raw)
            try:
                line = raw.decode("utf-8").strip()
            except UnicodeDecodeError as e:
                if decode_errors == "fail":
                    raise InputError(
                        f"{unit.path}:{_line_number(unit.path, line_start)}: line is not UTF-8 "
                        f"({e.reason} at byte {e.start} of the line); fix the file or pass "
                        f"--decode_errors=skip") from None
                stats.skipped_lines += 1
                continue
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
                        print(f"[{_PROG}] warning: {unit.path}:{_line_number(unit.path, line_start)}: a line of "
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
        print(f"[{_PROG}] {label}: {pct:5.1f}% ({done:,.1f}/{self.total:,.1f} {self.unit_name}), "
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
    try:
        written = 0
        for pass_index in range(dupe_factor):
            order = np.random.default_rng(_seed(random_seed, 1, pass_index)).permutation(len(results)).tolist()
            for group_start in range(0, len(order), interleave_units):
                group = order[group_start:group_start + interleave_units]
                frames = [_pass_frames(results[i], pass_index) for i in group]
                interleaved = []  # (unit, frame): each unit's first record, then each one's second, ...
                for rank in range(max(map(len, frames), default=0)):
                    interleaved += [(unit, f[rank]) for unit, f in zip(group, frames) if rank < len(f)]
                if len(writers) == 1:
                    writers[0].write(b"".join(frame for _, frame in interleaved))
                else:
                    for offset, (_, frame) in enumerate(interleaved):
                        writers[(written + offset) % len(writers)].write(frame)
                for unit, _ in interleaved:
                    diversity.add(unit)
                written += len(interleaved)
                progress.update(float(written), written, "writing")
        for writer in writers:
            writer.close()
        for temp, final in zip(temp_names, output_files):
            os.replace(temp, final)
    finally:
        for writer in writers:
            writer.close()
        for temp in temp_names:
            if os.path.exists(temp):
                os.remove(temp)
    return diversity


# Temporary folders are named TEMP_PREFIX + the writer's pid + "-" + random; a run removes those of dead writers.
TEMP_PREFIX = ".create_pretraining_data-"
_TEMPORARY_RE = re.compile(r"^(?:\.create_pretraining_data-(\d+)-.*|.+\.tmp-(\d+))$")  # (and the old partial names)


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
    """Removes what killed runs left in ``directory``: their temporary folders (and the ``NAME.tmp-PID`` partial
    outputs of earlier versions), when the pid that wrote them is no longer running; says what it freed."""
    for entry in os.scandir(directory):
        match = _TEMPORARY_RE.match(entry.name)
        if not match or _pid_alive(int(match.group(1) or match.group(2))):  # ours, or another live run's
            continue
        size = sum(f.stat().st_size for f in Path(entry.path).rglob("*") if f.is_file()) if entry.is_dir() \
            else entry.stat().st_size
        if entry.is_dir():
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            os.remove(entry.path)
        print(f"[{_PROG}] removed {entry.path} ({size / 1e6:.1f} MB), left by a killed run", file=sys.stderr)


PATH_FLAGS = ("input_file", "output_file", "vocab_file", "spm_model_file")


def run_with_remote_paths(args: argparse.Namespace) -> Stats:
    """``run`` for gs:// (or any TensorFlow file system) paths: remote inputs and vocab are copied to a local staging
    folder (the workers read byte ranges of local files in parallel), outputs are written there and uploaded when
    complete, under a temporary name renamed at the end. Only this path imports TensorFlow (for tf.io.gfile)."""
    import tensorflow as tf

    staging = tempfile.mkdtemp(prefix=".create_pretraining_data-remote-")
    local = argparse.Namespace(**vars(args))

    def fetch(path: str, index: int) -> str:
        target = os.path.join(staging, f"in{index:05d}-{os.path.basename(path)}")
        try:
            tf.io.gfile.copy(path, target, overwrite=True)
        except tf.errors.OpError as err:
            raise InputError(f"cannot read {path}: {err.message.splitlines()[0]}") from None
        return target

    def remote_matches(pattern: str) -> list[str]:
        try:
            matched = sorted(tf.io.gfile.glob(pattern))
        except tf.errors.OpError as err:
            raise InputError(f"--input_file: cannot list {pattern}: {err.message.splitlines()[0]}") from None
        if not matched:
            raise InputError(f"--input_file: no file matches {pattern!r} (or it cannot be reached)")
        return matched

    try:
        inputs: list[str] = []
        for pattern in (p.strip() for p in args.input_file.split(",") if p.strip()):
            inputs += [fetch(p, len(inputs) + i) for i, p in enumerate(remote_matches(pattern))] \
                if "://" in pattern else [pattern]
        local.input_file = ",".join(inputs)
        for flag in ("vocab_file", "spm_model_file"):
            value = getattr(args, flag)
            if value and "://" in value:
                setattr(local, flag, fetch(value, 99999))
        uploads: list[tuple[str, str]] = []
        outputs = []
        for index, name in enumerate(o.strip() for o in args.output_file.split(",") if o.strip()):
            if "://" not in name:
                outputs.append(name)
                continue
            folder = name.rsplit("/", 1)[0]
            try:
                tf.io.gfile.makedirs(folder)
            except tf.errors.OpError as err:
                raise InputError(f"--output_file: cannot write to {folder}: {err.message.splitlines()[0]}") from None
            staged = os.path.join(staging, "out", f"{index}-{os.path.basename(name)}")
            outputs.append(staged)
            uploads.append((staged, name))
        local.output_file = ",".join(outputs)
        stats = run(local)
        for staged, remote in uploads:
            folder, base = remote.rsplit("/", 1)
            partial = f"{folder}/.{base}.partial-{os.getpid()}"
            tf.io.gfile.copy(staged, partial, overwrite=True)
            tf.io.gfile.rename(partial, remote, overwrite=True)
            print(f"[{_PROG}] uploaded {remote}", file=sys.stderr, flush=True)
        return stats
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def expand_input_files(patterns: str) -> list[str]:
    """Comma-separated paths/globs -> files (each glob sorted, so the order is reproducible)."""
    files: list[str] = []
    for pattern in (p.strip() for p in patterns.split(",")):
        if not pattern:
            continue
        matches = sorted(glob.glob(pattern))
        if not matches:
            raise InputError(f"--input_file: no file matches {pattern!r}")
        files.extend(m for m in matches if os.path.isfile(m))
    if not files:
        raise InputError("--input_file names no files")
    return files


def summary_lines(stats: Stats, seconds: float, num_units: int, num_workers: int,
                  output_files: Sequence[str]) -> list[str]:
    """Human-readable end-of-run summary."""
    tokens, masked = max(stats.tokens, 1), max(stats.masked, 1)
    lines = [
        f"input: {stats.input_bytes / 1e6:,.2f} MB in {num_units} work unit(s), {num_workers} worker(s)",
        f"documents: {stats.documents:,}  sentences: {stats.sentences:,}  "
        f"skipped non-UTF-8 lines: {stats.skipped_lines:,}",
        f"instances: {stats.instances:,}  tokens: {stats.tokens:,} "
        f"({stats.tokens / max(stats.instances, 1):.1f} per instance)",
        (f"masked: {stats.masked:,} tokens = {stats.masked / tokens:.2%} of tokens; "
         f"[MASK] {stats.masked_mask / masked:.1%}, kept {stats.masked_keep / masked:.1%}, "
         f"random {stats.masked_random / masked:.1%}") if stats.masked else
        "masked: none (--masking=dynamic: run_pretraining.py masks every epoch afresh)",
        f"SOP: {stats.swapped / max(stats.instances, 1):.2%} swapped (label 1)",
        f"single-sentence documents (cut in two): {stats.single_sentence_documents:,}; "
        f"one-token documents (no instance): {stats.one_token_documents:,}; "
        f"documents cut at a work-unit boundary: {stats.documents_split_at_unit:,}",
        f"batch diversity: {stats.units_per_window:.1f} work units (places in the corpus) per {DIVERSITY_WINDOW:,} "
        f"consecutive records ({num_units} units in all)",
        f"lines longer than an instance holds: {stats.long_sentences:,} "
        f"({stats.long_sentence_tokens_lost:,} tokens past the limit dropped"
        f"{'; put one sentence on each line' if stats.long_sentences else ''})",
        f"seconds: {seconds:,.1f} ({stats.instances / max(seconds, 1e-9):,.0f} instances/s)",
        f"output: {', '.join(output_files)}",
    ]
    return lines


def run(args: argparse.Namespace) -> Stats:
    """Creates the output files; returns the statistics.

    Raises:
      InputError: bad input files, vocabulary or corpus.
    """
    if any("://" in (getattr(args, flag) or "") for flag in PATH_FLAGS):
        return run_with_remote_paths(args)
    started = time.monotonic()
    input_files = expand_input_files(args.input_file)
    output_files = [o.strip() for o in args.output_file.split(",") if o.strip()]
    if not output_files or len(set(output_files)) != len(output_files):
        raise InputError("--output_file must name distinct files")
    protected = {Path(p).resolve(): "an --input_file" for p in input_files}
    for flag in ("vocab_file", "spm_model_file"):
        if getattr(args, flag):
            protected[Path(getattr(args, flag)).resolve()] = f"the --{flag}"
    for name in output_files:
        if Path(name).resolve() in protected:
            raise InputError(f"--output_file={name} is {protected[Path(name).resolve()]}: writing it would replace "
                             f"that file with TFRecords; name another output file")
    # Check the vocabulary here, before any worker starts.
    tokenizer = make_tokenizer(args.vocab_file, args.do_lower_case, args.spm_model_file)
    try:
        special_ids_from_vocab(tokenizer.vocab, args.spm_model_file or args.vocab_file)
    except ValueError as err:
        raise InputError(str(err)) from None
    units = plan_work_units(input_files, max(1, int(args.work_unit_mb * (1 << 20))))
    if not units:
        raise InputError(f"the input is empty: {', '.join(input_files)}")
    output_dirs = list(dict.fromkeys(str(Path(name).resolve().parent) for name in output_files))
    for directory in output_dirs:
        Path(directory).mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(directory)
    # Hidden folders next to the outputs (same file system, so the final rename is atomic), where no glob for
    # the outputs can match a partial file.
    tmp_dirs = {directory: tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}{os.getpid()}-", dir=directory)
                for directory in output_dirs}
    tmp_dir = tmp_dirs[output_dirs[0]]
    cfg = InstanceConfig(args.max_seq_length, args.max_predictions_per_seq, args.masked_lm_prob,
                         args.short_seq_prob, args.do_whole_word_mask, args.ngram,
                         args.favor_shorter_ngram, dynamic=args.masking == "dynamic")
    config = RunConfig(
        vocab_file=args.vocab_file, spm_model_file=args.spm_model_file, do_lower_case=args.do_lower_case,
        use_jieba=(args.do_whole_word_mask or args.wwm_subword_labels) and not args.non_chinese,
        wwm_subword_labels=args.wwm_subword_labels and not args.non_chinese, instance=cfg,
        dupe_factor=args.dupe_factor, random_seed=args.random_seed, decode_errors=args.decode_errors,
        tmp_dir=tmp_dir, log_examples=args.log_examples, segmenter=args.segmenter)
    print(f"[{_PROG}] {len(input_files)} input file(s), {len(units)} work unit(s), "
          f"{args.num_workers} worker(s) -> {', '.join(output_files)}", file=sys.stderr, flush=True)
    total_mb = sum(u.end - u.start for u in units) / 1e6
    progress = Progress(total_mb, "MB")
    stats = Stats()
    results: dict[tuple[int, int], UnitResult] = {}
    try:
        jobs = [(unit, config) for unit in units]
        workers = min(args.num_workers, len(units))
        if workers > 1:
            # "spawn", not fork: the caller (a test, a notebook) may run TensorFlow threads,
            # and forking a process with threads can deadlock.
            with multiprocessing.get_context("spawn").Pool(workers) as pool:
                for result in pool.imap_unordered(_process_unit_star, jobs):
                    _collect(result, results, stats, progress)
        else:
            for job in jobs:
                _collect(_process_unit_star(job), results, stats, progress)
        progress.update(total_mb, stats.instances, "reading and masking", force=True)
        if stats.documents == 0:
            raise InputError(f"no sentences in {', '.join(input_files)} "
                             f"(expected one sentence a line, blank lines between documents)")
        if stats.instances == 0:
            raise InputError("the corpus gave no instances (every document has a single token)")
        first = results.get((0, 0))
        for text in first.examples if first else []:
            print(f"[{_PROG}] *** Example ***\n{text}", file=sys.stderr)
        ordered = [results[key] for key in sorted(results)]
        diversity = write_tfrecords(ordered, output_files, args.dupe_factor, args.random_seed, tmp_dirs,
                                    args.interleave_units)
        stats.units_per_window = diversity.mean
    finally:
        for directory in tmp_dirs.values():
            shutil.rmtree(directory, ignore_errors=True)
    for line in summary_lines(stats, time.monotonic() - started, len(units), args.num_workers, output_files):
        print(f"[{_PROG}] {line}", file=sys.stderr)
    return stats


def _collect(result: UnitResult, results: dict[tuple[int, int], UnitResult], stats: Stats,
             progress: Progress) -> None:
    results[(result.unit.file_index, result.unit.unit_index)] = result
    stats.add(result.stats)
    progress.update(stats.input_bytes / 1e6, stats.instances, "reading and masking")


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    args = parse_flags(argv)
    try:
        run(args)
    except InputError as e:
        print(f"{_PROG}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(clean_errors(main)())
