"""Pretraining reliability: the data position of a resumed run when fp16 loss scaling skips steps (item 7)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

import training


class Tiny(keras.Model):
    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(1)

    def build(self, input_shape=None):
        self.dense.build((None, 3))
        self.built = True

    def call(self, features, training=False):
        return {"y": self.dense(features["x"])}


def _task() -> training.Task:
    def sums(features, out):
        return {"loss": tf.reduce_sum(tf.square(out["y"][:, 0] - features["y"]))}

    def counts(features):
        return {"loss": tf.cast(tf.shape(features["x"])[0], tf.float32)}

    return training.Task(build_model=Tiny, sums=sums, counts=counts, loss_terms=("loss",))


def _trainer(out, steps: int) -> training.Trainer:
    # A loss scale near float32's largest value: the first steps' scaled gradients overflow, so they are skipped
    # (the scale halves each time) without advancing optimizer.iterations, as fp16 steps can be.
    def make_optimizer():
        return keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(1e-4, name="sgd"), initial_scale=2.0 ** 126)

    return training.Trainer(tf.distribute.get_strategy(), _task(), make_optimizer,
                            training.TrainConfig(output_dir=str(out), num_train_steps=steps, train_batch_size=4,
                                                 steps_per_loop=2, save_checkpoints_steps=100))


def _dataset_fn(skips: list[int]):
    def fn(ctx, skip_batches):
        skips.append(skip_batches)
        x = tf.random.stateless_normal([4096, 3], seed=[1, 2]) * 100.0
        ds = tf.data.Dataset.from_tensor_slices({"x": x, "y": tf.reduce_sum(x, 1) * 10.0})
        return ds.batch(4).skip(skip_batches)

    return fn


def test_a_resume_skips_the_batches_of_steps_that_loss_scaling_skipped(tmp_path):
    first, skips = _trainer(tmp_path, 4), []
    first.train(_dataset_fn(skips))
    applied, consumed = first.step, int(first.steps_run.numpy())
    assert skips == [0] and applied == 4
    assert consumed > applied, "no step overflowed: the test's loss scale is too small"
    reader = tf.train.load_checkpoint(str(tmp_path / "ckpt-4"))
    assert reader.get_tensor(training.DATA_POSITION_KEY) == consumed
    second, skips = _trainer(tmp_path, 6), []
    assert second.restore_or_initialize() == 4 and int(second.steps_run.numpy()) == consumed
    second.train(_dataset_fn(skips))
    assert skips == [consumed]  # not [4]: those batches were consumed by skipped steps too
    assert second.step == 6 and int(second.steps_run.numpy()) == consumed + 2


def test_a_checkpoint_without_a_data_position_resumes_at_its_step(tmp_path):
    """Checkpoints written before the counter existed: no skipped steps were counted, so the step is the position."""
    old = _trainer(tmp_path, 4)
    old.optimizer.iterations.assign(3)
    before = tf.train.Checkpoint(model=old.model, optimizer=training.optimizer_state(old.optimizer))  # the old layout
    tf.train.CheckpointManager(before, str(tmp_path), max_to_keep=5).save(checkpoint_number=3)
    assert training.DATA_POSITION_KEY not in dict(tf.train.list_variables(str(tmp_path / "ckpt-3")))
    resumed = _trainer(tmp_path, 4)
    assert resumed.restore_or_initialize() == 3 and int(resumed.steps_run.numpy()) == 3
    np.testing.assert_allclose(resumed.model.dense.kernel.numpy(), old.model.dense.kernel.numpy())


def test_run_pretraining_names_the_file_with_a_token_id_past_the_vocab(tmp_path):
    """check_pretraining_data reads the first records of each file; a larger id later in a file stops training with
    one line naming the file, the id and vocab_size, not TF's `indices[..] = N is not in [0, V)` (nor, on a GPU,
    nothing at all)."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import pretrain_data

    repo = Path(__file__).resolve().parents[1]
    pretrain_data.write_config(str(tmp_path / "config.json"))
    pretrain_data.write_records(str(tmp_path / "train-0.tfrecord"), 64, seed=0)
    good, bad = tmp_path / "good.part", tmp_path / "bad.part"
    pretrain_data.write_records(str(good), 40, seed=1)
    pretrain_data.VOCAB = 2 * pretrain_data.VOCAB
    try:
        pretrain_data.write_records(str(bad), 40, seed=2)
    finally:
        pretrain_data.VOCAB //= 2
    late = tmp_path / "train-1.tfrecord"
    late.write_bytes(good.read_bytes() + bad.read_bytes())
    command = [sys.executable, str(repo / "run_pretraining.py"), f"--bert_config_file={tmp_path / 'config.json'}",
               f"--input_file={tmp_path / 'train-*.tfrecord'}", f"--output_dir={tmp_path / 'out'}", "--do_train=true",
               "--train_batch_size=16", f"--max_seq_length={pretrain_data.SEQ}",
               f"--max_predictions_per_seq={pretrain_data.PRED}", "--num_train_steps=40", "--num_warmup_steps=1",
               "--optimizer=adamw", "--iterations_per_loop=5", "--save_checkpoints_steps=100"]
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
    assert done.returncode == 1, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if line.startswith("run_pretraining.py: error:")]
    assert len(errors) == 1 and errors[0].startswith(
        f"run_pretraining.py: error: {late} holds token id "), done.stderr[-3000:]
    assert f"but vocab_size is {pretrain_data.VOCAB} in the config" in errors[0]
