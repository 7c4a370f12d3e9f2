"""data/demo_report.py: the masked-token unigram entropy, results.json's schema and report.png, on tiny files."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import demo_report  # noqa: E402

import training  # noqa: E402


def _example(masked_ids: list[int], weights: list[float]) -> bytes:
    feature = {"masked_lm_ids": tf.train.Feature(int64_list=tf.train.Int64List(value=masked_ids)),
               "masked_lm_weights": tf.train.Feature(float_list=tf.train.FloatList(value=weights)),
               "input_ids": tf.train.Feature(int64_list=tf.train.Int64List(value=[2, 5, 7, 3]))}
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def test_entropy_of_masked_tokens_equals_a_hand_count(tmp_path):
    path = str(tmp_path / "data.tfrecord")
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(_example([7, 7, 9, 0], [1, 1, 1, 0]))  # the last slot is padding: weight 0, not counted
        writer.write(_example([7, 11, 0, 0], [1, 1, 0, 0]))
    counts = demo_report.masked_token_counts([path])
    assert counts == {7: 3, 9: 1, 11: 1}
    # By hand: p = 3/5, 1/5, 1/5.
    by_hand = -(0.6 * math.log(0.6) + 2 * 0.2 * math.log(0.2))
    assert demo_report.unigram_entropy(counts) == pytest.approx(by_hand, abs=1e-12)
    assert demo_report.unigram_entropy({1: 4}) == 0.0
    assert demo_report.unigram_entropy({i: 1 for i in range(8)}) == pytest.approx(math.log(8))
    with pytest.raises(ValueError, match="empty"):
        demo_report.unigram_entropy({})


def test_entropy_cli_writes_the_json(tmp_path):
    data = tmp_path / "x.tfrecord"
    with tf.io.TFRecordWriter(str(data)) as writer:
        writer.write(_example([4, 5], [1, 1]))
    assert demo_report.main(["--demo_output", str(tmp_path), f"--entropy=reviews={data}"]) == 0
    assert json.loads((tmp_path / "masked_token_entropy.json").read_text()) == {"reviews": round(math.log(2), 4)}
    with pytest.raises(SystemExit, match="no TFRecord matches"):
        demo_report.main(["--demo_output", str(tmp_path), "--entropy", f"news={tmp_path / 'missing*'}"])


def _fake_finetune(run: Path, dev_accuracy: float, probabilities: np.ndarray, labels: list[str]) -> None:
    run.mkdir(parents=True)
    (run / "eval_results.txt").write_text(f"eval_accuracy = {dev_accuracy}\neval_loss = 0.5\nglobal_step = 100\n")
    (run / "label_list.txt").write_text("".join(f"{label}\n" for label in labels))
    (run / "test_results.tsv").write_text("".join("\t".join(str(p) for p in row) + "\n" for row in probabilities))


def _fake_pretrained(run: Path, loss: float, curve: list[tuple[int, float]]) -> None:
    run.mkdir(parents=True)
    (run / "eval_results.txt").write_text(
        f"global_step = {curve[-1][0] if curve else 0}\nmasked_lm_accuracy = 0.3\nmasked_lm_loss = {loss}\n"
        "sentence_order_accuracy = 0.7\nsentence_order_loss = 0.55\nnext_sentence_accuracy = 0.7\n")
    for step, value in curve:
        training.append_progress(str(run), step, float(step), {"masked_lm_loss": value})


def _fake_demo(tmp_path: Path) -> tuple[Path, Path]:
    out, shipped = tmp_path / "demo", tmp_path / "shipped"
    (out / "tasks" / "sentiment").mkdir(parents=True)
    (out / "tasks" / "pairs").mkdir(parents=True)
    (out / "tasks" / "sentiment" / "test.tsv").write_text("label\ttext\npos\t好\nneg\t差\npos\t不错\nneg\t烂\n")
    (out / "tasks" / "pairs" / "test.txt").write_text("甲\t乙\t1\n丙\t丁\t0\n")
    sentiment = ["neg", "pos"]
    right = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])  # 4 of 4 right
    _fake_finetune(out / "finetune_sentiment_random_init", 0.70, right[::-1], sentiment)  # 0 of 4 right
    _fake_finetune(out / "finetune_sentiment_shipped", 0.74, right, sentiment)
    _fake_finetune(out / "finetune_sentiment_domain_adapted", 0.755, right, sentiment)
    _fake_finetune(out / "finetune_pairs_shipped", 0.64, np.array([[0.2, 0.8], [0.1, 0.9]]), ["0", "1"])
    _fake_pretrained(shipped, 4.1, [(100, 7.5), (200, 6.2), (300, 5.0)])
    _fake_pretrained(out / "eval_shipped_on_reviews", 5.9, [])
    _fake_pretrained(out / "domain_adapted", 4.9, [(50, 5.8), (100, 5.1)])
    (shipped / "masked_token_entropy.json").write_text('{"news": 6.4}')
    (out / "masked_token_entropy.json").write_text('{"reviews": 6.1}')
    (out / "timings.tsv").write_text("install\t30\ndata\t20\nfinetune_random_init\t60\n")
    return out, shipped


def test_results_json_has_the_promised_fields_and_report_png_is_written(tmp_path, capsys):
    out, shipped = _fake_demo(tmp_path)
    assert demo_report.main(["--demo_output", str(out), "--shipped_dir", str(shipped)]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["sentiment_dev_accuracy_pretrained"] == 0.755
    assert results["sentiment_dev_accuracy_random_init"] == 0.70
    assert results["sentiment_gain_points"] == pytest.approx(5.5)
    assert results["pairs_dev_accuracy_pretrained"] == 0.64
    assert results["goals"]["met"] is True
    assert results["finetuned"]["sentiment_random_init"]["test_accuracy"] == 0.0
    assert results["finetuned"]["sentiment_domain_adapted"]["test_accuracy"] == 1.0
    assert results["finetuned"]["pairs_shipped"]["test_accuracy"] == 0.5
    models = results["pretrained_models"]
    assert set(models) == {"shipped", "shipped_on_reviews", "domain_adapted"}
    assert models["shipped"]["masked_lm_loss"] == 4.1 and models["shipped"]["sentence_order_accuracy"] == 0.7
    assert models["domain_adapted"]["curve"] == [[50, 5.8], [100, 5.1]]
    assert results["masked_token_unigram_entropy_nats"] == {"news": 6.4, "reviews": 6.1}
    assert results["stage_seconds"] == {"install": 30.0, "data": 20.0, "finetune_random_init": 60.0}
    assert results["total_seconds"] == 110.0
    png = (out / "report.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) > 10_000
    printed = capsys.readouterr().out
    assert "+5.5 points" in printed and "0.6400" in printed


def test_arms_fine_tuned_with_several_seeds_report_the_mean_and_each_seed(tmp_path, capsys):
    out, shipped = _fake_demo(tmp_path)
    right = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    _fake_finetune(out / "finetune_sentiment_random_init_seed1", 0.74, right, ["neg", "pos"])  # 4 of 4 right
    _fake_finetune(out / "finetune_sentiment_domain_adapted_seed1", 0.76, right, ["neg", "pos"])
    demo_report.main(["--demo_output", str(out), "--shipped_dir", str(shipped)])
    results = json.loads((out / "results.json").read_text())
    random_init = results["finetuned"]["sentiment_random_init"]
    assert results["sentiment_dev_accuracy_random_init"] == pytest.approx(0.72) and random_init["test_accuracy"] == 0.5
    assert set(random_init["seeds"]) == {"first", "seed1"} and random_init["seeds"]["seed1"]["dev_accuracy"] == 0.74
    assert results["sentiment_dev_accuracy_pretrained"] == pytest.approx(0.7575)
    assert results["sentiment_gain_points"] == pytest.approx(3.75)
    assert results["sentiment_gain_points_per_seed"] == {"first": 5.5, "seed1": 2.0}
    assert "per seed: +5.5, +2.0" in capsys.readouterr().out


def test_a_missed_goal_is_reported_as_missed(tmp_path):
    out, shipped = _fake_demo(tmp_path)
    (out / "finetune_sentiment_domain_adapted" / "eval_results.txt").write_text(
        "eval_accuracy = 0.71\nglobal_step = 100\n")
    demo_report.main(["--demo_output", str(out), "--shipped_dir", str(shipped)])
    results = json.loads((out / "results.json").read_text())
    assert results["sentiment_gain_points"] == pytest.approx(1.0) and results["goals"]["met"] is False


def test_predictions_that_do_not_match_the_test_file_are_an_error(tmp_path):
    out, shipped = _fake_demo(tmp_path)
    with open(out / "finetune_pairs_shipped" / "test_results.tsv", "a") as f:
        f.write("0.5\t0.5\n")
    with pytest.raises(ValueError, match="3 rows but .* 2 examples"):
        demo_report.main(["--demo_output", str(out), "--shipped_dir", str(shipped)])


def test_progress_log_skips_a_killed_runs_partial_line_and_keeps_the_latest_record_per_step(tmp_path):
    training.append_progress(str(tmp_path), 100, 1.0, {"masked_lm_loss": 7.0})
    training.append_progress(str(tmp_path), 200, 2.0, {"masked_lm_loss": 6.0})
    training.append_progress(str(tmp_path), 200, 2.5, {"masked_lm_loss": 5.5})  # a resumed run redoes step 200
    with open(tmp_path / training.PROGRESS_FILE, "a") as f:
        f.write('{"step": 300, "masked_lm_lo')
    assert demo_report.read_curve(tmp_path / training.PROGRESS_FILE) == [(100, 7.0), (200, 5.5)]
