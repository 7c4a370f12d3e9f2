"""classifier_data.py: every task's processor on small files in its real format, header detection, malformed rows,
feature conversion, the feature cache and the metrics."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

import classifier_data as cd
import input_pipeline
import tokenization


def write(directory: Path, name: str, lines: list[str]) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def jsonl(directory: Path, name: str, objects: list[dict]) -> Path:
    return write(directory, name, [json.dumps(o, ensure_ascii=False) for o in objects])


def triples(examples) -> list[tuple]:
    return [(e.text_a, e.text_b, e.label) for e in examples]


# ---------------------------------------------------------------------------------------------------------------------
# TSV tasks
# ---------------------------------------------------------------------------------------------------------------------

def test_lcqmc_without_header_keeps_the_first_row(tmp_path):
    write(tmp_path, "train.txt", ["喜欢打篮球的男生喜欢什么样的女生\t爱打篮球的男生喜欢什么样的女生\t1",
                                  "我手机丢了，我想换个手机\t我想买个新手机，求推荐\t1",
                                  "大家觉得她好看吗\t大家觉得跑男好看吗？\t0"])
    processor = cd.get_processor("lcqmc_pair")
    examples = processor.get_train_examples(str(tmp_path))
    assert triples(examples)[0] == ("喜欢打篮球的男生喜欢什么样的女生", "爱打篮球的男生喜欢什么样的女生", "1")
    assert len(examples) == 3 and not processor.reports["train"].header
    assert [e.line for e in examples] == [1, 2, 3] and examples[2].guid == "train-2"
    assert processor.get_labels() == ["0", "1"]
    assert type(cd.get_processor("lcqmc")) is type(processor)  # the alias


def test_header_is_detected_and_skipped(tmp_path):
    write(tmp_path, "dev.txt", ["text_a\ttext_b\tlabel", "开初婚未育证明怎么弄？\t初婚未育情况证明怎么开？\t1"])
    processor = cd.get_processor("lcqmc_pair")
    examples = processor.get_dev_examples(str(tmp_path))
    assert triples(examples) == [("开初婚未育证明怎么弄？", "初婚未育情况证明怎么开？", "1")]
    assert processor.reports["dev"].header and examples[0].line == 2


def test_malformed_rows_name_file_and_line_or_are_counted(tmp_path):
    path = write(tmp_path, "train.txt", ["一\t二\t1", "只有一列", "三\t四\t5", "五\t六\t0"])
    with pytest.raises(cd.DataFormatError, match=rf"{path}:2: 1 tab-separated columns, expected 3"):
        cd.get_processor("lcqmc_pair").get_train_examples(str(tmp_path))
    path.write_text("一\t二\t1\n三\t四\t5\n", encoding="utf-8")
    with pytest.raises(cd.DataFormatError, match=rf"{path}:2: label '5' is not one of"):
        cd.get_processor("lcqmc_pair").get_train_examples(str(tmp_path))

    write(tmp_path, "train.txt", ["一\t二\t1", "只有一列", "三\t四\t5", "五\t六\t0"])
    processor = cd.get_processor("lcqmc_pair", skip_bad_lines=True)
    examples = processor.get_train_examples(str(tmp_path))
    report = processor.reports["train"]
    assert triples(examples) == [("一", "二", "1"), ("五", "六", "0")]
    assert [line.split(": ")[0] for line in report.bad_lines] == [f"{path}:2", f"{path}:3"]
    assert "2 malformed lines skipped" in report.summary(len(examples))


def test_test_files_without_labels_or_with_dummy_labels(tmp_path):
    write(tmp_path, "test.txt", ["谁有狂三这张高清的\t这张高清图，谁有", "英雄联盟什么英雄最好\t英雄联盟最好英雄是什么\t-1",
                                 "这是什么意思\t这是什么意思啊\t1"])
    examples = cd.get_processor("lcqmc_pair").get_test_examples(str(tmp_path))
    assert triples(examples) == [("谁有狂三这张高清的", "这张高清图，谁有", None),
                                 ("英雄联盟什么英雄最好", "英雄联盟最好英雄是什么", None),
                                 ("这是什么意思", "这是什么意思啊", "1")]
    # sentence_pair: the label column comes first, so a label-less row is text_a \t text_b.
    write(tmp_path, "test_0827.tsv", ["label\ttext_a\ttext_b", "0\t甲\t乙", "丙\t丁"])
    examples = cd.get_processor("sentence_pair").get_test_examples(str(tmp_path))
    assert triples(examples) == [("甲", "乙", "0"), ("丙", "丁", None)]


def test_sentence_pair_layout(tmp_path):
    write(tmp_path, "train_0827.tsv", ["1\t花呗怎么还款\t花呗如何还钱", "0\t借呗额度\t花呗分期"])
    examples = cd.get_processor("sentence_pair").get_train_examples(str(tmp_path))
    assert triples(examples) == [("花呗怎么还款", "花呗如何还钱", "1"), ("借呗额度", "花呗分期", "0")]


def test_text_classification_labels_come_from_the_data(tmp_path):
    write(tmp_path, "train.tsv", ["label\ttext", "pos\t这家酒店很好", "neg\t房间太小了", "neutral\t还行吧", "pos\t服务周到"])
    write(tmp_path, "dev.tsv", ["neg\t不推荐", "pos\t推荐"])
    write(tmp_path, "test.tsv", ["早餐不错", "位置偏"])
    processor = cd.get_processor("sentiment")
    assert processor.get_labels(str(tmp_path)) == ["neg", "neutral", "pos"]
    train = processor.get_train_examples(str(tmp_path))
    assert triples(train)[0] == ("这家酒店很好", None, "pos") and len(train) == 4
    assert processor.reports["train"].header
    assert len(processor.get_dev_examples(str(tmp_path))) == 2
    assert not processor.reports["dev"].header  # "neg" is a label, though it looks like a column name
    assert triples(processor.get_test_examples(str(tmp_path))) == [("早餐不错", None, None), ("位置偏", None, None)]
    # A first row whose label recurs below is data, not a header.
    write(tmp_path, "train.tsv", ["pos\t很好", "pos\t不错", "neg\t差"])
    assert len(cd.get_processor("text_classification").get_train_examples(str(tmp_path))) == 3


def test_xnli_train_dev_and_test(tmp_path):
    write(tmp_path, "multinli/multinli.train.zh.tsv",
          ["premise\thypo\tlabel", "他说，妈妈，我回来了。\t校车把他放下后，他立即给他妈妈打了电话。\tneutral",
           "我不知道\t我不确定\tcontradictory"])
    header = "\t".join(["language", "gold_label", "sentence1_binary_parse", "sentence2_binary_parse",
                        "sentence1_parse", "sentence2_parse", "sentence1", "sentence2", "promptID", "pairID"])

    def row(language, label, a, b):
        return "\t".join([language, label, "(", "(", "(", "(", a, b, "1", "2"])

    for name in ("xnli.dev.tsv", "xnli.test.tsv"):
        write(tmp_path, name, [header, row("en", "entailment", "He said", "He spoke"),
                               row("zh", "entailment", "他说", "他讲"), row("zh", "neutral", "我们走吧", "走")])
    processor = cd.get_processor("xnli")
    assert triples(processor.get_train_examples(str(tmp_path))) == [
        ("他说，妈妈，我回来了。", "校车把他放下后，他立即给他妈妈打了电话。", "neutral"), ("我不知道", "我不确定", "contradiction")]
    for split in ("dev", "test"):
        assert triples(processor.get_examples(str(tmp_path), split)) == [("他说", "他讲", "entailment"),
                                                                         ("我们走吧", "走", "neutral")]
        assert processor.reports[split].header and processor.reports[split].left_out == 1
    assert processor.get_labels() == ["contradiction", "entailment", "neutral"]


# ---------------------------------------------------------------------------------------------------------------------
# CLUE (JSON lines)
# ---------------------------------------------------------------------------------------------------------------------

def test_afqmc_iflytek_tnews(tmp_path):
    jsonl(tmp_path / "afqmc", "train.json", [{"sentence1": "双十一花呗提额在哪", "sentence2": "里可以提花呗额度", "label": "0"}])
    jsonl(tmp_path / "afqmc", "test.json", [{"id": 7, "sentence1": "借呗还款", "sentence2": "借呗怎么还"}])
    afqmc = cd.get_processor("afqmc")
    assert triples(afqmc.get_train_examples(str(tmp_path / "afqmc"))) == [("双十一花呗提额在哪", "里可以提花呗额度", "0")]
    test = afqmc.get_test_examples(str(tmp_path / "afqmc"))
    assert triples(test) == [("借呗还款", "借呗怎么还", None)] and test[0].example_id == 7 and afqmc.is_clue

    jsonl(tmp_path / "iflytek", "train.json", [{"label": "11", "label_des": "休闲益智", "sentence": "一款消除游戏"}])
    iflytek = cd.get_processor("iflytek")
    assert triples(iflytek.get_train_examples(str(tmp_path / "iflytek"))) == [("一款消除游戏", None, "11")]
    assert iflytek.get_labels() == [str(i) for i in range(119)]

    jsonl(tmp_path / "tnews", "train.json", [
        {"label": "102", "label_desc": "news_entertainment", "sentence": "江疏影甜甜圈自拍", "keywords": "江疏影,甜甜圈,自拍"},
        {"label": "110", "label_desc": "news_military", "sentence": "以色列大规模空袭", "keywords": ""}])
    tnews = cd.get_processor("tnews")  # 13.8: the title only, as the original's CLUE script
    assert triples(tnews.get_train_examples(str(tmp_path / "tnews"))) == [
        ("江疏影甜甜圈自拍", None, "102"), ("以色列大规模空袭", None, "110")]
    assert triples(cd.get_processor("tnews_keywords").get_train_examples(str(tmp_path / "tnews"))) == [
        ("江疏影甜甜圈自拍", "江疏影,甜甜圈,自拍", "102"), ("以色列大规模空袭", None, "110")]
    assert len(tnews.get_labels()) == 15 and "105" not in tnews.get_labels() and "111" not in tnews.get_labels()


def test_cmnli_leaves_out_unlabelled_rows(tmp_path):
    jsonl(tmp_path, "train.json", [{"sentence1": "新的权利已经足够好了", "sentence2": "每个人都很喜欢最新的福利", "label": "neutral"},
                                   {"sentence1": "这是一个例子", "sentence2": "例子", "label": "-"},
                                   {"sentence1": "他来了", "sentence2": "他没来", "label": "contradiction"}])
    processor = cd.get_processor("cmnli")
    examples = processor.get_train_examples(str(tmp_path))
    assert [e.label for e in examples] == ["neutral", "contradiction"]
    assert processor.reports["train"].left_out == 1 and not processor.reports["train"].bad_lines


def test_csl_wsc_copa(tmp_path):
    jsonl(tmp_path / "csl", "train.json", [{"id": 1, "abst": "本文提出一种方法", "keyword": ["水声", "模糊"], "label": "1"}])
    assert triples(cd.get_processor("csl").get_train_examples(str(tmp_path / "csl"))) == [
        ("水声 模糊", "本文提出一种方法", "1")]

    text = "满银的老婆为什么不出来见他呢？"
    jsonl(tmp_path / "wsc", "train.json", [
        {"target": {"span2_index": 7, "span1_index": 0, "span1_text": "满银", "span2_text": "他"}, "idx": 0,
         "label": "true", "text": text},
        # span1 index off by one (as in some CLUEWSC rows): the nearest occurrence is used.
        {"target": {"span2_index": 3, "span1_index": 1, "span1_text": "满银", "span2_text": "老婆"}, "label": "false",
         "text": text}])
    wsc = cd.get_processor("wsc")
    assert triples(wsc.get_train_examples(str(tmp_path / "wsc"))) == [
        ("_满银_的老婆为什么不出来见[他]呢？", None, "true"), ("_满银_的[老婆]为什么不出来见他呢？", None, "false")]
    assert wsc.get_labels() == ["true", "false"]
    jsonl(tmp_path / "wsc", "dev.json", [{"target": {"span2_index": 0, "span1_index": 0, "span1_text": "少平",
                                                     "span2_text": "他"}, "label": "true", "text": text}])
    with pytest.raises(cd.DataFormatError, match=r"dev.json:1: target span1_text '少平' does not occur"):
        wsc.get_dev_examples(str(tmp_path / "wsc"))

    jsonl(tmp_path / "copa", "train.json", [
        {"id": 0, "premise": "我的身体在草地上投下了阴影。", "choice0": "太阳升起来了。", "choice1": "草被割了。",
         "question": "cause", "label": 0},
        {"id": 1, "premise": "她写作业。", "choice0": "她考得好。", "choice1": "她哭了。", "question": "effect", "label": 1}])
    copa = cd.get_processor("copa")  # 13.8: the original's two binary examples per row, in the order of time
    assert triples(copa.get_train_examples(str(tmp_path / "copa"))) == [
        ("太阳升起来了。", "我的身体在草地上投下了阴影。", "1"), ("草被割了。", "我的身体在草地上投下了阴影。", "0"),
        ("她写作业。", "她考得好。", "0"), ("她写作业。", "她哭了。", "1")]
    jsonl(tmp_path / "copa", "test.json", [
        {"id": 5, "premise": "天黑了。", "choice0": "灯亮了。", "choice1": "鸟叫了。", "question": "effect"},
        {"id": 6, "premise": "他摔倒了。", "choice0": "地很滑。", "choice1": "天很蓝。", "question": "cause"}])
    test = copa.get_test_examples(str(tmp_path / "copa"))
    assert [e.example_id for e in test] == [5, 5, 6, 6] and {e.label for e in test} == {None}
    probabilities = np.array([[0.2, 0.8], [0.6, 0.4], [0.7, 0.3], [0.4, 0.6]])  # P("1"): .8 > .4; .3 < .6
    cd.write_clue_predictions(str(tmp_path / "copa_predict.json"), test, probabilities, ["0", "1"], copa)
    assert [json.loads(line) for line in (tmp_path / "copa_predict.json").read_text().splitlines()] == [
        {"id": 5, "label": "0"}, {"id": 6, "label": "1"}]
    assert triples(cd.get_processor("copa_one").get_train_examples(str(tmp_path / "copa"))) == [
        ("我的身体在草地上投下了阴影。原因是什么？", "choice0：太阳升起来了。 choice1：草被割了。", "0"),
        ("她写作业。结果是什么？", "choice0：她考得好。 choice1：她哭了。", "1")]


def test_xnli_reads_clue_json_and_bert_tsv(tmp_path):
    """a CLUE xnli folder (train/dev/test.json with premise, hypo, label) works, as in the original's CLUE
    script; BERT's TSV layout still does."""
    jsonl(tmp_path / "clue", "train.json", [{"premise": "他来了", "hypo": "他没来", "label": "contradiction"}])
    jsonl(tmp_path / "clue", "test.json", [{"id": 3, "premise": "下雨了", "hypo": "地湿了"}])
    xnli = cd.get_processor("xnli")
    assert triples(xnli.get_train_examples(str(tmp_path / "clue"))) == [("他来了", "他没来", "contradiction")]
    assert xnli.get_test_examples(str(tmp_path / "clue"))[0].example_id == 3 and xnli.is_clue
    write(tmp_path / "bert", "multinli.train.zh.tsv", ["premise\thypo\tlabel", "他来了\t他没来\tcontradictory"])
    bert = cd.get_processor("xnli")
    assert triples(bert.get_train_examples(str(tmp_path / "bert"))) == [("他来了", "他没来", "contradiction")]
    assert not bert.is_clue


def test_json_errors_name_file_and_line(tmp_path):
    path = jsonl(tmp_path, "train.json", [{"sentence1": "一", "sentence2": "二", "label": "0"}])
    with open(path, "a", encoding="utf-8") as f:
        f.write('{"sentence1": "三", "sentence2": \n')
        f.write(json.dumps({"sentence1": "四", "label": "1"}) + "\n")
    with pytest.raises(cd.DataFormatError, match=rf"{path}:2: not JSON"):
        cd.get_processor("afqmc").get_train_examples(str(tmp_path))
    processor = cd.get_processor("afqmc", skip_bad_lines=True)
    assert len(processor.get_train_examples(str(tmp_path))) == 1
    assert [b.split(": ", 1)[1][:12] for b in processor.reports["train"].bad_lines] == ["not JSON (Ex", "no 'sentence"]


def test_unknown_task_and_missing_file(tmp_path):
    with pytest.raises(ValueError, match="unknown task 'nope'.*lcqmc_pair"):
        cd.get_processor("nope")
    with pytest.raises(FileNotFoundError, match="no train file.*train.json"):
        cd.get_processor("afqmc").get_train_examples(str(tmp_path))


# ---------------------------------------------------------------------------------------------------------------------
# Features, cache, metrics, outputs
# ---------------------------------------------------------------------------------------------------------------------

@pytest.fixture
def tokenizer(tmp_path) -> tokenization.FullTokenizer:
    chars = sorted(set("今天天气很好我们去公园吧明天下雨一二三四五六七八九十"))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars
    path = write(tmp_path, "vocab.txt", vocab)
    return tokenization.FullTokenizer(str(path), do_lower_case=True)


def test_literal_special_tokens_in_task_text_are_text(tmp_path):
    """The classifier's features: "[SEP]" typed in a sentence is text, never a separator id (the CLIs build their
    tokenizer with split_special_tokens)."""
    chars = sorted(set("今天好sep"))
    path = write(tmp_path, "vocab.txt", ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[", "]"] + chars)
    raw = tokenization.FullTokenizer(str(path), split_special_tokens=True)
    ids, mask, _, _ = cd.encode_text(raw, "今天[SEP]好", None, 16)
    tokens = raw.convert_ids_to_tokens(ids[:sum(mask)])
    assert tokens[:4] == ["[CLS]", "今", "天", "["] and tokens[-3:] == ["]", "好", "[SEP]"]
    assert tokens.count("[SEP]") == 1
    keeps = tokenization.FullTokenizer(str(path))  # the tokenizer API keeps HF's behaviour
    assert keeps.tokenize("今天[SEP]好") == ["今", "天", "[SEP]", "好"]


def test_bert_features_truncate_the_longer_text_first(tokenizer):
    ids, mask, segments, cut = cd.encode_text(tokenizer, "今天天气很好", "我们去", 16)
    tokens = tokenizer.convert_ids_to_tokens(ids[:sum(mask)])
    assert tokens == ["[CLS]", "今", "天", "天", "气", "很", "好", "[SEP]", "我", "们", "去", "[SEP]"] and not cut
    assert segments == [0] * 8 + [1] * 4 + [0] * 4 and mask == [1] * 12 + [0] * 4 and ids[12:] == [0] * 4
    ids, mask, segments, cut = cd.encode_text(tokenizer, "一二三四五六七八", "九十", 9)
    assert tokenizer.convert_ids_to_tokens(ids) == ["[CLS]", "一", "二", "三", "四", "[SEP]", "九", "十", "[SEP]"] and cut
    ids, mask, segments, cut = cd.encode_text(tokenizer, "一二三四五六", None, 5)
    assert tokenizer.convert_ids_to_tokens(ids) == ["[CLS]", "一", "二", "三", "[SEP]"] and segments == [0] * 5
    a, b = list("一二三"), list("四五六七八")
    assert cd.truncate_pair(a, b, 6) and (a, b) == (list("一二三"), list("四五六"))


def test_feature_cache_is_keyed_by_data_and_settings(tmp_path, tokenizer, capsys):
    data = tmp_path / "data"
    write(data, "train.tsv", ["好\t今天天气很好", "坏\t明天下雨", "好\t我们去公园吧"])
    processor = cd.get_processor("text_classification")
    labels = processor.get_labels(str(data))
    cache = str(tmp_path / "out" / "features")
    vocab = str(tmp_path / "vocab.txt")

    def load(max_seq_length=16, write_only=False):
        split = cd.load_split(processor, str(data), "train", labels, tokenizer, max_seq_length, cache,
                              vocab_file=vocab, spm_model_file=None, do_lower_case=True)
        return split.features_file if write_only else split

    first = load()
    assert not first.from_cache and first.num_examples == 3
    records = list(input_pipeline.make_dataset([first.features_file], input_pipeline.classifier_features(16), 8,
                                               is_training=False))
    assert records[0]["label_ids"].numpy().tolist() == [1, 0, 1]  # labels sorted: 坏 好
    assert records[0]["is_real_example"].numpy().tolist() == [1, 1, 1]
    again = load()
    assert again.from_cache and again.features_file == first.features_file
    assert "cached" in capsys.readouterr().out
    assert load(max_seq_length=12).features_file != first.features_file  # another max_seq_length
    assert load(max_seq_length=12).from_cache
    # The original reused a stale train.tf_record after the data changed; a changed file gets new features.
    write(data, "train.tsv", ["好\t今天天气很好", "坏\t明天下雨"])
    changed = load()
    assert not changed.from_cache and changed.features_file != first.features_file and changed.num_examples == 2
    key = lambda **kw: cd.feature_cache_key(str(data / "train.tsv"), **{  # noqa: E731
        **dict(task="text_classification", labels=labels, max_seq_length=16, vocab_file=vocab, spm_model_file=None,
               do_lower_case=True, skip_bad_lines=False), **kw})[0]
    assert len({key(), key(do_lower_case=False), key(labels=labels[::-1]), key(task="sentiment"),
                key(skip_bad_lines=True)}) == 5
    made = {first.features_file, changed.features_file, load(12, write_only=True)}
    names = os.listdir(cache)  # 16 and 12 tokens for the first file, 16 and 12 for the second; none half-written
    assert len(made) == 3 and set(map(os.path.basename, made)) < set(names)
    assert len(names) == 8 and not [n for n in names if ".tmp" in n]


def test_a_half_written_cache_is_stale_not_an_error(tmp_path, tokenizer, capsys):
    """A kill while the cache's .json was written (older code wrote it in place) left it unreadable; every later
    run failed with a bare JSONDecodeError. It is now converted again, and the .json is written whole or not at all."""
    data = tmp_path / "data"
    write(data, "train.tsv", ["好\t今天天气很好", "坏\t明天下雨"])
    processor = cd.get_processor("text_classification")
    labels = processor.get_labels(str(data))
    cache = str(tmp_path / "features")

    def load():
        return cd.load_split(processor, str(data), "train", labels, tokenizer, 16, cache,
                             vocab_file=str(tmp_path / "vocab.txt"), spm_model_file=None, do_lower_case=True)

    first = load()
    with open(first.features_file + ".json", "w") as f:
        f.write('{"num_examples": 2, "trunc')
    again = load()
    assert not again.from_cache and again.num_examples == 2 and "unreadable; converting again" in capsys.readouterr().out
    assert load().from_cache


def test_metrics_and_outputs(tmp_path):
    probabilities = np.array([[0.9, 0.05, 0.05], [0.2, 0.7, 0.1], [0.3, 0.3, 0.4], [0.6, 0.3, 0.1]])
    gold = np.array([0, 1, 1, 2])
    metrics = cd.classification_metrics(probabilities, gold, 3)
    # class 0: tp 1 fp 1 fn 0 -> 2/3; class 1: tp 1 fn 1 -> 2/3; class 2: fp 1 fn 1 -> 0
    assert metrics["accuracy"] == pytest.approx(0.5) and metrics["macro_f1"] == pytest.approx(4 / 9)
    assert metrics["loss"] == pytest.approx(-np.mean(np.log([0.9, 0.7, 0.3, 0.1])))
    cd.write_test_results(str(tmp_path / "test_results.tsv"), probabilities.astype(np.float32))
    rows = [list(map(float, line.split("\t"))) for line in (tmp_path / "test_results.tsv").read_text().splitlines()]
    np.testing.assert_allclose(rows, probabilities, rtol=1e-6)
    examples = [cd.InputExample(f"test-{i}", "x", example_id=100 + i) for i in range(4)]
    cd.write_clue_predictions(str(tmp_path / "p.json"), examples, probabilities, ["a", "b", "c"])
    assert [json.loads(line) for line in (tmp_path / "p.json").read_text().splitlines()] == [
        {"id": 100, "label": "a"}, {"id": 101, "label": "b"}, {"id": 102, "label": "c"}, {"id": 103, "label": "a"}]
    assert cd.num_train_steps(100, 3.0, 32) == 10 and cd.num_train_steps(1, 0.1, 32) == 1


def test_register_a_new_task(tmp_path):
    class QuestionProcessor(cd.TsvProcessor):
        name, labels, layout = "question", ("0", "1"), ("a", "label")
        files = {"train": ("q.tsv",), "dev": ("q.tsv",), "test": ("q.tsv",)}

    cd.register("question", QuestionProcessor)
    try:
        write(tmp_path, "q.tsv", ["吃了吗\t1"])
        assert triples(cd.get_processor("question").get_train_examples(str(tmp_path))) == [("吃了吗", None, "1")]
    finally:
        del cd.PROCESSORS["question"]


def test_reads_a_bom_and_crlf(tmp_path):
    (tmp_path / "train.txt").write_bytes("\ufeff一\t二\t1\r\n\r\n三\t四\t0\r\n".encode("utf-8"))
    examples = cd.get_processor("lcqmc").get_train_examples(str(tmp_path))
    assert triples(examples) == [("一", "二", "1"), ("三", "四", "0")] and examples[1].line == 3





def test_rows_holding_unicode_line_separators_are_one_row(tmp_path):
    # U+2028/U+2029/U+0085/\x0b/\x0c/\x1c-\x1e occur in Chinese web text; only \n (and \r\n) ends a line.
    odd = "\u2028\u2029\u0085\x0b\x0c\x1c\x1d\x1e"
    write(tmp_path, "train.txt", [f"一{odd}二\t三\t1", "四\t五\t0"])
    examples = cd.get_processor("lcqmc").get_train_examples(str(tmp_path))
    assert triples(examples) == [(f"一{odd}二", "三", "1"), ("四", "五", "0")] and examples[1].line == 2
    jsonl(tmp_path / "clue", "train.json", [{"sentence1": "甲\u2028乙", "sentence2": "丙", "label": "1"}])
    assert triples(cd.get_processor("afqmc").get_train_examples(str(tmp_path / "clue"))) == [("甲\u2028乙", "丙", "1")]
    assert cd.split_lines("a\u2028b\r\nc\n\nd") == ["a\u2028b", "c", "", "d"]


def test_pair_truncation_cuts_text_b_on_ties_and_an_empty_text_b_is_a_single_text(tokenizer):
    a, b = list("一二三四"), list("五六七八")
    assert cd.truncate_pair(a, b, 7) and (a, b) == (list("一二三四"), list("五六七"))  # the original, BERT and HF
    ids, mask, segments, _ = cd.encode_text(tokenizer, "今天", "   ", 8)
    assert tokenizer.convert_ids_to_tokens(ids[:sum(mask)]) == ["[CLS]", "今", "天", "[SEP]"]
    assert segments == [0] * 8


def test_extract_features_keeps_one_vector_per_input_line_with_unicode_separators(tmp_path):
    import extract_features

    (tmp_path / "in.txt").write_text("一\u2028二\n三\u0085四\r\n五\n", encoding="utf-8")
    assert extract_features.read_inputs(str(tmp_path / "in.txt"), pairs=False) == ["一\u2028二", "三\u0085四", "五"]


def test_a_line_that_is_not_utf8_is_named_or_skipped(tmp_path):
    """GBK bytes on line 3 of a TSV: the error names file:line and the fix; --skip_bad_lines skips that line
    only. extract_features' reader names it too."""
    import extract_features

    path = tmp_path / "train.tsv"
    path.write_bytes("label\ttext\npos\t很好\n".encode() + "neg\t很差".encode("gbk") + b"\n" + "pos\t不错\n".encode())
    with pytest.raises(cd.DataFormatError,
                       match=rf"{path}:3: not UTF-8 \(invalid start byte at byte 4 of the line\); convert"):
        cd.get_processor("text_classification").get_examples(str(tmp_path), "train")
    processor = cd.get_processor("text_classification", skip_bad_lines=True)
    examples = processor.get_examples(str(tmp_path), "train")
    assert [(e.text_a, e.line) for e in examples] == [("很好", 2), ("不错", 4)]
    assert processor.reports["train"].bad_lines == [f"{path}:3: not UTF-8 (invalid start byte at byte 4 of the line)"]
    with pytest.raises(cd.DataFormatError, match=rf"{path}:3: not UTF-8"):
        extract_features.read_inputs(str(path), pairs=False)
