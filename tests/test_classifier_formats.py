"""The published classification formats: slices of the real files in ../shared/datasets through their processors,
small hand-written files in every other published form (BQ, XNLI's three forms, CLUE 1.1 with "-" rows,
cluewsc2020, header-mapped ChnSentiCorp copies), --label_list, files that are in no supported format, and
run_classifier.py's --train_file/--dev_file/--test_file end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import classifier_data as cd
from test_classifier import CONFIG, run_cli

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
needs_datasets = pytest.mark.skipif(not DATASETS.is_dir(), reason=f"{DATASETS} is absent")


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def jsonl(path: Path, objects: list[dict]) -> Path:
    return write(path, [json.dumps(o, ensure_ascii=False) for o in objects])


def triples(examples) -> list[tuple]:
    return [(e.text_a, e.text_b, e.label) for e in examples]


def read(task: str, path: Path, split: str, **kwargs) -> tuple[list[cd.InputExample], cd.ReadReport]:
    """``path`` as ``split`` of ``task`` through the override (any file name, no data_dir)."""
    processor = cd.get_processor(task, **kwargs)
    processor.use_files({split: str(path)})
    examples = processor.get_examples(None, split)
    return examples, processor.reports[split]


# ---------------------------------------------------------------------------------------------------------------------
# The real files (first 300 rows, the header kept)
# ---------------------------------------------------------------------------------------------------------------------

ROWS = 300


def real_slice(name: str, tmp_path: Path, header: bool) -> Path:
    lines = (DATASETS / name).read_text(encoding="utf-8").split("\n")[:ROWS + header]
    return write(tmp_path / name, lines)


@needs_datasets
@pytest.mark.parametrize("name,task,header", [
    ("chnsenticorp/train.tsv", "chnsenticorp", True), ("chnsenticorp/dev.tsv", "chnsenticorp", True),
    ("chnsenticorp/test.tsv", "chnsenticorp", True), ("lcqmc/dev.txt", "lcqmc", False),
    ("lcqmc/test.txt", "lcqmc", False)])
def test_real_files_read_through_their_processor(tmp_path, name, task, header):
    path = real_slice(name, tmp_path, header)
    split = {"train": "train", "dev": "dev", "test": "test"}[Path(name).stem]
    examples, report = read(task, path, split)
    assert len(examples) == ROWS and report.header == header
    assert not report.bad_lines and not report.left_out
    assert {e.label for e in examples} == {"0", "1"}  # the published test files are labelled too
    assert all(e.text_a for e in examples) and all(bool(e.text_b) == (task == "lcqmc") for e in examples)
    first = path.read_text(encoding="utf-8").split("\n")[1 if header else 0].split("\t")
    expected = (first[1].strip(), None, first[0]) if task == "chnsenticorp" else tuple(f.strip() for f in first)
    assert triples(examples)[0] == expected and examples[0].line == 1 + header
    if task == "chnsenticorp":  # the generic single-text task reads the same file, its labels from the data
        directory = path.parent
        for other in ("train.tsv", "dev.tsv"):
            if not (directory / other).exists():
                write(directory / other, path.read_text(encoding="utf-8").splitlines())
        generic = cd.get_processor("text_classification")
        assert generic.get_labels(str(directory)) == ["0", "1"]
        assert triples(generic.get_examples(str(directory), split)) == triples(examples)


# ---------------------------------------------------------------------------------------------------------------------
# Hand-written files in the other published forms
# ---------------------------------------------------------------------------------------------------------------------

def test_bq_has_lcqmc_layout_and_both_file_names(tmp_path):
    rows = ["用微信都6rmb了\t微信里的零钱怎么用\t0", "为什么我的借款被拒\t借款为什么不通过\t1"]
    write(tmp_path / "tsv" / "train.tsv", rows)
    write(tmp_path / "txt" / "dev.txt", rows)
    for task in ("bq", "bq_corpus"):
        processor = cd.get_processor(task)
        assert triples(processor.get_train_examples(str(tmp_path / "tsv")))[0] == (
            "用微信都6rmb了", "微信里的零钱怎么用", "0")
        assert len(processor.get_dev_examples(str(tmp_path / "txt"))) == 2 and not processor.reports["dev"].header
        assert processor.get_labels() == ["0", "1"]


XNLI_ROWS = ["他说，妈妈，我回来了。\t校车把他放下后，他立即给他妈妈打了电话。\tneutral",
             "我不知道\t我不确定\tcontradictory", "下雨了\t天上有水落下\tentailment"]
XNLI_TRIPLES = [("他说，妈妈，我回来了。", "校车把他放下后，他立即给他妈妈打了电话。", "neutral"),
                ("我不知道", "我不确定", "contradiction"), ("下雨了", "天上有水落下", "entailment")]


@pytest.mark.parametrize("header", [False, True])
def test_xnli_three_column_tsv_in_every_split(tmp_path, header):
    first = ["text_a\ttext_b\tlabel"] if header else []
    for split in ("train", "dev"):
        write(tmp_path / f"{split}.tsv", first + XNLI_ROWS)
    write(tmp_path / "test.tsv", first + [row.rsplit("\t", 1)[0] for row in XNLI_ROWS])  # test: no labels
    processor = cd.get_processor("xnli")
    for split in ("train", "dev"):
        assert triples(processor.get_examples(str(tmp_path), split)) == XNLI_TRIPLES
        assert processor.reports[split].header == header and not processor.reports[split].left_out
    test = processor.get_test_examples(str(tmp_path))
    assert triples(test) == [(a, b, None) for a, b, _ in XNLI_TRIPLES] and not processor.is_clue


def test_xnli_bert_tsv_with_its_full_header(tmp_path):
    header = ("language\tgold_label\tsentence1_binary_parse\tsentence2_binary_parse\tsentence1_parse\t"
              "sentence2_parse\tsentence1\tsentence2\tpromptID\tpairID\tgenre\tlabel1\tlabel2\tlabel3\tlabel4\t"
              "label5\tsentence1_tokenized\tsentence2_tokenized\tmatch")

    def row(language, label, a, b):
        return "\t".join([language, label, "(", "(", "(", "(", a, b, "1", "2", "facetoface", label, label, label,
                          label, label, a, b, "True"])

    write(tmp_path / "xnli.dev.tsv", [header, row("en", "neutral", "He said", "He spoke"),
                                      row("zh", "contradiction", "他来了", "他没来"), row("zh", "-", "我们", "他们")])
    processor = cd.get_processor("xnli")
    assert triples(processor.get_dev_examples(str(tmp_path))) == [("他来了", "他没来", "contradiction")]
    report = processor.reports["dev"]
    assert report.header and report.left_out == 2 and report.no_gold == 1
    assert "1 rows without a gold label ('-') left out, 1 rows left out by the task" in report.summary(1)


def test_xnli_form_is_read_from_the_content_not_the_name(tmp_path):
    clue = jsonl(tmp_path / "xnli_train.tsv", [{"premise": "他来了", "hypo": "他没来", "label": "contradiction"}])
    examples, _ = read("xnli", clue, "train")
    assert triples(examples) == [("他来了", "他没来", "contradiction")]
    three = write(tmp_path / "train.json", XNLI_ROWS)
    assert triples(read("xnli", three, "train")[0]) == XNLI_TRIPLES


def test_clue_ocnli_dash_rows_are_counted_in_train_and_kept_in_test(tmp_path):
    jsonl(tmp_path / "train.json", [
        {"sentence1": "一月份跟二月份肯定有一个月份有", "sentence2": "肯定有一个月份有", "label": "entailment",
         "genre": "lit", "label0": "entailment", "id": 0},
        {"sentence1": "身上裹一件工厂发的棉大衣", "sentence2": "她身上至少有一件衣服", "label": "-", "id": 1},
        {"sentence1": "不过这次大家都很平静", "sentence2": "大家都很激动", "label": "contradiction", "id": 2},
        {"sentence1": "他回家了", "sentence2": "他在路上", "label": "-", "id": 3}])
    jsonl(tmp_path / "test.json", [{"sentence1": "今天晴", "sentence2": "今天下雨", "label": "-", "id": 0},
                                   {"sentence1": "明天晴", "sentence2": "明天不下雨", "id": 1}])
    processor = cd.get_processor("ocnli")
    train = processor.get_train_examples(str(tmp_path))
    assert [e.label for e in train] == ["entailment", "contradiction"] and [e.line for e in train] == [1, 3]
    report = processor.reports["train"]
    assert report.no_gold == 2 and not report.bad_lines
    assert report.summary(2).endswith("2 examples from " + str(tmp_path / "train.json")
                                      + ", 2 rows without a gold label ('-') left out")
    test = processor.get_test_examples(str(tmp_path))
    assert triples(test) == [("今天晴", "今天下雨", None), ("明天晴", "明天不下雨", None)]
    assert [e.example_id for e in test] == [0, 1] and processor.is_clue
    assert processor.get_labels() == ["contradiction", "entailment", "neutral"]
    assert "-" not in processor.get_labels()
    # Every CLUE task: afqmc's "-" rows too.
    jsonl(tmp_path / "afqmc" / "dev.json", [{"sentence1": "借呗", "sentence2": "花呗", "label": "-"},
                                            {"sentence1": "借呗", "sentence2": "借呗额度", "label": "1"}])
    afqmc = cd.get_processor("afqmc")
    assert len(afqmc.get_dev_examples(str(tmp_path / "afqmc"))) == 1 and afqmc.reports["dev"].no_gold == 1


def test_cluewsc2020_reads_wsc_fields_from_clue_11_file_names(tmp_path):
    text = "满银的老婆为什么不出来见他呢？"
    target = {"span2_index": 7, "span1_index": 0, "span1_text": "满银", "span2_text": "他"}
    for split in ("train", "dev"):
        jsonl(tmp_path / f"{split}.json", [{"target": target, "idx": 0, "label": "true", "text": text}])
    jsonl(tmp_path / "test.json", [{"target": target, "idx": 5, "text": text, "id": 5}])
    processor = cd.get_processor("cluewsc2020")
    assert processor.name == "cluewsc2020" and processor.is_clue and processor.get_labels() == ["true", "false"]
    for split in ("train", "dev"):
        assert triples(processor.get_examples(str(tmp_path), split)) == [
            ("_满银_的老婆为什么不出来见[他]呢？", None, "true")]
    assert processor.get_test_examples(str(tmp_path))[0].example_id == 5


@pytest.mark.parametrize("lines,split,expected", [
    (["qid\ttext_a", "0\t酒店很好", "1\t房间太小"], "test",
     [("酒店很好", None, None, "0"), ("房间太小", None, None, "1")]),
    (["qid\tlabel\ttext_a", "0\t1\t酒店很好", "1\t0\t房间太小"], "test",
     [("酒店很好", None, "1", "0"), ("房间太小", None, "0", "1")]),
    (["text_a\tlabel", "酒店很好\t1", "房间太小\t0"], "train",
     [("酒店很好", None, "1", 0), ("房间太小", None, "0", 1)]),
    (["Label\tText", "1\t酒店很好"], "dev", [("酒店很好", None, "1", 0)]),
])
def test_chnsenticorp_copies_with_other_headers(tmp_path, lines, split, expected):
    examples, report = read("chnsenticorp", write(tmp_path / "x.tsv", lines), split)
    assert [(e.text_a, e.text_b, e.label, e.example_id) for e in examples] == expected
    assert report.header and "header line skipped (columns:" in report.summary(len(examples))


def test_header_columns_in_any_order_for_pair_tasks(tmp_path):
    examples, report = read("lcqmc", write(tmp_path / "d.tsv", ["label\tsentence2\tsentence1", "1\t乙\t甲"]), "dev")
    assert triples(examples) == [("甲", "乙", "1")] and report.columns == ("label", "b", "a")
    examples, _ = read("sentence_pair", write(tmp_path / "t.tsv", ["id\ttext_a\ttext_b", "7\t甲\t乙"]), "test")
    assert triples(examples) == [("甲", "乙", None)] and examples[0].example_id == "7"


def test_first_data_rows_are_never_headers(tmp_path):
    # LCQMC: no header; a data row whose texts are words like column names is still data (its label is a label).
    examples, report = read("lcqmc", write(tmp_path / "a.txt", ["text\tsentence\t1", "甲\t乙\t0"]), "dev")
    assert len(examples) == 2 and not report.header
    examples, report = read("chnsenticorp", write(tmp_path / "b.tsv", ["1\tlabel", "0\t差"]), "train")
    assert triples(examples) == [("label", None, "1"), ("差", None, "0")] and not report.header


# ---------------------------------------------------------------------------------------------------------------------
# --label_list
# ---------------------------------------------------------------------------------------------------------------------

def test_label_list_forms(tmp_path):
    assert cd.parse_label_list("neg, pos ,neutral") == ["neg", "pos", "neutral"]
    path = write(tmp_path / "labels.txt", ["负面", "", "正面 "])
    assert cd.parse_label_list(str(path)) == ["负面", "正面"]
    with pytest.raises(ValueError, match="1 label"):
        cd.parse_label_list("pos")
    with pytest.raises(ValueError, match="listed twice: a"):
        cd.parse_label_list("a,b,a")


def test_label_list_sets_labels_of_any_task(tmp_path):
    path = write(tmp_path / "train.txt", ["甲\t乙\t1", "丙\t丁\t2", "戊\t己\t0"])
    processor = cd.get_processor("lcqmc")
    processor.use_labels(["2", "1", "0"])
    assert processor.get_labels() == ["2", "1", "0"]
    assert [e.label for e in processor.get_train_examples(str(tmp_path))] == ["1", "2", "0"]
    processor = cd.get_processor("lcqmc")
    processor.use_labels(["0", "1"])
    with pytest.raises(cd.DataFormatError, match=rf"{path}:2: label '2' is not one of the task's labels"):
        processor.get_train_examples(str(tmp_path))
    skipping = cd.get_processor("lcqmc", skip_bad_lines=True)
    skipping.use_labels(["0", "1"])
    assert len(skipping.get_train_examples(str(tmp_path))) == 2
    assert skipping.reports["train"].bad_lines[0].startswith(f"{path}:2: label '2'")
    # Data-derived labels and XNLI's JSON reader take it too.
    write(tmp_path / "tc" / "train.tsv", ["好\t很好", "坏\t很差"])
    generic = cd.get_processor("text_classification")
    generic.use_labels(["好", "坏", "中"])
    assert generic.get_labels(str(tmp_path / "tc")) == ["好", "坏", "中"]
    jsonl(tmp_path / "x" / "train.json", [{"premise": "甲", "hypo": "乙", "label": "neutral"}])
    xnli = cd.get_processor("xnli")
    xnli.use_labels(["entailment", "not_entailment"])
    with pytest.raises(cd.DataFormatError, match="train.json:1: label 'neutral'"):
        xnli.get_train_examples(str(tmp_path / "x"))


# ---------------------------------------------------------------------------------------------------------------------
# Files in no supported format: one line naming file, line and the formats the task reads
# ---------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("task,name,lines,split,message", [
    ("lcqmc", "train.json", ['{"sentence1": "甲", "sentence2": "乙", "label": "1"}'], "train",
     r"train.json:1: a JSON object \(CLUE's format\?\), not tab-separated columns; task lcqmc_pair reads text_a TAB"),
    ("afqmc", "train.tsv", ["甲\t乙\t1"], "train",
     r"train.tsv:1: 3 tab-separated columns \(TSV\), not a JSON object; task afqmc reads CLUE's JSON lines, one "
     r"object a line with sentence1, sentence2, label"),
    ("afqmc", "dev.json", ['[{"sentence1": "甲"}]'], "dev", r"dev.json:1: a JSON array"),
    ("lcqmc", "train.tsv", ["甲\t1", "乙\t0"], "train",
     r"train.tsv:1: 2 tab-separated columns, expected 3 \(text_a TAB text_b TAB label\); task lcqmc_pair reads"),
    ("lcqmc", "test.tsv", ["甲\t1", "乙\t0"], "test", r"test.tsv:1: 2 columns, one of them a label in every row"),
    ("lcqmc", "dev.tsv", ["text_a\tlabel", "甲\t1"], "dev", r"dev.tsv:1: the header names one text column, but"),
    ("chnsenticorp", "dev.tsv", ["text_a\ttext_b\tlabel", "甲\t乙\t1"], "dev",
     r"dev.tsv:1: the header names a second text column"),
    ("chnsenticorp", "train.tsv", ["qid\ttext_a", "1\t甲"], "train", r"train.tsv:1: the header names no label column"),
    ("lcqmc", "train.tsv", ["text\tsentence1\tlabel", "甲\t乙\t1"], "train", r"more than one text_a column"),
    ("chnsenticorp", "train.csv", ["label,text_a", "1,很好"], "train",
     r"train.csv:1: a comma-separated \(CSV\) header; convert the file to tab-separated columns; task chnsenticorp"),
    ("chnsenticorp", "train.csv", ["1,很好", "0,很差"], "train",
     r"train.csv:1: 1 tab-separated columns, expected 2 \(label TAB text_a\) \(no tab but commas: a CSV file\?\); "
     r"task chnsenticorp reads label TAB text_a"),
    ("chnsenticorp", "test.csv", ["1,很好", "0,很差"], "test", r"test.csv:1: every row is 'label,text'"),
    ("xnli", "train.tsv", ["甲,乙,neutral"], "train", r"train.tsv:1: 1 tab-separated columns.*task xnli reads CLUE's"),
])
def test_unsupported_formats_fail_with_one_clear_line(tmp_path, task, name, lines, split, message):
    path = write(tmp_path / name, lines)
    with pytest.raises(cd.DataFormatError, match=message) as caught:
        read(task, path, split)
    assert "\n" not in str(caught.value) and str(caught.value).startswith(str(path))
    # Nothing silently misread with --skip_bad_lines either: a file none of whose lines fit is an error.
    with pytest.raises(cd.DataFormatError, match=rf"^{path}:1: .*reads"):
        read(task, path, split, skip_bad_lines=True)


def test_skip_bad_lines_still_skips_single_bad_lines(tmp_path):
    path = write(tmp_path / "train.txt", ["甲\t乙\t1", "坏行", "丙\t丁\t0"])
    examples, report = read("lcqmc", path, "train", skip_bad_lines=True)
    assert len(examples) == 2 and report.bad_lines == [f"{path}:2: 1 tab-separated columns, expected 3 "
                                                       f"(text_a TAB text_b TAB label)"]


def test_every_task_documents_its_formats():
    for task in cd.PROCESSORS:
        processor = cd.get_processor(task)
        assert processor.format_help != "?" and len(processor.format_help) > 20, task
        assert f"\n{task}" in cd.__doc__ or f" {task}" in cd.__doc__ or f"({task})" in cd.__doc__, task


def test_overrides_come_first_and_data_dir_is_optional(tmp_path):
    write(tmp_path / "d" / "train.txt", ["甲\t乙\t1"])
    other = write(tmp_path / "elsewhere" / "my pairs.tsv", ["丙\t丁\t0", "戊\t己\t1"])
    processor = cd.get_processor("lcqmc")
    processor.use_files({"train": str(other)})
    assert processor.data_file(str(tmp_path / "d"), "train") == str(other)
    assert len(processor.get_train_examples(str(tmp_path / "d"))) == 2 and processor.has_file(None, "train")
    assert not processor.has_file(None, "dev")
    with pytest.raises(FileNotFoundError, match="no dev file: pass --dev_file, or --data_dir with dev.txt"):
        processor.get_dev_examples(None)
    with pytest.raises(ValueError, match="unknown splits"):
        processor.use_files({"validation": str(other)})


# ---------------------------------------------------------------------------------------------------------------------
# run_classifier.py: --train_file/--dev_file/--test_file without --data_dir, --label_list
# ---------------------------------------------------------------------------------------------------------------------

SENTENCES = {"1": ["酒店很好", "服务周到", "早餐不错", "位置方便", "房间干净", "价格合理", "很好很好", "推荐入住"],
             "0": ["房间太小", "服务很差", "早餐难吃", "位置偏远", "房间很脏", "价格太贵", "不会再来", "很差很差"]}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """ChnSentiCorp-style files under unusual names in three folders, a vocab and a tiny config."""
    d = tmp_path_factory.mktemp("tiny")
    rows = [f"{label}\t{text}" for label, texts in SENTENCES.items() for text in texts]
    write(d / "a" / "my_train.tsv", ["label\ttext_a"] + rows * 2)
    write(d / "b" / "held_out.tsv", ["label\ttext_a"] + rows[::3])
    write(d / "c" / "to_predict.tsv", ["qid\ttext_a"] + [f"{i}\t{row.split(chr(9))[1]}" for i, row in enumerate(rows)])
    chars = sorted({ch for texts in SENTENCES.values() for text in texts for ch in text})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars
    write(d / "vocab.txt", vocab)
    (d / "config.json").write_text(json.dumps(dict(CONFIG, vocab_size=len(vocab))))
    return d


def tiny_flags(tiny: Path, out: Path) -> list[str]:
    return [f"--vocab_file={tiny / 'vocab.txt'}", f"--bert_config_file={tiny / 'config.json'}",
            f"--output_dir={out}", "--task_name=chnsenticorp", "--max_seq_length=16", "--train_batch_size=8",
            "--eval_batch_size=8", "--predict_batch_size=8", "--num_train_epochs=1", "--learning_rate=1e-3"]


@pytest.mark.slow
def test_cli_reads_split_files_without_data_dir_and_label_list(tiny, tmp_path):
    out = tmp_path / "out"
    done = run_cli("run_classifier.py", *tiny_flags(tiny, out), "--do_train", "--do_eval", "--do_predict",
                   f"--train_file={tiny / 'a' / 'my_train.tsv'}", f"--dev_file={tiny / 'b' / 'held_out.tsv'}",
                   f"--test_file={tiny / 'c' / 'to_predict.tsv'}", "--label_list=1,0")
    assert f"train file {tiny / 'a' / 'my_train.tsv'}" in done.stdout
    assert f"train: 32 examples from {tiny / 'a' / 'my_train.tsv'}, header line skipped" in done.stdout
    assert (out / "label_list.txt").read_text() == "1\n0\n"
    assert len((out / "test_results.tsv").read_text().splitlines()) == 16
    assert (out / "eval_results.txt").exists()

    # The saved label list wins over a disagreeing --label_list; the same one (as a file) is fine.
    predict = [*tiny_flags(tiny, out), "--do_predict", f"--test_file={tiny / 'c' / 'to_predict.tsv'}"]
    done = run_cli("run_classifier.py", *predict, "--label_list=0,1", ok=False)
    assert done.returncode == 1 and "label_list.txt lists the labels ['1', '0']" in done.stderr
    write(tmp_path / "labels.txt", ["1", "0"])
    run_cli("run_classifier.py", *predict, f"--label_list={tmp_path / 'labels.txt'}")


@pytest.mark.slow
def test_cli_usage_and_format_errors(tiny, tmp_path):
    done = run_cli("run_classifier.py", *tiny_flags(tiny, tmp_path / "o1"), "--do_train", "--do_eval",
                   f"--train_file={tiny / 'a' / 'my_train.tsv'}", ok=False)
    assert done.returncode == 2 and "--data_dir is required for the dev file (or pass --dev_file)" in done.stderr
    bad = jsonl(tmp_path / "train.json", [{"sentence": "很好", "label": "1"}])
    done = run_cli("run_classifier.py", *tiny_flags(tiny, tmp_path / "o2"), "--do_train", f"--train_file={bad}",
                   ok=False)
    assert done.returncode == 1
    assert f"error: {bad}:1: a JSON object (CLUE's format?), not tab-separated columns; task chnsenticorp reads" \
        in done.stderr
