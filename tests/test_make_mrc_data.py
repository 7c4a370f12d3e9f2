"""data/make_mrc_data.py: the cloze-style span questions (rules, offsets, splits, caps, JSON, baselines, errors) on
hand-written word/TAG paragraphs; no download."""

from __future__ import annotations

import collections
import json
import random
import sys
from pathlib import Path

import pytest

import cli

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import make_demo_tasks  # noqa: E402
import make_mrc_data as mrc  # noqa: E402
import make_ner_data  # noqa: E402
import prepare_demo_corpus  # noqa: E402

# One article: a heading, then four paragraphs. 日本 x5 (twice in the last sentence), 代表团 x3 and 北京 x3 (once
# each in the heading), 江泽民 x2 (surname and given name tagged apart), 中国 once as a word and once inside 中国队,
# 人 (one character) twice.
ARTICLE = [
    "代表团/n  访问/v  北京/ns",
    "江/nr  泽民/nr  会见/v  了/u  来访/v  的/u  日本/ns  代表团/n  全体/n  成员/n  。/w",
    "日本/ns  代表团/n  昨天/t  下午/t  参观/v  了/u  北京/ns  的/u  中国队/nt  训练/vn  基地/n  。/w",
    "江/nr  泽民/nr  说/v  ，/w  中国/ns  欢迎/v  日本/ns  朋友/n  来/v  北京/ns  看看/v  ，/w  "
    "人/n  人/n  欢迎/v  。/w",
    "日本/ns  客人/n  说/v  ，/w  日本/ns  人民/n  珍视/v  两国/n  友谊/n  。/w",
]
NOUNS = ["工厂", "学校", "医院", "农民", "工人", "城市", "农村", "军队", "科学", "文化", "银行", "市场"]


def one_document(lines: list[str] = ARTICLE) -> mrc.Document:
    (article,) = mrc.read_articles(lines)
    (document,), skipped = mrc.chunk_article(article, 480)
    assert skipped == 0
    return document


def question_on(document: mrc.Document, word: str, nth: int, keep: bool = True) -> mrc.Question:
    """The question on the nth occurrence of ``word`` (its answers: the document's candidates)."""
    words = {w: o for w, o in mrc.candidate_occurrences(document).items() if len(w) >= 2 and len(o) >= 2}
    return mrc.make_question(document, "q", word, words[word][nth], words, keep)


def corpus(n_articles: int = 40) -> list[str]:
    """n articles of a heading and four paragraphs; candidates a (x3), b (x2), c (x2), from NOUNS."""
    lines = []
    for i in range(n_articles):
        a, b, c = (NOUNS[(3 * i + k) % len(NOUNS)] for k in range(3))
        lines += [f"第/m  {i}/m  期/q  新闻/n",
                  f"{a}/n  的/u  同志/n  们/k  今天/t  来到/v  {b}/n  参观/v  学习/v  。/w",
                  f"{b}/n  的/u  领导/n  热情/a  接待/v  了/u  来自/v  {a}/n  的/u  客人/n  。/w",
                  f"大家/r  认为/v  {c}/n  和/c  {a}/n  都/d  需要/v  更多/a  支持/vn  。/w",
                  f"{c}/n  方面/n  也/d  表示/v  愿意/v  加强/v  合作/vn  交流/vn  。/w"]
    return lines


def run(tmp_path: Path, lines: list[str], *flags: str, name: str = "out") -> tuple[Path, dict]:
    """main() on ``lines``; no cap on the questions an answer word may have unless ``flags`` set one (NOUNS are
    few)."""
    flags = ("--max_answer_share=1", *flags)
    source = tmp_path / "199801.txt"
    source.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / name
    assert mrc.main(["--input_file", str(source), "--output_dir", str(out), *flags], log=lambda _: None) == 0
    return out, json.loads((out / "summary.json").read_text(encoding="utf-8"))


def load(out: Path, split: str) -> dict:
    return json.loads((out / f"{split}.json").read_text(encoding="utf-8"))


def qas(data: dict) -> list[tuple[str, dict]]:
    """(context, qa) for every question, read as a SQuAD-style reader reads: data/paragraphs/qas/answers."""
    return [(p["context"], qa) for article in data["data"] for p in article["paragraphs"] for qa in p["qas"]]


# --------------------------------------------------------------------------- the rules


def test_text_is_the_demo_corpus_and_names_are_joined():
    line = "江/nr  泽民/nr  李/nr  鹏/nr  会见/v  欧阳/nr  山尊/nr  和/c  克林顿/nr  ，/w  ＷＴＯ/nx  ３/m  号/q"
    text, units = mrc.parse_paragraph(line)
    assert text == prepare_demo_corpus.strip_annotation(line) == "江泽民李鹏会见欧阳山尊和克林顿，WTO 3号"
    names = [text[s:e] for s, e, tag in units if tag == "nr"]
    assert names == ["江泽民", "李鹏", "欧阳山尊", "克林顿"]  # a list of names is split into surname + given name


def test_candidates_are_whole_words_occurring_twice_of_two_or_more_characters():
    document = one_document()
    occurrences = mrc.candidate_occurrences(document)
    counts = {w: len(o) for w, o in occurrences.items()}
    assert counts["江泽民"] == 2 and "泽民" not in counts and "江" not in counts
    assert counts["中国"] == 1  # 中国 inside the word 中国队 is not an occurrence of it
    assert (counts["日本"], counts["代表团"], counts["北京"], counts["人"]) == (5, 3, 3, 2)
    for word, found in occurrences.items():
        assert all(document.text[o.start:o.start + len(word)] == word for o in found)
    drops, rejections = mrc.collections.Counter(), mrc.collections.Counter()
    options = mrc.document_candidates(document, drops, rejections)
    assert sorted(options) == ["代表团", "北京", "日本", "江泽民"]
    assert drops["one_character"] == 1 and drops["single_occurrence"] >= 1  # 人; 中国, 成员, ...
    # The heading is no query sentence; 日本 twice in the last sentence rules out both occurrences there.
    assert [document.text[o.start - 2:o.start] for o in options["代表团"]] == ["日本", "日本"]
    assert len(options["日本"]) == 3 and rejections["answer_twice_in_sentence"] == 2
    assert rejections["not_a_sentence"] == 2  # 代表团 and 北京 in the heading


def test_question_placeholder_context_and_answers_with_exact_offsets():
    document = one_document()
    q = question_on(document, "日本", 1)  # the one opening the third paragraph
    sentence = "日本代表团昨天下午参观了北京的中国队训练基地。"
    assert q.question == sentence.replace("日本", mrc.PLACEHOLDER, 1) and q.question.count(mrc.PLACEHOLDER) == 1
    assert sentence in q.context and q.context == document.text  # the query sentence stays
    query_start = q.context.index(sentence)
    others = [i for i in range(len(q.context)) if q.context.startswith("日本", i) and i != query_start]
    assert [start for _, start in q.answers] == others and len(others) == 4  # every other occurrence, in order
    assert all(q.context[start:start + len(text)] == text == "日本" for text, start in q.answers)


def test_without_the_query_sentence_offsets_still_hold():
    document = one_document()
    q = question_on(document, "日本", 1, keep=False)
    assert "日本代表团昨天下午参观了北京的" not in q.context and len(q.context) == len(document.text) - 24
    assert len(q.answers) == 4 and all(q.context[s:s + len(t)] == t for t, s in q.answers)


def test_placeholder_is_spaced_from_latin_letters_and_digits():
    lines = ["标题/n", "ＷＴＯ/nx  总部/n  今天/t  发表/v  了/u  一份/m  关于/p  贸易/n  的/u  新/a  报告/n  。/w",
             "报告/n  说/v  ，/w  总部/n  将/d  在/p  明年/t  召开/v  部长/n  级/n  会议/n  。/w"]
    q = question_on(one_document(lines), "总部", 0)
    assert q.question.startswith("WTO XXXXX今天")


def test_baselines_on_a_tiny_case():
    assert mrc.most_frequent([("甲", 5), ("乙", 1), ("乙", 9), ("丙", 3)]) == "乙"
    assert mrc.most_frequent([("甲", 5), ("乙", 1)]) == "乙"  # a tie: the earlier one
    assert mrc.nearest([("甲", 5), ("乙", 1), ("丙", 12)], 8) == "甲" and mrc.nearest([], 3) == ""
    # 江泽民 opening the fourth paragraph: words in the question (日本, 北京) are out; 代表团 (3 occurrences, the
    # nearest one closing the third paragraph's first words) beats the other 江泽民.
    q = question_on(one_document(), "江泽民", 1)
    assert q.predictions == {"most_frequent": "代表团", "nearest": "代表团", "copy_query_sentence": "江泽民"}
    gold = {"right": ["江泽民"], "wrong": ["江泽民"]}
    scores = mrc.score(gold, {"right": "江泽民", "wrong": "代表团"})
    assert scores["em"] == 50.0 and scores.get("f1", 50.0) == 50.0


# --------------------------------------------------------------------------- the splits, caps and files


def test_articles_and_split_are_those_of_the_ner_set_and_pair_task():
    lines = corpus(30) + ARTICLE
    articles = mrc.read_articles(lines)
    ner = make_ner_data.articles(lines)
    assert ["".join(s.text for s in a.sentences) for a in articles] == [
        "".join(c for s in article for c, _ in s) for article in ner]
    ours = make_demo_tasks.split_uncapped(articles, random.Random(7))
    theirs = make_demo_tasks.split_uncapped(ner, random.Random(7))
    assert [[a.sentences[0].text for a in part] for part in ours] == [
        ["".join(c for c, _ in article[0]) for article in part] for part in theirs]


def test_split_by_document_deterministic_and_json_schema(tmp_path):
    out, summary = run(tmp_path, corpus(40), "--max_questions", "")
    ids = {}
    for split in mrc.SPLITS:
        data = load(out, split)
        assert set(data) == {"version", "data"} and data["version"] == "pd_cloze_1.0"
        for article in data["data"]:
            assert set(article) == {"title", "paragraphs"} and isinstance(article["title"], str)
            for paragraph in article["paragraphs"]:
                assert set(paragraph) == {"id", "context", "qas"}
                for qa in paragraph["qas"]:
                    assert set(qa) == {"id", "question", "answers"} and qa["answers"]
                    for answer in qa["answers"]:
                        assert set(answer) == {"text", "answer_start"} and isinstance(answer["answer_start"], int)
                        start = answer["answer_start"]
                        assert paragraph["context"][start:start + len(answer["text"])] == answer["text"]
        ids[split] = {p["id"].rsplit("-d", 1)[0] for a in data["data"] for p in a["paragraphs"]}  # the article
        assert summary["questions"][split] == len(qas(data)) and summary["documents"][split] == len(data["data"])
    assert (len(ids["train"]), len(ids["dev"]), len(ids["test"])) == (32, 4, 4)  # 80/10/10 of 40 articles
    assert not (ids["train"] & ids["dev"] or ids["train"] & ids["test"] or ids["dev"] & ids["test"])
    raw = (out / "dev.json").read_text(encoding="utf-8")
    assert "XXXXX" in raw and "\\u" not in raw  # UTF-8, not ASCII-escaped
    assert not list(out.glob("*.tmp"))
    again, _ = run(tmp_path, corpus(40), "--max_questions", "", name="again")
    other, _ = run(tmp_path, corpus(40), "--max_questions", "", "--seed", "1", name="other")
    for split in mrc.SPLITS:
        assert (out / f"{split}.json").read_bytes() == (again / f"{split}.json").read_bytes()
    assert (out / "dev.json").read_bytes() != (other / "dev.json").read_bytes()
    assert set(summary["baselines"]) == {"dev", "test"}
    assert summary["baselines"]["dev"]["copy_query_sentence"]["em"] == 0.0  # the query sentence is cut by default


def test_a_squad_reader_reads_the_files(tmp_path):
    mrc_data = pytest.importorskip("mrc_data")
    out, summary = run(tmp_path, corpus(40), "--max_questions", "")
    for split in mrc.SPLITS:
        examples, report = mrc_data.read_examples(str(out / f"{split}.json"), training=True)
        assert len(examples) == summary["questions"][split]
        assert not report.repaired and not report.not_in_context
        assert all(e.context[s:e_] == e.answers[0] for e in examples for s, e_ in e.spans[:1])


def test_caps_per_document_per_answer_word_and_per_split(tmp_path):
    _, full = run(tmp_path, corpus(40), "--max_questions", "")
    assert full["questions"] == {"train": 96, "dev": 12, "test": 12}  # 3 candidates a document, all asked
    out, summary = run(tmp_path, corpus(40), "--max_questions", "10,2,", "--questions_per_document", "2",
                       name="capped")
    assert summary["questions"] == {"train": 10, "dev": 2, "test": 8}
    for split in mrc.SPLITS:
        for article in load(out, split)["data"]:
            assert sum(len(p["qas"]) for p in article["paragraphs"]) <= 2
    out, summary = run(tmp_path, corpus(40), "--max_questions", "24,,", "--max_answer_share", "0.1", name="share")
    answers = [qa["answers"][0]["text"] for _, qa in qas(load(out, "train"))]
    assert summary["counts"]["train_answer_word_cap"] == 2 and len(answers) == 24
    assert max(answers.count(w) for w in set(answers)) <= 2 and summary["candidates_dropped"]["over_answer_word_cap"]


def test_the_query_sentence_is_cut_unless_kept(tmp_path):
    out, summary = run(tmp_path, corpus(40), "--max_questions", "")
    for context, qa in qas(load(out, "train")):
        sentence = qa["question"].replace(mrc.PLACEHOLDER, qa["answers"][0]["text"])
        assert sentence not in context
    assert all(len(p["qas"]) == 1 for a in load(out, "dev")["data"] for p in a["paragraphs"])
    assert summary["baselines"]["dev"]["copy_query_sentence"]["em"] == 0.0
    out, summary = run(tmp_path, corpus(40), "--max_questions", "", "--keep_query_sentence", name="kept")
    for context, qa in qas(load(out, "train")):
        assert qa["question"].replace(mrc.PLACEHOLDER, qa["answers"][0]["text"]) in context
    assert summary["baselines"]["dev"]["copy_query_sentence"]["em"] == 100.0  # the leak a kept sentence brings


def test_answer_tags_restrict_answers_and_baseline_candidates():
    document = one_document()
    everything = mrc.candidate_occurrences(document)
    names = mrc.candidate_occurrences(document, frozenset({"nr", "ns", "nt"}))
    assert "代表团" in everything and "代表团" not in names  # a common noun (n)
    assert {"日本", "北京", "江泽民"} <= set(names) and set(names) < set(everything)
    drops, rejections = collections.Counter(), collections.Counter()
    options = mrc.document_candidates(document, drops, rejections, frozenset({"nr"}))
    assert set(options) == {"江泽民"}


def test_answer_tags_flag(tmp_path, capsys):
    out, summary = run(tmp_path, ARTICLE * 30, "--max_questions", "", "--answer_tags", "ns,nr")
    assert summary["candidate_tags"] == ["nr", "ns"]
    answers = {qa["answers"][0]["text"] for split in mrc.SPLITS for _, qa in qas(load(out, split))}
    assert answers and answers <= {"日本", "北京", "江泽民"}
    with pytest.raises(SystemExit) as info:
        mrc.parse_flags(["--output_dir", "o", "--answer_tags", "ns,v"])
    assert info.value.code == 2 and "--answer_tags" in capsys.readouterr().err


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("content, message", [(None, "No such file"), ("", "is empty"), ("\n \n", "is empty"),
                                              ("标题/n\n", "no articles")])
def test_bad_input_is_one_clean_error_line(tmp_path, capsys, content, message):
    source = tmp_path / "199801.txt"
    if content is not None:
        source.write_text(content, encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        cli.clean_errors(mrc.main)(["--input_file", str(source), "--output_dir", str(tmp_path / "out")])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.count("error:") == 1 and message in err.splitlines()[0]
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_bad_caps_exit_2_naming_the_flag(capsys):
    with pytest.raises(SystemExit) as info:
        mrc.parse_flags(["--output_dir", "o", "--max_questions", "4000,500"])
    assert info.value.code == 2 and "--max_questions" in capsys.readouterr().err
