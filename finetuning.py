"""What the fine-tuning CLIs (run_classifier.py, run_ner.py, run_mrc.py) share: the config and init glue, dev
selection of the best checkpoint, and stage headings. Functions take plain arguments; the CLIs pass their flags."""

from __future__ import annotations

import os
from typing import Callable

import tensorflow as tf
from absl import app, flags

import classifier_data
import cli
import input_pipeline
import modeling
import optimization
import training

BEST_DIR, BEST_RECORD, DEV_HISTORY = "best", "best_checkpoint.txt", "dev_history.tsv"


def define_flags(task_names: list[str], predict_help: str, unit: str = "example", split_files: bool = False) -> None:
    """The flags both fine-tuning CLIs take (the original's run_classifier.py names), then the optimizer's and the
    loop's. ``unit``: what a line of the task files is, for the help texts. ``split_files``: also --train_file,
    --dev_file and --test_file (any path, instead of the task's file name in --data_dir; see split_file_overrides)."""
    flags.DEFINE_string("task_name", None, f"The task: {', '.join(sorted(task_names))}.")
    flags.DEFINE_string("data_dir", None, "Directory holding the task's train/dev/test files (not needed for a split "
                                          "given by --train_file/--dev_file/--test_file)." if split_files else
                        "Directory holding the task's train/dev/test files.")
    if split_files:
        for split, role in (("train", "training"), ("dev", "dev (--do_eval, checkpoint selection)"),
                            ("test", "test (--do_predict)")):
            flags.DEFINE_string(f"{split}_file", None, f"The {role} file, any name or path (default: the task's "
                                                       f"{split} file name in --data_dir).")
    flags.DEFINE_string("output_dir", None, "Checkpoints, cached features, eval/predict results, the best checkpoint.")
    cli.define_model_flags("TF1 (albert_zh or Google) or TF2 checkpoint to start from.",
                           f"Tokens per {unit} after WordPiece, [CLS] and [SEP]s included.")
    flags.DEFINE_bool("do_train", False, "Fine-tune on the train file.")
    flags.DEFINE_bool("do_eval", False, "Evaluate on the dev file (each checkpoint while training, then the chosen "
                                        "one).")
    flags.DEFINE_bool("do_predict", False, predict_help)
    flags.DEFINE_integer("train_batch_size", 32, "Global training batch.")
    flags.DEFINE_integer("eval_batch_size", 8, "Eval batch (the last batch may be partial: nothing is dropped).")
    flags.DEFINE_integer("predict_batch_size", 8, "Predict batch (the last batch may be partial).")
    flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate.")
    flags.DEFINE_float("num_train_epochs", 3.0, "Epochs over the train file.")
    flags.DEFINE_float("warmup_proportion", 0.1, "Fraction of the training steps with linear warmup.")
    optimization.define_flags("adamw")
    flags.DEFINE_float("hidden_dropout_prob", None, "Overrides the config's hidden_dropout_prob (default: config's).")
    flags.DEFINE_float("attention_probs_dropout_prob", None, "Overrides the config's attention_probs_dropout_prob.")
    flags.DEFINE_bool("skip_bad_lines", False, f"Skip (and count) malformed {unit}s of the task files instead of "
                                               f"failing.")
    flags.DEFINE_bool("use_best_checkpoint", True,
                      "Eval/predict/export with the best dev checkpoint (output_dir/best) when there is one.")
    flags.DEFINE_string("export_dir", None, "SavedModel directory (default: output_dir/saved_model after training).")
    flags.DEFINE_bool("export_saved_model", True, "Export a SavedModel after training (--noexport_saved_model: "
                                                  "only the checkpoints; export_model.py exports one later).")
    training.define_flags()


def wanted_splits(FLAGS) -> list[str]:
    """The splits the --do_* flags read."""
    return [s for s, on in (("train", FLAGS.do_train), ("dev", FLAGS.do_eval), ("test", FLAGS.do_predict)) if on]


def split_file_overrides(FLAGS) -> dict[str, str]:
    """{split: path} of the --train_file/--dev_file/--test_file flags that are set (each checked to exist); a usage
    error when a split the --do_* flags read has neither such a flag nor --data_dir."""
    overrides = {}
    for split in ("train", "dev", "test"):
        path = getattr(FLAGS, f"{split}_file", None)
        if path:
            if not tf.io.gfile.exists(path):
                cli.usage_error(f"--{split}_file={path}: no such file")
            overrides[split] = path
    missing = [split for split in wanted_splits(FLAGS) if split not in overrides]
    if missing and not FLAGS.data_dir:
        cli.usage_error(f"--data_dir is required for the {'/'.join(missing)} file (or pass "
                        f"{' and '.join(f'--{split}_file' for split in missing)})")
    return overrides


def export_after_training(FLAGS, trainer: training.Trainer) -> None:
    """The chosen model as a SavedModel: after training (unless --noexport_saved_model) or when --export_dir is
    given. Imported lazily: eval/predict-only runs never load the export code."""
    if (FLAGS.export_dir or (FLAGS.do_train and FLAGS.export_saved_model)) and trainer.chief:
        export_dir = FLAGS.export_dir or os.path.join(FLAGS.output_dir, "saved_model")
        stage(f"export: SavedModel to {export_dir}")
        import export_saved_model
        export_saved_model.export_saved_model(trainer.model, export_dir, FLAGS.max_seq_length)


def config_from_flags(FLAGS) -> modeling.AlbertConfig:
    """model_config with the CLI's flags."""
    return model_config(FLAGS.bert_config_file, model_family=FLAGS.model_family,
                        max_seq_length=FLAGS.max_seq_length, init_checkpoint=FLAGS.init_checkpoint,
                        output_dir=FLAGS.output_dir, hidden_dropout_prob=FLAGS.hidden_dropout_prob,
                        attention_probs_dropout_prob=FLAGS.attention_probs_dropout_prob)


def check_required(FLAGS, require_mode: bool = True) -> None:
    """The usage errors the CLIs share (``require_mode``: one of --do_train/--do_eval/--do_predict is needed)."""
    if require_mode and not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict):
        raise app.UsageError("At least one of --do_train, --do_eval or --do_predict must be true.")
    if not FLAGS.vocab_file and not FLAGS.spm_model_file:
        raise app.UsageError("--vocab_file (or --spm_model_file) is required.")


def setup(FLAGS, require_mode: bool = True):
    """What the CLIs do first: check the flags, the strategy (before any other TF work: multi-worker setup),
    precision, casing against the checkpoint, the config, output_dir, and the tokenizer (raw text never makes
    special ids). Returns (strategy, config, tokenizer). ``require_mode``: see check_required."""
    import tokenization

    check_required(FLAGS, require_mode)
    strategy = training.strategy_from_flags(FLAGS)
    training.set_precision(FLAGS.mixed_precision, FLAGS.use_xla)
    tokenization.validate_case_matches_checkpoint(FLAGS.do_lower_case, FLAGS.init_checkpoint)
    config = config_from_flags(FLAGS)
    tf.io.gfile.makedirs(FLAGS.output_dir)
    tokenizer = tokenization.FullTokenizer(FLAGS.vocab_file, FLAGS.do_lower_case, FLAGS.spm_model_file,
                                           split_special_tokens=True)
    return strategy, config, tokenizer


def read_names(path: str) -> list[str] | None:
    """A label or tag list file (one name a line) saved in output_dir, or None when there is none."""
    if not tf.io.gfile.exists(path):
        return None
    with tf.io.gfile.GFile(path) as f:
        return [line.strip() for line in f if line.strip()]


def keep_names(path: str, names: list[str], saved: list[str] | None, kind: str, source: str) -> list[str]:
    """``names`` from the data, checked against the ``saved`` list the model was trained with, or saved at ``path``
    when there is none (``kind``: labels or tags; ``source``: where the names came from)."""
    if saved is not None and saved != names:
        raise ValueError(f"{path} lists the {kind} {saved} the model in {os.path.dirname(path)} was trained with, "
                         f"but {source} gives {names}: use another --output_dir or the same data")
    if saved is None:
        with tf.io.gfile.GFile(path, "w") as f:
            f.write("".join(name + "\n" for name in names))
    return names


def stage(title: str) -> None:
    print(f"\n===== {title} =====", flush=True)


def model_config(bert_config_file: str, *, model_family: str | None, max_seq_length: int,
                 init_checkpoint: str | None, output_dir: str, hidden_dropout_prob: float | None = None,
                 attention_probs_dropout_prob: float | None = None) -> modeling.AlbertConfig:
    """The config file, with the flag's model family, the checkpoint's family (when neither sets it) and the
    dropout overrides; checks max_seq_length against max_position_embeddings."""
    config = modeling.AlbertConfig.from_json_file(bert_config_file, model_family=model_family)
    config.check_sequence_length(max_seq_length, bert_config_file)
    if init_checkpoint:
        import checkpoints  # lazily: only runs with a checkpoint need it
        try:  # also when resuming: the run being resumed was built with the family this picks
            config = checkpoints.config_for_checkpoint(config, init_checkpoint)
        except FileNotFoundError:
            if not tf.train.latest_checkpoint(output_dir):
                raise
            print(f"note: --init_checkpoint={init_checkpoint} is gone; resuming from {output_dir}", flush=True)
    overrides = {k: v for k, v in (("hidden_dropout_prob", hidden_dropout_prob),
                                   ("attention_probs_dropout_prob", attention_probs_dropout_prob)) if v is not None}
    return config.replace(**overrides) if overrides else config


def init_from_checkpoint(init_checkpoint: str | None):
    """An init_fn for Trainer.restore_or_initialize that loads ``init_checkpoint`` through the checkpoint loader
    (TF1 of either family, or ours); the loop calls it only when output_dir has nothing to resume."""
    if not init_checkpoint:
        return None

    def init(model):
        import checkpoints
        checkpoints.load_checkpoint(model, init_checkpoint)
    return init


def build_trainer(FLAGS, strategy: tf.distribute.Strategy, task: training.Task, num_train_examples: int | None,
                  model_family: str | None = None) -> "FineTuningTrainer":
    """The trainer for ``num_train_examples`` (None: no training) × --num_train_epochs, its optimizer from the
    optimizer flags (``model_family`` decides --lamb_layer_adaptation=auto), restored from output_dir or initialised
    from --init_checkpoint."""
    num_steps, warmup = 1, 0  # eval/predict-only runs still build the optimizer (for resuming its checkpoints)
    if num_train_examples is not None:
        num_steps = classifier_data.num_train_steps(num_train_examples, FLAGS.num_train_epochs,
                                                    FLAGS.train_batch_size)
        warmup = int(num_steps * FLAGS.warmup_proportion)

    def make_optimizer():
        return optimization.create_optimizer(FLAGS.learning_rate, num_steps, warmup,
                                             **optimization.flag_kwargs(FLAGS, model_family))

    trainer = FineTuningTrainer(strategy, task, make_optimizer,
                                training.config_from_flags(FLAGS, num_steps, FLAGS.train_batch_size))
    trainer.warmup_steps = warmup
    trainer.restore_or_initialize(init_fn=init_from_checkpoint(FLAGS.init_checkpoint))
    return trainer


def train_and_pick_best(FLAGS, trainer: "FineTuningTrainer", train_file: str | None, feature_spec: dict,
                        dev_metrics: Callable[[], dict[str, float]], metric: str, dev_is_test: bool = False) -> int:
    """--do_train (with --do_eval: each checkpoint evaluated, the best kept), then the best dev checkpoint loaded
    (--use_best_checkpoint); returns the step of the weights the model holds.

    dev_is_test: the dev set is the test file (msra_ner without a dev file). Selecting on it would report the best
    of N checkpoints as the test score, so nothing is selected: the last checkpoint is used."""
    select = not dev_is_test
    if dev_is_test:
        print("note: the dev set is the test file: no best-checkpoint selection on it; eval and predict use the "
              "last checkpoint (test_results.txt: selected_on_test = 0)", flush=True)
    if FLAGS.do_train:
        if FLAGS.do_eval and select:
            best = BestCheckpoint(FLAGS.output_dir, dev_metrics, trainer.chief, metric=metric)
            evaluate_pending(best, trainer)
            trainer.after_save = best

        def dataset_fn(ctx, skip_batches):
            return input_pipeline.make_dataset([train_file], feature_spec, trainer.per_replica_batch,
                                               is_training=True, input_context=ctx, seed=FLAGS.seed,
                                               skip_batches=skip_batches)
        trainer.train(dataset_fn, [train_file])
        trainer.after_save = None
    return use_best_checkpoint(trainer.model, trainer.step, FLAGS.output_dir,
                               use_best=FLAGS.use_best_checkpoint and select,
                               warn_untrained=not FLAGS.do_train and not FLAGS.init_checkpoint)


class FineTuningTrainer(training.Trainer):
    """training.Trainer that calls ``after_save(prefix, step)`` after each checkpoint (the dev evaluation)."""

    after_save: Callable[[str, int], None] | None = None
    warmup_steps: int = 0

    def save(self) -> str:
        path = super().save()
        if self.after_save is not None:
            self.after_save(path, self.step)
        return path


class BestCheckpoint:
    """Evaluates each checkpoint on dev and keeps the one with the highest ``metric`` in ``output_dir/best/``.

    The files are copied (the CheckpointManager deletes old checkpoints beyond --keep_checkpoint_max), with
    ``best_checkpoint.txt`` (step, the metric, loss, and the checkpoint's path relative to output_dir, so that a
    moved output folder keeps its best) inside and a copy beside it in output_dir. A resumed run reads it back and
    only replaces the best with a better one (the earliest wins ties). ``dev_history.tsv`` has a row per evaluation.

    Kill-safe: a new best is copied into ``best/`` beside the old one (their names differ by step) and committed
    by replacing ``best/best_checkpoint.txt`` in one rename; then the old best's files are deleted. A run killed
    before the commit keeps the old best and has no dev_history row for the new checkpoint, so a resumed run
    evaluates it again; after the commit, the new best stands. recover_best tidies either state on restart.
    """

    def __init__(self, output_dir: str, evaluate: Callable[[], dict[str, float]], chief: bool,
                 metric: str = "accuracy"):
        self.dir = os.path.join(output_dir, BEST_DIR)
        self.record = os.path.join(output_dir, BEST_RECORD)
        self.history = os.path.join(output_dir, DEV_HISTORY)
        self.evaluate, self.chief, self.metric = evaluate, chief, metric
        if chief:
            recover_best(output_dir)
        found = read_best(output_dir)
        self.best = float(found[metric]) if found and metric in found else -1.0

    def evaluated_steps(self) -> set[int]:
        if not tf.io.gfile.exists(self.history):
            return set()
        with tf.io.gfile.GFile(self.history) as f:
            return {int(line.split("\t")[0]) for line in f.read().splitlines()[1:] if line.strip()}

    def evaluate_pending(self, checkpoint: str | None, step: int) -> None:
        """After a resume: the checkpoint a killed run saved but did not get to evaluate is evaluated now (the
        model holds its weights), so it can still be chosen as the best."""
        if checkpoint and step > 0 and step not in self.evaluated_steps():
            print(f"dev evaluation of {checkpoint}, saved before the run stopped", flush=True)
            self(checkpoint, step)

    def __call__(self, path: str, step: int) -> None:
        results = self.evaluate()  # on every worker: evaluation takes part in collectives
        value = results[self.metric]
        better = value > self.best
        print(f"dev at step {step}: {self.metric} {value:.4f}  loss {results['loss']:.4f}"
              + ("  (best so far)" if better else f"  (best {self.best:.4f})"), flush=True)
        if not self.chief:
            return
        if better:
            self._replace_best(path, {"step": step, self.metric: value, "loss": results["loss"],
                                      "metric": self.metric})
            self.best = value
        new_file = not tf.io.gfile.exists(self.history)  # written after the best: a kill before leaves it pending
        with tf.io.gfile.GFile(self.history, "a") as f:
            if new_file:
                f.write(f"step\t{self.metric}\tloss\n")
            f.write(f"{step}\t{value}\t{results['loss']}\n")

    def _replace_best(self, path: str, record: dict) -> None:
        name = os.path.basename(path)
        tf.io.gfile.makedirs(self.dir)
        for source in sorted(tf.io.gfile.glob(path + ".*"), key=lambda p: p.endswith(".index")):  # .index last
            tf.io.gfile.copy(source, os.path.join(self.dir, os.path.basename(source)), overwrite=True)
        record = dict(record, checkpoint=os.path.join(BEST_DIR, name))  # relative to output_dir
        _write_atomically(os.path.join(self.dir, BEST_RECORD), record)  # the commit
        _write_state_file(self.dir, name)
        _write_atomically(self.record, record)
        _remove_all_but(self.dir, name)


def _write_atomically(path: str, record: dict) -> None:
    training.write_key_values(path + ".tmp", record)
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def _write_state_file(directory: str, name: str) -> None:
    """``directory/checkpoint`` naming ``name`` (relative), so that --init_checkpoint=<output_dir>/best works."""
    text = f'model_checkpoint_path: "{name}"\nall_model_checkpoint_paths: "{name}"\n'
    path = os.path.join(directory, "checkpoint")
    if tf.io.gfile.exists(path):
        with tf.io.gfile.GFile(path) as f:
            if f.read() == text:
                return
    with tf.io.gfile.GFile(path + ".tmp", "w") as f:
        f.write(text)
    tf.io.gfile.rename(path + ".tmp", path, overwrite=True)


def _remove_all_but(directory: str, name: str) -> None:
    """Deletes the files in ``directory`` (best/) other than checkpoint ``name``'s, its record and state file."""
    keep = {BEST_RECORD, "checkpoint", name + ".index"}
    for path in tf.io.gfile.glob(os.path.join(directory, "*")):
        base = os.path.basename(path)
        if base not in keep and not (name and base.startswith(name + ".data-")) and not tf.io.gfile.isdir(path):
            tf.io.gfile.remove(path)


def evaluate_pending(best: BestCheckpoint, trainer: training.Trainer) -> None:
    """BestCheckpoint.evaluate_pending for the checkpoint ``trainer`` resumed from. Single-worker runs only: the
    decision reads output_dir's dev history, which another worker may not see, and evaluation is collective."""
    if not isinstance(trainer.strategy, tf.distribute.MultiWorkerMirroredStrategy):
        best.evaluate_pending(trainer.manager.latest_checkpoint, trainer.step)


def recover_best(output_dir: str) -> None:
    """Tidies best/ after a kill during a replacement (see BestCheckpoint): keeps the checkpoint its record names
    and deletes the other files (a newer best copied but never committed, or the old best not yet deleted). Also
    puts back ``best.old/`` from the earlier rename-based scheme."""
    best, old = os.path.join(output_dir, BEST_DIR), os.path.join(output_dir, BEST_DIR + ".old")
    if tf.io.gfile.exists(old) and not tf.io.gfile.exists(best):
        tf.io.gfile.rename(old, best)
        print(f"note: put back {best} (a run was stopped while replacing it)", flush=True)
    if tf.io.gfile.exists(best + ".tmp"):  # the earlier scheme's staging folder
        tf.io.gfile.rmtree(best + ".tmp")
    if not tf.io.gfile.isdir(best):
        return
    record = os.path.join(best, BEST_RECORD)
    recorded = training.read_key_values(record).get("checkpoint", "") if tf.io.gfile.exists(record) else ""
    name = os.path.basename(recorded)
    _remove_all_but(best, name)
    if name:
        _write_state_file(best, name)


def _checkpoint_of(output_dir: str, recorded: str) -> str:
    """A record's checkpoint as a path: relative to output_dir, or absolute (records of earlier versions)."""
    return recorded if os.path.isabs(recorded) or "://" in recorded else os.path.join(output_dir, recorded)


def read_best(output_dir: str) -> dict[str, str] | None:
    """The best checkpoint's record (step, the metric, loss, and ``checkpoint`` as a path to load) from ``best/``
    (whose copy in output_dir may lag by one replacement after a kill), or None when there is none. A record whose
    checkpoint is gone is an error: falling back to the last checkpoint would silently report another one."""
    missing = []
    for path in (os.path.join(output_dir, BEST_DIR, BEST_RECORD), os.path.join(output_dir, BEST_RECORD)):
        if tf.io.gfile.exists(path):
            found = training.read_key_values(path)
            checkpoint = _checkpoint_of(output_dir, found.get("checkpoint", ""))
            if tf.io.gfile.exists(checkpoint + ".index"):
                return dict(found, checkpoint=checkpoint)
            missing.append((path, found.get("checkpoint", "")))
    if not missing:
        return None
    path, recorded = missing[0]
    raise FileNotFoundError(f"{path} records the best checkpoint {recorded}, which output folder {output_dir} does "
                            f"not hold (moved or deleted?): put it back, or pass --use_best_checkpoint=false to use "
                            f"the last checkpoint")


def use_best_checkpoint(model, step: int, output_dir: str, *, use_best: bool, warn_untrained: bool) -> int:
    """Loads output_dir's best dev checkpoint into ``model`` when there is one (and ``use_best``); returns the step
    of the weights the model now holds. ``warn_untrained``: say so when the model is left randomly initialised."""
    best = read_best(output_dir) if use_best else None
    if best is None:
        if warn_untrained and step == 0:
            print("WARNING: no checkpoint in --output_dir and no --init_checkpoint: the model is randomly "
                  "initialised", flush=True)
        return step
    import checkpoints  # lazily, as in model_config

    with checkpoints.reading(best["checkpoint"]):
        status = tf.train.Checkpoint(model=model).restore(best["checkpoint"])
    status.assert_existing_objects_matched().expect_partial()  # the optimizer's slots are not wanted here
    metric = best.get("metric", "accuracy")
    print(f"\nusing the best dev checkpoint: step {best['step']}, dev {metric} {float(best[metric]):.4f} "
          f"({best['checkpoint']})", flush=True)
    return int(best["step"])
