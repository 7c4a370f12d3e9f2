"""A tiny pretraining run on real sentences: the sample corpus (10 news documents, 212 sentences) through
create_pretraining_data.py and run_pretraining.py. MLM loss must fall well below its start and SOP accuracy must
rise above chance (on 10 documents the model can learn where each sentence sits in its document)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # real-corpus training through the CLIs

REPO = Path(__file__).resolve().parents[1]


def run(args: list[str]) -> str:
    proc = subprocess.run([sys.executable, *args], cwd=REPO, capture_output=True, text=True, timeout=600,
                          env={"TF_CPP_MIN_LOG_LEVEL": "2", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def metric(line: str, name: str) -> float:
    return float(line.split(f"  {name} ")[1].split()[0])


def test_tiny_pretraining_on_real_sentences(reference_dir, tmp_path):
    corpus = reference_dir / "data" / "news_zh_1.txt"
    vocab, records, config = tmp_path / "vocab.txt", tmp_path / "news.tfrecord", tmp_path / "config.json"
    run(["data/build_vocab.py", f"--input_file={corpus}", f"--output_file={vocab}"])
    run(["create_pretraining_data.py", f"--input_file={corpus}", f"--output_file={records}", f"--vocab_file={vocab}",
         "--do_lower_case=true", "--do_whole_word_mask=true", "--max_seq_length=64", "--max_predictions_per_seq=10",
         "--dupe_factor=20", "--random_seed=1"])
    vocab_size = sum(1 for _ in open(vocab, encoding="utf-8"))
    config.write_text(json.dumps({
        "vocab_size": vocab_size, "hidden_size": 128, "embedding_size": 64, "num_hidden_layers": 2,
        "num_attention_heads": 4, "intermediate_size": 256, "max_position_embeddings": 64, "ln_type": "preln",
        "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0}))
    out = run(["run_pretraining.py", f"--bert_config_file={config}", f"--input_file={records}",
               f"--output_dir={tmp_path / 'model'}", "--do_train=true", "--train_batch_size=32",
               "--max_seq_length=64", "--max_predictions_per_seq=10", "--num_train_steps=400",
               "--num_warmup_steps=100", "--learning_rate=1e-3", "--optimizer=adamw", "--iterations_per_loop=100",
               "--save_checkpoints_steps=400"])
    lines = [line for line in out.splitlines() if line.startswith("step ")]
    mlm = [metric(line, "masked_lm_loss") for line in lines]
    sop = [metric(line, "sentence_order_accuracy") for line in lines]
    assert len(lines) == 4, out
    assert mlm[-1] < mlm[0] - 0.3 and mlm[-1] < math.log(vocab_size) - 1.0, mlm
    assert sop[-1] > 0.7 and sop[-1] > sop[0] + 0.1, sop  # 3,200 examples a loop: chance is 0.5 ± 0.01
