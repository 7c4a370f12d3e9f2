"""Fine-tunes, evaluates and predicts with an ALBERT classifier on a task's files (LCQMC, CLUE, XNLI, your own).

The seed's flags and outputs, on the shared tf.distribute loop (training.py) instead of the TF1 TPU Estimator:

* ``--task_name`` picks a processor in classifier_data.py (its module docstring lists each task's files and how a
  row becomes text_a / text_b / label). Features are cached under ``<output_dir>/features/`` keyed by the data file,
  vocab, casing, max_seq_length, task and labels, so changing any of them converts again.
* ``--do_train``: AdamW (``--optimizer``) with linear warmup/decay over ceil(examples × epochs / batch) steps,
  checkpoints every ``--save_checkpoints_steps`` in ``--output_dir`` (a killed run resumes from the latest). With
  ``--do_eval`` each checkpoint is evaluated on dev as it is written (``dev_history.tsv``) and the best one (highest
  dev accuracy, the earliest on ties) is copied to ``<output_dir>/best/``, with ``best_checkpoint.txt`` saying its
  step and metrics: ``--keep_checkpoint_max`` cannot delete it.
* Eval, predict and export then use the best dev checkpoint (``--use_best_checkpoint``, default on), else the last.
* ``--do_eval`` writes ``eval_results.txt`` (eval_accuracy, eval_loss, eval_macro_f1, global_step = the step of the
  evaluated checkpoint). ``--do_predict`` writes ``test_results.tsv`` (one line per test example, in file order,
  tab-separated class probabilities in label-list order) and, for CLUE tasks, ``<task>_predict.json``.
* After training (or with ``--export_dir``) the classifier is exported as a SavedModel (default
  ``<output_dir>/saved_model``; see export_saved_model.py for its signature).
* Dropout: the configs ship with 0.0; ``--hidden_dropout_prob`` / ``--attention_probs_dropout_prob`` override the
  config's, ``--classifier_dropout`` (0.1, as the seed hard-coded) is applied to the pooled output.

Example (LCQMC)::

  python run_classifier.py --task_name=lcqmc_pair --data_dir=data/lcqmc --vocab_file=albert_tiny_zh/vocab.txt \
      --bert_config_file=albert_config/albert_config_tiny.json --init_checkpoint=albert_tiny_zh/ \
      --output_dir=output/lcqmc --do_train=true --do_eval=true --do_predict=true --max_seq_length=128 \
      --train_batch_size=64 --learning_rate=1e-4 --num_train_epochs=5 --save_checkpoints_steps=1000
"""

from __future__ import annotations

import os
from typing import Callable

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # before TF is imported; why: training.py

import numpy as np
from absl import app, flags

import classifier_data
import input_pipeline
import modeling
import optimization
import tokenization
import training

FLAGS = flags.FLAGS
flags.DEFINE_string("task_name", None, f"The task: {', '.join(sorted(classifier_data.PROCESSORS))}.")
flags.DEFINE_string("data_dir", None, "Directory holding the task's train/dev/test files.")
flags.DEFINE_string("bert_config_file", None, "ALBERT config JSON (the seed's, Google's or BERT's).")
flags.DEFINE_string("vocab_file", None, "WordPiece vocab the model was pretrained with.")
flags.DEFINE_string("spm_model_file", None, "SentencePiece model (Google ALBERT); replaces --vocab_file.")
flags.DEFINE_string("output_dir", None, "Checkpoints, cached features, eval/predict results, the best checkpoint.")
flags.DEFINE_string("init_checkpoint", None, "TF1 (albert_zh or Google) or TF2 checkpoint to start from.")
flags.DEFINE_enum("model_family", None, list(modeling.MODEL_FAMILIES), "Overrides the config's model family.")
flags.DEFINE_bool("do_lower_case", True, "Lower-case the text (True for the Chinese vocabs).")
flags.DEFINE_integer("max_seq_length", 128, "Tokens per example after WordPiece, [CLS] and [SEP]s included.")
flags.DEFINE_bool("do_train", False, "Fine-tune on the train file.")
flags.DEFINE_bool("do_eval", False, "Evaluate on the dev file (each checkpoint while training, then the chosen one).")
flags.DEFINE_bool("do_predict", False, "Predict the test file: test_results.tsv (+ <task>_predict.json for CLUE).")
flags.DEFINE_integer("train_batch_size", 32, "Global training batch.")
flags.DEFINE_integer("eval_batch_size", 8, "Eval batch (the last batch may be partial: no example is dropped).")
flags.DEFINE_integer("predict_batch_size", 8, "Predict batch (the last batch may be partial).")
flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate.")
flags.DEFINE_float("num_train_epochs", 3.0, "Epochs over the train file.")
flags.DEFINE_float("warmup_proportion", 0.1, "Fraction of the training steps with linear warmup.")
optimization.define_flags("adamw")
flags.DEFINE_float("classifier_dropout", 0.1, "Dropout on the pooled output before the classifier.")
flags.DEFINE_enum("classifier_pooling", "cls", list(modeling.CLASSIFIER_POOLINGS),
                  "What the classifier reads: cls (the seed's pooler on [CLS]) or mean (the mean of the sequence "
                  "output; for checkpoints whose [CLS] was never trained, e.g. sentence-order accuracy at chance). "
                  "Export such a model with export_saved_model.py --classifier_pooling=mean.")
flags.DEFINE_float("hidden_dropout_prob", None, "Overrides the config's hidden_dropout_prob (default: config's).")
flags.DEFINE_float("attention_probs_dropout_prob", None, "Overrides the config's attention_probs_dropout_prob.")
flags.DEFINE_bool("skip_bad_lines", False, "Skip (and count) malformed lines of the task files instead of failing.")
flags.DEFINE_bool("use_best_checkpoint", True,
                  "Eval/predict/export with the best dev checkpoint (output_dir/best) when there is one.")
flags.DEFINE_string("export_dir", None, "SavedModel directory (default: output_dir/saved_model after training).")
training.define_flags()

BEST_DIR, BEST_RECORD, DEV_HISTORY, LABEL_LIST = "best", "best_checkpoint.txt", "dev_history.tsv", "label_list.txt"


def stage(title: str) -> None:
    print(f"\n===== {title} =====", flush=True)


# ---------------------------------------------------------------------------------------------------------------------
# Task, trainer with dev selection, prediction
# ---------------------------------------------------------------------------------------------------------------------

def classification_task(config: modeling.AlbertConfig, num_labels: int, classifier_dropout: float,
                        pooling: str = "cls") -> training.Task:
    """Cross-entropy and accuracy, summed over real examples and counted in examples (``is_real_example`` weights,
    so TFRecords padded with fake examples by the TF1 scripts evaluate correctly too)."""
    import tensorflow as tf

    def real(features):
        return tf.cast(tf.reshape(features["is_real_example"], [-1]), tf.float32)

    def sums(features, out):
        labels = tf.reshape(features["label_ids"], [-1])
        loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=out["logits"])
        hit = tf.cast(tf.equal(tf.argmax(out["logits"], -1, output_type=tf.int32), labels), tf.float32)
        weight = real(features)
        return {"loss": tf.reduce_sum(loss * weight), "accuracy": tf.reduce_sum(hit * weight)}

    def counts(features):
        n = tf.reduce_sum(real(features))
        return {"loss": n, "accuracy": n}

    return training.Task(build_model=lambda: modeling.AlbertClassifier(config, num_labels, classifier_dropout,
                                                                       pooling),
                         sums=sums, counts=counts, loss_terms=("loss",))


class FineTuningTrainer(training.Trainer):
    """training.Trainer that calls ``after_save(prefix, step)`` after each checkpoint (the dev evaluation)."""

    after_save: Callable[[str, int], None] | None = None

    def save(self) -> str:
        path = super().save()
        if self.after_save is not None:
            self.after_save(path, self.step)
        return path


class BestCheckpoint:
    """Evaluates each checkpoint on dev and keeps the one with the highest accuracy in ``output_dir/best/``.

    The files are copied (the CheckpointManager deletes old checkpoints beyond --keep_checkpoint_max);
    ``best_checkpoint.txt`` records step, accuracy, loss and path, and is read back when a run resumes, so a resumed
    run only replaces the best with a better one.
    """

    def __init__(self, output_dir: str, evaluate: Callable[[], dict[str, float]], chief: bool):
        self.dir = os.path.join(output_dir, BEST_DIR)
        self.record = os.path.join(output_dir, BEST_RECORD)
        self.history = os.path.join(output_dir, DEV_HISTORY)
        self.evaluate, self.chief = evaluate, chief
        found = read_best(output_dir)
        self.best = float(found["accuracy"]) if found else -1.0

    def __call__(self, path: str, step: int) -> None:
        import tensorflow as tf

        results = self.evaluate()  # on every worker: evaluation takes part in collectives
        better = results["accuracy"] > self.best
        print(f"dev at step {step}: accuracy {results['accuracy']:.4f}  loss {results['loss']:.4f}"
              + ("  (best so far)" if better else f"  (best {self.best:.4f})"), flush=True)
        if not self.chief:
            return
        new_file = not tf.io.gfile.exists(self.history)
        with tf.io.gfile.GFile(self.history, "a") as f:
            if new_file:
                f.write("step\taccuracy\tloss\n")
            f.write(f"{step}\t{results['accuracy']}\t{results['loss']}\n")
        if not better:
            return
        self.best = results["accuracy"]
        if tf.io.gfile.exists(self.dir):
            tf.io.gfile.rmtree(self.dir)
        tf.io.gfile.makedirs(self.dir)
        for source in tf.io.gfile.glob(path + ".*"):
            tf.io.gfile.copy(source, os.path.join(self.dir, os.path.basename(source)), overwrite=True)
        prefix = os.path.join(self.dir, os.path.basename(path))
        with tf.io.gfile.GFile(os.path.join(self.dir, "checkpoint"), "w") as f:  # --init_checkpoint=<dir>/best works
            f.write(f'model_checkpoint_path: "{os.path.basename(path)}"\n'
                    f'all_model_checkpoint_paths: "{os.path.basename(path)}"\n')
        classifier_data.write_key_values(self.record, {"step": step, "accuracy": results["accuracy"],
                                                       "loss": results["loss"], "checkpoint": prefix})


def read_best(output_dir: str) -> dict[str, str] | None:
    """best_checkpoint.txt as a dict (step, accuracy, loss, checkpoint), or None when there is none."""
    import tensorflow as tf

    path = os.path.join(output_dir, BEST_RECORD)
    if not tf.io.gfile.exists(path):
        return None
    found = classifier_data.read_key_values(path)
    return found if tf.io.gfile.exists(found.get("checkpoint", "") + ".index") else None


def predict_probabilities(model, dataset) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities [N,C], label ids [N]) over ``dataset`` in its order, the partial last batch included.

    The model is called outside ``strategy.run`` (every replica's copy holds the same weights), so every worker
    sees all examples in file order and the chief writes them.
    """
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def forward(features):
        return model(features, training=False)["probabilities"]

    probabilities, labels = [], []
    for features in dataset:
        probabilities.append(forward(features).numpy())
        labels.append(features["label_ids"].numpy().reshape(-1))
    return np.concatenate(probabilities), np.concatenate(labels)


# ---------------------------------------------------------------------------------------------------------------------
# Glue
# ---------------------------------------------------------------------------------------------------------------------

def resolve_labels(processor: classifier_data.DataProcessor, data_dir: str, output_dir: str) -> list[str]:
    """The task's labels, checked against (or, for data-derived labels without train/dev files, read from)
    ``output_dir/label_list.txt``, which records the labels the classifier head was trained with."""
    import tensorflow as tf

    saved_path = os.path.join(output_dir, LABEL_LIST)
    saved = None
    if tf.io.gfile.exists(saved_path):
        with tf.io.gfile.GFile(saved_path) as f:
            saved = [line.rstrip("\n") for line in f if line.strip()]
    if processor.labels is None and saved is not None and not (
            processor.has_file(data_dir, "train") or processor.has_file(data_dir, "dev")):
        processor.use_labels(saved)
        return saved
    labels = processor.get_labels(data_dir)
    if saved is not None and saved != labels:
        raise ValueError(f"{saved_path} lists the labels {saved} the model in {output_dir} was trained with, but "
                         f"the data gives {labels}: use another --output_dir or the same data")
    if saved is None:
        with tf.io.gfile.GFile(saved_path, "w") as f:
            f.write("".join(label + "\n" for label in labels))
    return labels


def model_config(init_checkpoint: str | None) -> modeling.AlbertConfig:
    """The config from --bert_config_file, --model_family, the checkpoint's family (when the config does not set
    it) and the dropout overrides."""
    config = modeling.AlbertConfig.from_json_file(FLAGS.bert_config_file, model_family=FLAGS.model_family)
    if FLAGS.max_seq_length > config.max_position_embeddings:
        raise ValueError(f"--max_seq_length={FLAGS.max_seq_length} exceeds max_position_embeddings "
                         f"({config.max_position_embeddings}) of {FLAGS.bert_config_file}")
    if init_checkpoint:
        import checkpoints  # lazily: only runs with a checkpoint need it
        import tensorflow as tf
        try:  # also when resuming: the run being resumed was built with the family this picks
            config = checkpoints.config_for_checkpoint(config, init_checkpoint)
        except FileNotFoundError:
            if not tf.train.latest_checkpoint(FLAGS.output_dir):
                raise
            print(f"note: --init_checkpoint={init_checkpoint} is gone; resuming from {FLAGS.output_dir}", flush=True)
    overrides = {k: getattr(FLAGS, k) for k in ("hidden_dropout_prob", "attention_probs_dropout_prob")
                 if getattr(FLAGS, k) is not None}
    return config.replace(**overrides) if overrides else config


def init_from_checkpoint(init_checkpoint: str | None):
    """--init_checkpoint through the checkpoint loader (TF1 of either family, or ours); read only when output_dir
    has no checkpoint to resume from."""
    if not init_checkpoint:
        return None

    def init(model):
        import checkpoints
        checkpoints.load_checkpoint(model, init_checkpoint)
    return init


def load_data(processor: classifier_data.DataProcessor, labels: list[str],
              tokenizer: tokenization.FullTokenizer) -> dict[str, classifier_data.SplitData]:
    """The splits the --do_* flags need, read and converted (or taken from the feature cache)."""
    wanted = [s for s, on in (("train", FLAGS.do_train), ("dev", FLAGS.do_eval), ("test", FLAGS.do_predict)) if on]
    return {split: classifier_data.load_split(
        processor, FLAGS.data_dir, split, labels, tokenizer, FLAGS.max_seq_length,
        os.path.join(FLAGS.output_dir, "features"), vocab_file=FLAGS.vocab_file,
        spm_model_file=FLAGS.spm_model_file, do_lower_case=FLAGS.do_lower_case) for split in wanted}


def ordered_dataset(split_data: classifier_data.SplitData, batch_size: int):
    """One pass in file order, the partial last batch kept (eval and predict never drop an example)."""
    return input_pipeline.make_dataset([split_data.features_file],
                                       input_pipeline.classifier_features(FLAGS.max_seq_length), batch_size,
                                       is_training=False, drop_remainder=False)


def use_best_checkpoint(model, step: int) -> int:
    """Loads output_dir's best dev checkpoint into ``model`` when there is one (and --use_best_checkpoint);
    returns the step of the weights the model now holds."""
    import tensorflow as tf

    best = read_best(FLAGS.output_dir) if FLAGS.use_best_checkpoint else None
    if best is None:
        if not FLAGS.do_train and step == 0 and not FLAGS.init_checkpoint:
            print("WARNING: no checkpoint in --output_dir and no --init_checkpoint: the model is randomly "
                  "initialised", flush=True)
        return step
    status = tf.train.Checkpoint(model=model).restore(best["checkpoint"])
    status.assert_existing_objects_matched().expect_partial()  # the optimizer's slots are not wanted here
    print(f"\nusing the best dev checkpoint: step {best['step']}, dev accuracy {float(best['accuracy']):.4f} "
          f"({best['checkpoint']})", flush=True)
    return int(best["step"])


def write_eval_results(metrics: dict[str, float], step: int, num_examples: int) -> None:
    """eval_results.txt with the seed's eval_* names, the macro-F1 and the evaluated checkpoint's step."""
    classifier_data.write_key_values(
        os.path.join(FLAGS.output_dir, "eval_results.txt"),
        {"eval_accuracy": metrics["accuracy"], "eval_loss": metrics["loss"], "eval_macro_f1": metrics["macro_f1"],
         "global_step": step, "num_examples": num_examples})
    print("eval: " + "  ".join(f"{k} = {v:.4f}" for k, v in sorted(metrics.items())), flush=True)


def write_predictions(processor: classifier_data.DataProcessor, test: classifier_data.SplitData,
                      probabilities: np.ndarray, labels: list[str]) -> None:
    """test_results.tsv, and <task>_predict.json for CLUE tasks."""
    if len(probabilities) != test.num_examples:  # never drop an example (the seed's TPU-padding pitfall)
        raise AssertionError(f"{len(probabilities)} predictions for {test.num_examples} examples")
    path = os.path.join(FLAGS.output_dir, "test_results.tsv")
    classifier_data.write_test_results(path, probabilities)
    print(f"wrote {path} ({len(probabilities)} lines)", flush=True)
    if processor.is_clue:
        path = os.path.join(FLAGS.output_dir, f"{FLAGS.task_name.lower()}_predict.json")
        classifier_data.write_clue_predictions(path, test.examples, probabilities, labels)
        print(f"wrote {path}", flush=True)


def main(_) -> None:
    if not (FLAGS.do_train or FLAGS.do_eval or FLAGS.do_predict):
        raise app.UsageError("At least one of --do_train, --do_eval or --do_predict must be true.")
    if not FLAGS.vocab_file and not FLAGS.spm_model_file:
        raise app.UsageError("--vocab_file (or --spm_model_file) is required.")
    strategy = training.strategy_from_flags(FLAGS)  # first: multi-worker setup must precede other TF work
    training.set_precision(FLAGS.mixed_precision, FLAGS.use_xla)
    import tensorflow as tf

    tokenization.validate_case_matches_checkpoint(FLAGS.do_lower_case, FLAGS.init_checkpoint)
    config = model_config(FLAGS.init_checkpoint)
    tf.io.gfile.makedirs(FLAGS.output_dir)
    processor = classifier_data.get_processor(FLAGS.task_name, FLAGS.skip_bad_lines)
    tokenizer = tokenization.FullTokenizer(FLAGS.vocab_file, FLAGS.do_lower_case, FLAGS.spm_model_file)

    stage(f"data: task {FLAGS.task_name} in {FLAGS.data_dir}")
    labels = resolve_labels(processor, FLAGS.data_dir, FLAGS.output_dir)
    print(f"labels ({len(labels)}): {' '.join(labels[:20])}{' ...' if len(labels) > 20 else ''}", flush=True)
    data = load_data(processor, labels, tokenizer)

    num_steps, warmup = 1, 0  # eval/predict-only runs still build the optimizer (for resuming its checkpoints)
    if FLAGS.do_train:
        num_steps = classifier_data.num_train_steps(data["train"].num_examples, FLAGS.num_train_epochs,
                                                    FLAGS.train_batch_size)
        warmup = int(num_steps * FLAGS.warmup_proportion)

    def make_optimizer():
        return optimization.create_optimizer(FLAGS.learning_rate, num_steps, warmup,
                                             **optimization.flag_kwargs(FLAGS))

    task = classification_task(config, len(labels), FLAGS.classifier_dropout, FLAGS.classifier_pooling)
    trainer = FineTuningTrainer(strategy, task, make_optimizer,
                                training.config_from_flags(FLAGS, num_steps, FLAGS.train_batch_size))
    trainer.restore_or_initialize(init_fn=init_from_checkpoint(FLAGS.init_checkpoint))

    def dev_metrics() -> dict[str, float]:
        dev = ordered_dataset(data["dev"], FLAGS.eval_batch_size)
        return training.evaluate(strategy, trainer.model, task, dev, files=[data["dev"].features_file])

    if FLAGS.do_train:
        stage(f"training: {data['train'].num_examples} examples × {FLAGS.num_train_epochs:g} epochs / batch "
              f"{FLAGS.train_batch_size} = {num_steps} steps ({warmup} warmup)")
        if FLAGS.do_eval:
            trainer.after_save = BestCheckpoint(FLAGS.output_dir, dev_metrics, trainer.chief)
        train_files = [data["train"].features_file]

        def dataset_fn(ctx, start_step):
            return input_pipeline.make_dataset(train_files, input_pipeline.classifier_features(FLAGS.max_seq_length),
                                               trainer.per_replica_batch, is_training=True, input_context=ctx,
                                               seed=FLAGS.seed, skip_batches=start_step)
        trainer.train(dataset_fn, train_files)
        trainer.after_save = None

    step = use_best_checkpoint(trainer.model, trainer.step)
    if FLAGS.do_eval:
        stage(f"eval: {data['dev'].num_examples} dev examples, checkpoint step {step}")
        metrics = dev_metrics()
        dev = ordered_dataset(data["dev"], FLAGS.eval_batch_size)
        probabilities, gold = predict_probabilities(trainer.model, dev)
        metrics["macro_f1"] = classifier_data.classification_metrics(probabilities, gold, len(labels))["macro_f1"]
        if trainer.chief:
            write_eval_results(metrics, step, data["dev"].num_examples)
    if FLAGS.do_predict:
        stage(f"predict: {data['test'].num_examples} test examples, checkpoint step {step}")
        probabilities, _ = predict_probabilities(trainer.model,
                                                 ordered_dataset(data["test"], FLAGS.predict_batch_size))
        if trainer.chief:
            write_predictions(processor, data["test"], probabilities, labels)
    if (FLAGS.do_train or FLAGS.export_dir) and trainer.chief:
        export_dir = FLAGS.export_dir or os.path.join(FLAGS.output_dir, "saved_model")
        stage(f"export: SavedModel to {export_dir}")
        import export_saved_model  # lazily, as checkpoints
        export_saved_model.export_saved_model(trainer.model, export_dir, FLAGS.max_seq_length)


if __name__ == "__main__":
    flags.mark_flags_as_required(["task_name", "data_dir", "bert_config_file", "output_dir"])
    app.run(main)
