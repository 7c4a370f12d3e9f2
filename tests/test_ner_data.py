"""ner_data.py: the task readers on real-format files, windows, entity metrics against seqeval, outputs."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from seqeval.metrics import classification_report, f1_score, precision_score, recall_score

import ner_data
import tokenization
from classifier_data import DataFormatError

PEOPLES_DAILY = """\
中 B-ORG
共 I-ORG
中 I-ORG
央 I-ORG
总 O
书 O
记 O
江 B-PER
泽 I-PER
民 I-PER

新\tB-ORG
华\tI-ORG
社\tI-ORG
北\tB-LOC
京\tI-LOC
电\tO
"""


def write(path, text: str):
    path.write_text(text, encoding="utf-8")
    return path


def test_bio_reader_reads_sentences_tags_and_lines(tmp_path):
    write(tmp_path / "example.train", PEOPLES_DAILY)
    processor = ner_data.get_processor("peoples_daily_ner")
    examples = processor.get_examples(str(tmp_path), "train")
    assert ["".join(e.units) for e in examples] == ["中共中央总书记江泽民", "新华社北京电"]
    assert examples[0].tags[7:] == ["B-PER", "I-PER", "I-PER"] and examples[1].line == 12
    assert ner_data.tag_set(examples) == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert processor.reports["train"].separator == " "  # mixed separators: a space


@pytest.mark.parametrize("line, reason", [("江 B-PER extra", "3 fields"), ("江", "no tag"),
                                          ("江 E-PER", "not BIO"), ("江 PER", "not BIO")])
def test_bio_reader_names_file_and_line_of_a_bad_line(tmp_path, line, reason):
    path = write(tmp_path / "example.train", "北 B-LOC\n京 I-LOC\n\n" + line + "\n人 O\n\n上 B-LOC\n海 I-LOC\n")
    with pytest.raises(DataFormatError, match=rf"example\.train:4: .*{reason}"):
        ner_data.get_processor("peoples_daily_ner").read_file(str(path), "train")
    skipping = ner_data.get_processor("peoples_daily_ner", skip_bad_lines=True)
    examples = skipping.read_file(str(path), "train")
    assert ["".join(e.units) for e in examples] == ["北京", "上海"]  # the bad sentence is dropped, the rest read
    assert "example.train:4" in skipping.reports["train"].summary(2)


def test_inconsistent_bio_is_reported_not_fixed(tmp_path):
    path = write(tmp_path / "example.train", "北 I-LOC\n京 I-LOC\n人 O\n民 I-ORG\n\n")
    processor = ner_data.get_processor("peoples_daily_ner")
    examples = processor.read_file(str(path), "train")
    assert examples[0].tags == ["I-LOC", "I-LOC", "O", "I-ORG"]
    assert processor.reports["train"].inconsistent == [f"{path}:1: I-LOC after the sentence start",
                                                       f"{path}:4: I-ORG after O"]
    assert ner_data.entities(examples[0].tags) == [("LOC", 0, 1), ("ORG", 3, 3)]  # conlleval reads them so


def test_dev_tags_outside_the_training_tag_set_are_an_error(tmp_path):
    path = write(tmp_path / "example.dev", "北 B-LOC\n京 I-LOC\n\n张 B-PER\n")
    with pytest.raises(DataFormatError, match=r"example\.dev:4: tag 'B-PER' is not in the training data's tag set"):
        ner_data.get_processor("peoples_daily_ner").read_file(str(path), "dev", ["O", "B-LOC", "I-LOC"])


def test_unlabelled_test_file_and_msra_names(tmp_path):
    write(tmp_path / "msra_train_bio", PEOPLES_DAILY)
    write(tmp_path / "msra_test_bio", "北\n京\n\n人\n")
    processor = ner_data.get_processor("msra_ner")
    test = processor.get_examples(str(tmp_path), "test")
    assert [e.units for e in test] == [["北", "京"], ["人"]] and test[0].tags is None
    assert processor.data_file(str(tmp_path), "dev").endswith("msra_test_bio")  # MSRA has no dev set


CLUENER = [
    {"text": "浙商银行企业信贷部叶老桂博士则从另一个角度对五道门槛进行了解读。",
     "label": {"name": {"叶老桂": [[9, 11]]}, "company": {"浙商银行": [[0, 3]]}}},
    {"text": "生生不息CSOL生化狂潮让你填弹狂扫", "label": {"game": {"CSOL": [[4, 7]]}}},
]


def test_cluener_reader_turns_spans_into_tags_and_checks_them(tmp_path):
    write(tmp_path / "train.json", "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in CLUENER))
    processor = ner_data.get_processor("cluener")
    examples = processor.get_examples(str(tmp_path), "train")
    assert examples[0].tags[:5] == ["B-company", "I-company", "I-company", "I-company", "O"]
    assert examples[1].units[4:8] == list("CSOL") and examples[1].tags[4:8] == ["B-game"] + ["I-game"] * 3
    assert ner_data.clue_label(examples[0].text, examples[0].tags) == {"company": {"浙商银行": [[0, 3]]},
                                                                        "name": {"叶老桂": [[9, 11]]}}
    bad = [dict(CLUENER[0], label={"name": {"叶老": [[9, 11]]}}),
           dict(CLUENER[0], label={"name": {"叶老桂": [[9, 11]]}, "position": {"桂博士": [[11, 13]]}}),
           dict(CLUENER[0], label={"name": {"叶老桂": [[90, 92]]}})]
    for obj, reason in zip(bad, ["holds '叶老桂', not '叶老'", "crosses another entity", "outside the text"]):
        write(tmp_path / "dev.json", json.dumps(CLUENER[1], ensure_ascii=False) + "\n"
              + json.dumps(obj, ensure_ascii=False) + "\n")
        with pytest.raises(DataFormatError, match=rf"dev\.json:2: .*{reason}"):
            processor.get_examples(str(tmp_path), "dev")
    # a span inside a longer one (CLUENER's train.json line 1507: a company inside a book title): the outer one
    # is tagged, the inner one left out and named in the summary, whichever comes first in the file
    for label in ({"position": {"老桂": [[10, 11]]}, "name": {"叶老桂": [[9, 11]]}},
                  {"name": {"叶老桂": [[9, 11]]}, "position": {"老桂": [[10, 11]]}}):
        write(tmp_path / "dev.json", json.dumps(dict(CLUENER[0], label=label), ensure_ascii=False) + "\n")
        nested = processor.get_examples(str(tmp_path), "dev")
        assert nested[0].tags[9:12] == ["B-name", "I-name", "I-name"]
        assert "1 entities nested inside a longer one left out" in processor.reports["dev"].summary(1)
        assert processor.reports["dev"].nested == [f"{tmp_path / 'dev.json'}:1: position '老桂' [10, 11] inside name "
                                                   f"'叶老桂'"]
    write(tmp_path / "test.json", json.dumps({"id": 7, "text": "北京 人"}, ensure_ascii=False) + "\n")
    test = processor.get_examples(str(tmp_path), "test")
    assert test[0].units == ["北", "京", " ", "人"] and test[0].tags is None and test[0].example_id == 7


def random_tags(rng: random.Random, n: int) -> list[str]:
    return [rng.choice(["O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]) for _ in range(n)]


def test_entity_scores_equal_seqeval_on_random_sequences():
    rng = random.Random(0)
    for _ in range(30):
        lengths = [rng.randint(1, 12) for _ in range(rng.randint(1, 8))]
        gold = [random_tags(rng, n) for n in lengths]
        predicted = [random_tags(rng, n) for n in lengths]
        ours = ner_data.entity_scores(gold, predicted)
        if not ours["overall"]["support"] or not ours["overall"]["predicted"]:
            continue
        assert ours["overall"]["f1"] == pytest.approx(f1_score(gold, predicted))
        assert ours["overall"]["precision"] == pytest.approx(precision_score(gold, predicted))
        assert ours["overall"]["recall"] == pytest.approx(recall_score(gold, predicted))
        report = classification_report(gold, predicted, output_dict=True, zero_division=0)
        for kind in ("PER", "LOC", "ORG"):
            if kind in report:
                assert ours[kind]["f1"] == pytest.approx(report[kind]["f1-score"])
                assert ours[kind]["support"] == report[kind]["support"]


@pytest.fixture
def tokenizer(tmp_path):
    chars = list("中国北京人民日报社上海")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "abc", "##de"] + chars
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return tokenization.FullTokenizer(str(tmp_path / "vocab.txt"), do_lower_case=True)


def test_first_piece_carries_the_label_and_whitespace_is_unk(tokenizer):
    example = ner_data.NerExample("x", ["中", "abcde", " ", "国"], ["B-LOC", "O", "O", "B-LOC"])
    encoder = ner_data.WindowEncoder(tokenizer, max_seq_length=16)
    windows, features = encoder.encode([example], {"O": 0, "B-LOC": 1, "I-LOC": 2})
    vocab = tokenizer.vocab
    assert features["input_ids"][0, :7].tolist() == [vocab["[CLS]"], vocab["中"], vocab["abc"], vocab["##de"],
                                                     vocab["[UNK]"], vocab["国"], vocab["[SEP]"]]
    assert features["label_mask"][0, :8].tolist() == [0, 1, 1, 0, 1, 1, 0, 0]
    assert features["label_ids"][0, :7].tolist() == [0, 1, 0, 0, 0, 1, 0]
    assert windows[0].positions == [1, 2, 4, 5]


def test_windows_give_every_unit_of_a_long_sentence_one_tag(tokenizer):
    """A sentence of 3 × max_seq_length units: several windows, each unit owned by exactly one, the one where it has
    the most context, and assembled predictions cover every unit."""
    seq = 16
    units = [random.Random(1).choice("中国北京人民日报社上海") for _ in range(3 * seq)]
    example = ner_data.NerExample("long", units, ["O"] * len(units))
    encoder = ner_data.WindowEncoder(tokenizer, max_seq_length=seq, doc_stride=5)
    windows, features = encoder.encode([example], {"O": 0, "B-LOC": 1})
    spans = ner_data.window_spans(len(units), seq - 2, 5)
    assert len(windows) == len(spans) > 3 and spans[-1][1] == len(units)
    owners = {}
    for w, window in enumerate(windows):
        for unit, owned in zip(window.units, window.owned):
            if owned:
                assert unit not in owners
                owners[unit] = w
    assert sorted(owners) == list(range(len(units)))
    for unit, w in owners.items():  # most context: no window gives the unit more on its shorter side
        start, end = spans[w]
        best = min(unit - start, end - 1 - unit)
        assert all(min(unit - s, e - 1 - unit) <= best for s, e in spans if s <= unit < e)
    predicted = np.where(features["label_mask"] > 0, 1, 0)  # "B-LOC" on every labelled position
    tags = ner_data.assemble([example], windows, predicted, ["O", "B-LOC"])
    assert tags == [["B-LOC"] * len(units)]


@pytest.mark.parametrize("stride", [14, 20])
def test_a_stride_that_leaves_no_overlap_is_refused(tokenizer, stride):
    """windows that do not overlap put a window start, where the BIO constraints forbid I-, inside entities: a
    --doc_stride of the window (max_seq_length - 2) or more is refused, naming both numbers."""
    with pytest.raises(ValueError, match=rf"--doc_stride={stride} leaves no overlap between windows of "
                                         rf"--max_seq_length - 2 = 14 pieces.*below 14"):
        ner_data.WindowEncoder(tokenizer, max_seq_length=16, doc_stride=stride)
    assert ner_data.window_stride(16, 13) == (14, 13) and ner_data.window_stride(16, 0) == (14, 7)
    with pytest.raises(ValueError, match="--max_seq_length=3 leaves windows of 1 piece"):
        ner_data.window_stride(3, 0)


def test_eval_counts_each_unit_once_in_the_window_that_scores_it(tokenizer):
    """overlapping windows hold some units twice; the eval loss and token accuracy count each unit once, in the
    window its tag comes from (the one assemble reads), not once per window."""
    import tensorflow as tf

    seq = 16
    units = list("中国北京人民日报社上海") * 3  # 33 units, windows of 14 with stride 5: most units in 2-3 windows
    example = ner_data.NerExample("long", units, ["O"] * len(units))
    windows, features = ner_data.WindowEncoder(tokenizer, seq, doc_stride=5).encode([example], {"O": 0, "B-LOC": 1})
    owned = ner_data.owned_mask(windows, seq)
    assert owned.sum() == len(units) < features["label_mask"].sum()
    assert ((owned == 1) <= (features["label_mask"] == 1)).all()
    # right ("O") where a window owns the unit, wrong elsewhere: the assembled tags are all right
    tags = np.where(owned == 1, 0, np.where(features["label_mask"] == 1, 1, 0))
    assert ner_data.assemble([example], windows, tags, ["O", "B-LOC"]) == [["O"] * len(units)]
    logits = np.where(tags[..., None] == np.arange(2), 0.0, -np.log(3.0)).astype(np.float32)
    batch = {**{k: tf.constant(v) for k, v in features.items()}, "owned_mask": tf.constant(owned)}
    sums, counts = ner_data.scored_unit_sums(batch, {"logits": tf.constant(logits), "tags": tf.constant(tags)})
    assert float(counts["accuracy"]) == float(counts["loss"]) == len(units)
    assert float(sums["accuracy"]) == len(units)  # every scored unit is right
    assert float(sums["loss"]) / len(units) == pytest.approx(np.log(1 + 1 / 3), rel=1e-5)  # the right tag's CE
    # the CRF: a window's log-likelihood is shared out by the fraction of its labelled units it owns
    crf = {"log_likelihood": tf.fill([len(windows)], -2.0), "tags": tf.constant(tags)}
    sums, counts = ner_data.scored_unit_sums(batch, crf)
    share = owned.sum(1) / features["label_mask"].sum(1)
    assert float(sums["loss"]) == pytest.approx(2.0 * share.sum(), rel=1e-6) and float(counts["loss"]) == len(units)


def test_bio_constraints():
    allowed, start = ner_data.bio_constraints(["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
    assert start.tolist() == [True, True, False, True, False]
    assert allowed[:, 2].tolist() == [False, True, True, False, False]  # I-PER after B-PER / I-PER only
    assert allowed[:, 1].all() and allowed[:, 0].all()


def test_predictions_keep_the_test_files_units_and_order(tmp_path):
    examples = [ner_data.NerExample("a", ["北", "京"], None), ner_data.NerExample("b", ["人"], None)]
    path = tmp_path / "test_predictions.txt"
    ner_data.write_bio_predictions(str(path), examples, [["B-LOC", "I-LOC"], ["O"]], "\t")
    assert path.read_text(encoding="utf-8") == "北\tB-LOC\n京\tI-LOC\n\n人\tO\n\n"
    path = tmp_path / "cluener_predict.json"
    ner_data.write_clue_predictions(str(path), [ner_data.NerExample("a", list("在北京"), None, 3, 0, "在北京")],
                                    [["O", "B-address", "I-address"]])
    assert json.loads(path.read_text(encoding="utf-8")) == {"id": 3, "label": {"address": {"北京": [[1, 2]]}}}


def test_skipped_test_sentences_keep_their_place_in_the_predictions(tmp_path):
    """--skip_bad_lines on a test file: each skipped sentence keeps its place in test_predictions.txt (its units
    tagged O, or a '# skipped: file:line' line when a line's unit cannot be told) and in cluener_predict.json (its
    id, an empty label), so the outputs line up with the input, sentence for sentence."""
    path = write(tmp_path / "example.test", "北 B-LOC\n京 I-LOC\n\n上 E-LOC\n海 O\n\n人 B-X y\n民\n\n天 O\n津 O\n")
    processor = ner_data.get_processor("peoples_daily_ner", skip_bad_lines=True)
    examples = processor.read_file(str(path), "test", ["O", "B-LOC", "I-LOC"])
    assert [e.units for e in examples] == [["北", "京"], ["天", "津"]]
    skipped = processor.reports["test"].skipped
    assert [(s.position, s.where, s.units) for s in skipped] == [(1, f"{path}:4", ["上", "海"]),
                                                                 (1, f"{path}:7", None)]
    out = tmp_path / "test_predictions.txt"
    ner_data.write_bio_predictions(str(out), examples, [["B-LOC", "I-LOC"], ["B-LOC", "I-LOC"]], " ", skipped)
    assert out.read_text(encoding="utf-8") == (f"北 B-LOC\n京 I-LOC\n\n上 O\n海 O\n\n# skipped: {path}:7\n\n"
                                               f"天 B-LOC\n津 I-LOC\n\n")

    rows = [{"id": 10, "text": "在北京"}, "not json",
            {"id": 12, "text": "上海", "label": {"address": {"上": [[0, 0]]}}},
            {"id": 13, "text": "天津"}, {"id": 14, "text": "深圳", "label": {"address": {"深圳": [[0, 5]]}}}]
    write(tmp_path / "test.json", "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n"
                                          for r in rows))
    clue = ner_data.get_processor("cluener", skip_bad_lines=True)
    examples = clue.get_examples(str(tmp_path), "test")
    assert [e.example_id for e in examples] == [10, 12, 13]
    skipped = clue.reports["test"].skipped
    assert [(s.position, s.example_id, s.units) for s in skipped] == [(1, 1, None), (3, 14, ["深", "圳"])]
    out = tmp_path / "cluener_predict.json"
    ner_data.write_clue_predictions(str(out), examples, [["O", "B-address", "I-address"], ["O", "O"], ["O", "O"]],
                                    skipped)
    lines = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert lines == [{"id": 10, "label": {"address": {"北京": [[1, 2]]}}}, {"id": 1, "label": {}},
                     {"id": 12, "label": {}}, {"id": 13, "label": {}}, {"id": 14, "label": {}}]
