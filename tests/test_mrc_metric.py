"""mrc_metric.py: the CMRC2018 metric with its quirks (hand-computed table), SQuAD v1.1 / v2.0 (thresholds),
both gold formats, the question types, a slice of the real CMRC2018 dev set and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mrc_data
import mrc_metric as mm

REPO = Path(__file__).resolve().parents[1]
CMRC_DEV = REPO.parent / "shared" / "datasets" / "cmrc2018" / "dev.json"

# (prediction, gold answers, F1, EM). Segments after lower/strip/punctuation removal; F1 = 2PR/(P+R) with
# P = lcs/len(pred segs), R = lcs/len(gold segs), lcs = longest common contiguous run of segments.
CMRC_TABLE = [
    # identical: 2 segs each, lcs 2 -> P=R=1
    ("北京", ["北京"], 1.0, 1),
    # '。' and '《》' are on the list: dropped for F1 and EM
    ("北京。", ["北京"], 1.0, 1),
    ("《北京》", ["北京"], 1.0, 1),
    # '……' is on the list but tested per character, so it stays: pred 北/京/…… (3), lcs 2 -> P=2/3, R=1 -> 0.8
    ("北京……", ["北京"], 0.8, 0),
    # the same from the gold side: gold 北/京/…… (3), pred 2 -> P=1, R=2/3 -> 0.8
    ("北京", ["北京……"], 0.8, 0),
    # pred 2008/年/北/京/奥/运/会 (7), gold 5, lcs 5 -> P=5/7, R=1 -> 10/12
    ("2008年北京奥运会", ["北京奥运会"], 10 / 12, 0),
    # words in a non-CJK run: pred [michael] vs [michael, jordan], lcs 1 -> P=1, R=1/2 -> 2/3
    ("Michael", ["Michael Jordan"], 2 / 3, 0),
    # case-insensitive
    ("Michael Jordan", ["MICHAEL JORDAN"], 1.0, 1),
    ("NBA", ["nba"], 1.0, 1),
    # pred 乔/丹/在/nba (4) vs [nba], lcs 1 -> P=1/4, R=1 -> 0.4
    ("乔丹在NBA", ["NBA"], 0.4, 0),
    # max over 3 golds: 北京 0; 上海市 lcs 2, P=1, R=2/3 -> 0.8; 中国上海 lcs 2, R=1/2 -> 2/3; best 0.8
    ("上海", ["北京", "上海市", "中国上海"], 0.8, 0),
    # EM over 3 golds: the third matches
    ("上海", ["北京", "上海市", "上海"], 1.0, 1),
    # an empty prediction: lcs 0 -> 0
    ("", ["北京"], 0.0, 0),
    # full-width '，' is on the list; ASCII ',' is not: pred 北/京/, (3), lcs 2 -> P=2/3, R=1 -> 0.8
    ("北京，", ["北京"], 1.0, 1),
    ("北京,", ["北京"], 0.8, 0),
    # full-width parentheses are on the list; ASCII ones are not: pred ( / 1 / ) (3), lcs 1 -> P=1/3, R=1 -> 0.5
    ("（1）", ["1"], 1.0, 1),
    ("(1)", ["1"], 0.5, 0),
    # full-width hyphen '－' is on the list
    ("北京－上海", ["北京上海"], 1.0, 1),
    # a dropped '-' does not end the run: 'ω-force' is the one segment 'ωforce'
    ("ω-force", ["ωforce"], 1.0, 1),
    # ... so it shares no segment with ω / force: lcs 0
    ("ω force", ["ω-force"], 0.0, 0),
    # contiguous, not a bag: pred 北/上/京 vs 北/京, lcs 1 -> P=1/3, R=1/2 -> 0.4 (a bag of segments gives 0.8)
    ("北上京", ["北京"], 0.4, 0),
    # reversed: lcs 1 -> P=R=1/2 -> 0.5
    ("京北", ["北京"], 0.5, 0),
    # outer whitespace is stripped
    ("  北京 ", ["北京"], 1.0, 1),
    # inner whitespace: EM compares '北 京' with '北京' -> 0; F1's segments are 北/京 -> 1
    ("北 京", ["北京"], 1.0, 0),
    # no gold answers: 0 (the official script fails here)
    ("北京", [], 0.0, 0),
]


@pytest.mark.parametrize("prediction,answers,f1,em", CMRC_TABLE)
def test_cmrc_golden_table(prediction, answers, f1, em):
    assert mm.cmrc_f1(answers, prediction) == pytest.approx(f1, abs=1e-12)
    assert mm.cmrc_em(answers, prediction) == em


def test_cmrc_punctuation_list_is_the_official_one():
    assert len(mm.CMRC_PUNCTUATION) == 33 and "……" in mm.CMRC_PUNCTUATION
    assert mm.cmrc_segments("……好") == ["……", "好"]  # never removed: the list is tested per character
    assert mm.cmrc_segments("光荣和ω-force") == ["光", "荣", "和", "ωforce"]  # a CMRC2018 dev answer


def test_cmrc_scores_count_unanswered_questions_as_zero_and_skipped():
    gold = {"q1": ["北京"], "q2": ["上海"], "q3": ["广州"], "q4": ["深圳"]}
    predictions = {"q1": "北京", "q2": "上海市", "other": "x"}  # q2: F1 0.8 (P=2/3, R=1); 'other' is ignored
    scores = mm.cmrc2018_scores(gold, predictions)
    # F1 = (1 + 0.8 + 0 + 0) / 4 = 45 %, EM = 1/4 = 25 %, average 35
    assert scores == pytest.approx({"f1": 45.0, "em": 25.0, "average": 35.0, "total": 4, "skipped": 2})


def test_cmrc_scores_by_question_type():
    gold = {"a": ["张三"], "b": ["1999年"], "c": ["北京"]}
    texts = {"a": "谁写的？", "b": "哪一年出版？", "c": "谁在哪里？"}  # c: the 'who' row comes first
    scores = mm.cmrc2018_scores(gold, {"a": "张三", "b": "1998年", "c": "北京"}, texts)
    # b: pred 1998/年, gold 1999/年, lcs 1 -> P=R=1/2 -> F1 0.5, EM 0
    assert scores["by_type"] == {"when": {"f1": 50.0, "em": 0.0, "count": 1},
                                 "who": {"f1": 100.0, "em": 100.0, "count": 2}}
    assert list(scores["by_type"]) == ["when", "who"]  # QUESTION_TYPES' order


@pytest.mark.parametrize("question,kind", [
    ("谁发明了电话？", "who"), ("哪个人最早到达？", "who"), ("他什么时候出生？", "when"),
    ("何时建成？", "when"), ("哪一年出版？", "when"), ("几月举行？", "when"),
    ("在哪里举行？", "where"), ("来自哪个国家？", "where"), ("什么地方？", "where"),
    ("有多少人？", "how_many"), ("有几个？", "how_many"), ("为什么是蓝的？", "why"),
    ("为何失败？", "why"), ("如何制作？", "how"), ("怎么去？", "how"),
    ("是什么？", "what"), ("哪支球队？", "what"), ("是否成立？", "other"),
])
def test_question_types(question, kind):
    assert mm.question_type(question) == kind


# ---------------------------------------------------------------- SQuAD

SQUAD_V1_TABLE = [
    # normalization: lower, punctuation and articles gone -> 'eiffel tower' both
    ("the Eiffel Tower!", ["Eiffel Tower"], 1.0, 1),
    # 'apple pie' vs 'apple': common 1 -> P=1/2, R=1 -> 2/3
    ("an apple pie", ["Apple"], 2 / 3, 0),
    # a bag of tokens: cat,cat,dog vs cat,dog,dog share cat+dog -> P=R=2/3
    ("cat cat dog", ["cat dog dog"], 2 / 3, 0),
    # best of the golds
    ("Denver Broncos", ["Broncos", "Denver", "Denver Broncos"], 1.0, 1),
    # 'the' inside a word stays
    ("theory", ["the theory"], 1.0, 1),
    ("", ["Denver"], 0.0, 0),
    # whitespace tokens: Chinese collapses to EM
    ("北京", ["北京市"], 0.0, 0),
]


@pytest.mark.parametrize("prediction,answers,f1,em", SQUAD_V1_TABLE)
def test_squad_v1_table(prediction, answers, f1, em):
    assert mm.squad_f1(answers, prediction) == pytest.approx(f1)
    assert mm.squad_em(answers, prediction) == em


def test_squad_v2_per_question():
    assert (mm.squad_f1([], "", 2), mm.squad_em([], "", 2)) == (1.0, 1)  # no answer, none given
    assert (mm.squad_f1([], "Paris", 2), mm.squad_em([], "Paris", 2)) == (0.0, 0)
    assert (mm.squad_f1(["Paris"], "", 2), mm.squad_em(["Paris"], "", 2)) == (0.0, 0)
    assert (mm.squad_f1(["the"], "", 2), mm.squad_em(["the"], "", 2)) == (1.0, 1)  # 'the' normalizes to nothing


V2_GOLD = {"q1": ["Paris"], "q2": [], "q3": ["blue whale"], "q4": []}
V2_PRED = {"q1": "Paris", "q2": "", "q3": "whale", "q4": "London"}
V2_NULL = {"q1": 0.1, "q2": 0.9, "q3": 0.3, "q4": 0.8}


def test_squad_v2_scores_and_breakdowns():
    # exact: q1 1, q2 1, q3 0, q4 0 -> 50; f1: 1, 1, 2/3 (whale vs blue whale), 0 -> 66.67
    scores = mm.squad_scores(V2_GOLD, V2_PRED)
    assert scores == pytest.approx({
        "exact": 50.0, "f1": 100 * (8 / 3) / 4, "total": 4,
        "HasAns_exact": 50.0, "HasAns_f1": 100 * (5 / 3) / 2, "HasAns_total": 2,
        "NoAns_exact": 50.0, "NoAns_f1": 50.0, "NoAns_total": 2, "skipped": 0})


def test_squad_v2_null_threshold_and_best_thresholds():
    # threshold 0.5: q2 (0.9) and q4 (0.8) become 'no answer', both right -> exact 3/4, f1 (1+1+2/3+1)/4
    scores = mm.squad_scores(V2_GOLD, V2_PRED, V2_NULL, threshold=0.5)
    assert (scores["exact"], scores["f1"]) == pytest.approx((75.0, 100 * (11 / 3) / 4))
    # best search: start at 2 (the no-answer questions); q1 @0.1: +1 -> 3 (best); q3 @0.3: exact +0, f1 +2/3
    # -> 3.67 (best f1); q4 @0.8: non-empty prediction -1; q2 @0.9: empty prediction +0
    assert scores["best_exact"] == pytest.approx(75.0) and scores["best_exact_thresh"] == 0.1
    assert scores["best_f1"] == pytest.approx(100 * (11 / 3) / 4) and scores["best_f1_thresh"] == 0.3
    # the comparison is strict: q4 at exactly 0.8 keeps its answer
    assert mm.squad_scores(V2_GOLD, V2_PRED, V2_NULL, threshold=0.8)["exact"] == 50.0
    # with the default threshold (1.0) nothing changes
    assert mm.squad_scores(V2_GOLD, V2_PRED, V2_NULL)["exact"] == 50.0
    with pytest.raises(ValueError, match="q4"):
        mm.squad_scores(V2_GOLD, V2_PRED, {"q1": 0.1, "q2": 0.9, "q3": 0.3})


def test_squad_v2_missing_prediction_scores_zero():
    predictions = {k: v for k, v in V2_PRED.items() if k != "q2"}  # q2 would score 1 with ""
    scores = mm.squad_scores(V2_GOLD, predictions)
    assert (scores["exact"], scores["total"], scores["skipped"], scores["NoAns_exact"]) == (25.0, 4, 1, 0.0)


def test_squad_version_follows_the_gold():
    v1 = mm.squad_scores({"a": ["x"], "b": ["y"]}, {"a": "x"})
    assert v1 == {"exact_match": 50.0, "f1": 50.0, "total": 2, "skipped": 1}
    assert "HasAns_exact" in mm.squad_scores({"a": ["x"]}, {"a": "x"}, version=2)
    assert "NoAns_exact" in mm.squad_scores({"a": []}, {"a": ""})


# ---------------------------------------------------------------- gold formats


def squad_style(qas_by_context: dict[str, list[dict]]) -> dict:
    return {"version": "v1", "data": [{"title": "t", "paragraphs": [
        {"context": context, "qas": qas} for context, qas in qas_by_context.items()]}]}


def test_gold_answers_of_both_formats():
    squad = squad_style({"北京是首都。": [
        {"id": "Q1", "question": "首都是哪里？", "answers": [{"text": "北京", "answer_start": 0}] * 2},
        {"id": 7, "question": "?", "answers": [{"text": "x"}], "is_impossible": True}]})
    assert mm.gold_answers(squad) == {"Q1": ["北京", "北京"], "7": []}
    assert mm.questions(squad) == {"Q1": "首都是哪里？", "7": "?"}
    original = [{"context_id": "C1", "context_text": "上海。", "qas": [
        {"query_id": "C1_QUERY_0", "query_text": "哪里？", "answers": ["上海", "上海"]}]}]
    assert mm.gold_answers(original) == {"C1_QUERY_0": ["上海", "上海"]}
    assert mm.gold_answers({"data": original}) == mm.gold_answers(original)
    assert mm.questions(original) == {"C1_QUERY_0": "哪里？"}


def original_format(*qas: dict) -> list:
    return [{"context_id": "C", "context_text": "上海。", "qas": list(qas)}]


@pytest.mark.parametrize("dataset,message", [
    # a gold question needs an "answers" list (mrc_data alone reads a missing one as unlabelled data)
    (squad_style({"c": [{"id": "Q9", "question": "?"}]}), 'question Q9 has no "answers" list'),
    (original_format({"query_id": "C_Q0", "query_text": "?"}), 'question C_Q0 has no "answers" list'),
    (original_format({"query_id": "C_Q0", "query_text": "?", "answers": "上海"}),
     'question C_Q0: "answers" is not a list'),
    (squad_style({"c": [{"question": "?", "answers": []}]}), r'data\[0\]\.paragraphs\[0\]\.qas\[0\] has no "id"'),
    (squad_style({"c": [{"id": "Q2", "answers": []}]}), 'question Q2 has no "question" string'),
    (squad_style({"c": [{"id": "Q1", "question": "?", "answers": [3]}]}), 'question Q1: an answer without a "text"'),
    # SQuAD-style answers are {"text", "answer_start"} objects, never plain strings (those are the original format's)
    (squad_style({"c": [{"id": "Q3", "question": "?", "answers": ["c"]}]}), 'question Q3: an answer without a "text"'),
    (original_format({"query_id": "C_Q4", "query_text": "?", "answers": [{"text": "上海"}]}),
     "question C_Q4: answers must be strings"),
    (squad_style({"c": [{"id": "Q1", "question": "?", "answers": []}, {"id": "Q1", "question": "?", "answers": []}]}),
     "question id Q1 occurs twice"),
    ({"version": "1"}, r'expected SQuAD-style \{"data": \[\.\.\.\]\} or the original CMRC2018 list'),
    ([{"context_id": "C"}], 'item 0 has no "context_text" string'),
    ([{"title": "t"}], r'data\[0\] has no "paragraphs" list'),
])
def test_gold_errors_name_the_file_and_question(dataset, message):
    with pytest.raises(mrc_data.DataFormatError, match=f"^g.json: {message}"):
        mm.gold_answers(dataset, "g.json")
    with pytest.raises(ValueError, match=f"^gold file: {message}"):  # without a path: the file's role
        mm.questions(dataset)


def write(path: Path, value) -> str:
    if isinstance(value, bytes):
        path.write_bytes(value)
    else:
        path.write_text(value if isinstance(value, str) else json.dumps(value, ensure_ascii=False), encoding="utf-8")
    return str(path)


def test_evaluate_files_picks_the_metric(tmp_path):
    chinese = write(tmp_path / "zh.json", squad_style({"北京是首都。": [
        {"id": "a", "question": "首都是哪里？", "answers": [{"text": "北京"}]}]}))
    english = write(tmp_path / "en.json", squad_style({"Paris is big.": [
        {"id": "a", "question": "Which?", "answers": [{"text": "Paris"}]}]}))
    with_no_answer = write(tmp_path / "v2.json", squad_style({"Paris is big.": [
        {"id": "a", "question": "Which?", "answers": [{"text": "Paris"}]},
        {"id": "b", "question": "Who?", "answers": [], "is_impossible": True}]}))
    predictions = write(tmp_path / "pred.json", {"a": "北京", "b": ""})
    zh = mm.evaluate_files(chinese, predictions)
    assert zh["metric"] == "cmrc2018" and zh["f1"] == 100.0 and zh["by_type"]["where"]["count"] == 1
    assert mm.evaluate_files(english, predictions) == {"metric": "squad", "exact_match": 0.0, "f1": 0.0,
                                                       "total": 1, "skipped": 0}
    v2 = mm.evaluate_files(with_no_answer, predictions, null_odds_path=write(tmp_path / "n.json", {"a": 0.2, "b": 1}))
    assert v2["metric"] == "squad_v2" and v2["NoAns_exact"] == 100.0 and v2["best_exact"] == 50.0
    assert mm.evaluate_files(chinese, predictions, metric="squad")["metric"] == "squad"


@pytest.mark.parametrize("content,message", [
    ('{"a": "x",\n "b": }', "pred.json:2:7: the predictions file is not valid JSON: Expecting value"),
    (b'{"a": "\xff"}', r"pred.json: the predictions file is not UTF-8 \(byte 7\)"),
    ('["x"]', "pred.json: predictions must be a JSON object"),
    ('{"a": 3}', "pred.json: the prediction for question 'a' is not a string"),
])
def test_bad_predictions_files(tmp_path, content, message):
    gold = write(tmp_path / "gold.json", squad_style({"c": [{"id": "a", "question": "q", "answers": [{"text": "x"}]}]}))
    with pytest.raises(ValueError, match=message):
        mm.evaluate_files(gold, write(tmp_path / "pred.json", content))


def test_bad_gold_and_null_odds_files(tmp_path):
    predictions = write(tmp_path / "pred.json", {"a": "x"})
    gold = write(tmp_path / "gold.json", squad_style({"c": [{"id": "a", "question": "q"}]}))
    with pytest.raises(mrc_data.DataFormatError, match='gold.json: question a has no "answers" list'):
        mm.evaluate_files(gold, predictions)
    with pytest.raises(mrc_data.DataFormatError, match="gold.json:1:2: the gold file is not valid JSON"):
        mm.evaluate_files(write(tmp_path / "gold.json", "{"), predictions)
    v2 = write(tmp_path / "v2.json", squad_style({"c": [{"id": "a", "question": "q", "answers": []}]}))
    with pytest.raises(ValueError, match="null.json: no null probability for question 'a'"):
        mm.evaluate_files(v2, predictions, null_odds_path=write(tmp_path / "null.json", {}))
    with pytest.raises(ValueError, match="null.json: the null odds of question 'a' is not a number"):
        mm.evaluate_files(v2, predictions, null_odds_path=write(tmp_path / "null.json", {"a": "0.5"}))
    with pytest.raises(ValueError, match="null.json:1:7: the null odds file is not valid JSON"):
        mm.evaluate_files(v2, predictions, null_odds_path=write(tmp_path / "null.json", '{"a": }'))
    english = write(tmp_path / "en.json",
                    squad_style({"c": [{"id": "a", "question": "q", "answers": [{"text": "x"}]}]}))
    with pytest.raises(ValueError, match="squad_v2 metric only"):
        mm.evaluate_files(english, predictions, null_odds_path=write(tmp_path / "null.json", {"a": 0.5}))


# ---------------------------------------------------------------- the real CMRC2018 dev set


def dev_slice(count: int) -> dict[str, list[str]]:
    """The first ``count`` dev questions whose gold answers are all plain CJK characters (no punctuation), so that
    their segments are their characters and the expected scores follow without the tokenizer."""
    gold = mm.gold_answers(json.loads(CMRC_DEV.read_text(encoding="utf-8")))
    plain = {q: a for q, a in gold.items()
             if all(t and all("\u4e00" <= c <= "\u9fa5" for c in t) for t in a)}
    return dict(list(plain.items())[:count])


@pytest.mark.skipif(not CMRC_DEV.exists(), reason="no CMRC2018 dev set in shared/datasets")
def test_real_dev_slice():
    gold = dev_slice(400)
    assert len(gold) == 400
    assert mm.cmrc2018_scores(gold, {q: a[0] for q, a in gold.items()}) == {
        "f1": 100.0, "em": 100.0, "average": 100.0, "total": 400, "skipped": 0}
    # One character c predicted: against a gold answer of n characters containing c, lcs 1 -> P=1, R=1/n ->
    # F1 = 2/(n+1); EM only when that answer is c itself.
    first_char = {q: a[0][0] for q, a in gold.items()}
    f1 = sum(max(2 / (len(t) + 1) if first_char[q] in t else 0.0 for t in a) for q, a in gold.items())
    em = sum(first_char[q] in a for q, a in gold.items())
    scores = mm.cmrc2018_scores(gold, first_char)
    assert scores["f1"] == pytest.approx(100 * f1 / 400) and scores["em"] == pytest.approx(100 * em / 400)
    assert 10 < scores["f1"] < 40  # answers of a few characters


@pytest.mark.skipif(not CMRC_DEV.exists(), reason="no CMRC2018 dev set in shared/datasets")
def test_real_dev_whole():
    dataset = json.loads(CMRC_DEV.read_text(encoding="utf-8"))
    gold = mm.gold_answers(dataset)
    assert len(gold) == 3219 and mm.detect_metric(dataset) == "cmrc2018"
    # with mixed answers ('光荣和ω-force', 'henry a. walsh', numbers), through NLTK: regression values of this
    # module at nltk 3.10.4 (the slice test above is the independent check)
    scores = mm.cmrc2018_scores(gold, {q: a[0][:1] for q, a in gold.items()})
    assert (scores["f1"], scores["em"]) == pytest.approx((23.97960571403258, 0.21745883814849332))


# ---------------------------------------------------------------- the CLI


def run_cli(args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "mrc_metric.py", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONIOENCODING": "utf-8"})


def test_cli_prints_the_scores(tmp_path):
    gold = write(tmp_path / "gold.json", [{"context_id": "C", "context_text": "北京是首都。", "qas": [
        {"query_id": "C_Q0", "query_text": "首都是哪里？", "answers": ["北京", "北京"]},
        {"query_id": "C_Q1", "query_text": "是什么？", "answers": ["首都"]}]}])
    predictions = write(tmp_path / "pred.json", {"C_Q0": "北京。"})
    done = run_cli([gold, predictions, f"--out_file={tmp_path / 'scores.json'}"])
    assert done.returncode == 0, done.stderr
    scores = json.loads(done.stdout)
    assert scores == {"metric": "cmrc2018", "f1": 50.0, "em": 50.0, "average": 50.0, "total": 2, "skipped": 1,
                      "by_type": {"where": {"f1": 100.0, "em": 100.0, "count": 1},
                                  "what": {"f1": 0.0, "em": 0.0, "count": 1}}}
    assert "1 of 2 questions have no prediction" in done.stderr
    assert json.loads((tmp_path / "scores.json").read_text(encoding="utf-8")) == scores


def test_cli_reports_malformed_json_in_one_line(tmp_path):
    gold = write(tmp_path / "gold.json", '{"data": [')
    done = run_cli([gold, write(tmp_path / "pred.json", {})])
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.splitlines()[0] == (f"mrc_metric.py: error: {gold}:1:11: the gold file is not valid JSON: "
                                          "Expecting value")


def test_cli_positionals_and_flags(tmp_path, capsys):
    gold = write(tmp_path / "gold.json",
                 squad_style({"c": [{"id": "a", "question": "q", "answers": [{"text": "The cat"}]}]}))
    predictions = write(tmp_path / "pred.json", {"a": "cat"})
    for argv in ([gold, predictions], ["--metric", "squad", gold, predictions],
                 [f"--gold_file={gold}", "--predictions_file", predictions]):
        assert mm.main(argv) == 0
        assert json.loads(capsys.readouterr().out)["exact_match"] == 100.0
    for argv, message in (([gold], "no predictions file"), ([gold, predictions, "x"], "unexpected arguments 'x'"),
                          ([gold, f"--gold_file={gold}", predictions], "--gold_file and a positional")):
        with pytest.raises(SystemExit) as exit_info:
            mm.main(argv)
        assert exit_info.value.code == 2 and message in capsys.readouterr().err
