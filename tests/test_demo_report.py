"""data/demo_report.py: the masked-token unigram entropy, results.json's schema (results on test, dev only as the
selection set), the goals, report.png and clear errors, on a tiny fake demo output."""

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

import cli  # noqa: E402
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


def test_read_key_values_skips_words_and_names_a_bad_line(tmp_path):
    path = tmp_path / "eval_results.txt"
    path.write_text("eval_f1 = 0.5\nglobal_step = 300\nnote = best\n\n")
    assert demo_report.read_key_values(path) == {"eval_f1": 0.5, "global_step": 300.0}
    path.write_text("eval_f1 = 0.5\neval_em: 3\n")
    with pytest.raises(ValueError, match=r"eval_results.txt:2: expected 'key = value'"):
        demo_report.read_key_values(path)


def test_progress_log_skips_a_killed_runs_partial_line_and_keeps_the_latest_record_per_step(tmp_path):
    training.append_progress(str(tmp_path), 100, 1.0, {"masked_lm_loss": 7.0})
    training.append_progress(str(tmp_path), 200, 2.0, {"masked_lm_loss": 6.0})
    training.append_progress(str(tmp_path), 200, 2.5, {"masked_lm_loss": 5.5})  # a resumed run redoes step 200
    with open(tmp_path / training.PROGRESS_FILE, "a") as f:
        f.write('{"step": 300, "masked_lm_lo')
    assert demo_report.read_curve(tmp_path / training.PROGRESS_FILE) == [(100, 7.0), (200, 5.5)]


# ---------------------------------------------------------------------------------------------------------------------
# A fake demo output. Dev and test numbers differ everywhere, so a report that mixes them up fails.
# ---------------------------------------------------------------------------------------------------------------------

LABELS = ["neg", "pos"]
RIGHT = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])  # every row right for test.tsv below


def _predictions(n_right: int) -> np.ndarray:
    """test_results.tsv rows with the first ``n_right`` of the four right, the rest wrong."""
    return np.concatenate([RIGHT[:n_right], RIGHT[n_right:, ::-1]])


def _fake_sentiment(run: Path, dev_accuracy: float, n_right: int, step: int = 100) -> None:
    run.mkdir(parents=True)
    (run / "eval_results.txt").write_text(f"eval_accuracy = {dev_accuracy}\neval_loss = 0.5\nglobal_step = {step}\n")
    (run / "label_list.txt").write_text("".join(f"{label}\n" for label in LABELS))
    (run / "test_results.tsv").write_text(
        "".join("\t".join(str(p) for p in row) + "\n" for row in _predictions(n_right)))


def _write_scores(path: Path, scores: dict[str, float], step: int, extra: dict[str, float]) -> None:
    """As run_ner.py / run_mrc.py write them (training.write_key_values): eval_-prefixed, sorted."""
    values = {**{f"eval_{k}": v for k, v in scores.items()}, "global_step": step, **extra}
    path.write_text("".join(f"{k} = {values[k]}\n" for k in sorted(values)))


def _fake_ner(run: Path, dev_f1: float, test_f1: float, step: int = 400) -> None:
    run.mkdir(parents=True)
    for name, f1, sentences in (("eval_results.txt", dev_f1, 50), ("test_results.txt", test_f1, 60)):
        scores = {"f1": f1, "precision": f1 + 0.01, "recall": f1 - 0.01, "loss": 0.3, "accuracy": 0.9,
                  "LOC_f1": f1 + 0.05, "LOC_precision": 0.5, "LOC_support": 10, "PER_f1": f1 - 0.05, "ORG_f1": f1 / 2}
        _write_scores(run / name, scores, step, {"num_sentences": sentences})


def _fake_mrc(run: Path, dev: tuple[float, float], test: tuple[float, float], step: int = 600) -> None:
    run.mkdir(parents=True)
    for name, (f1, em) in (("eval_results.txt", dev), ("test_results.txt", test)):
        scores = {"f1": f1, "em": em, "average": (f1 + em) / 2, "who_f1": f1 + 1, "who_em": em, "who_count": 4,
                  "questions": 30, "answer_chars_mean": 3.5, "loss": 2.0}
        _write_scores(run / name, scores, step, {})


def _fake_pretrained(run: Path, loss: float, accuracy: float, curve: list[tuple[int, float]], step: int) -> None:
    run.mkdir(parents=True)
    (run / "eval_results.txt").write_text(
        f"global_step = {step}\nloss = {loss + 0.6}\nmasked_lm_accuracy = {accuracy}\nmasked_lm_loss = {loss}\n"
        "next_sentence_accuracy = 0.7\nnext_sentence_loss = 0.55\nsentence_order_accuracy = 0.7\n"
        "sentence_order_loss = 0.55\n")
    for s, value in curve:
        training.append_progress(str(run), s, float(s), {"masked_lm_loss": value})


def _fake_demo(tmp_path: Path) -> tuple[Path, Path]:
    """Test gains: sentiment +50 points (dev +2.5), NER +22 (dev +20), MRC F1 +15.5 (dev +15): all goals met."""
    out, shipped = tmp_path / "demo", tmp_path / "shipped"
    (out / "tasks" / "sentiment").mkdir(parents=True)
    (out / "tasks" / "sentiment" / "test.tsv").write_text("label\ttext_a\npos\t好\nneg\t差\npos\t不错\nneg\t烂\n")
    _fake_sentiment(out / "finetune_sentiment_random_init", 0.70, 2)  # test 0.5
    _fake_sentiment(out / "finetune_sentiment_random_init_seed1", 0.72, 1)  # test 0.25
    _fake_sentiment(out / "finetune_sentiment_shipped", 0.74, 4)  # test 1.0
    _fake_sentiment(out / "finetune_sentiment_shipped_seed1", 0.73, 3)  # test 0.75
    _fake_ner(out / "ner_random_init", dev_f1=0.50, test_f1=0.40)
    _fake_ner(out / "ner_shipped", dev_f1=0.70, test_f1=0.62)
    _fake_mrc(out / "mrc_random_init", dev=(30.0, 20.0), test=(25.0, 15.0))
    _fake_mrc(out / "mrc_shipped", dev=(45.0, 33.0), test=(40.5, 30.0))
    (out / "tasks" / "mrc").mkdir(parents=True)
    (out / "tasks" / "mrc" / "summary.json").write_text(json.dumps({"baselines": {
        "dev": {"nearest": {"f1": 99.0, "em": 99.0}},
        "test": {"most_frequent": {"f1": 5.5, "em": 4.0, "total": 30}, "nearest": {"f1": 12.0, "em": 9.0}}}}))
    _fake_pretrained(shipped, 5.0, 0.21, [(100, 7.5), (200, 6.2), (300, 5.1)], step=300)
    _fake_pretrained(out / "eval_shipped_on_reviews", 5.9, 0.15, [], step=300)
    (shipped / "masked_token_entropy.json").write_text('{"news": 6.4}')
    (out / "masked_token_entropy.json").write_text('{"reviews": 6.1}')
    (out / "timings.tsv").write_text("install\t30\ndata\t20\nshipped_eval\t10\nsentiment_random_init\t60\n"
                                     "sentiment_shipped\t62\nner_random_init\t100\nner_shipped\t101\n"
                                     "mrc_random_init\t200\nmrc_shipped\t199\n")
    return out, shipped


def _report(out: Path, shipped: Path) -> dict:
    assert demo_report.main(["--demo_output", str(out), "--shipped_dir", str(shipped)]) == 0
    return json.loads((out / "results.json").read_text())


REQUIRED = [
    "sentiment_test_accuracy_pretrained", "sentiment_test_accuracy_random_init", "ner_test_f1_pretrained",
    "ner_test_f1_random_init", "mrc_test_f1_pretrained", "mrc_test_f1_random_init", "mrc_test_em_pretrained",
    "mrc_test_em_random_init", "sentiment_test_accuracy_pretrained_per_seed",
    "sentiment_test_accuracy_random_init_per_seed", "sentiment_test_gain_points", "ner_test_gain_points",
    "mrc_test_f1_gain_points", "goals", "stage_seconds", "total_seconds", "pretrained_models",
    "masked_token_unigram_entropy_nats", "sentiment_dev_accuracy_pretrained", "sentiment_dev_accuracy_random_init",
    "ner_dev_f1_pretrained", "ner_dev_f1_random_init", "mrc_dev_f1_pretrained", "mrc_dev_f1_random_init",
    "selection", "finetuned", "mrc_test_baselines",
]


def test_results_are_on_test_and_dev_is_labelled_as_the_selection_set(tmp_path, capsys):
    out, shipped = _fake_demo(tmp_path)
    results = _report(out, shipped)
    assert [key for key in REQUIRED if key not in results] == []
    # Every task number at the top level says which split it is on.
    assert [k for k in results if k.startswith(("sentiment_", "ner_", "mrc_")) and "_test_" not in k
            and "_dev_" not in k] == []
    assert "selection set" in results["selection"]

    # Test numbers from the test predictions (means over the seeds, and each seed) ...
    assert results["sentiment_test_accuracy_random_init"] == pytest.approx(0.375)
    assert results["sentiment_test_accuracy_pretrained"] == pytest.approx(0.875)
    assert results["sentiment_test_accuracy_random_init_per_seed"] == {"first": 0.5, "seed1": 0.25}
    assert results["sentiment_test_accuracy_pretrained_per_seed"] == {"first": 1.0, "seed1": 0.75}
    assert results["sentiment_test_gain_points"] == pytest.approx(50.0)
    assert results["sentiment_test_gain_points_per_seed"] == {"first": 50.0, "seed1": 50.0}
    assert results["ner_test_f1_random_init"] == 0.40 and results["ner_test_f1_pretrained"] == 0.62
    assert results["ner_test_gain_points"] == pytest.approx(22.0)
    assert results["mrc_test_f1_random_init"] == 25.0 and results["mrc_test_f1_pretrained"] == 40.5
    assert results["mrc_test_em_random_init"] == 15.0 and results["mrc_test_em_pretrained"] == 30.0
    assert results["mrc_test_f1_gain_points"] == pytest.approx(15.5)  # percent already: points as they are
    assert results["mrc_test_em_gain_points"] == pytest.approx(15.0)
    # ... dev numbers from eval_results.txt, under dev keys.
    assert results["sentiment_dev_accuracy_random_init"] == pytest.approx(0.71)
    assert results["sentiment_dev_accuracy_pretrained"] == pytest.approx(0.735)
    assert results["sentiment_dev_accuracy_pretrained_per_seed"] == {"first": 0.74, "seed1": 0.73}
    assert results["sentiment_dev_gain_points"] == pytest.approx(2.5)
    assert results["ner_dev_f1_random_init"] == 0.50 and results["ner_dev_f1_pretrained"] == 0.70
    assert results["mrc_dev_f1_random_init"] == 30.0 and results["mrc_dev_f1_pretrained"] == 45.0
    assert results["mrc_dev_em_pretrained"] == 33.0
    # one run per arm: no per-seed keys
    assert "ner_test_f1_pretrained_per_seed" not in results and "mrc_test_f1_gain_points_per_seed" not in results

    finetuned = results["finetuned"]
    assert set(finetuned) == {"sentiment_random_init", "sentiment_shipped", "ner_random_init", "ner_shipped",
                              "mrc_random_init", "mrc_shipped"}
    assert finetuned["sentiment_shipped"]["seeds"]["seed1"] == {"best_step": 100, "dev_accuracy": 0.73,
                                                                "test_accuracy": 0.75, "test_examples": 4}
    ner = finetuned["ner_shipped"]
    assert ner["seeds"]["first"]["best_step"] == 400 and ner["test_examples"] == 60
    assert ner["test_precision"] == pytest.approx(0.63) and ner["dev_recall"] == pytest.approx(0.69)
    assert ner["test_f1_by_type"] == pytest.approx({"LOC": 0.67, "ORG": 0.31, "PER": 0.57})
    assert ner["dev_f1_by_type"]["LOC"] == pytest.approx(0.75)
    mrc = finetuned["mrc_random_init"]
    assert mrc["test_average"] == 20.0 and mrc["dev_average"] == 25.0 and mrc["test_examples"] == 30
    assert mrc["test_f1_by_type"] == {"who": 26.0}
    assert results["mrc_test_baselines"] == {"most_frequent": {"f1": 5.5, "em": 4.0},
                                             "nearest": {"f1": 12.0, "em": 9.0}}

    goals = results["goals"]
    assert goals["split"] == "test" and goals["met"] is True
    assert goals["pretrained_at_least_random_init"] == {
        "test_gain_points": {"sentiment": 50.0, "ner": 22.0, "mrc": 15.5}, "met": True}
    assert goals["ner_f1_gain"] == {"target_points": 10.0, "test_gain_points": 22.0, "met": True}
    assert goals["mrc_f1_gain"]["target_points"] == 5.0 and goals["sentiment_accuracy_gain"]["target_points"] == 3.0

    models = results["pretrained_models"]
    assert set(models) == {"shipped_on_news", "shipped_on_reviews"}
    assert models["shipped_on_news"]["masked_lm_loss"] == 5.0 and models["shipped_on_news"]["steps"] == 300
    assert models["shipped_on_news"]["curve"] == [[100, 7.5], [200, 6.2], [300, 5.1]]
    assert models["shipped_on_reviews"]["masked_lm_accuracy"] == 0.15
    assert models["shipped_on_reviews"]["sentence_order_accuracy"] == 0.7
    assert results["masked_token_unigram_entropy_nats"] == {"news": 6.4, "reviews": 6.1}
    assert results["stage_seconds"]["mrc_shipped"] == 199.0 and results["total_seconds"] == 782.0

    png = (out / "report.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 10_000
    assert not list(out.glob("*.tmp*"))
    printed = capsys.readouterr().out
    assert ("review sentiment, test accuracy on 4 reviews: random init 0.375 -> pretrained 0.875: +50.0 points  "
            "(per seed: random init 0.500 0.250; pretrained 1.000 0.750)") in printed
    assert "NER, test entity F1 on 60 sentences: random init 0.400 -> pretrained 0.620: +22.0 points" in printed
    assert ("reading comprehension, test F1 / EM (CMRC2018, %) on 30 questions: random init 25.0 / 15.0 -> "
            "pretrained 40.5 / 30.0: F1 +15.5, EM +15.0 points") in printed
    assert "dev, the selection set" in printed and "sentiment accuracy 0.710 -> 0.735" in printed
    assert "masked-LM loss 5.000 / 5.900 against unigram entropy 6.400 / 6.100" in printed
    assert "-> all met" in printed


@pytest.mark.parametrize("task", ["sentiment", "ner", "mrc"])
def test_goals_are_judged_on_test_even_where_dev_would_meet_them(tmp_path, task):
    out, shipped = _fake_demo(tmp_path)
    if task == "sentiment":  # dev +2.5 -> +7.5 points, test below random init
        for run, dev in (("finetune_sentiment_shipped", 0.78), ("finetune_sentiment_shipped_seed1", 0.79)):
            (out / run / "eval_results.txt").write_text(f"eval_accuracy = {dev}\nglobal_step = 100\n")
            (out / run / "test_results.tsv").write_text(  # 1 of 4 right: test 0.25 < random init's 0.375
                "".join("\t".join(str(p) for p in row) + "\n" for row in _predictions(1)))
    elif task == "ner":  # dev +20 points, test +5 (goal 10)
        _write_scores(out / "ner_shipped" / "test_results.txt", {"f1": 0.45, "precision": 0.5, "recall": 0.4}, 400,
                      {"num_sentences": 60})
    else:  # dev +15 points, test +3 (goal 5)
        _write_scores(out / "mrc_shipped" / "test_results.txt", {"f1": 28.0, "em": 16.0, "average": 22.0}, 600, {})
    results = _report(out, shipped)
    goal = results["goals"][{"sentiment": "sentiment_accuracy_gain", "ner": "ner_f1_gain", "mrc": "mrc_f1_gain"}[task]]
    dev_gain = results[{"sentiment": "sentiment_dev_gain_points", "ner": "ner_dev_gain_points",
                        "mrc": "mrc_dev_f1_gain_points"}[task]]
    assert dev_gain >= goal["target_points"]  # on dev, the selection set, it would have looked met
    assert goal["met"] is False and goal["test_gain_points"] < goal["target_points"]
    assert results["goals"]["met"] is False
    assert results["goals"]["pretrained_at_least_random_init"]["met"] is (task != "sentiment")


def test_seeds_are_found_by_number_and_a_missing_run_folder_names_its_path_and_stage(tmp_path, capsys):
    out, shipped = _fake_demo(tmp_path)
    for seed in (10, 2):
        _fake_ner(out / f"ner_shipped_seed{seed}", dev_f1=0.70, test_f1=0.62 + seed / 100)
    (out / "ner_shipped_seed3.log").write_text("not a run")
    assert list(demo_report.seed_runs(out, "ner_shipped")) == ["first", "seed2", "seed10"]
    results = _report(out, shipped)
    assert results["ner_test_f1_pretrained_per_seed"] == pytest.approx({"first": 0.62, "seed2": 0.64, "seed10": 0.72})
    assert results["ner_test_f1_pretrained"] == pytest.approx(0.66)
    assert "ner_test_gain_points_per_seed" not in results  # random init has one seed: nothing to pair

    missing = out / "mrc_random_init"
    for f in missing.iterdir():
        f.unlink()
    missing.rmdir()
    with pytest.raises(FileNotFoundError, match=f"{missing} is missing: demo.sh's mrc_random_init stage"):
        demo_report.main(["--demo_output", str(out), "--shipped_dir", str(shipped)])
    # as the command line shows it: one line naming the folder, no traceback
    with pytest.raises(SystemExit) as exit_info:
        cli.clean_errors(demo_report.main)(["--demo_output", str(out), "--shipped_dir", str(shipped)])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err.splitlines()
    assert str(missing) in error[0] and "run_mrc.py" in error[0] and "Traceback" not in "".join(error)


@pytest.mark.parametrize("path, words", [
    ("ner_shipped/test_results.txt", "ner_shipped stage (run_ner.py) with --do_predict"),
    ("finetune_sentiment_random_init_seed1/eval_results.txt", "sentiment_random_init_seed1 stage (run_classifier.py)"),
    ("eval_shipped_on_reviews/eval_results.txt", "shipped_eval stage"),
    ("tasks/sentiment/test.tsv", "data stage"),
])
def test_a_missing_file_names_its_path_and_the_stage_that_writes_it(tmp_path, path, words):
    out, shipped = _fake_demo(tmp_path)
    (out / path).unlink()
    with pytest.raises(FileNotFoundError) as error:
        demo_report.main(["--demo_output", str(out), "--shipped_dir", str(shipped)])
    assert str(error.value).startswith(f"{out / path} is missing") and words in str(error.value)


def test_bad_run_files_are_errors_that_name_them(tmp_path):
    out, shipped = _fake_demo(tmp_path)
    test_file = out / "ner_random_init" / "test_results.txt"
    _write_scores(test_file, {"f1": 0.4, "precision": 0.4, "recall": 0.4}, 350, {"num_sentences": 60})
    with pytest.raises(ValueError, match=r"test_results.txt is from step 350 but .*eval_results.txt chose step 400"):
        demo_report.main(["--demo_output", str(out), "--shipped_dir", str(shipped)])
    _write_scores(test_file, {"f1": 0.4, "precision": 0.4}, 400, {"num_sentences": 60})
    with pytest.raises(ValueError, match=f"{test_file} has no eval_recall"):
        demo_report.main(["--demo_output", str(out), "--shipped_dir", str(shipped)])
    _write_scores(test_file, {"f1": 0.4, "precision": 0.4, "recall": 0.4}, 400, {"num_sentences": 59})
    with pytest.raises(ValueError, match="ner: the arms were tested on different numbers of examples"):
        demo_report.main(["--demo_output", str(out), "--shipped_dir", str(shipped)])
    _write_scores(test_file, {"f1": 0.4, "precision": 0.4, "recall": 0.4}, 400, {"num_sentences": 60})
    (out / "tasks" / "mrc" / "summary.json").write_text('{"baselines": ')
    with pytest.raises(ValueError, match=r"summary.json: not JSON"):
        demo_report.main(["--demo_output", str(out), "--shipped_dir", str(shipped)])
    (out / "tasks" / "mrc" / "summary.json").unlink()
    with open(out / "timings.tsv", "a") as f:
        f.write("mrc_shipped 12\n")
    with pytest.raises(ValueError, match=r"timings.tsv:10: expected 'stage<TAB>seconds'"):
        demo_report.main(["--demo_output", str(out), "--shipped_dir", str(shipped)])


def test_predictions_that_do_not_match_the_test_file_are_an_error(tmp_path):
    out, shipped = _fake_demo(tmp_path)
    with open(out / "finetune_sentiment_shipped" / "test_results.tsv", "a") as f:
        f.write("0.5\t0.5\n")
    with pytest.raises(ValueError, match="5 rows but .* 4 examples"):
        demo_report.main(["--demo_output", str(out), "--shipped_dir", str(shipped)])


def test_the_mrc_baselines_and_entropies_are_optional(tmp_path):
    out, shipped = _fake_demo(tmp_path)
    (out / "tasks" / "mrc" / "summary.json").unlink()
    (out / "masked_token_entropy.json").unlink()
    results = _report(out, shipped)
    assert results["mrc_test_baselines"] == {} and results["masked_token_unigram_entropy_nats"] == {"news": 6.4}
    assert (out / "report.png").read_bytes().startswith(b"\x89PNG")
