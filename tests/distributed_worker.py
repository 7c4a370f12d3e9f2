"""Runs a few training steps under a given strategy and prints the result as JSON (used by test_training.py).

usage: distributed_worker.py MODE DATA_GLOB OUT_DIR
MODE: default | mirrored2 (2 logical CPUs) | compare (default and mirrored2 in one process) | multi_worker
      | resume2 (mirrored2: 6 steps straight, and 3 steps then a restart that resumes to 6, on shuffled data)
"""

from __future__ import annotations

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

mode, data_glob, out_dir = sys.argv[1:4]
if mode in ("mirrored2", "compare", "resume2"):
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import input_pipeline  # noqa: E402
import modeling  # noqa: E402
import optimization  # noqa: E402
import run_pretraining  # noqa: E402  (its task definition)
import training  # noqa: E402
from pretrain_data import CONFIG, PRED, SEQ  # noqa: E402


def run(strategy: tf.distribute.Strategy, output_dir: str, steps: int = 6, stop_at: int | None = None,
        shuffled: bool = False) -> dict:
    """Trains to ``stop_at`` (default ``steps``) of a ``steps``-step schedule, resuming from output_dir."""
    config = modeling.AlbertConfig.from_dict(CONFIG)
    files = input_pipeline.expand_files(data_glob)
    spec = input_pipeline.pretraining_features(SEQ, PRED)
    trainer = training.Trainer(
        strategy, run_pretraining.pretraining_task(config),
        lambda: optimization.create_optimizer(1e-3, steps, 0, optimizer="lamb"),
        training.TrainConfig(output_dir=output_dir, num_train_steps=stop_at or steps, train_batch_size=8,
                             steps_per_loop=3, save_checkpoints_steps=3))
    trainer.restore_or_initialize()
    if shuffled:  # the training pipeline, which skips what a resumed run has consumed
        metrics = trainer.train(lambda ctx, skip: input_pipeline.make_dataset(
            files, spec, trainer.per_replica_batch, is_training=True, input_context=ctx, skip_batches=skip), files)
    else:  # one fixed, un-shuffled batch order for every strategy, so the runs see the same global batches
        metrics = trainer.train(lambda ctx, start: input_pipeline.make_dataset(
            files, spec, trainer.per_replica_batch, is_training=False, input_context=ctx, drop_remainder=True)
            .repeat(), files)
    weights = np.concatenate([v.numpy().ravel() for v in trainer.model.trainable_variables])
    return {"loss": metrics["loss"], "step": trainer.step, "checksum": float(np.sum(weights * weights)),
            "first": weights[:8].tolist()}


if mode == "default":
    result = run(tf.distribute.get_strategy(), out_dir)
elif mode == "mirrored2":
    result = run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), out_dir)
elif mode == "compare":
    result = {"default": run(tf.distribute.OneDeviceStrategy("/cpu:0"), os.path.join(out_dir, "a")),
              "mirrored": run(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]), os.path.join(out_dir, "b"))}
elif mode == "resume2":
    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    straight = run(mirrored, os.path.join(out_dir, "straight"), shuffled=True)
    run(mirrored, os.path.join(out_dir, "restarted"), stop_at=3, shuffled=True)
    result = {"straight": straight, "resumed": run(mirrored, os.path.join(out_dir, "restarted"), shuffled=True)}
else:
    result = run(tf.distribute.MultiWorkerMirroredStrategy(), out_dir)
print("RESULT " + json.dumps(result), flush=True)
