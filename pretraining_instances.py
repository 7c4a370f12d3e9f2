"""Sentences to SOP instances, with no I/O: tokenization and Chinese word grouping (SentenceEncoder), documents,
and the instances built from them, masked by masking.py (static) or left for the training pipeline (dynamic).

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
  * a chunk always holds at least two sentences: a sentence longer than the
    target takes the next one with it, and truncation trims the pair. So does the
    original: for a one-sentence chunk its loop does `i += 1; continue` (line 322,
    `if len(tokens_a) == 0 or len(tokens_b) == 0: i += 1; continue`), which keeps
    the chunk, and the next sentence joins it. The difference: when only the last
    sentence of a document is left over, it is paired here with the sentence before
    it (which is then used twice); there, `i += 1` ends the loop and the sentence
    is dropped.
  * a document of one sentence is cut in two at a random word boundary (both
    parts non-empty); a one-token document gives no instance and is counted.
  * random replacement tokens come from the ordinary vocab entries (no [PAD],
    [unused*], [CLS], [SEP], [MASK], <S>, <T>, and no `##字` pieces, which never
    occur as inputs here); the original drew from the whole vocab.
"""

from __future__ import annotations

import array
import bisect
import dataclasses
import itertools
import operator
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

import tokenization
from masking import InstanceConfig, SpecialIds, create_masked_lm_predictions

# --------------------------------------------------------------------------- sentences

@dataclasses.dataclass
class Sentence:
    """A tokenized line (length n).

    ids:         n token ids.
    word_starts: n flags, 1 (or True) where a whole word begins: bytes, or a list of booleans.
    label_ids:   the masked-LM label of each token: `ids` itself (the same list),
                 except with --wwm_subword_labels (then `##字` ids inside Chinese words).
    """
    ids: list[int]
    word_starts: Sequence[int]
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
        concat = itertools.chain.from_iterable
        self.ids: list[int] = list(concat([s.ids for s in sentences]))
        self.bounds = [0, *itertools.accumulate(map(len, sentences))]
        has_labels = any(s.label_ids is not s.ids for s in sentences)
        self.label_ids: list[int] | None = list(concat([s.label_ids for s in sentences])) if has_labels else None
        self.word_starts: list[int] = list(itertools.compress(range(len(self.ids)),
                                                              concat([s.word_starts for s in sentences])))

    @property
    def num_sentences(self) -> int:
        return len(self.bounds) - 1


# Whether a token is one CJK character (the BERT tokenizer splits those alone).
_IS_HAN = tokenization.Memo(lambda token: len(token) == 1 and tokenization.is_chinese_char(token))
# The character jieba sees for a token: the CJK character itself, or a space.
_JIEBA_CHAR = tokenization.Memo(lambda token: token if _IS_HAN[token] else " ")
# Whether a token can start a word (1), or continues the word before it (0: a "##" piece).
_CAN_START = tokenization.Memo(lambda token: 0 if token.startswith("##") else 1)


def chinese_word_starts(tokens: Sequence[str], cut: Callable[[str], list[str]] | None) -> list[int]:
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
      n flags: 1 where a word starts, else 0.
    """
    can_start = bytes(map(_CAN_START.__getitem__, tokens))
    if cut is None:
        return list(can_start)
    return list(_segment(can_start, "".join(map(_JIEBA_CHAR.__getitem__, tokens)), cut))


# A segmenter's word of n characters as flags: 1 for its first character, 0 for each other one.
_WORD_FLAGS = tokenization.Memo(lambda length: b"\x01" + bytes(length - 1))


def _segment(can_start: bytes, text: str, cut: Callable[[str], list[str]]) -> bytes:
    """Word-start flags: ``can_start`` (one 0/1 byte per token) and "starts a word of ``cut(text)``", where ``text``
    has one character per token (chinese_word_starts). This is the generator's inner loop, so every step runs in C:
    the flags are 0/1 bytes, so the AND of the two byte strings as integers is their AND flag by flag."""
    if len(text) - text.count(" ") < 2:  # fewer than two CJK characters: nothing to group
        return can_start
    in_words = b"".join(map(_WORD_FLAGS.__getitem__, map(len, cut(text))))
    if len(in_words) != len(can_start):  # cannot happen with jieba; stay safe
        return can_start
    both = int.from_bytes(can_start, "little") & int.from_bytes(in_words, "little")
    return both.to_bytes(len(can_start), "little")


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


class _Word(NamedTuple):
    """What a word of the basic tokenizer becomes, computed once per distinct word (SentenceEncoder). Bytes and
    strings, so that a sentence's are put together by ``join``."""
    pieces: tuple[str, ...]  # its WordPiece tokens
    ids: bytes               # their ids, int32
    can_start: bytes         # one flag per piece: 0 for a "##" piece, which continues the word before it
    segmenter_text: str      # one character per piece: the CJK character itself, or a space (chinese_word_starts)


# Distinct words kept (~700 bytes each, so at most ~70 MB a worker): a corpus has millions (numbers, names, URLs),
# so the table is emptied when full; Chinese text needs a few thousand (its words here are single characters).
_WORD_TABLE_SIZE = 100_000
_PIECES, _IDS, _CAN_STARTS, _SEGMENTER_TEXT = (operator.itemgetter(i) for i in range(4))


class SentenceEncoder:
    """Text line -> Sentence: tokenization and word segmentation, run once per sentence.

    With a WordPiece vocab each distinct word's pieces, ids and word-start flags are computed once (``_Word``), and a
    sentence is put together from them by joins in C: the same ids and starts as ``tokenizer.tokenize`` +
    ``chinese_word_starts`` (a test checks), with no Python step per token.
    """

    def __init__(self, tokenizer: Any, use_jieba: bool, wwm_subword_labels: bool, segmenter: str = "rjieba"):
        self.tokenizer = tokenizer
        self.is_spm = getattr(tokenizer, "sp_model", None) is not None
        self.wwm_subword_labels = wwm_subword_labels and not self.is_spm
        self._cut = segmenter_cut(segmenter) if use_jieba and not self.is_spm else None
        self._words = tokenization.Memo(self._word)

    def _word(self, word: str) -> _Word:
        pieces = tuple(self.tokenizer.wordpiece_tokenizer.tokenize(word))
        return _Word(pieces, array.array("i", self.tokenizer.convert_tokens_to_ids(pieces)).tobytes(),
                     bytes(map(_CAN_START.__getitem__, pieces)), "".join(map(_JIEBA_CHAR.__getitem__, pieces)))

    def encode(self, text: str) -> Sentence | None:
        """Tokenizes one line; None if it has no tokens."""
        if self.is_spm:
            return self._encode_spm(text)
        words = self.tokenizer.basic_tokenizer.tokenize(text)
        if not words:
            return None
        if len(self._words) > _WORD_TABLE_SIZE:
            self._words.clear()
        entries = list(map(self._words.__getitem__, words))
        ids = memoryview(b"".join(map(_IDS, entries))).cast("i").tolist()
        starts = b"".join(map(_CAN_STARTS, entries))
        if self._cut is not None:
            starts = _segment(starts, "".join(map(_SEGMENTER_TEXT, entries)), self._cut)
        labels = ids
        if self.wwm_subword_labels:
            vocab = self.tokenizer.vocab
            tokens = itertools.chain.from_iterable(map(_PIECES, entries))
            labels = [vocab.get("##" + t, i) if not start and _IS_HAN[t] else i
                      for t, i, start in zip(tokens, ids, starts)]
        return Sentence(ids, starts, labels)

    def _encode_spm(self, text: str) -> Sentence | None:
        tokens = self.tokenizer.tokenize(text)
        if not tokens:
            return None
        ids = self.tokenizer.convert_tokens_to_ids(tokens)
        return Sentence(ids, spm_word_starts(tokens), ids)


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
