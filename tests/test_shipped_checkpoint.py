"""pretrained/albert_demo_zh, the checkpoint the demo ships: complete, small, loadable, and it has learned Chinese.

"Learned" is measured on text it never saw (the reference sample corpus: modern news, not People's Daily 1998), masked
as in its pretraining (whole words, 25%): its masked-LM cross-entropy must be below the unigram entropy of the masked
tokens themselves (the best any context-blind predictor can do on them) and its accuracy well above always guessing
the commonest masked token.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import tensorflow as tf

import checkpoints
import create_pretraining_data
import input_pipeline
import modeling

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "pretrained" / "albert_demo_zh"
sys.path.insert(0, str(REPO / "data"))
import demo_report  # noqa: E402


def test_files_size_and_records():
    weights = sorted(SHIPPED.glob("model.ckpt-*"))
    assert {p.suffix for p in weights} == {".index", ".data-00000-of-00001", ".meta"}
    size = sum(p.stat().st_size for p in weights)
    assert size < 15 * 2**20, f"{size / 2**20:.1f} MB"
    config = json.loads((SHIPPED / "albert_config.json").read_text())
    vocab = (SHIPPED / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert config["vocab_size"] == len(vocab)
    assert modeling.AlbertConfig.from_json_file(str(SHIPPED / "albert_config.json")).model_family == "google"
    entropy = json.loads((SHIPPED / "masked_token_entropy.json").read_text())["news"]
    record = demo_report.read_key_values(SHIPPED / "eval_results.txt")
    curve = demo_report.read_curve(SHIPPED / "progress.jsonl")
    assert curve[0][1] > entropy > curve[-1][1]  # the recorded training left the unigram plateau ...
    assert record["masked_lm_loss"] < entropy - 0.5  # ... and so did held-out news
    assert record["global_step"] == curve[-1][0]
    assert (SHIPPED / "make.sh").exists()


@pytest.fixture(scope="module")
def shipped_model():
    config = modeling.AlbertConfig.from_json_file(str(SHIPPED / "albert_config.json"))
    model = modeling.AlbertPretrainingModel(config)
    model.build()
    report = checkpoints.load_checkpoint(model, str(SHIPPED), verbose=False)
    return model, report


def test_loads_completely_through_the_one_loader(shipped_model):
    _, report = shipped_model
    assert not report.missing and not report.unused, report


def test_predicts_masked_words_of_unseen_news_from_context(shipped_model, reference_dir, tmp_path):
    model, _ = shipped_model
    records = str(tmp_path / "reference.tfrecord")  # its own masking (whole words, 25%) on text it never saw
    assert create_pretraining_data.main([
        f"--input_file={reference_dir / 'data' / 'news_zh_1.txt'}", f"--output_file={records}",
        f"--vocab_file={SHIPPED / 'vocab.txt'}", "--do_lower_case=true", "--do_whole_word_mask=true",
        "--max_seq_length=64", "--max_predictions_per_seq=16", "--masked_lm_prob=0.25", "--dupe_factor=5",
        "--random_seed=1"]) == 0
    loss_sum = hits = n = 0.0
    for batch in input_pipeline.make_dataset([records], input_pipeline.pretraining_features(64, 16), 256,
                                             is_training=False):
        logits = model({k: batch[k] for k in ("input_ids", "input_mask", "segment_ids", "masked_lm_positions")},
                       training=False)["mlm_logits"]
        labels, weights = batch["masked_lm_ids"], batch["masked_lm_weights"].numpy()
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=logits).numpy()
        loss_sum += (loss * weights).sum()
        hits += ((logits.numpy().argmax(-1) == labels.numpy()) * weights).sum()
        n += weights.sum()
    counts = demo_report.masked_token_counts([records])
    entropy = demo_report.unigram_entropy(counts)  # the best any context-blind predictor does on these targets
    majority = max(counts.values()) / n  # always guessing the commonest masked token
    assert n > 5000
    # Measured when it was made: cross-entropy 5.73 against 6.20, accuracy 0.167 against 0.044.
    assert loss_sum / n < entropy - 0.3, (loss_sum / n, entropy)
    assert hits / n > 3 * majority, (hits / n, majority)
