"""Masked-LM masking: the rules, once, for both the static TFRecords of create_pretraining_data.py and the dynamic
masking of run_pretraining.py's input pipeline (``mask_batch``). No TensorFlow here.

Whole words (or n-grams of whole words, p(n) ~ 1/n; ``favor_shorter_ngram=False`` reverses the weights) are chosen in
a random order until the budget round(n * masked_lm_prob) (at most max_predictions_per_seq; [CLS] and [SEP] count in
n, as in the original) is spent; [CLS] and [SEP] are never masked; each chosen word gets one draw: [MASK] (80%), kept
(10%) or random tokens from the ordinary vocab entries (10%). The labels are the ids the model sees as input.
"""

from __future__ import annotations

import bisect
import dataclasses
import functools
import hashlib
import json
import os
import re
from typing import Mapping, Sequence

import numpy as np

import tokenization

REQUIRED_TOKENS = ("[CLS]", "[SEP]", "[MASK]")

# Dynamic records mark each token's role in masking (feature ``word_starts``): the first token of a word, a later
# token of the same word, or [CLS]/[SEP] (a one-token word that is never masked). Padding is 0.
WORD_START, WORD_CONTINUES, SPECIAL_WORD = 1, 0, 2


@dataclasses.dataclass(frozen=True)
class SpecialIds:
    """Ids the instance builder needs."""
    cls_id: int
    sep_id: int
    mask_id: int
    random_ids: np.ndarray  # int32 [R]: candidates for the 10% random replacement


_NOT_RANDOM_RE = re.compile(r"^(\[.*\]|<.*>)$")


def special_ids_from_vocab(vocab: Mapping[str, int], vocab_name: str = "vocab") -> SpecialIds:
    """Looks up [CLS]/[SEP]/[MASK] and the random-replacement candidates.

    Raises:
      ValueError: a required token is missing.
    """
    missing = [t for t in REQUIRED_TOKENS if t not in vocab]
    if missing:
        raise ValueError(f"{vocab_name} has no {', '.join(missing)} token(s); pre-training needs "
                         f"{', '.join(REQUIRED_TOKENS)} (a BERT-layout vocab: see data/build_vocab.py)")
    # Bracketed entries are special; "##字" pieces never occur as inputs once the
    # labels are the input tokens, so drawing them would feed the model noise it
    # never sees otherwise.
    random_ids = sorted(i for t, i in vocab.items()
                        if not _NOT_RANDOM_RE.match(t)
                        and not (t.startswith("##") and len(t) == 3 and tokenization.is_chinese_char(t[2])))
    if not random_ids:
        random_ids = sorted(vocab.values())
    return SpecialIds(vocab["[CLS]"], vocab["[SEP]"], vocab["[MASK]"],
                      np.asarray(random_ids, dtype=np.int32))


@dataclasses.dataclass(frozen=True)
class InstanceConfig:
    """How instances are built and masked."""
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    do_whole_word_mask: bool = False
    ngram: int = 1
    favor_shorter_ngram: bool = True
    dynamic: bool = False  # instances are written unmasked, their words marked; the training pipeline masks them

    @functools.cached_property
    def ngram_cdf(self) -> tuple[float, ...]:
        """Cumulative p(n), n = 1..ngram: p(n) ~ 1/n, or reversed if not favor_shorter_ngram."""
        weights = [1.0 / n for n in range(1, self.ngram + 1)]
        if not self.favor_shorter_ngram:
            weights.reverse()
        total = sum(weights)
        return tuple(float(c) for c in np.cumsum(weights) / total)


def create_masked_lm_predictions(ids: list[int], labels: list[int], starts: list[int],
                                 special_words: Sequence[int], cfg: InstanceConfig,
                                 special: SpecialIds, rng: np.random.Generator
                                 ) -> tuple[list[int], list[int], list[int], tuple[int, int, int]]:
    """Masks whole words (or n-grams of them) of one sequence.

    Args:
      ids: the n ids of the sequence, [CLS]/[SEP] included.
      labels: the n label ids.
      starts: ascending positions where words begin (every position without whole-word
        masking); word w is ids[starts[w]:starts[w + 1]].
      special_words: indices into `starts` of [CLS] and the [SEP]s (never masked).
    Returns:
      output ids (n), positions (k, ascending), their labels (k), and the number of
      tokens given [MASK], kept, given a random token.
    """
    n, num_words = len(ids), len(starts)
    # As the original: the budget counts [CLS]/[SEP] too (Python's round, like the original).
    budget = min(cfg.max_predictions_per_seq, max(1, int(round(n * cfg.masked_lm_prob))))
    ends = starts[1:]
    ends.append(n)
    order = rng.permutation(num_words).tolist()
    draws = rng.random(2 * num_words)  # [w]: n-gram length, [num_words + i]: 80/10/10
    if cfg.ngram == 1:  # n-gram lengths are all 1: those draws go unused
        chosen = _choose_words(order, starts, ends, special_words, budget)
    else:
        chosen = _choose_ngrams(order, draws[:num_words].tolist(), starts, ends, special_words, budget,
                                cfg.ngram_cdf)
    word_draws = draws[num_words:num_words + len(chosen)].tolist()
    return _apply_masks(ids, labels, starts, ends, chosen, word_draws, special, rng)


def _choose_words(order: list[int], starts: list[int], ends: list[int], special_words: Sequence[int],
                  budget: int) -> list[int]:
    """`_choose_ngrams` for n-grams of one word (the same choice, without its bookkeeping):
    each word of `order` that fits the remaining budget, until none is left."""
    chosen = []
    for w in order:
        length = ends[w] - starts[w]
        if length <= budget and w not in special_words:
            chosen.append(w)
            budget -= length
            if not budget:
                break
    return chosen


def _choose_ngrams(order: list[int], draws: list[float], starts: list[int], ends: list[int],
                   special_words: Sequence[int], budget: int, cdf: Sequence[float]) -> list[int]:
    """The words to mask, n-gram by n-gram: from each word of `order` not yet covered, n
    consecutive uncovered words (n drawn by `draws[w]` from `cdf`) that fit the budget."""
    num_words = len(starts)
    covered = [False] * num_words  # specials count as covered: never masked, they end n-grams
    for w in special_words:
        covered[w] = True
    chosen: list[int] = []
    for w in order:
        if budget <= 0:
            break
        if covered[w] or ends[w] - starts[w] > budget:
            continue
        n_words = bisect.bisect_right(cdf, draws[w]) + 1
        # An n-gram is n consecutive uncovered words that fit the budget; it shrinks
        # rather than being dropped when the next word does not.
        k = w
        while True:
            covered[k] = True
            chosen.append(k)
            budget -= ends[k] - starts[k]
            k += 1
            if k - w >= n_words or k >= num_words or covered[k] or ends[k] - starts[k] > budget:
                break
    return chosen


def _apply_masks(ids: list[int], labels: list[int], starts: list[int], ends: list[int], chosen: list[int],
                 word_draws: list[float], special: SpecialIds, rng: np.random.Generator
                 ) -> tuple[list[int], list[int], list[int], tuple[int, int, int]]:
    """Masks the chosen words: [MASK] (u < 0.8), kept (u < 0.9) or random tokens, with one
    draw u per WORD, so that all its tokens share the decision."""
    output = ids.copy()
    mask_id = special.mask_id
    masked = kept = 0
    randomized: list[int] = []
    positions: list[int] = []
    for w, u in zip(chosen, word_draws):
        start, end = starts[w], ends[w]
        if end - start == 1:  # most words are one token: no range to build
            positions.append(start)
            if u < 0.8:
                output[start] = mask_id
                masked += 1
            elif u < 0.9:
                kept += 1
            else:
                randomized.append(start)
            continue
        span = range(start, end)
        positions += span
        if u < 0.8:
            output[start:end] = [mask_id] * (end - start)
            masked += end - start
        elif u < 0.9:
            kept += end - start
        else:
            randomized += span
    if randomized:
        for p, pick in zip(randomized, _random_indices(rng, len(special.random_ids), len(randomized))):
            output[p] = special.random_ids[pick]
    positions.sort()
    return output, positions, [labels[p] for p in positions], (masked, kept, len(randomized))


def _random_indices(rng: np.random.Generator, high: int, count: int) -> list[int]:
    """`rng.integers(0, high, count).tolist()`, faster for the usual one to three draws.

    Both forms draw the same numbers from the same stream (the array form makes the
    scalar draws one after the other; a test checks it); a scalar call costs about a
    quarter of an array call, whose set-up dominates at this size.
    """
    if count <= 3:
        return [int(rng.integers(0, high)) for _ in range(count)]
    return rng.integers(0, high, count).tolist()


def mask_batch(input_ids: np.ndarray, input_mask: np.ndarray, word_starts: np.ndarray, element_ids: np.ndarray,
               cfg: InstanceConfig, special: SpecialIds, seed: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Dynamic masking of a batch of unmasked instances, with the static writer's rules.

    input_ids, input_mask, word_starts: int [B,T] (word_starts: WORD_START / WORD_CONTINUES / SPECIAL_WORD);
    element_ids: int [B], each instance's position in the training stream. Each instance's masks come from its own
    generator, seeded by (seed, element id): a resumed run that sees the same elements masks them the same way, and
    the same instance gets fresh masks in the next epoch (another element id).
    Returns input_ids [B,T] (masked), masked_lm_positions [B,P], masked_lm_ids [B,P], masked_lm_weights [B,P].
    """
    batch, width = input_ids.shape
    predictions = cfg.max_predictions_per_seq
    output = np.array(input_ids, np.int32)
    positions = np.zeros([batch, predictions], np.int32)
    labels = np.zeros([batch, predictions], np.int32)
    weights = np.zeros([batch, predictions], np.float32)
    for row in range(batch):
        n = int(input_mask[row].sum())
        ids = input_ids[row, :n].tolist()
        roles = word_starts[row, :n]
        starts = np.flatnonzero(roles != WORD_CONTINUES).tolist()
        special_words = np.flatnonzero(roles[starts] == SPECIAL_WORD).tolist()
        rng = np.random.default_rng([seed, int(element_ids[row])])
        masked, chosen, chosen_labels, _ = create_masked_lm_predictions(ids, ids, starts, special_words, cfg,
                                                                       special, rng)
        k = len(chosen)
        output[row, :n] = masked
        positions[row, :k], labels[row, :k], weights[row, :k] = chosen, chosen_labels, 1.0
    return output, positions, labels, weights


# --------------------------------------------------------------------------- the settings of dynamic records

# create_pretraining_data.py --masking=dynamic writes, next to each output file NAME, the hidden file
# .NAME.masking.json: the vocab's checksum (the [MASK] and random-replacement ids the records need) and the masking
# flags, which run_pretraining.py takes as its defaults. Hidden, with a prefix, so that the globs users give for the
# outputs (NAME*, data-*, *.tfrecord) do not match it; TensorFlow's glob matches hidden files for a bare "*", so
# input_pipeline.expand_files also leaves out names that match MASKING_RECORD_RE.
MASKING_RECORD_SUFFIX = ".masking.json"
MASKING_RECORD_RE = re.compile(r"(^|/)\.[^/]+" + re.escape(MASKING_RECORD_SUFFIX) + "$")
# The flags run_pretraining.py masks with (its names), recorded at creation.
RECORDED_FLAGS = ("masked_lm_prob", "max_predictions_per_seq", "ngram", "favor_shorter_ngram")


def masking_record_path(output_file: str) -> str:
    """The settings file of ``output_file`` (local or gs://): .NAME.masking.json in the same folder."""
    folder, name = output_file.rsplit("/", 1) if "/" in output_file else ("", output_file)
    return f"{folder}/.{name}{MASKING_RECORD_SUFFIX}" if folder else f".{name}{MASKING_RECORD_SUFFIX}"


def file_sha256(path: str) -> str:
    """sha256 of a local file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def masking_record(cfg: InstanceConfig, vocab_file: str, spm_model: bool = False) -> dict:
    """What dynamic records need to be masked as intended: the vocab's sha256 and the masking flags. A SentencePiece
    model's checksum is kept under another key: run_pretraining's --vocab_file is another file, not comparable."""
    return {"spm_model_sha256" if spm_model else "vocab_sha256": file_sha256(vocab_file),
            "vocab_file": os.path.basename(vocab_file),
            "masked_lm_prob": cfg.masked_lm_prob, "max_predictions_per_seq": cfg.max_predictions_per_seq,
            "ngram": cfg.ngram, "favor_shorter_ngram": cfg.favor_shorter_ngram,
            "do_whole_word_mask": cfg.do_whole_word_mask, "max_seq_length": cfg.max_seq_length}


def write_masking_record(output_file: str, record: dict) -> str:
    """Writes ``record`` next to local ``output_file`` (under a temporary name, renamed when complete)."""
    path = masking_record_path(output_file)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=1, sort_keys=True)
    os.replace(tmp, path)
    return path
