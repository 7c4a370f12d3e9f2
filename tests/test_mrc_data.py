"""mrc_data.py: readers (both formats, offset repairs, bad input), windows, and n-best decoding; on hand-written
files and on slices of the real CMRC2018 release (../shared/datasets/cmrc2018, read in place)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import mrc_data
import tokenization

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "cmrc2018"


def write(path: Path, value) -> str:
    path.write_text(json.dumps(value, ensure_ascii=False), encoding="utf-8")
    return str(path)


def squad(*paragraphs) -> dict:
    return {"version": "v1.0", "data": [{"title": "t", "paragraphs": list(paragraphs)}]}


def qa(qid: str, question: str, *answers: tuple[str, int]) -> dict:
    return {"id": qid, "question": question, "answers": [{"text": t, "answer_start": s} for t, s in answers]}


@pytest.fixture(scope="module")
def tokenizer(reference_dir) -> tokenization.FullTokenizer:
    return tokenization.FullTokenizer(str(reference_dir / "albert_config" / "vocab.txt"), True,
                                      split_special_tokens=True)


# ---------------------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------------------

def test_offsets_are_verified_and_repaired_to_the_nearest_occurrence(tmp_path):
    context = "北京是首都。上海很大。北京有故宫。"
    path = write(tmp_path / "f.json", squad({"context": context, "qas": [
        qa("exact", "哪里有故宫？", ("北京", 11)),
        qa("off_by_two", "哪里有故宫？", ("北京", 9)),  # nearest occurrence: 11, not the first (0)
        qa("minus_one_unique", "哪里很大？", ("上海", -1)),
        qa("missing", "问？", ("广州", -1), ("北京", 0))]}))
    examples, report = mrc_data.read_examples(path, training=False)
    by_id = {e.qid: e for e in examples}
    assert by_id["exact"].spans == [(11, 13)]
    assert by_id["off_by_two"].spans == [(11, 13)]
    assert by_id["minus_one_unique"].spans == [(6, 8)]
    # an evaluation file keeps an answer that is not in its context for scoring (texts are what the metric reads)
    assert by_id["missing"].answers == ["广州", "北京"] and by_id["missing"].spans == [(0, 2)]
    assert report.repaired == ["off_by_two: 9 -> 11"] and report.not_in_context == ["missing: '广州'"]
    assert "1 answer offsets repaired" in report.summary(4) and "not in their context" in report.summary(4)


def test_without_a_start_a_repeated_answer_goes_where_the_question_points():
    context = "小明在北京读书。后来小红去了北京工作。"
    found, how = mrc_data.locate_answer(context, "北京", None, "小红去了哪里工作？")
    assert (found, how) == (14, "placed")
    found, how = mrc_data.locate_answer(context, "北京", None, "小明在哪里读书？")
    assert (found, how) == (3, "placed")


def test_original_cmrc_format_is_read(tmp_path):
    path = write(tmp_path / "cmrc.json", [{"context_id": "C1", "context_text": "《红楼梦》的作者是曹雪芹。",
                                           "qas": [{"query_id": "Q1", "query_text": "作者是谁？",
                                                    "answers": ["曹雪芹", "曹雪芹"]}]}])
    (example,), _ = mrc_data.read_examples(path, training=True)
    assert (example.qid, example.question, example.answers, example.spans) == ("Q1", "作者是谁？", ["曹雪芹"] * 2,
                                                                             [(9, 12), (9, 12)])


def test_squad_v2_questions_without_answers(tmp_path):
    context = "The cat sat on the mat."
    path = write(tmp_path / "v2.json", squad({"context": context, "qas": [
        qa("a", "Where did the cat sit?", ("the mat", 15)),
        {"id": "b", "question": "Who?", "answers": [], "is_impossible": True}]}))
    examples, report = mrc_data.read_examples(path, training=True, version_2=True)
    assert [e.is_impossible for e in examples] == [False, True] and report.impossible == 1
    assert mrc_data.gold_answers(examples) == {"a": ["the mat"], "b": [""]}
    with pytest.raises(mrc_data.DataFormatError, match=r"v2.json: question b is marked is_impossible.*squad_v2"):
        mrc_data.read_examples(path, training=True)


@pytest.mark.parametrize("content, message", [
    ('{"data": [{"paragraphs": [{"context": "abc", "qas": [}]}]}', r"bad.json:1:\d+: not valid JSON"),
    (json.dumps(squad({"context": "abc", "qas": [{"question": "q?", "answers": []}]})),
     r"bad.json: data\[0\].paragraphs\[0\].qas\[0\] has no \"id\""),
    (json.dumps(squad({"context": "abc", "qas": [{"id": "Q7", "answers": []}]})),
     r"bad.json: question Q7 has no \"question\" string"),
    (json.dumps(squad({"context": "   ", "qas": [qa("Q8", "q?", ("a", 0))]})),
     r"bad.json: question Q8: the context is empty"),
    (json.dumps(squad({"context": "abc", "qas": [qa("Q9", "q?", ("xyz", 0))]})),
     r"bad.json: question Q9: the answer 'xyz' is not in its context \(answer_start 0\)"),
    (json.dumps(squad({"context": "abc", "qas": [qa("Q1", "q?", ("a", 0)), qa("Q1", "q?", ("b", 1))]})),
     r"bad.json: question id Q1 occurs twice"),
    (json.dumps({"version": 1}), r"bad.json: expected SQuAD-style"),
])
def test_bad_input_names_the_file_and_question(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(mrc_data.DataFormatError, match=message):
        mrc_data.read_examples(str(path), training=True)


def test_skip_bad_skips_and_counts(tmp_path):
    path = write(tmp_path / "f.json", squad({"context": "abc", "qas": [qa("ok", "q?", ("b", 1)),
                                                                       qa("bad", "q?", ("z", 0))]}))
    examples, report = mrc_data.read_examples(path, training=True, skip_bad=True)
    assert [e.qid for e in examples] == ["ok"] and len(report.skipped) == 1 and "bad" in report.skipped[0]


# ---------------------------------------------------------------------------------------------------------------------
# Windows
# ---------------------------------------------------------------------------------------------------------------------

def test_windows_cover_every_piece_once_as_max_context():
    for n, room, stride in [(1, 5, 2), (5, 5, 2), (6, 5, 2), (23, 7, 3), (100, 16, 16), (40, 10, 1)]:
        spans = mrc_data.window_starts(n, room, stride)
        assert spans[0][0] == 0 and spans[-1][0] + spans[-1][1] == n
        flags = mrc_data.max_context_flags(spans)
        owners = [sum(f[p - s] for (s, length), f in zip(spans, flags) if s <= p < s + length) for p in range(n)]
        assert owners == [1] * n, (n, room, stride)
        # a piece's owner is a window where it has at least as much context as in any other
        for p in range(n):
            context = [min(p - s, s + length - 1 - p) for s, length in spans if s <= p < s + length]
            owner = next(min(p - s, s + length - 1 - p) for (s, length), f in zip(spans, flags)
                         if s <= p < s + length and f[p - s])
            assert owner == max(context) or owner >= max(context) - 1


def test_features_layout_labels_and_truncated_question(tokenizer):
    context = "甲乙丙丁戊己庚辛壬癸子丑寅卯辰巳午未申酉"  # 20 pieces
    example = mrc_data.MrcExample("q", "天干" * 10, context, ["庚辛"], [(6, 8)])
    encoder = mrc_data.MrcEncoder(tokenizer, max_seq_length=16, doc_stride=3, max_query_length=4)
    encoded = list(encoder.encode([example]))
    assert encoder.truncated_questions == 1
    cls, sep = tokenizer.convert_tokens_to_ids(["[CLS]", "[SEP]"])
    for window, row in encoded:
        assert window.first == 6 and row["input_ids"][0] == cls and row["input_ids"][5] == sep
        n = int(row["input_mask"].sum())
        assert row["input_ids"][n - 1] == sep and list(row["segment_ids"][:n]) == [0] * 6 + [1] * (n - 6)
        if window.start_position:
            pieces = row["input_ids"][window.start_position:window.end_position + 1]
            assert tokenizer.convert_ids_to_tokens(pieces.tolist()) == ["庚", "辛"]
        else:  # windows without the whole answer are labelled at [CLS]
            assert not window.piece_start <= 6 or not 7 < window.piece_start + window.length
    assert sum(1 for w, _ in encoded if w.start_position) >= 1 and len(encoded) > 1


def test_settings_that_leave_no_room_are_refused(tokenizer):
    with pytest.raises(ValueError, match="max_seq_length=64 leaves no room.*max_query_length=64"):
        mrc_data.MrcEncoder(tokenizer, 64, 16, 64)


def test_every_real_train_answer_round_trips_through_its_pieces(tokenizer):
    """Encode each gold answer as its piece span, decode the span by character offsets: the gold text comes back
    for every answer whose boundaries fall between pieces; the others are counted (whitespace at an answer's edge
    belongs to no piece; a boundary inside a WordPiece word widens the span)."""
    if not DATASETS.is_dir():
        pytest.skip(f"{DATASETS} is absent")
    examples, report = mrc_data.read_examples(str(DATASETS / "train.json"), training=True)
    assert len(examples) == 10142 and len(report.repaired) == 21  # DESIGN.md: 21 train offsets do not match
    encoder = mrc_data.MrcEncoder(tokenizer, 512, 128, 64)
    counts = {"exact": 0, "edge whitespace": 0, "inside a piece": 0}
    for example in examples:
        start, end = example.spans[0]
        context = encoder.context(example.context)
        first, last = tokenization.char_to_token_index(context.offsets, start, end)
        a, b = context.offsets[first][0], context.offsets[last][1]
        if (a, b) == (start, end):
            assert example.context[a:b] == example.answers[0]
            counts["exact"] += 1
        elif example.context[a:b] == example.answers[0].strip():
            counts["edge whitespace"] += 1
        else:
            assert a <= start and end <= b, example.qid  # wider, never narrower
            counts["inside a piece"] += 1
    print(counts)
    assert counts == {"exact": 10100, "edge whitespace": 37, "inside a piece": 5}


# ---------------------------------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------------------------------

def decode_one(tokenizer, context: str, start: dict[int, float], end: dict[int, float], seq: int = 24,
               **options) -> mrc_data.Answer:
    example = mrc_data.MrcExample("q", "问", context, [], [])
    encoder = mrc_data.MrcEncoder(tokenizer, seq, 4, 8)
    windows = [w for w, _ in encoder.encode([example])]
    start_logits = np.full((len(windows), seq), -5.0)
    end_logits = np.full((len(windows), seq), -5.0)
    for w, window in enumerate(windows):  # logits given per context piece, placed in every window holding it
        for piece, value in start.items():
            if window.piece_start <= piece < window.piece_start + window.length:
                start_logits[w, window.first + piece - window.piece_start] = value
        for piece, value in end.items():
            if window.piece_start <= piece < window.piece_start + window.length:
                end_logits[w, window.first + piece - window.piece_start] = value
    return mrc_data.decode([example], encoder, windows, start_logits, end_logits, **options)["q"]


def test_decoding_cuts_the_answer_from_the_context_by_offsets(tokenizer):
    context = "他说：ＡＢＣ　Déjà vu，好。"  # full-width letters, U+3000, accents: the text comes back as written
    pieces, offsets = tokenizer.tokenize_with_offsets(context)
    first = next(i for i, (a, _) in enumerate(offsets) if context[a] == "Ｄ" or context[a] == "D")
    last = next(i for i, (_, b) in enumerate(offsets) if context[b - 1] == "u")
    answer = decode_one(tokenizer, context, {first: 5.0}, {last: 5.0}, seq=32)
    assert answer.text == "Déjà vu"
    assert answer.nbest[0].to_json()["start"] == context.index("Déjà")
    assert sum(c.probability for c in answer.nbest) == pytest.approx(1.0)
    assert len({c.text for c in answer.nbest}) == len(answer.nbest)  # de-duplicated by text


def test_decoding_limits_and_null_answer(tokenizer):
    context = "一二三四五六七八九十"
    # the best pairs are too long: max_answer_length keeps the best allowed one
    answer = decode_one(tokenizer, context, {0: 5.0, 6: 3.0}, {9: 5.0, 7: 3.0}, max_answer_length=4)
    assert answer.text == "七八九十"
    answer = decode_one(tokenizer, context, {0: 5.0, 6: 3.0}, {9: 5.0, 7: 3.0}, max_answer_length=3)
    assert answer.text == "七八"
    # an end before the start never pairs; the fallback still answers with a span of the context
    answer = decode_one(tokenizer, context, {9: 5.0}, {0: 5.0}, n_best_size=1)
    assert answer.text and answer.text in context
    # v2: the null answer wins when [CLS] outscores the best span by more than the threshold
    answer = decode_one(tokenizer, context, {2: 1.0}, {3: 1.0}, version_2=True)
    assert answer.null_odds == pytest.approx(-5.0 - 5.0 - 2.0) and answer.text == "三四"
    answer = decode_one(tokenizer, context, {2: 1.0}, {3: 1.0}, version_2=True, null_score_diff_threshold=-20.0)
    assert answer.text == "" and "" in [c.text for c in answer.nbest]


def test_long_context_answers_come_from_the_max_context_window(tokenizer):
    context = "".join(chr(0x4E00 + 7 * i) for i in range(60))  # 60 CJK pieces, many windows at seq 24
    answer = decode_one(tokenizer, context, {41: 4.0}, {43: 4.0})
    assert answer.text == context[41:44]
    assert answer.nbest[0].score == pytest.approx(8.0)


def test_serving_needs_no_training_code_and_no_tensorflow():
    """A served span extractor needs only the pre- and post-processing: importing it loads neither TensorFlow nor
    any training module."""
    import subprocess
    import sys

    code = ("import sys, mrc_data, mrc_metric; print(sorted(m for m in ('tensorflow', 'keras', 'training', "
            "'modeling', 'finetuning') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
