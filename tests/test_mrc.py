"""run_mrc.py end to end on a tiny model: it learns a span task, answers every question with a span of its context,
writes every output, scores as the metric module does, serves, and fails cleanly on bad input.

The task: contexts of 3-6 clauses of ../shared/reference/data/news_zh_1.txt (a real news text, read in place) with
up to three inserted spans, a title 《…》, a quote “…” and a year, each of random characters; three fixed questions
ask for them. The answer is never in the question and differs every time, so the model must learn where a span of
the asked kind sits; contexts are longer than a window, so answers come through the sliding windows.
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

import mrc_metric
from test_classifier import CONFIG, run_cli

QUESTIONS = {"title": "文中的书名是什么？", "quote": "引号里说的是什么？", "year": "文中提到哪一年？"}
SEQ = 64


def make_split(rng: random.Random, clauses: list[str], chars: list[str], n: int, name: str) -> dict:
    paragraphs = []
    for i in range(n):
        parts = rng.sample(clauses, rng.randint(3, 6))
        spans = {"title": "《" + "".join(rng.choices(chars, k=rng.randint(2, 5))) + "》",
                 "quote": "“" + "".join(rng.choices(chars, k=rng.randint(2, 6))) + "”",
                 "year": f"{rng.randint(1900, 2030)}年"}
        kinds = rng.sample(sorted(spans), rng.randint(1, 3))
        for kind in kinds:
            parts.insert(rng.randint(0, len(parts)), spans[kind])
        context = "，".join(parts) + "。"
        qas = []
        for kind in kinds:
            answer = spans[kind].strip("《》“”")
            qas.append({"id": f"{name}{i}-{kind}", "question": QUESTIONS[kind],
                        "answers": [{"text": answer, "answer_start": context.index(spans[kind]) + (kind != "year")}]})
        paragraphs.append({"context": context, "qas": qas})
    return {"version": "test", "data": [{"title": name, "paragraphs": paragraphs}]}


@pytest.fixture(scope="module")
def mrc_task(reference_dir, tmp_path_factory) -> Path:
    text = (reference_dir / "data" / "news_zh_1.txt").read_text(encoding="utf-8")
    clauses = sorted({c.strip() for c in re.split(r"[。！？，；：\n]", text)
                      if 4 <= len(c.strip()) <= 25 and not re.search(r"[\s《》“”]", c)})
    chars = sorted({ch for c in clauses for ch in c if "\u4e00" <= ch <= "\u9fff"})
    d = tmp_path_factory.mktemp("mrc")
    for name, n, seed in (("train", 1200, 0), ("dev", 60, 1), ("test", 60, 2)):
        split = make_split(random.Random(seed), clauses, chars, n, name)
        (d / f"{name}.json").write_text(json.dumps(split, ensure_ascii=False), encoding="utf-8")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + sorted(
        set("".join(clauses)) | set("".join(QUESTIONS.values())) | set("0123456789《》“”，。"))
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (d / "config.json").write_text(json.dumps(dict(CONFIG, vocab_size=len(vocab), max_position_embeddings=SEQ)))
    return d


def run_mrc(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    return run_cli("run_mrc.py", *args, ok=ok, timeout=600)


def flags(task: Path, out: Path, *extra: str) -> list[str]:
    return [f"--data_dir={task}", f"--vocab_file={task / 'vocab.txt'}", f"--bert_config_file={task / 'config.json'}",
            f"--output_dir={out}", "--task_name=cmrc2018", f"--max_seq_length={SEQ}", "--doc_stride=24",
            "--max_query_length=16", "--eval_batch_size=64", "--predict_batch_size=64", "--train_batch_size=32",
            "--learning_rate=2e-3", "--bias_correction=true", "--adam_epsilon=1e-8", "--num_train_epochs=8",
            "--save_checkpoints_steps=500", "--iterations_per_loop=250", *extra]


def read_results(path: Path) -> dict[str, float]:
    return {k: float(v) for k, v in (line.split(" = ") for line in path.read_text().splitlines())}


def contexts(path: Path) -> dict[str, str]:
    data = json.loads(path.read_text(encoding="utf-8"))
    return {qa["id"]: p["context"] for a in data["data"] for p in a["paragraphs"] for qa in p["qas"]}


@pytest.mark.slow
def test_span_extractor_learns_answers_every_question_and_serves(mrc_task, tmp_path):
    out = tmp_path / "out"
    done = run_mrc(*flags(mrc_task, out, "--do_train=true", "--do_eval=true", "--do_predict=true"))
    assert "extra for long contexts" in done.stdout  # contexts longer than a window
    dev = read_results(out / "eval_results.txt")
    assert {"eval_f1", "eval_em", "eval_average", "eval_loss", "eval_span_accuracy", "eval_when_f1",
            "global_step"} <= set(dev)

    # a trivial baseline: the first characters of the context, as long as the mean gold answer
    gold = mrc_metric.gold_answers(json.loads((mrc_task / "test.json").read_text(encoding="utf-8")))
    test_contexts = contexts(mrc_task / "test.json")
    trivial = mrc_metric.cmrc2018_scores(gold, {q: test_contexts[q][:3] for q in gold})
    assert trivial["f1"] < 10
    test = read_results(out / "test_results.txt")
    assert test["eval_f1"] > 45 > trivial["f1"] + 35, (test, trivial)  # measured: ~70

    # every question gets a non-empty span of its own context; an independent reader scores the file the same
    predictions = json.loads((out / "predictions.json").read_text(encoding="utf-8"))
    assert set(predictions) == set(gold)
    assert all(predictions[q] and predictions[q] in test_contexts[q] for q in gold)
    scores = mrc_metric.evaluate_files(str(mrc_task / "test.json"), str(out / "predictions.json"))
    assert scores["f1"] == pytest.approx(test["eval_f1"]) and scores["em"] == pytest.approx(test["eval_em"])
    nbest = json.loads((out / "nbest_predictions.json").read_text(encoding="utf-8"))
    for qid, candidates in nbest.items():
        assert candidates[0]["text"] == predictions[qid]
        assert sum(c["probability"] for c in candidates) == pytest.approx(1.0, abs=1e-6)
        first = candidates[0]
        assert test_contexts[qid][first["start"]:first["end"]] == first["text"]

    # --evaluate scores a predictions file
    done = run_mrc("--evaluate", str(mrc_task / "test.json"), str(out / "predictions.json"))
    assert json.loads(done.stdout)["f1"] == pytest.approx(test["eval_f1"])

    # the SavedModel gives the Keras model's logits: decoding them answers as predictions.json does
    import mrc_data
    import tokenization

    tokenizer = tokenization.FullTokenizer(str(mrc_task / "vocab.txt"), True, split_special_tokens=True)
    examples, _ = mrc_data.read_examples(str(mrc_task / "test.json"), training=False)
    encoder = mrc_data.MrcEncoder(tokenizer, SEQ, 24, 16)
    pairs = list(encoder.encode(examples[:10]))
    windows = [w for w, _ in pairs]
    features = mrc_data.feature_batch([row for _, row in pairs])
    served = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
    outputs = served(**{k: tf.constant(features[k]) for k in ("input_ids", "input_mask", "segment_ids")})
    answers = mrc_data.decode(examples[:10], encoder, windows, outputs["start_logits"].numpy(),
                              outputs["end_logits"].numpy(), max_answer_length=50)
    assert {q: a.text for q, a in answers.items()} == {e.qid: predictions[e.qid] for e in examples[:10]}
    start = outputs["start_logits"].numpy()  # masked outside [CLS] and the context: question, [SEP]s, padding
    outside = (features["segment_ids"] == 0) | (features["input_mask"] == 0)
    outside[:, 0] = False
    last = features["input_mask"].sum(1) - 1
    outside[np.arange(len(last)), last] = True
    assert np.all(start[outside] <= -1000) and np.all(start[~outside] > -1000)

    # one question from the command line, with the trained model
    example = examples[0]
    done = run_mrc(*flags(mrc_task, out), f"--question={example.question}", f"--context={example.context}")
    shown = json.loads(done.stdout[done.stdout.index("{"):])
    assert shown["answer"] == predictions[example.qid] and shown["nbest"][0]["text"] == shown["answer"]


@pytest.mark.slow
def test_bad_input_is_one_clean_line(mrc_task, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for name in ("train.json", "dev.json"):
        (bad / name).write_text((mrc_task / name).read_text(encoding="utf-8"), encoding="utf-8")
    data = json.loads((mrc_task / "train.json").read_text(encoding="utf-8"))
    data["data"][0]["paragraphs"][3]["qas"][0]["answers"][0]["text"] = "不在文中的答案"
    (bad / "train.json").write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    done = run_mrc(*flags(mrc_task, tmp_path / "out", "--do_train=true"), f"--data_dir={bad}", ok=False)
    qid = data["data"][0]["paragraphs"][3]["qas"][0]["id"]
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"run_mrc.py: error: {bad / 'train.json'}: question {qid}: the answer" in done.stderr
    assert not (tmp_path / "out" / "features").exists() or not list((tmp_path / "out" / "features").iterdir())

    (bad / "test.json").write_text('{"data": [', encoding="utf-8")
    done = run_mrc(*flags(mrc_task, tmp_path / "out2", "--do_predict=true"), f"--data_dir={bad}", ok=False)
    assert done.returncode == 1 and f"{bad / 'test.json'}:1:" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_training_on_the_windows_that_hold_the_answer(mrc_task, tmp_path):
    import mrc_data
    import tokenization

    tokenizer = tokenization.FullTokenizer(str(mrc_task / "vocab.txt"), True, split_special_tokens=True)
    examples, _ = mrc_data.read_examples(str(mrc_task / "train.json"), training=True)
    windows = [w for w, _ in mrc_data.MrcEncoder(tokenizer, SEQ, 24, 16).encode(examples)]
    holding = sum(1 for w in windows if w.start_position > 0)
    assert len(examples) <= holding < len(windows)  # answers in the overlaps sit in two windows
    done = run_mrc(*flags(mrc_task, tmp_path / "out", "--do_train=true", "--train_windows=with_answer",
                          "--num_train_epochs=1"))
    assert f"train: {holding} windows of max_seq_length={SEQ}" in done.stdout
    assert f"{holding} windows ({len(examples)} questions) × 1 epochs" in done.stdout
