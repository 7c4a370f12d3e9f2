"""The public Chinese NER files: every format and tag scheme ner_data reads, and what it refuses.

Real files (People's Daily, MSRA, CLUENER2020 in ../shared/datasets; a slice of each, written to tmp_path, is read
in place of the whole file) through their task's processor; BIOES/BMES/BILOU round trips, made from a real slice
with tag_schemes and written by hand; Weibo NER's glued digits; lemonhu's sentences/tags pairs; run_ner.py end to
end on BMES files given by --train_file/--dev_file/--test_file.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from seqeval.metrics import f1_score
from seqeval.scheme import IOBES

import ner_data
import tag_schemes
from classifier_data import DataFormatError
from test_classifier import CONFIG
from test_ner import SEQ, read_results, run_ner, small_sentences

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"
needs_datasets = pytest.mark.skipif(not DATASETS.is_dir(), reason=f"{DATASETS} is absent")
SLICE = 200  # sentences of each real file


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def column_slice(path: Path, count: int = SLICE) -> str:
    """The first ``count`` sentences of a ``unit TAG`` file, each with its blank line."""
    lines, sentences = [], 0
    for line in path.read_text(encoding="utf-8").split("\n"):
        lines.append(line)
        if not line and lines[:-1] and lines[-2]:
            sentences += 1
            if sentences == count:
                break
    return "\n".join(lines) + "\n"


def column_sentences(text: str) -> list[list[tuple[str, str]]]:
    """An independent reader for the expectations: (unit, tag) per line, split at blank lines."""
    out, current = [], []
    for line in text.split("\n"):
        if line.strip():
            unit, tag = line.split()
            current.append((unit, tag))
        elif current:
            out.append(current)
            current = []
    return out


def column_text(sentences: list[list[tuple[str, str]]], separator: str = " ") -> str:
    return "".join("".join(f"{u}{separator}{t}\n" for u, t in s) + "\n" for s in sentences)


def types(tags) -> set[str]:
    return {t.split("-", 1)[1] for t in tags if t != "O"}


def round_trip(processor: ner_data.NerProcessor, path: Path, split: str = "dev") -> str:
    """``path`` read and written back with its own tags (in its scheme), as text."""
    examples = processor.read_file(str(path), split)
    report = processor.reports[split]
    out = path.with_name(path.name + ".out")
    ner_data.write_bio_predictions(str(out), examples, [e.tags for e in examples], report.separator,
                                   scheme=report.scheme)
    return out.read_text(encoding="utf-8")


# --------------------------------------------------------------------------------------------------- the real files

COLUMN_FILES = [("peoples_daily_ner", "peopledaily_ner/ymcui_split/train.txt", "train"),
                ("peoples_daily_ner", "peopledaily_ner/ymcui_split/dev.txt", "dev"),
                ("peoples_daily_ner", "peopledaily_ner/zjy-ucas_split/example.dev", "dev"),
                ("peoples_daily_ner", "peopledaily_ner/zjy-ucas_split/example.test", "test"),
                ("msra_ner", "msra_ner/msra_test_bio", "test")]


@needs_datasets
@pytest.mark.parametrize("task, name, split", COLUMN_FILES)
def test_real_column_files_are_read_whole_and_written_back_unchanged(tmp_path, task, name, split):
    text = column_slice(DATASETS / name)
    write(tmp_path / Path(name).name, text)
    expected = column_sentences(text)
    assert len(expected) == SLICE
    processor = ner_data.get_processor(task)
    assert processor.data_file(str(tmp_path), split) == str(tmp_path / Path(name).name)  # the task finds the name
    examples = processor.get_examples(str(tmp_path), split)
    report = processor.reports[split]
    assert len(examples) == SLICE and not report.bad and not report.skipped
    assert report.scheme == "bio" and report.separator == ("\t" if "msra" in name else " ")
    assert [e.units for e in examples] == [[u for u, _ in s] for s in expected]
    # the test files carry tags: they are read (and scored), not ignored
    assert [e.tags for e in examples] == [[t for _, t in s] for s in expected]
    assert types(t for e in examples for t in e.tags) == {"PER", "LOC", "ORG"}
    assert ner_data.tag_set(examples) == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert round_trip(processor, tmp_path / Path(name).name, split) == text


@needs_datasets
@pytest.mark.parametrize("name", ["train.json", "dev.json"])
def test_real_cluener_files(tmp_path, name):
    lines = (DATASETS / "cluener2020" / name).read_text(encoding="utf-8").split("\n")
    # train.json's line 1507, the file's one row with nested spans (two companies inside a book title): the book
    # is tagged, the companies are counted and named
    nested_row = json.loads(lines[1506]) if name == "train.json" else None
    lines = lines[:SLICE] + ([lines[1506]] if nested_row else [])
    write(tmp_path / name, "\n".join(lines) + "\n")
    processor = ner_data.get_processor("cluener")
    split = name.split(".")[0]
    examples = processor.get_examples(str(tmp_path), split)
    assert len(examples) == len(lines) and not processor.reports[split].bad
    if nested_row:
        assert len(processor.reports[split].nested) == 2
        assert ner_data.clue_label(nested_row["text"], examples.pop().tags) == {"book": nested_row["label"]["book"]}
        lines.pop()
    rows = [json.loads(line) for line in lines]
    assert ["".join(e.units) for e in examples] == [r["text"] for r in rows]
    expected_types = {kind for r in rows for kind in r["label"]}
    assert types(t for e in examples for t in e.tags) == expected_types and len(expected_types) >= 8
    for example, row in zip(examples, rows):  # the spans come back from the tags
        assert ner_data.clue_label(row["text"], example.tags) == row["label"]


@needs_datasets
def test_real_msra_sentences_and_tags_pair(tmp_path):
    sentences = (DATASETS / "msra_ner" / "val_sentences.txt").read_text(encoding="utf-8").split("\n")[:SLICE]
    tags = (DATASETS / "msra_ner" / "val_tags.txt").read_text(encoding="utf-8").split("\n")[:SLICE]
    write(tmp_path / "val_sentences.txt", "\n".join(sentences) + "\n")
    write(tmp_path / "val_tags.txt", "\n".join(tags) + "\n")
    processor = ner_data.get_processor("msra_ner")
    assert processor.data_file(str(tmp_path), "dev") == str(tmp_path / "val_sentences.txt")
    examples = processor.get_examples(str(tmp_path), "dev")
    report = processor.reports["dev"]
    assert len(examples) == SLICE and not report.bad and report.companion == str(tmp_path / "val_tags.txt")
    assert [e.units for e in examples] == [s.split(" ") for s in sentences]
    assert [e.tags for e in examples] == [t.split(" ") for t in tags]
    assert types(t for e in examples for t in e.tags) == {"PER", "LOC", "ORG"}


# ------------------------------------------------------------------------------------------ schemes and round trips

@pytest.fixture
def bio_sentences(tmp_path) -> list[list[tuple[str, str]]]:
    """Well-formed BIO sentences: a real slice when ../shared is there, else generated ones."""
    real = DATASETS / "peopledaily_ner" / "zjy-ucas_split" / "example.dev"
    if real.is_file():
        sentences = column_sentences(column_slice(real))
    else:
        sentences = small_sentences(3, SLICE)
    # well-formed: conlleval's reading written back in BIO (a stray I- becomes B-)
    out = []
    for s in sentences:
        tags = ["O"] * len(s)
        for kind, first, last in tag_schemes.chunks([t for _, t in s]):
            tags[first:last + 1] = [f"B-{kind}"] + [f"I-{kind}"] * (last - first)
        out.append([(u, t) for (u, _), t in zip(s, tags)])
    return out


@pytest.mark.parametrize("scheme", ["bio", "bioes", "bmes", "bilou"])
def test_each_scheme_is_detected_read_as_bio_and_written_back_byte_for_byte(tmp_path, bio_sentences, scheme):
    converted = [[(u, t) for (u, _), t in zip(s, tag_schemes.from_bio([t for _, t in s], scheme))]
                 for s in bio_sentences]
    text = column_text(converted, "\t")
    path = write(tmp_path / "train.txt", text)
    processor = ner_data.get_processor("conll_ner")
    examples = processor.read_file(str(path), "train")
    report = processor.reports["train"]
    assert report.scheme == scheme and report.scheme_source == "detected" and not report.inconsistent
    assert [e.tags for e in examples] == [[t for _, t in s] for s in bio_sentences]  # BIO inside
    assert round_trip(processor, path, "train") == text


HAND_WRITTEN = {
    "bioes": "张\tB-PER.NAM\n三\tE-PER.NAM\n说\tO\n他\tS-PER.NOM\n\n北\tB-GPE.NAM\n京\tI-GPE.NAM\n市\tE-GPE.NAM\n\n",
    "bmes": "高 B-NAME\n勇 E-NAME\n， O\n男 O\n\n中 B-ORG\n国 M-ORG\n银 M-ORG\n行 E-ORG\n硕 S-EDU\n\n",
    "bilou": "李 U-PER\n在 O\n上 B-LOC\n海 L-LOC\n\n",
}


@pytest.mark.parametrize("scheme", sorted(HAND_WRITTEN))
def test_hand_written_files_keep_dotted_types_and_come_back_unchanged(tmp_path, scheme):
    path = write(tmp_path / "dev.txt", HAND_WRITTEN[scheme])
    processor = ner_data.get_processor("conll_ner")
    examples = processor.read_file(str(path), "dev")
    assert processor.reports["dev"].scheme == scheme
    if scheme == "bioes":
        assert examples[0].tags == ["B-PER.NAM", "I-PER.NAM", "O", "B-PER.NOM"]
        assert ner_data.tag_set(examples) == ["O", "B-GPE.NAM", "I-GPE.NAM", "B-PER.NAM", "I-PER.NAM", "B-PER.NOM",
                                              "I-PER.NOM"]
    if scheme == "bmes":
        assert examples[1].tags == ["B-ORG", "I-ORG", "I-ORG", "I-ORG", "B-EDU"]
    assert round_trip(processor, path) == HAND_WRITTEN[scheme]


def test_a_file_whose_tags_fit_two_schemes_takes_the_bmes_name_or_the_training_scheme(tmp_path):
    two = "高 B-NAME\n勇 E-NAME\n硕 S-EDU\n\n"  # no I-, no M-: BIOES and BMES read it alike
    processor = ner_data.get_processor("resume_ner")
    processor.read_file(str(write(tmp_path / "dev.char.bmes", two)), "dev")
    assert processor.reports["dev"].scheme == "bmes"
    processor = ner_data.get_processor("conll_ner")
    processor.read_file(str(write(tmp_path / "dev.txt", two)), "dev")
    assert processor.reports["dev"].scheme == "bioes" and "BMES" in processor.reports["dev"].scheme_source
    processor.train_scheme = "bmes"
    processor.read_file(str(tmp_path / "dev.txt"), "dev")
    assert processor.reports["dev"].scheme == "bmes"
    # a test file without tags: the training data's scheme
    processor.read_file(str(write(tmp_path / "test.txt", "高\n勇\n\n")), "test")
    assert processor.reports["test"].scheme == "bmes"


def perturb(tags: list[str], rng: random.Random) -> list[str]:
    """A prediction: each entity of ``tags`` (BIO) kept, dropped, retyped or shortened; sometimes a new one."""
    out = ["O"] * len(tags)
    for kind, first, last in tag_schemes.chunks(tags):
        choice = rng.random()
        if choice < 0.15:
            continue
        kind = "ORG" if choice < 0.3 else kind
        last = last - 1 if choice > 0.85 and last > first else last
        out[first:last + 1] = [f"B-{kind}"] + [f"I-{kind}"] * (last - first)
    if len(out) > 3 and rng.random() < 0.3 and out[1] == "O":
        out[1] = "B-LOC"
    return out


def test_entity_scores_do_not_depend_on_the_scheme_and_match_seqeval(tmp_path, bio_sentences):
    rng = random.Random(0)
    gold = [[t for _, t in s] for s in bio_sentences]
    predicted = [perturb(g, rng) for g in gold]
    scores = {}
    for scheme in ("bio", "bioes", "bmes"):
        read = {}
        for name, sentences in (("gold", gold), ("predicted", predicted)):
            rows = [list(zip((u for u, _ in s), tag_schemes.from_bio(tags, scheme)))
                    for s, tags in zip(bio_sentences, sentences)]
            path = write(tmp_path / f"{scheme}.{name}", column_text(rows))
            read[name] = [e.tags for e in ner_data.get_processor("conll_ner").read_file(str(path), "dev")]
        scores[scheme] = ner_data.entity_scores(read["gold"], read["predicted"])
    assert scores["bio"] == scores["bioes"] == scores["bmes"]
    assert 0.3 < scores["bio"]["overall"]["f1"] < 0.95
    # seqeval, strict IOBES, on the BIOES tags themselves
    bioes = [[tag_schemes.from_bio(s, "bioes") for s in part] for part in (gold, predicted)]
    assert scores["bioes"]["overall"]["f1"] == pytest.approx(f1_score(*bioes, mode="strict", scheme=IOBES))


# ------------------------------------------------------------------------------------------------------ Weibo NER

def test_weibo_glued_digits_are_dropped_and_kept_in_the_predictions(tmp_path, capsys):
    text = "科0\tB-PER.NAM\n比0\tI-PER.NAM\n说0\tO\n\n2\tO\n"  # not all units glued: left alone
    processor = ner_data.get_processor("weibo_ner")
    examples = processor.read_file(str(write(tmp_path / "weiboNER_2nd_conll.dev", text)), "dev")
    assert examples[0].units == ["科0", "比0", "说0"] and "segmentation" not in capsys.readouterr().out

    text = "科0\tB-PER.NAM\n比0\tI-PER.NAM\n说1\tO\n\n20\tO\n年0\tO\n\n"  # "20": the digit 2, glued 0
    path = write(tmp_path / "weiboNER_2nd_conll.test", text)
    examples = processor.read_file(str(path), "test")
    assert [e.units for e in examples] == [["科", "比", "说"], ["2", "年"]]
    assert examples[0].tags == ["B-PER.NAM", "I-PER.NAM", "O"]
    assert "each unit is read as its character" in capsys.readouterr().out
    assert round_trip(processor, path, "test") == text  # the digits come back


@needs_datasets
def test_peoples_daily_digits_never_look_glued(tmp_path, capsys):
    text = column_slice(DATASETS / "peopledaily_ner" / "ymcui_split" / "dev.txt", 400)
    assert any(line[:1].isdigit() for line in text.split("\n"))  # digits are units of their own there
    processor = ner_data.get_processor("peoples_daily_ner")
    examples = processor.read_file(str(write(tmp_path / "dev.txt", text)), "dev")
    assert all(e.source_units is None for e in examples) and "segmentation" not in capsys.readouterr().out


# ------------------------------------------------------------------------------------ sentences/tags, bad formats

def test_sentences_and_tags_files_are_read_as_a_pair(tmp_path):
    write(tmp_path / "train_sentences.txt", "北 京 欢 迎 你\n张 三\n")
    write(tmp_path / "train_tags.txt", "B-LOC I-LOC O O O\nB-PER I-PER\n")
    processor = ner_data.get_processor("msra_ner")
    examples = processor.get_examples(str(tmp_path), "train")
    assert [e.units for e in examples] == [list("北京欢迎你"), ["张", "三"]] and examples[1].line == 2
    assert examples[0].tags == ["B-LOC", "I-LOC", "O", "O", "O"]
    # a test file without its tags file is unlabelled
    write(tmp_path / "test_sentences.txt", "北 京 欢\n")
    assert processor.get_examples(str(tmp_path), "test")[0].tags is None


def test_a_pair_that_does_not_align_names_file_line_and_counts(tmp_path):
    write(tmp_path / "val_sentences.txt", "北 京\n张 三 说\n")
    write(tmp_path / "val_tags.txt", "B-LOC I-LOC\nB-PER I-PER\n")
    processor = ner_data.get_processor("msra_ner")
    with pytest.raises(DataFormatError, match=r"val_sentences\.txt:2: 3 units but .*val_tags\.txt:2 has 2 tags"):
        processor.get_examples(str(tmp_path), "dev")
    write(tmp_path / "val_tags.txt", "B-LOC I-LOC\n")
    with pytest.raises(DataFormatError, match=r"val_sentences\.txt has 2 sentence lines but .*val_tags\.txt has 1"):
        processor.get_examples(str(tmp_path), "dev")
    # without its tags file a dev file is read as columns: the error names the pair format
    (tmp_path / "val_tags.txt").unlink()
    write(tmp_path / "val_sentences.txt", "北 京 欢\n")
    with pytest.raises(DataFormatError, match=r"val_sentences\.txt:1: 3 fields.*\*sentences\*\.txt \+ \*tags\*"):
        processor.get_examples(str(tmp_path), "dev")
    # a test file of whole sentences needs none
    write(tmp_path / "test_sentences.txt", "北 京 欢 迎\n")
    assert processor.get_examples(str(tmp_path), "test")[0].units == list("北京欢迎")


@pytest.mark.parametrize("text, options, message", [
    ('{"text": "北京", "label": {"LOC": {"北京": [[0, 1]]}}}\n', {}, r"example\.train:1: JSON, but task "
                                                                     r"peoples_daily_ner reads 'unit TAG' lines"),
    ("北 B-LOC NR\n京 I-LOC NR\n\n", {}, r"example\.train:1: 3 fields"),
    ("高 B-NAME\n勇 E-NAME\n\n", {"tag_scheme": "bio"},
     r"example\.train:2: tag 'E-NAME' is not BIO, this file's scheme \(--tag_scheme=bio"),
    ("中 B-ORG\n国 M-ORG\n行 E-ORG\n\n中 B-ORG\n国 M-ORG\n行 E-ORG\n\n北 B-LOC\n京 I-LOC\n\n", {},
     r"example\.train:10: tag 'I-LOC' is not BMES, this file's scheme \(detected; M- and I- mixed"),
    ("北 B-LOC\n京 I-LOC\n\n上 B-LOC\n海 I-LOC\n\n人 S-LOC\n\n", {}, r"example\.train:7: tag 'S-LOC' is not BIO"),
])
def test_unsupported_formats_and_foreign_tags_are_errors_that_list_the_formats(tmp_path, text, options, message):
    path = write(tmp_path / "example.train", text)
    with pytest.raises(DataFormatError, match=message) as raised:
        ner_data.get_processor("peoples_daily_ner", **options).read_file(str(path), "train")
    assert "supported:" in str(raised.value)


def test_split_files_override_the_task_names(tmp_path):
    write(tmp_path / "mine.bmes", HAND_WRITTEN["bmes"])
    processor = ner_data.get_processor("resume_ner", overrides={"train": str(tmp_path / "mine.bmes")})
    assert processor.data_file(None, "train") == str(tmp_path / "mine.bmes")
    assert len(processor.get_examples(None, "train")) == 2 and processor.train_scheme == "bmes"
    with pytest.raises(FileNotFoundError, match="no dev file .*--dev_file"):
        processor.data_file(None, "dev")


# ---------------------------------------------------------------------------------------------------------- the CLI

@pytest.mark.slow  # two subprocesses: TF start-up dominates
def test_run_ner_on_bmes_files_given_by_path_predicts_in_bmes(tmp_path):
    data = tmp_path / "anywhere"
    data.mkdir()
    parts = {"train": small_sentences(0, 24), "dev": small_sentences(1, 4), "test": small_sentences(2, 6)}
    for name, sentences in parts.items():
        rows = [list(zip((u for u, _ in s), tag_schemes.from_bio([t for _, t in s], "bmes"))) for s in sentences]
        write(data / f"{name}.bmes", column_text(rows))
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted({u for p in parts.values() for s in p
                                                                     for u, _ in s})
    write(data / "vocab.txt", "\n".join(vocab) + "\n")
    write(data / "config.json", json.dumps(dict(CONFIG, vocab_size=len(vocab))))
    out = tmp_path / "out"
    common = [f"--vocab_file={data / 'vocab.txt'}", f"--bert_config_file={data / 'config.json'}",
              f"--output_dir={out}", "--task_name=conll_ner", f"--max_seq_length={SEQ}", "--doc_stride=7",
              "--train_batch_size=8", "--predict_batch_size=16", "--learning_rate=3e-3", "--num_train_epochs=12"]
    done = run_ner(*common, f"--train_file={data / 'train.bmes'}", f"--dev_file={data / 'dev.bmes'}",
                   f"--test_file={data / 'test.bmes'}", "--do_train=true", "--do_eval=true", "--do_predict=true",
                   "--noexport_saved_model")
    assert "BMES tags, detected" in done.stdout
    assert not (out / "saved_model").exists()  # --noexport_saved_model
    assert (out / "tag_scheme.txt").read_text() == "bmes\n"
    assert (out / "tag_list.txt").read_text().split() == ["O", "B-LOC", "I-LOC"]
    predicted = column_sentences((out / "test_predictions.txt").read_text(encoding="utf-8"))
    assert [[u for u, _ in s] for s in predicted] == [[u for u, _ in s] for s in parts["test"]]
    tags = [t for s in predicted for _, t in s]
    assert {t.split("-")[0] for t in tags} <= {"B", "M", "E", "S", "O"} and "E-LOC" in tags  # BMES, not BIO
    assert all(tag_schemes.sequence_problems([t for _, t in s], tag_schemes.SCHEMES["bmes"]) == []
               for s in predicted)
    assert "eval_f1" in read_results(out / "test_results.txt")

    # predict only, a test file without tags, no --data_dir: the saved training scheme
    write(data / "unlabelled.txt", "".join("".join(f"{u}\n" for u, _ in s) + "\n" for s in parts["test"]))
    run_ner(*common, f"--test_file={data / 'unlabelled.txt'}", "--do_predict=true")
    again = column_sentences((out / "test_predictions.txt").read_text(encoding="utf-8"))
    assert again == predicted

    missing = run_ner(*common, "--do_eval=true", ok=False)
    assert missing.returncode == 2
    assert "--data_dir is required for the dev file (or pass --dev_file)" in missing.stderr
