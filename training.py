"""The one distributed training loop both CLIs use (run_pretraining.py, run_classifier.py).

It replaces the original's TF1 TPU Estimator with plain TF2: a ``tf.distribute`` strategy, ``strategy.run`` inside a
``tf.function`` that runs ``steps_per_loop`` steps a call (the original's ``iterations_per_loop``), a
``tf.train.CheckpointManager`` in ``output_dir`` with automatic resume, TensorBoard scalars and a progress line.

A CLI describes its task with a ``Task``: how to build the model, and its metrics as per-batch *sums* and
*counts* (e.g. Σ token loss · weight and Σ weight). Counts are all-reduced over replicas before the loss is formed,
so the gradient is that of the global-batch mean on any number of replicas and with gradient accumulation,
and a logged metric is Σ sums / Σ counts over every example the loop saw.

CPU kernels: TF turns its oneDNN kernels on by default only on CPUs with AVX512-VNNI/BF16 or AMX. The CLIs set
``TF_ENABLE_ONEDNN_OPTS=1`` (unless the environment says otherwise) before TensorFlow is imported, because on
CPUs TF leaves out (AMD EPYC here) they were 1.15-1.27x faster (bench/README.md).
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import re
import shutil
import time
import weakref
from typing import Any, Callable

import keras
import tensorflow as tf
from absl import flags
from absl import logging as absl_logging

import input_pipeline

Features = dict[str, tf.Tensor]
absl_logging.set_verbosity(absl_logging.WARNING)  # TF's checkpoint INFO lines would drown the progress lines
STRATEGIES = ("default", "mirrored", "multi_worker_mirrored", "tpu")


# ---------------------------------------------------------------------------------------------------------------------
# Flags shared by the CLIs (the original's names first)
# ---------------------------------------------------------------------------------------------------------------------

def define_flags() -> None:
    """Distribution, checkpoint and performance flags, shared by run_pretraining.py and run_classifier.py."""
    flags.DEFINE_bool("use_tpu", False, "Train on a TPU (same as --distribution_strategy=tpu).")
    flags.DEFINE_string("tpu_name", None, "Cloud TPU name or grpc:// address.")
    flags.DEFINE_string("tpu_zone", None, "GCE zone of the Cloud TPU.")
    flags.DEFINE_string("gcp_project", None, "GCP project of the Cloud TPU.")
    flags.DEFINE_string("master", None, "Kept for old scripts; use --tpu_name.")
    flags.DEFINE_integer("num_tpu_cores", 8, "Kept for old scripts; TPUStrategy finds the cores itself.")
    flags.DEFINE_enum("distribution_strategy", "default", STRATEGIES,
                      "default (one device), mirrored (all local GPUs), multi_worker_mirrored (TF_CONFIG), tpu.")
    flags.DEFINE_integer("save_checkpoints_steps", 1000, "Save a checkpoint every this many optimizer steps.")
    flags.DEFINE_integer("keep_checkpoint_max", 5, "Checkpoints to keep in --output_dir.")
    flags.DEFINE_integer("iterations_per_loop", 100, "Steps per tf.function call (and per progress line).")
    flags.DEFINE_integer("gradient_accumulation_steps", 1,
                         "Split each global batch into this many micro-batches and sum their gradients.")
    flags.DEFINE_enum("mixed_precision", "none", ["none", "bf16", "fp16"],
                      "bf16: mixed_bfloat16 (fast on TPUs, recent GPUs and CPUs with AMX); fp16: with loss scaling.")
    flags.DEFINE_bool("use_xla", False, "Compile the forward/backward pass with XLA (jit_compile=True).")
    flags.DEFINE_integer("seed", 12345, "Random seed (weights, dropout, data order).")


def config_from_flags(FLAGS, num_train_steps: int, train_batch_size: int) -> "TrainConfig":
    return TrainConfig(output_dir=FLAGS.output_dir, num_train_steps=num_train_steps,
                       train_batch_size=train_batch_size, steps_per_loop=FLAGS.iterations_per_loop,
                       save_checkpoints_steps=FLAGS.save_checkpoints_steps,
                       keep_checkpoint_max=FLAGS.keep_checkpoint_max,
                       gradient_accumulation_steps=FLAGS.gradient_accumulation_steps,
                       use_xla=FLAGS.use_xla, seed=FLAGS.seed)


# ---------------------------------------------------------------------------------------------------------------------
# Strategy and precision
# ---------------------------------------------------------------------------------------------------------------------

def get_strategy(name: str = "default", *, use_tpu: bool = False, tpu_name: str | None = None,
                 tpu_zone: str | None = None, gcp_project: str | None = None) -> tf.distribute.Strategy:
    """The strategy a --distribution_strategy value names (``use_tpu`` forces ``tpu``, as in the original)."""
    if use_tpu:
        name = "tpu"
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_name, zone=tpu_zone,
                                                                     project=gcp_project)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"--distribution_strategy: unknown {name!r}; choose one of {STRATEGIES}")


def strategy_from_flags(FLAGS) -> tf.distribute.Strategy:
    return get_strategy(FLAGS.distribution_strategy, use_tpu=FLAGS.use_tpu, tpu_name=FLAGS.tpu_name or FLAGS.master,
                        tpu_zone=FLAGS.tpu_zone, gcp_project=FLAGS.gcp_project)


BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")  # /proc/cpuinfo flags of CPUs with bf16 matmul hardware


def cpu_bf16_flags(cpuinfo: str = "/proc/cpuinfo") -> list[str]:
    """The BF16_CPU_FLAGS this machine's CPU has ([] when unknown, e.g. not Linux)."""
    try:
        with open(cpuinfo, encoding="utf-8") as f:
            flags_line = next((line for line in f if line.startswith("flags")), "")
    except OSError:
        return []
    present = set(flags_line.split(":", 1)[-1].split())
    return [flag for flag in BF16_CPU_FLAGS if flag in present]


def set_precision(mode: str, use_xla: bool = False, cpuinfo: str = "/proc/cpuinfo") -> None:
    """Sets the global Keras dtype policy; call before building the model. On a CPU-only machine, says when the
    other choice is the faster one: bf16 with XLA (slower than oneDNN's bf16), or fp32 on a CPU with bf16 hardware."""
    policies = {"none": "float32", "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}
    if mode not in policies:
        raise ValueError(f"--mixed_precision: {mode!r} is not one of {sorted(policies)}")
    keras.mixed_precision.set_global_policy(policies[mode])
    if tf.config.list_physical_devices("GPU") or tf.config.list_logical_devices("TPU"):
        return
    if mode == "bf16" and use_xla:
        print("note: on CPU, XLA compiles bf16 matmuls much slower than oneDNN; drop --use_xla for bf16 on CPU",
              flush=True)
    bf16_flags = cpu_bf16_flags(cpuinfo) if mode == "none" else []
    if bf16_flags:
        print(f"note: this CPU has bf16 hardware ({', '.join(bf16_flags)}); --mixed_precision=bf16 trains faster "
              f"on it at the same loss curve (bench/README.md, bf16 rows)", flush=True)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """True on the worker that writes checkpoints and summaries (TF_CONFIG's chief, or worker 0 without one)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    task_type = getattr(resolver, "task_type", None)
    if not task_type:
        return True
    if task_type == "chief":
        return True
    return task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()


# ---------------------------------------------------------------------------------------------------------------------
# The loop
# ---------------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Task:
    """What a CLI plugs into the loop.

    sums(features, outputs) and counts(features) return dicts with the same keys; a metric is Σ sums / Σ counts.
    The training loss is Σ_k sums[k] / counts[k] over ``loss_terms``.
    """

    build_model: Callable[[], keras.Model]
    sums: Callable[[Features, Features], dict[str, tf.Tensor]]
    counts: Callable[[Features], dict[str, tf.Tensor]]
    loss_terms: tuple[str, ...]


@dataclasses.dataclass
class TrainConfig:
    output_dir: str
    num_train_steps: int
    train_batch_size: int  # global: all replicas, all accumulation micro-batches
    steps_per_loop: int = 100
    save_checkpoints_steps: int = 1000
    keep_checkpoint_max: int = 5
    gradient_accumulation_steps: int = 1
    use_xla: bool = False
    seed: int = 12345


def ratios(sums: dict[str, float], counts: dict[str, float], loss_terms: tuple[str, ...]) -> dict[str, float]:
    """Σ sums / Σ counts per metric, plus ``loss``."""
    out = {k: float(sums[k]) / max(float(counts[k]), 1e-12) for k in sums}
    out["loss"] = sum(out[k] for k in loss_terms)
    return out


def optimizer_state(optimizer: keras.Optimizer) -> tf.train.Checkpoint:
    """The optimizer's own variables (step, moment slots, loss scale), each under its name.

    Checkpointing the optimizer object itself would file every model weight under
    ``optimizer/_trainable_variables/N`` (the shortest object path wins); this keeps them under ``model/``.
    """
    return tf.train.Checkpoint(**{_state_key(optimizer, v): v for v in optimizer.variables})


def _state_key(optimizer: keras.Optimizer, variable) -> str:
    """A variable's name in optimizer_state: its path without the optimizer's own name (which differs between
    optimizers, so that the step counter keeps one name)."""
    own = optimizer.name + "/"
    return (variable.path[len(own):] if variable.path.startswith(own) else variable.path).replace("/", "_")


def write_key_values(path: str, values: dict[str, Any]) -> None:
    """A results file as the original wrote them (eval_results.txt): ``key = value`` lines, sorted, on any file
    system TensorFlow reads (gs:// included)."""
    with tf.io.gfile.GFile(path, "w") as f:
        for key in sorted(values):
            f.write(f"{key} = {values[key]}\n")


def read_key_values(path: str) -> dict[str, str]:
    """``key = value`` lines (eval_results.txt, best_checkpoint.txt) -> dict."""
    out = {}
    with tf.io.gfile.GFile(path) as f:
        for line in f:
            if " = " in line:
                key, value = line.rstrip("\n").split(" = ", 1)
                out[key] = value
    return out


PROGRESS_FILE = "progress.jsonl"


def append_progress(output_dir: str, step: int, seconds: float, metrics: dict[str, float]) -> None:
    """One JSON line per loop in ``output_dir/progress.jsonl`` (step, seconds since this run's start, metrics): the
    curves in a form a script can plot without TensorBoard's event reader. Local directories only (remote file
    systems cannot append); TensorBoard has the same scalars everywhere. data/demo_report.py reads it back."""
    if "://" in output_dir:
        return
    record = {"step": step, "seconds": round(seconds, 3), **{k: float(v) for k, v in metrics.items()}}
    with open(os.path.join(output_dir, PROGRESS_FILE), "a", encoding="utf-8") as f:
        f.write(json.dumps(record) + "\n")


def _format_seconds(seconds: float) -> str:
    seconds = int(seconds)
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
    return f"{seconds // 60}m{seconds % 60:02d}s"


def _split_micro_batches(features: Features, n: int) -> Features:
    """[B,...] -> [n, B/n, ...] for each feature."""
    return {k: tf.reshape(v, tf.concat([[n, tf.shape(v)[0] // n], tf.shape(v)[1:]], 0)) for k, v in features.items()}


def _in_directory(path: str, directory: str) -> str:
    """A state file's entry as a path: state files hold absolute paths or names relative to their directory."""
    return path if os.path.isabs(path) or "://" in path else os.path.join(directory, path)


def checkpoint_state(directory: str):
    """tf.train.get_checkpoint_state with its entries as absolute paths (or URLs). TF joins an entry relative to
    the directory with the directory as given, so a relative directory would give paths relative to the working
    directory, which _in_directory would join once more."""
    return tf.train.get_checkpoint_state(directory if "://" in directory else os.path.abspath(directory))


def outside_directory(path: str, directory: str) -> bool:
    """True when a ``checkpoint`` state file's entry ``path`` names a checkpoint outside ``directory`` (another
    run's): the one rule for following state files, here and in checkpoints.resolve_checkpoint_path."""
    def canonical(folder: str) -> str:
        return folder.rstrip("/") if "://" in folder else os.path.realpath(folder)

    return canonical(os.path.dirname(_in_directory(path, directory))) != canonical(directory)


def own_checkpoint_state(directory: str) -> None:
    """Makes ``directory/checkpoint`` list only checkpoints inside ``directory``.

    A state file copied with a folder, or left by a TF1 run, can name absolute paths into another run: resuming
    would continue that run, and checkpoint rotation would delete its files. Such entries are dropped (with a
    note); the directory's own ``ckpt-N`` files, by step, are what a run resumes from and rotates.
    """
    state_file = os.path.join(directory, "checkpoint")
    if not tf.io.gfile.exists(state_file):
        return
    try:
        state = checkpoint_state(directory)
        listed = list(state.all_model_checkpoint_paths) if state else []
    except Exception:  # an unreadable state file: rebuilt from the files below
        listed = ["(unreadable)"]
    foreign = [p for p in listed if outside_directory(p, directory)]
    missing = [p for p in listed if p not in foreign and not tf.io.gfile.exists(_in_directory(p, directory) + ".index")]
    if not foreign and not missing:
        return
    own = sorted((f[:-len(".index")] for f in tf.io.gfile.glob(os.path.join(directory, "ckpt-*.index"))),
                 key=lambda p: int(p.rsplit("-", 1)[1]) if p.rsplit("-", 1)[1].isdigit() else -1)
    if foreign:
        print(f"note: {state_file} names checkpoints outside {directory} ({', '.join(foreign[:3])}"
              f"{' ...' if len(foreign) > 3 else ''}); they are neither resumed nor deleted: "
              + (f"resuming from this directory's {own[-1]}" if own else "no checkpoint of this directory to resume"),
              flush=True)
    if missing:
        print(f"note: {state_file} names checkpoints that are gone ({', '.join(missing[:3])}); using the files "
              f"present", flush=True)
    if own:
        names = [os.path.basename(p) for p in own]
        with tf.io.gfile.GFile(state_file, "w") as f:
            f.write(f'model_checkpoint_path: "{names[-1]}"\n'
                    + "".join(f'all_model_checkpoint_paths: "{n}"\n' for n in names))
    else:
        tf.io.gfile.remove(state_file)


def remove_stale_checkpoint_temporaries(directory: str) -> None:
    """Removes the ``ckpt-N_temp/`` folders of interrupted saves in ``directory``.

    TF writes a checkpoint into ``NAME_temp/`` and then merges it into ``NAME.index`` / ``NAME.data-*``; a kill or a
    full disk during a save leaves the folder behind (as large as a checkpoint), and after a disk-full failure the
    leftover makes the retry fail the same way. Only the chief saves, so at its start none is in use.
    """
    for path in tf.io.gfile.glob(os.path.join(directory, "ckpt-*_temp*")):
        if re.fullmatch(r"ckpt-\d+_temp\w*", os.path.basename(path)) and tf.io.gfile.isdir(path):
            tf.io.gfile.rmtree(path)
            print(f"note: removed {path}, left by an interrupted checkpoint save", flush=True)


def batches_done(input_context: tf.distribute.InputContext, steps: int) -> int:
    """Batches one input pipeline has given after ``steps`` steps: each step takes one per replica it feeds
    (MirroredStrategy on N local devices, or a one-host TPU: N per step from one pipeline)."""
    return steps * (input_context.num_replicas_in_sync // input_context.num_input_pipelines)


DATA_POSITION_KEY = "data_position/.ATTRIBUTES/VARIABLE_VALUE"  # Trainer.steps_run in a checkpoint


class CheckpointSaveError(RuntimeError):
    """A checkpoint could not be written (no space): the message names the folder and the size it needs."""


class Trainer:
    """Holds the model, optimizer and checkpoint state of one run, under one strategy."""

    def __init__(self, strategy: tf.distribute.Strategy, task: Task, make_optimizer: Callable[[], keras.Optimizer],
                 config: TrainConfig):
        self.strategy, self.task, self.config = strategy, task, config
        replicas = strategy.num_replicas_in_sync
        per_step = replicas * config.gradient_accumulation_steps
        if config.train_batch_size % per_step:
            raise ValueError(f"--train_batch_size={config.train_batch_size} is not divisible by replicas ({replicas})"
                             f" × --gradient_accumulation_steps ({config.gradient_accumulation_steps})")
        self.per_replica_batch = config.train_batch_size // replicas
        keras.utils.set_random_seed(config.seed)
        with strategy.scope():
            self.model = task.build_model()
            self.model.build()
            optimizer = make_optimizer()
            if keras.mixed_precision.global_policy().name == "mixed_float16":
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            self.optimizer = optimizer
            self.optimizer.build(self.model.trainable_variables)
            # Steps run, whether applied or not: with fp16 loss scaling a step whose gradients overflow is skipped
            # (optimizer.iterations stays) but has consumed its batch, so a resume skips the data by this count.
            self.steps_run = tf.Variable(0, dtype=tf.int64, trainable=False, name="steps_run",
                                         aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        self.checkpoint = tf.train.Checkpoint(model=self.model, optimizer=optimizer_state(self.optimizer),
                                              data_position=self.steps_run)
        self.chief = is_chief(strategy)
        directory = config.output_dir if self.chief else os.path.join(
            config.output_dir, f".worker_{strategy.cluster_resolver.task_id}_tmp")
        if self.chief:
            own_checkpoint_state(directory)
            remove_stale_checkpoint_temporaries(directory)
        self.manager = tf.train.CheckpointManager(self.checkpoint, directory, max_to_keep=config.keep_checkpoint_max,
                                                  step_counter=self.optimizer.iterations)
        self._grad_fn = tf.function(self._gradients, jit_compile=True) if config.use_xla else self._gradients

    # -- state --------------------------------------------------------------------------------------------------
    @property
    def step(self) -> int:
        return int(self.optimizer.iterations.numpy())

    def restore_or_initialize(self, init_fn: Callable[[keras.Model], object] | None = None,
                              model_only: bool = False) -> int:
        """Resumes from the latest checkpoint in output_dir; else runs ``init_fn`` (e.g. --init_checkpoint).

        model_only: restore the weights and the step but not the optimizer slots (an eval-only run, which need not
        repeat the optimizer flags the checkpoint was trained with)."""
        import checkpoints  # lazily (it imports the model code): names a truncated checkpoint file

        latest = self.manager.latest_checkpoint
        if latest and model_only:
            step = self.optimizer.iterations
            with checkpoints.reading(latest):
                tf.train.Checkpoint(model=self.model, optimizer=tf.train.Checkpoint(
                    **{_state_key(self.optimizer, step): step})).restore(latest).expect_partial()
            print(f"loaded {latest} (step {self.step}) for evaluation", flush=True)
        elif latest:
            with checkpoints.reading(latest):
                if DATA_POSITION_KEY in dict(tf.train.list_variables(latest)):
                    self.checkpoint.restore(latest).assert_existing_objects_matched()
                else:  # written before steps_run was: no skipped steps counted
                    tf.train.Checkpoint(model=self.model, optimizer=optimizer_state(self.optimizer)).restore(
                        latest).assert_existing_objects_matched()
                    self.steps_run.assign(self.step)
            run = int(self.steps_run.numpy())
            print(f"resumed from {latest} at step {self.step}" +
                  (f" ({run} steps' batches consumed, {run - self.step} of the steps skipped by loss scaling)"
                   if run != self.step else ""), flush=True)
        elif init_fn is not None:
            init_fn(self.model)
        return self.step

    def save(self) -> str:
        try:
            path = self.manager.save(checkpoint_number=self.step)
        except (tf.errors.ResourceExhaustedError, OSError) as err:
            if isinstance(err, OSError) and err.errno != errno.ENOSPC:
                raise
            remove_stale_checkpoint_temporaries(self.manager.directory)
            megabytes = sum(v.numpy().nbytes for v in self.model.variables + self.optimizer.variables) / 1e6
            latest = self.manager.latest_checkpoint
            raise CheckpointSaveError(
                f"no space left to save the step-{self.step} checkpoint in {self.manager.directory} (a checkpoint "
                f"takes about {megabytes:.0f} MB; --keep_checkpoint_max={self.config.keep_checkpoint_max} of them are "
                f"kept): free space there or use another --output_dir; rerunning resumes from "
                f"{latest or 'the start'}") from None
        if not self.chief:  # other workers take part in the save (collectives) but keep nothing
            shutil.rmtree(self.manager.directory, ignore_errors=True)
        return path

    # -- one step -----------------------------------------------------------------------------------------------
    def _gradients(self, features: Features, global_counts: dict[str, tf.Tensor]):
        """Per-replica: sums the gradients of the micro-batches. Returns (grads, sums)."""
        variables = self.model.trainable_variables
        n = self.config.gradient_accumulation_steps

        def micro(f):
            with tf.GradientTape() as tape:
                out = self.model(f, training=True)
                sums = self.task.sums(f, out)
                loss = tf.add_n([tf.math.divide_no_nan(sums[k], global_counts[k]) for k in self.task.loss_terms])
                scaled = self.optimizer.scale_loss(loss)
            grads = tape.gradient(scaled, variables)
            return [tf.convert_to_tensor(g) for g in grads], sums

        if n == 1:
            return micro(features)
        parts = _split_micro_batches(features, n)
        grads, sums = micro({k: v[0] for k, v in parts.items()})
        for i in tf.range(1, n):
            g, s = micro({k: v[i] for k, v in parts.items()})
            grads = [a + b for a, b in zip(grads, g)]
            sums = {k: sums[k] + s[k] for k in sums}
        return grads, sums

    def _replica_step(self, features: Features):
        counts = self.task.counts(features)
        context = tf.distribute.get_replica_context()
        global_counts = {k: context.all_reduce(tf.distribute.ReduceOp.SUM, v) for k, v in counts.items()}
        grads, sums = self._grad_fn(features, global_counts)
        self.optimizer.apply_gradients(zip(grads, self.model.trainable_variables))
        return sums, counts

    def _reduce(self, values: dict) -> dict:
        return {k: self.strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in values.items()}

    @tf.function
    def _train_loop(self, iterator, steps: tf.Tensor):
        sums, counts = map(self._reduce, self.strategy.run(self._replica_step, args=(next(iterator),)))
        self.steps_run.assign_add(1)
        for _ in tf.range(steps - 1):
            s, c = map(self._reduce, self.strategy.run(self._replica_step, args=(next(iterator),)))
            self.steps_run.assign_add(1)
            sums = {k: sums[k] + s[k] for k in sums}
            counts = {k: counts[k] + c[k] for k in counts}
        return sums, counts

    # -- public -------------------------------------------------------------------------------------------------
    def train(self, dataset_fn: Callable[[tf.distribute.InputContext, int], tf.data.Dataset],
              files: list[str] | None = None) -> dict[str, float]:
        """Trains to num_train_steps from the current step. dataset_fn(input_context, skip_batches) -> per-replica
        batches. Returns the metrics of the last loop."""
        cfg, start = self.config, self.step
        if start >= cfg.num_train_steps:
            print(f"already at step {start} of {cfg.num_train_steps}: nothing to train", flush=True)
            return {}
        consumed = int(self.steps_run.numpy())  # >= start: steps that loss scaling skipped took their batches too
        dist = self.strategy.distribute_datasets_from_function(
            lambda ctx: dataset_fn(ctx, batches_done(ctx, consumed)))
        iterator = iter(dist)
        writer = tf.summary.create_file_writer(os.path.join(cfg.output_dir, "train")) if self.chief else None
        t0, last, metrics = time.time(), None, {}
        print(f"training steps {start}..{cfg.num_train_steps}, global batch {cfg.train_batch_size} on "
              f"{self.strategy.num_replicas_in_sync} replica(s)" +
              (f", {cfg.gradient_accumulation_steps} micro-batches per step" if cfg.gradient_accumulation_steps > 1
               else ""), flush=True)
        while self.step < cfg.num_train_steps:
            step = self.step
            to_save = cfg.save_checkpoints_steps - step % cfg.save_checkpoints_steps
            n = min(cfg.steps_per_loop, to_save, cfg.num_train_steps - step)
            loop_start = time.time()
            try:
                sums, counts = self._train_loop(iterator, tf.constant(n))
            except tf.errors.DataLossError as err:
                raise input_pipeline.explain_data_error(files or [], err) from None
            except tf.errors.InvalidArgumentError as err:  # make_dataset's id check: one line naming the file
                explained = input_pipeline.explain_id_error(err)
                if explained is None:
                    raise
                raise explained from None
            metrics = ratios({k: v.numpy() for k, v in sums.items()}, {k: v.numpy() for k, v in counts.items()},
                             self.task.loss_terms)
            now, step = time.time(), self.step
            metrics["examples_per_second"] = n * cfg.train_batch_size / max(now - loop_start, 1e-9)
            metrics["learning_rate"] = float(keras.ops.convert_to_numpy(self.optimizer.learning_rate))
            if writer is not None:
                with writer.as_default(step=step):
                    for k, v in metrics.items():
                        tf.summary.scalar(k, v)
                append_progress(cfg.output_dir, step, now - t0, metrics)
            rate = (step - start) / max(now - t0, 1e-9)
            eta = (cfg.num_train_steps - step) / max(rate, 1e-9)
            shown = "  ".join(f"{k} {v:.4g}" for k, v in metrics.items() if k not in ("examples_per_second",))
            print(f"step {step}/{cfg.num_train_steps}  {shown}  {metrics['examples_per_second']:.1f} ex/s  "
                  f"ETA {_format_seconds(eta)}", flush=True)
            if step % cfg.save_checkpoints_steps == 0 or step == cfg.num_train_steps:
                last = self.save()
        if writer is not None:
            writer.flush()
        print(f"done: step {self.step}, last checkpoint {last}, {_format_seconds(time.time() - t0)}", flush=True)
        return metrics


_EVAL_STEPS: "weakref.WeakKeyDictionary[keras.Model, dict]" = weakref.WeakKeyDictionary()


def _eval_step(strategy: tf.distribute.Strategy, model: keras.Model, task: Task):
    """One traced eval step per (model, strategy, task), relaxed to any batch size: evaluating after every
    checkpoint, with a partial last batch, must not trace again each time."""
    cache = _EVAL_STEPS.setdefault(model, {})
    key = (id(strategy), id(task))
    if key not in cache:
        def replica(features):
            out = model(features, training=False)
            return task.sums(features, out), task.counts(features)

        @tf.function(reduce_retracing=True)
        def step(features):
            s, c = strategy.run(replica, args=(features,))
            return ({k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in s.items()},
                    {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None) for k, v in c.items()})

        cache[key] = step
    return cache[key]


def evaluate(strategy: tf.distribute.Strategy, model: keras.Model, task: Task, dataset: tf.data.Dataset,
             max_steps: int | None = None, files: list[str] | None = None) -> dict[str, float]:
    """One pass over ``dataset`` (global batches; the last may be partial). Returns Σ sums / Σ counts per metric."""
    dist = strategy.experimental_distribute_dataset(dataset)
    step = _eval_step(strategy, model, task)
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    try:
        for i, features in enumerate(dist):
            if max_steps is not None and i >= max_steps:
                break
            s, c = step(features)
            for k in s:
                sums[k] = sums.get(k, 0.0) + float(s[k])
                counts[k] = counts.get(k, 0.0) + float(c[k])
    except tf.errors.DataLossError as err:
        raise input_pipeline.explain_data_error(files or [], err) from None
    except tf.errors.InvalidArgumentError as err:
        explained = input_pipeline.explain_id_error(err)
        if explained is None:
            raise
        raise explained from None
    if not sums:
        raise ValueError("evaluation saw no data")
    return ratios(sums, counts, task.loss_terms)
