"""run_classifier.py and extract_features.py end to end on a tiny model and real Chinese sentences.

The task: clauses of ../shared/reference/data/news_zh_1.txt (a real news text, read in place, never copied), labelled
by whether they contain 的 (45% do): learnable from characters, so a randomly initialised 2-layer model learns it in
seconds. The vocab is the text's characters.
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import classifier_data
import input_pipeline
import modeling
import tokenization
import training
from test_modeling import randomize

pytestmark = pytest.mark.slow  # fine-tuning through the CLIs in subprocesses

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
SEQ = 48
CONFIG = dict(hidden_size=64, embedding_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=128,
              hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
              max_position_embeddings=64, type_vocab_size=2, initializer_range=0.02)


def run_cli(script: str, *args: str, ok: bool = True, timeout: int = 300) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, str(REPO / script), *args], env=ENV, cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)
    if ok:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


@pytest.fixture(scope="module")
def news(reference_dir, tmp_path_factory) -> Path:
    """train/dev/test.tsv (label \\t clause; 400/100/104 clauses), vocab.txt and config.json."""
    text = (reference_dir / "data" / "news_zh_1.txt").read_text(encoding="utf-8")
    clauses = sorted({c.strip() for c in re.split(r"[。！？，；：\n]", text) if 4 <= len(c.strip()) <= 40})
    random.Random(0).shuffle(clauses)
    assert len(clauses) > 600
    d = tmp_path_factory.mktemp("news")
    for name, part in (("train", clauses[:400]), ("dev", clauses[400:500]), ("test", clauses[500:604])):
        rows = [("yes" if "的" in c else "no") + "\t" + c for c in part]
        (d / f"{name}.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    chars = sorted({ch for c in clauses for ch in c})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + chars + ["##" + ch for ch in chars if ch.isascii()]
    (d / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (d / "config.json").write_text(json.dumps(dict(CONFIG, vocab_size=len(vocab))))
    return d


def gold(path: Path) -> np.ndarray:
    return np.array([line.split("\t")[0] == "yes" for line in path.read_text(encoding="utf-8").splitlines()], int)


def common_flags(news: Path, out: Path) -> list[str]:
    return [f"--data_dir={news}", f"--vocab_file={news / 'vocab.txt'}", f"--bert_config_file={news / 'config.json'}",
            f"--output_dir={out}", "--task_name=text_classification", f"--max_seq_length={SEQ}",
            "--eval_batch_size=32", "--predict_batch_size=32"]


@pytest.fixture(scope="module")
def fine_tuned(news, tmp_path_factory) -> tuple[Path, str]:
    """One fine-tuning run: 400 × 4 epochs / 16 = 100 steps, a checkpoint (and a dev evaluation) every 25."""
    out = tmp_path_factory.mktemp("fine_tuned")
    done = run_cli("run_classifier.py", *common_flags(news, out), "--do_train=true", "--do_eval=true",
                   "--do_predict=true", "--train_batch_size=16", "--learning_rate=1e-3", "--num_train_epochs=4",
                   "--save_checkpoints_steps=25", "--iterations_per_loop=25", "--keep_checkpoint_max=10")
    return out, done.stdout


def features_of(out: Path, split: str) -> dict[str, np.ndarray]:
    """The cached features of ``split`` (one file per split in a fresh output_dir), as arrays."""
    [path] = (out / "features").glob(f"{split}-*.tf_record")
    batches = list(input_pipeline.make_dataset([str(path)], input_pipeline.classifier_features(SEQ), 1000,
                                               is_training=False))
    return {k: np.concatenate([b[k].numpy() for b in batches]) for k in batches[0]}


def probabilities(model, features: dict[str, np.ndarray]) -> np.ndarray:
    inputs = {k: tf.constant(features[k]) for k in ("input_ids", "input_mask", "segment_ids")}
    return model(inputs, training=False)["probabilities"].numpy()


def test_fine_tuning_beats_the_majority_class(fine_tuned, news):
    out, stdout = fine_tuned
    results = training.read_key_values(str(out / "eval_results.txt"))
    majority = max(gold(news / "dev.tsv").mean(), 1 - gold(news / "dev.tsv").mean())
    accuracy = float(results["eval_accuracy"])
    print(f"dev accuracy {accuracy:.3f} (majority class {majority:.3f}), macro-F1 {results['eval_macro_f1']}")
    assert accuracy >= majority + 0.25 and accuracy >= 0.85, stdout[-3000:]
    assert float(results["eval_macro_f1"]) >= 0.8 and float(results["eval_loss"]) < 0.5
    assert "train features: 400/400 examples" in stdout and "= 100 steps (10 warmup)" in stdout
    assert (out / "label_list.txt").read_text() == "no\nyes\n"


def test_predict_writes_one_line_per_test_example_in_order(fine_tuned, news):
    out, _ = fine_tuned
    rows = np.array([[float(x) for x in line.split("\t")]
                     for line in (out / "test_results.tsv").read_text().splitlines()])
    labels = gold(news / "test.tsv")
    assert rows.shape == (len(labels), 2) == (104, 2)  # 104 = 3 × 32 + 8: the partial last batch is kept
    np.testing.assert_allclose(rows.sum(1), 1.0, atol=1e-5)
    test_accuracy = float(np.mean(rows.argmax(1) == labels))  # label-list order: no, yes
    print(f"test accuracy {test_accuracy:.3f}")
    assert test_accuracy >= 0.8


def test_best_dev_checkpoint_is_the_best_of_all_checkpoints(fine_tuned, news):
    out, stdout = fine_tuned
    best = training.read_key_values(str(out / "best_checkpoint.txt"))
    config = modeling.AlbertConfig.from_json_file(str(news / "config.json"))
    dev = features_of(out, "dev")
    model = modeling.AlbertClassifier(config, 2)
    model.build()
    accuracy = {}
    for index in sorted(out.glob("ckpt-*.index")):
        tf.train.Checkpoint(model=model).restore(str(index)[:-len(".index")]).expect_partial()
        accuracy[int(index.stem.split("-")[1])] = float(np.mean(probabilities(model, dev).argmax(1)
                                                                == dev["label_ids"]))
    print(f"dev accuracy per checkpoint {accuracy}, reported best {best}")
    assert sorted(accuracy) == [25, 50, 75, 100]
    top = max(accuracy.values())
    assert float(best["accuracy"]) == pytest.approx(top, abs=1e-6)
    assert int(best["step"]) == min(s for s, a in accuracy.items() if a == top)  # the earliest of equals
    history = [line.split("\t") for line in (out / "dev_history.tsv").read_text().splitlines()[1:]]
    assert {int(s): float(a) for s, a, _ in history} == pytest.approx(accuracy, abs=1e-6)
    # best/ holds a copy (the CheckpointManager may delete the original) that later runs pick up.
    for name in (f"ckpt-{best['step']}.index", f"ckpt-{best['step']}.data-00000-of-00001"):
        assert (out / "best" / name).read_bytes() == (out / name).read_bytes()
    assert checkpoints.resolve_checkpoint_path(str(out / "best")) == str(out / "best" / f"ckpt-{best['step']}")
    assert training.read_key_values(str(out / "eval_results.txt"))["global_step"] == best["step"]
    assert f"using the best dev checkpoint: step {best['step']}" in stdout


_SELECTION = textwrap.dedent("""
    import os, sys
    import tensorflow as tf
    import finetuning
    out = sys.argv[1]
    variable = tf.Variable(0.0)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=variable), out, max_to_keep=1)
    dev = iter([0.5, 0.8, 0.7, 0.8])
    best = finetuning.BestCheckpoint(out, lambda: {"accuracy": next(dev), "loss": 1.0}, chief=True)
    for step in range(1, 5):
        variable.assign(float(step))
        best(manager.save(checkpoint_number=step), step)
    assert sorted(f for f in os.listdir(out) if f.endswith(".index")) == ["ckpt-4.index"]  # max_to_keep deleted 2
    record = finetuning.read_best(out)
    assert record["step"] == "2" and float(record["accuracy"]) == 0.8, record
    tf.train.Checkpoint(v=variable).restore(record["checkpoint"]).assert_consumed()
    assert float(variable.numpy()) == 2.0
    resumed = finetuning.BestCheckpoint(out, lambda: {"accuracy": 0.75, "loss": 1.0}, chief=True)
    resumed(manager.save(checkpoint_number=5), 5)  # a resumed run keeps the better earlier best
    assert finetuning.read_best(out)["step"] == "2"
    lines = open(os.path.join(out, "dev_history.tsv")).read().splitlines()
    assert lines[0] == "step\taccuracy\tloss" and [l.split("\t")[1] for l in lines[1:]] == [
        "0.5", "0.8", "0.7", "0.8", "0.75"], lines
    print("ok")
""")


def test_best_checkpoint_survives_max_to_keep_and_resume(tmp_path):
    """BestCheckpoint with scripted dev accuracies (the best is neither first nor last; ties keep the earliest)."""
    done = subprocess.run([sys.executable, "-c", _SELECTION, str(tmp_path)], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip().endswith("ok"), done.stdout[-2000:] + done.stderr[-3000:]


_SERVE = textwrap.dedent("""
    import importlib.util, sys
    import numpy as np
    import tensorflow as tf
    assert importlib.util.find_spec("modeling") is None and importlib.util.find_spec("run_classifier") is None
    inputs = dict(np.load("inputs.npz"))
    serve = tf.saved_model.load(sys.argv[1]).signatures["serving_default"]
    np.save("probabilities.npy", serve(**{k: tf.constant(v) for k, v in inputs.items()})["probabilities"].numpy())
""")


def test_saved_model_reproduces_the_predictions_in_a_fresh_process(fine_tuned, tmp_path):
    out, _ = fine_tuned
    test = features_of(out, "test")
    np.savez(tmp_path / "inputs.npz", **{k: test[k] for k in ("input_ids", "input_mask", "segment_ids")})
    env = {k: v for k, v in ENV.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-I", "-c", _SERVE, str(out / "saved_model")], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    served = np.load(tmp_path / "probabilities.npy")
    written = np.array([[float(x) for x in line.split("\t")]
                        for line in (out / "test_results.tsv").read_text().splitlines()])
    np.testing.assert_allclose(served, written, atol=1e-5)
    assert np.std(written[:, 1]) > 0.1  # real predictions, not a constant


@pytest.mark.parametrize("family", ["brightmart", "google"])
def test_init_from_a_tf1_checkpoint(news, tmp_path, family):
    """brightmart: a TF1 fine-tuned AFQMC classifier; run_classifier --do_predict on CLUE's test.json (no labels)
    must predict what it predicts, in test_results.tsv and afqmc_predict.json.
    google: a TF1 pretraining checkpoint (MLM/SOP heads, no classifier) with a config that does not name the family,
    fine-tuned with learning rate 0: the exported backbone must give the checkpoint's pooled output."""
    config_dict = json.loads((news / "config.json").read_text())
    config = modeling.AlbertConfig.from_dict(dict(config_dict, model_family=family))
    source = (modeling.AlbertClassifier(config, 2) if family == "brightmart" else
              modeling.AlbertPretrainingModel(config))
    source.build()
    randomize(source, seed=3)
    prefix = checkpoints.write_tf1_checkpoint(source, str(tmp_path / "tf1" / "model.ckpt"), global_step=7)
    out = tmp_path / "out"
    flags = common_flags(news, out) + [f"--init_checkpoint={prefix}"]
    if family == "brightmart":
        clauses = [line.split("\t")[1] for line in (news / "test.tsv").read_text(encoding="utf-8").splitlines()]
        afqmc = tmp_path / "afqmc"
        afqmc.mkdir()
        (afqmc / "test.json").write_text("".join(
            json.dumps({"id": 1000 + i, "sentence1": a, "sentence2": b}, ensure_ascii=False) + "\n"
            for i, (a, b) in enumerate(zip(clauses[:50], clauses[50:100]))), encoding="utf-8")
        flags += [f"--data_dir={afqmc}", "--task_name=afqmc", "--do_predict=true"]
    else:
        flags += ["--do_train=true", "--learning_rate=0", "--num_train_epochs=0.05", "--train_batch_size=8"]
    done = run_cli("run_classifier.py", *flags)
    assert f"Loaded TF1 checkpoint {prefix} ({family} family)" in done.stdout, done.stdout[-3000:]
    test = features_of(out, "test" if family == "brightmart" else "train")
    if family == "brightmart":
        written = np.array([[float(x) for x in line.split("\t")]
                            for line in (out / "test_results.tsv").read_text().splitlines()])
        np.testing.assert_allclose(written, probabilities(source, test), atol=1e-5)
        assert written.shape == (50, 2) and np.std(written[:, 0]) > 0.05
        predicted = [json.loads(line) for line in (out / "afqmc_predict.json").read_text().splitlines()]
        assert predicted == [{"id": 1000 + i, "label": str(c)} for i, c in enumerate(written.argmax(1))]
    else:
        assert "using 'google'" in done.stdout and "classifier head" in done.stdout
        served = tf.saved_model.load(str(out / "saved_model")).signatures["serving_default"]
        inputs = {k: tf.constant(test[k]) for k in ("input_ids", "input_mask", "segment_ids")}
        expected = source.albert(inputs, training=False)["pooled_output"].numpy()
        np.testing.assert_allclose(served(**inputs)["pooled_output"].numpy(), expected, atol=1e-5)


def test_malformed_row_fails_naming_file_and_line(news, tmp_path):
    data = tmp_path / "lcqmc"
    data.mkdir()
    (data / "train.txt").write_text("今天\t明天\t1\n昨天\t后天\t0\n坏行没有标签\n", encoding="utf-8")
    flags = [f"--data_dir={data}", f"--vocab_file={news / 'vocab.txt'}", f"--bert_config_file={news / 'config.json'}",
             f"--output_dir={tmp_path / 'out'}", "--task_name=lcqmc", "--do_train=true"]
    done = run_cli("run_classifier.py", *flags, "--max_seq_length=32", ok=False)
    assert done.returncode != 0 and f"{data / 'train.txt'}:3: 1 tab-separated columns, expected 3" in done.stderr


# ---------------------------------------------------------------------------------------------------------------------
# extract_features.py
# ---------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def backbone_ckpt(news, tmp_path_factory):
    config = modeling.AlbertConfig.from_json_file(str(news / "config.json"))
    source = modeling.AlbertPretrainingModel(config)
    source.build()
    randomize(source, seed=5)
    return checkpoints.write_tf1_checkpoint(source, str(tmp_path_factory.mktemp("bb") / "model.ckpt")), source


def one_by_one(model, tokenizer, texts: list[str], pooling: str) -> np.ndarray:
    """Each text alone, unpadded: what batching and padding must not change."""
    rows = []
    for text in texts:
        ids, mask, segments, _ = classifier_data.encode_text(tokenizer, text, None, SEQ, pad=False)
        out = model({"input_ids": tf.constant([ids]), "input_mask": tf.constant([mask]),
                     "segment_ids": tf.constant([segments])}, training=False)
        rows.append(out["pooled_output"][0].numpy() if pooling == "cls" else out["sequence_output"][0].numpy().mean(0))
    return np.array(rows)


def test_extract_features_cli_writes_vectors(news, backbone_ckpt, tmp_path):
    prefix, source = backbone_ckpt
    texts = [line.split("\t")[1] for line in (news / "dev.tsv").read_text(encoding="utf-8").splitlines()[:7]] + [""]
    (tmp_path / "in.txt").write_text("\n".join(texts) + "\n", encoding="utf-8")
    run_cli("extract_features.py", f"--input_file={tmp_path / 'in.txt'}", f"--vocab_file={news / 'vocab.txt'}",
            f"--output_file={tmp_path / 'v.npy'},{tmp_path / 'v.jsonl'}", f"--bert_config_file={news / 'config.json'}",
            f"--init_checkpoint={prefix}", "--pooling=mean", "--batch_size=3", f"--max_seq_length={SEQ}")
    vectors = np.load(tmp_path / "v.npy")
    tokenizer = tokenization.FullTokenizer(str(news / "vocab.txt"))
    np.testing.assert_allclose(vectors, one_by_one(source.albert, tokenizer, texts, "mean"), atol=1e-5)
    records = [json.loads(line) for line in (tmp_path / "v.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["text"] for r in records] == texts and [r["line"] for r in records] == list(range(1, 9))
    np.testing.assert_allclose([r["vector"] for r in records], vectors, rtol=1e-6)


def test_pair_similarities_in_batches(news, backbone_ckpt, tmp_path):
    import extract_features

    prefix, source = backbone_ckpt
    tokenizer = tokenization.FullTokenizer(str(news / "vocab.txt"))
    encoder = extract_features.load_encoder(str(news / "config.json"), prefix, tokenizer, SEQ, "cls")
    texts = [line.split("\t")[1] for line in (news / "test.tsv").read_text(encoding="utf-8").splitlines()[:10]]
    pairs = list(zip(texts[:5], texts[5:]))
    scores = extract_features.pair_similarities(encoder, pairs, batch_size=4)
    a = one_by_one(source.albert, tokenizer, texts[:5], "cls")
    b = one_by_one(source.albert, tokenizer, texts[5:], "cls")
    expected = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    (tmp_path / "pairs.txt").write_text("一\t二\n只有一段\n", encoding="utf-8")
    with pytest.raises(classifier_data.DataFormatError, match=r"pairs.txt:2: 1 tab-separated fields, expected 2"):
        extract_features.read_inputs(str(tmp_path / "pairs.txt"), pairs=True)



def test_pair_scores_come_from_the_classifier_head_when_there_is_one(news, backbone_ckpt, tmp_path):
    """with a fine-tuned 2-label head, --pair_score=auto scores [CLS] a [SEP] b [SEP] with it (the original's
    similarity.py); a backbone gives the cosine; the output says which. 13.17: outputs are checked before anything
    is encoded, and a run killed before the end leaves no file under the output's name."""
    config = modeling.AlbertConfig.from_json_file(str(news / "config.json"))
    classifier = modeling.AlbertClassifier(config, 2)
    classifier.build()
    randomize(classifier, seed=9)
    prefix = checkpoints.write_tf1_checkpoint(classifier, str(tmp_path / "clf" / "model.ckpt"))
    texts = [line.split("\t")[1] for line in (news / "test.tsv").read_text(encoding="utf-8").splitlines()[:10]]
    pairs = list(zip(texts[:5], texts[5:]))
    (tmp_path / "pairs.txt").write_text("".join(f"{a}\t{b}\n" for a, b in pairs), encoding="utf-8")
    common = [f"--input_file={tmp_path / 'pairs.txt'}", "--input_format=pairs", f"--vocab_file={news / 'vocab.txt'}",
              f"--bert_config_file={news / 'config.json'}", "--batch_size=2", f"--max_seq_length={SEQ}"]
    done = run_cli("extract_features.py", *common, f"--init_checkpoint={prefix}",
                   f"--output_file={tmp_path / 's.txt'},{tmp_path / 's.jsonl'}")
    assert "pair score: classifier" in done.stdout
    tokenizer = tokenization.FullTokenizer(str(news / "vocab.txt"), split_special_tokens=True)
    expected = []
    for a, b in pairs:
        ids, mask, segments, _ = classifier_data.encode_text(tokenizer, a, b, SEQ, pad=False)
        out = classifier({"input_ids": tf.constant([ids]), "input_mask": tf.constant([mask]),
                          "segment_ids": tf.constant([segments])}, training=False)
        expected.append(float(out["probabilities"][0, 1]))
    scores = [float(x) for x in (tmp_path / "s.txt").read_text().split()]
    np.testing.assert_allclose(scores, expected, atol=1e-5)
    records = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text(encoding="utf-8").splitlines()]
    assert {r["score_type"] for r in records} == {"classifier"} and [r["line"] for r in records] == [1, 2, 3, 4, 5]

    backbone, _ = backbone_ckpt
    done = run_cli("extract_features.py", *common, f"--init_checkpoint={backbone}",
                   f"--output_file={tmp_path / 'c.txt'}")
    assert "pair score: cosine" in done.stdout
    done = run_cli("extract_features.py", *common, f"--init_checkpoint={backbone}", "--pair_score=classifier",
                   f"--output_file={tmp_path / 'x.txt'}", ok=False)
    assert done.returncode == 1 and "needs a fine-tuned 2-label classifier head" in done.stderr

    # Checked first: a vectors output with a scores-only extension fails before any model is read (none exists).
    done = run_cli("extract_features.py", f"--input_file={tmp_path / 'pairs.txt'}",
                   f"--vocab_file={news / 'vocab.txt'}", f"--bert_config_file={news / 'config.json'}",
                   f"--init_checkpoint={tmp_path / 'none'}",
                   f"--output_file={tmp_path / 'v.txt'}", ok=False)
    assert "should end in .npy or .jsonl for vectors" in done.stderr
    killed = subprocess.run(
        [sys.executable, "-c", "import os, sys; sys.argv[0] = 'extract_features.py'; import extract_features as e; "
         "e.OutputWriters.commit = lambda self: os._exit(9); e.define_flags(); "
         "from absl import app; app.run(e.main, argv=['extract_features.py'] + sys.argv[1:])",
         *common, f"--init_checkpoint={prefix}", f"--output_file={tmp_path / 'k.jsonl'}"],
        env=ENV, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert killed.returncode == 9, killed.stderr[-2000:]
    assert not (tmp_path / "k.jsonl").exists()
