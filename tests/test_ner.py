"""run_ner.py end to end on a tiny model, the tagger model, its checkpoints and its SavedModel.

The task: clauses of ../shared/reference/data/news_zh_1.txt (a real news text, read in place, never copied) with
titles, quotes, dates and a few names tagged by rules (PATTERNS); a randomly initialised 2-layer model learns to
find them within a minute, far above the all-O baseline (entity F1 0).
"""

from __future__ import annotations

import json
import random
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from seqeval.metrics import f1_score

import checkpoints
import modeling
import ner_data
import tag_schemes
from test_classifier import CONFIG, run_cli

# Entities: the insides of 《》 (titles) and of short “” (quotes), dates, and a gazetteer of places and people.
# Titles, quotes and dates follow from the context (so they generalise to unseen ones), names are remembered.
PATTERNS = [("TITLE", re.compile(r"《([^《》]+)》")), ("QUOTE", re.compile(r"“([^“”]{1,15})”")),
            ("DATE", re.compile(r"([0-9]+[年月日]|[一二三四五六七八九十〇]{2,}年)")),
            ("NAME", re.compile(r"(南京|北京|中国|美国|香港|台湾|上海|秦淮|金陵|城南|姚远)"))]
SEQ = 16  # shorter than many clauses: long ones go through the sliding windows
REPO_CONFIG = Path(__file__).resolve().parents[1] / "pretrained" / "albert_demo_zh" / "albert_config.json"
REPO_VOCAB = REPO_CONFIG.with_name("vocab.txt")


def pattern_tags(text: str) -> list[str]:
    tags = ["O"] * len(text)
    for kind, pattern in PATTERNS:
        for match in pattern.finditer(text):
            start, end = match.span(1)
            if all(t == "O" for t in tags[start:end]):
                tags[start:end] = [f"B-{kind}"] + [f"I-{kind}"] * (end - start - 1)
    return tags


def read_bio(path: Path) -> list[list[tuple[str, str]]]:
    sentences, current = [], []
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line:
            unit, tag = line.split(" ")
            current.append((unit, tag))
        elif current:
            sentences.append(current)
            current = []
    return sentences


@pytest.fixture(scope="module")
def ner_task(reference_dir, tmp_path_factory) -> Path:
    text = (reference_dir / "data" / "news_zh_1.txt").read_text(encoding="utf-8")
    clauses = sorted({c.strip() for c in re.split(r"[。！？，；：\n]", text) if 4 <= len(c.strip()) <= 60
                      and not re.search(r"\s", c.strip())})
    with_names = [c for c in clauses if set(pattern_tags(c)) != {"O"}]
    without = [c for c in clauses if c not in with_names]
    random.Random(0).shuffle(with_names)
    random.Random(1).shuffle(without)
    assert len(with_names) > 110, len(with_names)
    parts = {"train": with_names[:70] + without[:70], "dev": with_names[70:95] + without[70:95],
             "test": with_names[95:120] + without[95:120]}
    d = tmp_path_factory.mktemp("ner")
    for name, part in parts.items():
        random.Random(2).shuffle(part)
        (d / f"example.{name}").write_text("".join(
            "".join(f"{c} {t}\n" for c, t in zip(clause, pattern_tags(clause))) + "\n" for clause in part),
            encoding="utf-8")
    chars = sorted({ch for c in clauses for ch in c})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (d / "config.json").write_text(json.dumps(dict(CONFIG, vocab_size=len(vocab), max_position_embeddings=SEQ)))
    return d


def run_ner(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    return run_cli("run_ner.py", *args, ok=ok, timeout=600)


def flags(task: Path, out: Path, *extra: str) -> list[str]:
    return [f"--data_dir={task}", f"--vocab_file={task / 'vocab.txt'}", f"--bert_config_file={task / 'config.json'}",
            f"--output_dir={out}", "--task_name=peoples_daily_ner", f"--max_seq_length={SEQ}", "--doc_stride=7",
            "--eval_batch_size=64", "--predict_batch_size=64", "--train_batch_size=32", "--learning_rate=3e-3",
            "--bias_correction=true", "--adam_epsilon=1e-8", "--num_train_epochs=40", "--save_checkpoints_steps=100",
            "--iterations_per_loop=50", *extra]


def read_results(path: Path) -> dict[str, float]:
    return {k: float(v) for k, v in (line.split(" = ") for line in path.read_text().splitlines())}


@pytest.mark.slow
@pytest.mark.parametrize("use_crf", [False, True])
def test_tagger_learns_the_names_and_writes_every_output(ner_task, tmp_path, use_crf):
    out = tmp_path / "out"
    run_ner(*flags(ner_task, out, f"--use_crf={str(use_crf).lower()}", "--do_train=true", "--do_eval=true",
                   "--do_predict=true"))
    dev = read_results(out / "eval_results.txt")
    # the all-O baseline scores 0; 70 named training clauses are too few to generalise much beyond that
    assert dev["eval_f1"] > 0.2, dev
    assert {"eval_precision", "eval_recall", "eval_TITLE_f1", "eval_NAME_f1", "eval_loss", "global_step"} <= set(dev)
    assert (out / "tag_list.txt").read_text().split() == ["O"] + [f"{p}-{k}" for k in ("DATE", "NAME", "QUOTE", "TITLE")
                                                                  for p in "BI"]

    gold = read_bio(ner_task / "example.test")
    predicted = read_bio(out / "test_predictions.txt")
    assert [[u for u, _ in s] for s in predicted] == [[u for u, _ in s] for s in gold]  # every unit, in order
    assert max(len(s) for s in gold) > 2 * SEQ  # some sentences needed several windows
    test = read_results(out / "test_results.txt")
    # an independent reader of our output: seqeval on test_predictions.txt against the test file
    assert test["eval_f1"] == pytest.approx(f1_score([[t for _, t in s] for s in gold],
                                                     [[t for _, t in s] for s in predicted]))
    assert test["eval_f1"] > 0.15

    # what it learned: the training sentences as a (labelled) test file, predicted from the saved tags and best
    # checkpoint alone
    seen = tmp_path / "seen"
    seen.mkdir()
    (seen / "example.test").write_text((ner_task / "example.train").read_text(encoding="utf-8"), encoding="utf-8")
    run_ner(*flags(ner_task, out, f"--use_crf={str(use_crf).lower()}", "--do_predict=true"), f"--data_dir={seen}")
    assert read_results(out / "test_results.txt")["eval_f1"] > 0.9

    # the SavedModel decodes as the CLI did (a sentence that fits one window)
    served = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    tags = (out / "tag_list.txt").read_text().split()
    vocab = {t: i for i, t in enumerate((ner_task / "vocab.txt").read_text(encoding="utf-8").split("\n"))}
    short = next(i for i, s in enumerate(gold) if len(s) <= SEQ - 2)
    ids = [vocab["[CLS]"]] + [vocab.get(u, vocab["[UNK]"]) for u, _ in gold[short]] + [vocab["[SEP]"]]
    ids = tf.constant([ids + [0] * (SEQ - len(ids))], tf.int32)
    mask = tf.cast(ids > 0, tf.int32)
    outputs = served(input_ids=ids, input_mask=mask, segment_ids=tf.zeros_like(ids))
    decoded = outputs["tags"].numpy()[0, 1:len(gold[short]) + 1]
    assert [tags[i] for i in decoded] == [t for _, t in predicted[short]]

    # eval again from the output dir (best checkpoint, saved tag list): same scores
    run_ner(*flags(ner_task, out, f"--use_crf={str(use_crf).lower()}", "--do_eval=true"))
    assert read_results(out / "eval_results.txt")["eval_f1"] == pytest.approx(dev["eval_f1"])


@pytest.mark.slow  # a subprocess (CLI, converter or replicas): the full run, not the edit loop
def test_bad_line_fails_with_file_and_line_before_training(ner_task, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    train = (ner_task / "example.train").read_text(encoding="utf-8").split("\n")
    train[5] = train[5] + " extra"
    (data / "example.train").write_text("\n".join(train), encoding="utf-8")
    done = run_ner(*flags(ner_task, tmp_path / "out", "--do_train=true"), f"--data_dir={data}", ok=False)
    assert done.returncode != 0 and "example.train:6: 3 fields" in done.stderr


@pytest.mark.parametrize("family", ["google", "brightmart"])
@pytest.mark.parametrize("use_crf", [False, True])
def test_tagger_starts_from_a_tf1_pretraining_checkpoint_and_round_trips(tmp_path, family, use_crf):
    """--init_checkpoint: a TF1 pretraining checkpoint of either family fills the tagger's backbone (only the head is
    missing); the fine-tuned tagger's own checkpoint loads back (CRF included) with equal outputs, and decoding
    leaves [CLS], [SEP] and padding untagged and follows the BIO constraints."""
    config = modeling.AlbertConfig(**dict(CONFIG, vocab_size=50, model_family=family))
    config.to_json_file(str(tmp_path / "config.json"))
    pretrained = modeling.AlbertPretrainingModel(config)
    pretrained.build()
    for v in pretrained.weights:
        v.assign(np.random.default_rng(len(v.path)).normal(size=v.shape).astype(np.float32) * 0.1)
    prefix = checkpoints.write_tf1_checkpoint(pretrained, str(tmp_path / "model.ckpt"))
    tags = ["O", "B-PER", "I-PER"]
    constraints = ner_data.bio_constraints(tags)
    tagger = modeling.AlbertTokenClassifier(config, 3, use_crf=use_crf, constraints=constraints)
    tagger.build()
    report = checkpoints.load_checkpoint(tagger, prefix)
    head = {"output_weights", "output_bias"} | ({"crf/transitions", "crf/start_transitions", "crf/end_transitions"}
                                                if use_crf else set())
    assert set(report.missing) == head, report
    np.testing.assert_array_equal(tagger.albert.embeddings.word_embeddings.numpy(),
                                  pretrained.albert.embeddings.word_embeddings.numpy())
    if use_crf:
        tagger.crf.transitions.assign(np.arange(9, dtype=np.float32).reshape(3, 3) / 9)
    tf.train.Checkpoint(model=tagger).write(str(tmp_path / "tagger"))
    loaded, _ = checkpoints.model_from_checkpoint(str(tmp_path / "config.json"), str(tmp_path / "tagger"),
                                                  tagger=True, constraints=constraints)
    assert isinstance(loaded, modeling.AlbertTokenClassifier) and loaded.use_crf == use_crf
    inputs = {"input_ids": tf.constant([[2, 7, 8, 9, 3, 0]]), "input_mask": tf.constant([[1, 1, 1, 1, 1, 0]]),
              "segment_ids": tf.zeros([1, 6], tf.int32)}
    out, again = tagger(inputs), loaded(inputs)
    np.testing.assert_allclose(again["logits"].numpy(), out["logits"].numpy(), atol=1e-6)
    np.testing.assert_array_equal(again["tags"].numpy(), out["tags"].numpy())
    decoded = out["tags"].numpy()[0]
    assert decoded[0] == 0 and decoded[4:].tolist() == [0, 0]
    assert tag_schemes.sequence_problems([tags[i] for i in decoded[1:4]], tag_schemes.SCHEMES["bio"]) == []


# --------------------------------------------------------------------------- reruns, skipped test sentences, strides

PLACES, FILLER = ["北京", "上海", "天津", "南京"], "的是在了有和人这中大为个我以要他时来用们生到作地于出就分对成会可"


def small_sentences(seed: int, count: int) -> list[list[tuple[str, str]]]:
    """``count`` sentences of 4-40 characters (many longer than a window) with places tagged B-LOC/I-LOC."""
    rng = random.Random(seed)
    sentences = []
    for _ in range(count):
        units: list[tuple[str, str]] = []
        while len(units) < rng.randint(4, 40):
            if rng.random() < 0.2:
                place = rng.choice(PLACES)
                units += [(place[0], "B-LOC"), (place[1], "I-LOC")]
            else:
                units.append((rng.choice(FILLER), "O"))
        sentences.append(units)
    return sentences


def bio_text(sentences) -> str:
    return "".join("".join(f"{u} {t}\n" for u, t in s) + "\n" for s in sentences)


@pytest.mark.slow
def test_a_failed_run_does_not_pin_its_tags_and_skipped_test_sentences_keep_their_place(tmp_path):
    """a run that fails before training (a dev tag outside a training file that lost its tags) leaves tag_list.txt
    but no checkpoint: the rerun on fixed data replaces it instead of refusing. That rerun predicts a test file with
    a bad sentence under --skip_bad_lines: test_predictions.txt keeps one sentence per input sentence (the skipped
    one tagged O) and says so; the test token accuracy counts each unit once (equal to the file's)."""
    data = tmp_path / "data"
    data.mkdir()
    train, dev, test = small_sentences(0, 48), small_sentences(1, 8), small_sentences(2, 12)
    (data / "example.train").write_text(bio_text([[(u, "O") for u, _ in s] for s in train]), encoding="utf-8")
    (data / "example.dev").write_text(bio_text(dev), encoding="utf-8")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(set(FILLER + "".join(PLACES)))
    (data / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (data / "config.json").write_text(json.dumps(dict(CONFIG, vocab_size=len(vocab))))
    out = tmp_path / "out"
    args = [f"--data_dir={data}", f"--vocab_file={data / 'vocab.txt'}", f"--bert_config_file={data / 'config.json'}",
            f"--output_dir={out}", "--task_name=peoples_daily_ner", f"--max_seq_length={SEQ}", "--doc_stride=7",
            "--train_batch_size=16", "--predict_batch_size=16", "--learning_rate=3e-3", "--num_train_epochs=3",
            "--do_train=true"]
    failed = run_ner(*args, "--do_eval=true", ok=False)
    assert failed.returncode == 1 and "tag 'B-LOC' is not in the training data's tag set" in failed.stderr
    assert (out / "tag_list.txt").read_text().split() == ["O"]

    (data / "example.train").write_text(bio_text(train), encoding="utf-8")
    bad = [("上", "E-LOC"), ("海", "O")]  # not BIO: skipped with --skip_bad_lines, its units still known
    test_text = bio_text(test[:5] + [bad] + test[5:])
    (data / "example.test").write_text(test_text, encoding="utf-8")
    done = run_ner(*args, "--do_predict=true", "--skip_bad_lines=true")
    assert "note: replacing" in done.stdout and (out / "tag_list.txt").read_text().split() == ["O", "B-LOC", "I-LOC"]
    assert "(12 sentences + 1 skipped by --skip_bad_lines, written with every unit tagged O" in done.stdout

    predicted = read_bio(out / "test_predictions.txt")
    assert [[u for u, _ in s] for s in predicted] == [[u for u, _ in s] for s in test[:5] + [bad] + test[5:]]
    assert predicted[5] == [("上", "O"), ("海", "O")]
    kept = predicted[:5] + predicted[6:]
    gold = [t for s in test for _, t in s]
    tags = [t for s in kept for _, t in s]
    assert max(len(s) for s in test) > SEQ  # overlapping windows: their shared units count once
    results = read_results(out / "test_results.txt")
    assert results["eval_accuracy"] == pytest.approx(np.mean([g == p for g, p in zip(gold, tags)]), abs=1e-6)


@pytest.mark.slow
@pytest.mark.parametrize("stride", [SEQ - 2, SEQ])
def test_a_stride_without_overlap_is_a_flag_error(tmp_path, stride):
    done = run_ner("--task_name=peoples_daily_ner", f"--data_dir={tmp_path}", f"--output_dir={tmp_path / 'out'}",
                   f"--bert_config_file={REPO_CONFIG}", f"--vocab_file={REPO_VOCAB}", f"--max_seq_length={SEQ}",
                   f"--doc_stride={stride}", "--do_train=true", ok=False)
    assert done.returncode == 2, done.stderr[-2000:]
    assert (f"run_ner.py: error: --doc_stride={stride} leaves no overlap between windows of --max_seq_length - 2 = "
            f"{SEQ - 2} pieces") in done.stderr
    assert not (tmp_path / "out").exists()  # refused before anything was made
