"""The training loop and run_pretraining.py: learning, XLA, bf16, resume after SIGKILL, replicas, multi-worker,
bad data."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

import input_pipeline
from pretrain_data import PRED, SEQ, write_config, write_dynamic_records, write_records, write_vocab

pytestmark = pytest.mark.slow  # subprocess CLIs, SIGKILL, replicas, multi-worker

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("pretrain")
    write_records(str(d / "train-0.tfrecord"), 96, seed=0)
    write_records(str(d / "train-1.tfrecord"), 96, seed=1)
    write_records(str(d / "eval.tfrecord"), 64, seed=2)
    write_config(str(d / "config.json"))
    for index in range(2):  # the same kind of data, unmasked: masked in the pipeline
        write_dynamic_records(str(d / f"dynamic-{index}.tfrecord"), 96, seed=index)
    write_vocab(str(d / "vocab.txt"))
    return d


def pretrain_cmd(data: Path, out: Path, *extra: str, steps: int = 40) -> list[str]:
    return [sys.executable, str(REPO / "run_pretraining.py"), f"--bert_config_file={data / 'config.json'}",
            f"--input_file={data / 'train-*.tfrecord'}", f"--eval_input_file={data / 'eval.tfrecord'}",
            f"--output_dir={out}", "--do_train=true", "--train_batch_size=16", f"--max_seq_length={SEQ}",
            f"--max_predictions_per_seq={PRED}", f"--num_train_steps={steps}", "--num_warmup_steps=4",
            "--optimizer=adamw", "--learning_rate=2e-3", "--iterations_per_loop=10", "--save_checkpoints_steps=10",
            *extra]


def run_ok(cmd: list[str], timeout: int = 300) -> str:
    proc = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=timeout, cwd=REPO)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def losses(stdout: str) -> list[float]:
    return [float(line.split("  loss ")[1].split()[0]) for line in stdout.splitlines() if "  loss " in line]


@pytest.mark.parametrize("extra", [(), ("--use_xla",), ("--mixed_precision=bf16",),
                                   ("--optimizer=lamb", "--learning_rate=0.1", "--gradient_accumulation_steps=2")])
def test_pretraining_loss_falls(data, tmp_path, extra):
    out = run_ok(pretrain_cmd(data, tmp_path / "out", *extra, "--do_eval=true"))
    curve = losses(out)
    assert len(curve) == 4 and all(np.isfinite(curve)), out
    assert curve[-1] < curve[0] - 0.3, curve
    results = dict(line.split(" = ") for line in (tmp_path / "out" / "eval_results.txt").read_text().splitlines())
    for key in ("masked_lm_accuracy", "masked_lm_loss", "sentence_order_accuracy", "sentence_order_loss",
                "next_sentence_accuracy", "next_sentence_loss"):
        assert np.isfinite(float(results[key])), key
    assert int(results["global_step"]) == 40
    assert (tmp_path / "out" / "train").is_dir() and any((tmp_path / "out" / "train").iterdir())  # TensorBoard


@pytest.mark.parametrize("masking", ["static", "dynamic"])
def test_resume_after_sigkill(data, tmp_path, masking):
    """A run killed by SIGKILL resumes from its last checkpoint and ends with the weights of an uninterrupted run: the
    same batches after the restart, with dynamic masking the same masks too (each record's masks depend on --seed and
    its position in the stream)."""
    steps = 60
    extra = [] if masking == "static" else [f"--input_file={data / 'dynamic-*.tfrecord'}",
                                            f"--eval_input_file={data / 'dynamic-1.tfrecord'}",
                                            f"--vocab_file={data / 'vocab.txt'}"]
    reference = tmp_path / "uninterrupted"
    run_ok(pretrain_cmd(data, reference, *extra, steps=steps))
    out = tmp_path / "killed"
    proc = subprocess.Popen(pretrain_cmd(data, out, *extra, steps=steps), env=ENV, cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    deadline = time.time() + 240
    # The state file `checkpoint` (written atomically after ckpt-10's files) is what a restart resumes from: a kill
    # between the two would leave nothing to resume.
    while not (out / "checkpoint").exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert (out / "ckpt-10.index").exists(), "the run died before its first checkpoint"
    assert not (out / f"ckpt-{steps}.index").exists(), "the run finished before it could be killed"
    resumed = run_ok(pretrain_cmd(data, out, *extra, steps=steps))
    assert "resumed from" in resumed
    state = tf.train.get_checkpoint_state(str(out))
    assert state.model_checkpoint_path.endswith(f"ckpt-{steps}")
    for path in state.all_model_checkpoint_paths:  # every kept checkpoint is readable
        tf.train.load_checkpoint(path).get_variable_to_shape_map()
    final = tf.train.load_checkpoint(str(out / f"ckpt-{steps}"))
    ref = tf.train.load_checkpoint(str(reference / f"ckpt-{steps}"))
    names = final.get_variable_to_shape_map()
    assert final.get_tensor("optimizer/iteration/.ATTRIBUTES/VARIABLE_VALUE") == steps
    assert ref.get_tensor("optimizer/iteration/.ATTRIBUTES/VARIABLE_VALUE") == steps
    assert not [k for k in names if k.startswith("optimizer/_")], "model weights filed under the optimizer"
    # same data position and state after resume: the weights equal the uninterrupted run's
    for key in ("model/albert/embeddings/word_embeddings/.ATTRIBUTES/VARIABLE_VALUE",
                "model/albert/encoder/attention_0/query/_kernel/.ATTRIBUTES/VARIABLE_VALUE",
                "optimizer/albert_pretraining_albert_embeddings_word_embeddings_adam_m/.ATTRIBUTES/VARIABLE_VALUE"):
        np.testing.assert_allclose(final.get_tensor(key), ref.get_tensor(key), atol=1e-5)


def test_mirrored_resume_sees_the_batches_of_an_uninterrupted_run(data, tmp_path):
    """two replicas share one input pipeline, so each step takes two of its batches; a resumed run must skip
    both per step done, or it trains on (N-1)/N of what it had already seen."""
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "distributed_worker.py"), "resume2",
                           str(data / "train-*.tfrecord"), str(tmp_path)], env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT ")[1])
    assert result["straight"]["step"] == result["resumed"]["step"] == 6
    np.testing.assert_allclose(result["resumed"]["first"], result["straight"]["first"], atol=1e-6)
    assert abs(result["resumed"]["checksum"] - result["straight"]["checksum"]) < 1e-4


def test_mirrored_two_replicas_equals_default(data, tmp_path):
    proc = subprocess.run([sys.executable, str(REPO / "tests" / "distributed_worker.py"), "compare",
                           str(data / "train-*.tfrecord"), str(tmp_path)], env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT ")[1])
    assert "2 replica(s)" in proc.stdout
    assert abs(result["default"]["loss"] - result["mirrored"]["loss"]) < 1e-5
    np.testing.assert_allclose(result["default"]["first"], result["mirrored"]["first"], atol=1e-6)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_multi_worker_mirrored_two_processes_agree(data, tmp_path):
    ports = [_free_port(), _free_port()]
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = dict(ENV, TF_CONFIG=json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}}))
        procs.append(subprocess.Popen([sys.executable, str(REPO / "tests" / "distributed_worker.py"), "multi_worker",
                                       str(data / "train-*.tfrecord"), str(tmp_path / "out")], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=300)
        assert proc.returncode == 0, stderr[-3000:]
        results.append(json.loads(stdout.split("RESULT ")[1]))
    assert results[0]["step"] == results[1]["step"] == 6
    assert results[0]["checksum"] == results[1]["checksum"]
    assert results[0]["first"] == results[1]["first"]
    assert (tmp_path / "out" / "ckpt-6.index").exists()  # the chief's checkpoint
    assert not any(p.name.startswith(".worker") for p in (tmp_path / "out").iterdir())  # worker 1 kept nothing


def test_data_checks_name_the_problem(data, tmp_path):
    files = [str(data / "train-0.tfrecord")]
    with pytest.raises(ValueError, match="--max_seq_length=64 but .* holds sequences of 32"):
        input_pipeline.check_pretraining_data(files, 64, PRED, 97)
    with pytest.raises(ValueError, match="--max_predictions_per_seq=20 but"):
        input_pipeline.check_pretraining_data(files, SEQ, 20, 97)
    with pytest.raises(ValueError, match="token id 9[0-6] but the config's vocab_size is 50"):
        input_pipeline.check_pretraining_data(files, SEQ, PRED, 50)
    with pytest.raises(FileNotFoundError, match="no input file matches"):
        input_pipeline.expand_files(str(tmp_path / "nothing-*.tfrecord"))


def test_truncated_tfrecord_is_named(data, tmp_path):
    good = data / "train-0.tfrecord"
    bad = tmp_path / "truncated.tfrecord"
    bad.write_bytes(good.read_bytes()[: good.stat().st_size // 2 + 100])  # cut inside a record
    files = [str(good), str(bad)]
    spec = input_pipeline.pretraining_features(SEQ, PRED)
    ds = input_pipeline.make_dataset(files, spec, 8, is_training=False)
    with pytest.raises(tf.errors.DataLossError) as err:
        for _ in ds:
            pass
    explained = input_pipeline.explain_data_error(files, err.value)
    assert str(bad) in str(explained) and str(good) not in str(explained)
    out = subprocess.run(pretrain_cmd(data, tmp_path / "out", steps=20)[:2] + [
        a if not a.startswith("--input_file") else f"--input_file={good},{bad}"
        for a in pretrain_cmd(data, tmp_path / "out", steps=20)[2:]], env=ENV, capture_output=True, text=True,
        timeout=300, cwd=REPO)
    assert out.returncode != 0 and f"{bad} is corrupt or truncated" in out.stderr


def test_resume_keeps_the_family_taken_from_the_init_checkpoint(data, tmp_path):
    import checkpoints
    import modeling
    from pretrain_data import CONFIG

    google = modeling.AlbertPretrainingModel(modeling.AlbertConfig.from_dict(dict(CONFIG, model_family="google")))
    google.build()
    prefix = checkpoints.write_tf1_checkpoint(google, str(tmp_path / "google" / "model.ckpt"))
    out = tmp_path / "out"
    first = run_ok(pretrain_cmd(data, out, f"--init_checkpoint={prefix}", steps=10))
    assert "using 'google'" in first  # the config (no family, brightmart by default) follows the checkpoint
    shutil.rmtree(tmp_path / "google")  # moved away: the restart must not need it
    second = run_ok(pretrain_cmd(data, out, f"--init_checkpoint={prefix}", steps=20))
    assert "resumed from" in second and "step 20/20" in second
    assert json.loads((out / "albert_config.json").read_text())["model_family"] == "google"


def test_eval_only_run_loads_a_checkpoint_trained_with_another_optimizer(data, tmp_path):
    out = tmp_path / "out"
    run_ok(pretrain_cmd(data, out, steps=10))  # AdamW slots in the checkpoint
    evaluated = run_ok([c for c in pretrain_cmd(data, out, steps=10) if not c.startswith(("--do_train", "--optimizer"))]
                       + ["--do_eval=true", "--max_eval_steps=2"])  # default --optimizer=lamb
    assert "(step 10) for evaluation" in evaluated
    results = dict(line.split(" = ") for line in (out / "eval_results.txt").read_text().splitlines())
    assert int(results["global_step"]) == 10 and float(results["masked_lm_loss"]) < 6.0
