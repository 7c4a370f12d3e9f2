"""Fine-tunes, evaluates and predicts with an ALBERT classifier on a task's files (LCQMC, CLUE, XNLI, your own).

The original's flags and outputs, on the shared tf.distribute loop (training.py) instead of the TF1 TPU Estimator:

* ``--task_name`` picks a processor in classifier_data.py (its module docstring lists each task's files, the
  published formats it reads and how a row becomes text_a / text_b / label). Features are cached under
  ``<output_dir>/features/`` keyed by the data file, vocab, casing, max_seq_length, task and labels, so changing any
  of them converts again.
* ``--train_file`` / ``--dev_file`` / ``--test_file``: a split's file by path, whatever its name, instead of the
  task's file name in ``--data_dir`` (which is then needed only for the splits without such a flag).
* ``--label_list``: the labels, in label-id order (a file with one label a line, or ``a,b,c``), for any task; rows
  with another label are errors naming file:line (skipped with ``--skip_bad_lines``).
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
  config's, ``--classifier_dropout`` (0.1, as the original hard-coded) is applied to the pooled output.

Example (LCQMC)::

  python run_classifier.py --task_name=lcqmc_pair --data_dir=data/lcqmc --vocab_file=albert_tiny_zh/vocab.txt \
      --bert_config_file=albert_config/albert_config_tiny.json --init_checkpoint=albert_tiny_zh/ \
      --output_dir=output/lcqmc --do_train=true --do_eval=true --do_predict=true --max_seq_length=128 \
      --train_batch_size=64 --learning_rate=1e-4 --num_train_epochs=5 --save_checkpoints_steps=1000
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # before TF is imported; why: training.py

import numpy as np
import tensorflow as tf
from absl import app, flags

import classifier_data
import cli
import finetuning
import input_pipeline
import modeling
import tokenization
import training

FLAGS = flags.FLAGS
finetuning.define_flags(list(classifier_data.PROCESSORS),
                        "Predict the test file: test_results.tsv (+ <task>_predict.json for CLUE).", split_files=True)
flags.DEFINE_string("label_list", None,
                    "The labels, their order giving the label ids: a file (one label a line) or a comma-separated "
                    "list. Default: the task's (text_classification: those of train + dev). Rows with another label "
                    "are errors; it must match the label_list.txt of a model already in --output_dir.")
flags.DEFINE_float("classifier_dropout", 0.1, "Dropout on the pooled output before the classifier.")
flags.DEFINE_enum("classifier_pooling", "cls", list(modeling.CLASSIFIER_POOLINGS),
                  "What the classifier reads: cls (the original's pooler on [CLS]) or mean (the mean of the sequence "
                  "output; for checkpoints whose [CLS] was never trained, e.g. sentence-order accuracy at chance). "
                  "Export such a model with export_saved_model.py --classifier_pooling=mean.")

LABEL_LIST = "label_list.txt"
stage = finetuning.stage


# ---------------------------------------------------------------------------------------------------------------------
# Task and prediction
# ---------------------------------------------------------------------------------------------------------------------

def classification_task(config: modeling.AlbertConfig, num_labels: int, classifier_dropout: float,
                        pooling: str = "cls") -> training.Task:
    """Cross-entropy and accuracy, summed over real examples and counted in examples (``is_real_example`` weights,
    so TFRecords padded with fake examples by the TF1 scripts evaluate correctly too)."""
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


def predict_probabilities(model, dataset) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities [N,C], label ids [N]) over ``dataset`` in its order, the partial last batch included.

    The model is called outside ``strategy.run`` (every replica's copy holds the same weights), so every worker
    sees all examples in file order and the chief writes them.
    """
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

def resolve_labels(processor: classifier_data.DataProcessor, data_dir: str | None, output_dir: str,
                   label_list: str | None = None) -> list[str]:
    """The task's labels (or ``label_list``'s, see --label_list), checked against (or, for data-derived labels
    without train/dev files, read from) ``output_dir/label_list.txt``, which records the labels the classifier head
    was trained with."""
    saved_path = os.path.join(output_dir, LABEL_LIST)
    saved = finetuning.read_names(saved_path)
    if label_list:
        labels = classifier_data.parse_label_list(label_list)
        processor.use_labels(labels)
        return finetuning.keep_names(saved_path, labels, saved, "labels", f"--label_list={label_list}")
    if processor.labels is None and saved is not None and not (
            processor.has_file(data_dir, "train") or processor.has_file(data_dir, "dev")):
        processor.use_labels(saved)
        return saved
    return finetuning.keep_names(saved_path, processor.get_labels(data_dir), saved, "labels", "the data")


def load_data(processor: classifier_data.DataProcessor, labels: list[str],
              tokenizer: tokenization.FullTokenizer) -> dict[str, classifier_data.SplitData]:
    """The splits the --do_* flags need, read and converted (or taken from the feature cache)."""
    return {split: classifier_data.load_split(
        processor, FLAGS.data_dir, split, labels, tokenizer, FLAGS.max_seq_length,
        os.path.join(FLAGS.output_dir, "features"), vocab_file=FLAGS.vocab_file,
        spm_model_file=FLAGS.spm_model_file, do_lower_case=FLAGS.do_lower_case)
        for split in finetuning.wanted_splits(FLAGS)}


def ordered_dataset(split_data: classifier_data.SplitData, batch_size: int):
    """One pass in file order, the partial last batch kept (eval and predict never drop an example)."""
    return input_pipeline.make_dataset([split_data.features_file],
                                       input_pipeline.classifier_features(FLAGS.max_seq_length), batch_size,
                                       is_training=False, drop_remainder=False)


def write_eval_results(metrics: dict[str, float], step: int, num_examples: int) -> None:
    """eval_results.txt with the original's eval_* names, the macro-F1 and the evaluated checkpoint's step."""
    training.write_key_values(
        os.path.join(FLAGS.output_dir, "eval_results.txt"),
        {"eval_accuracy": metrics["accuracy"], "eval_loss": metrics["loss"], "eval_macro_f1": metrics["macro_f1"],
         "global_step": step, "num_examples": num_examples})
    print("eval: " + "  ".join(f"{k} = {v:.4f}" for k, v in sorted(metrics.items())), flush=True)


def write_predictions(processor: classifier_data.DataProcessor, test: classifier_data.SplitData,
                      probabilities: np.ndarray, labels: list[str]) -> None:
    """test_results.tsv, and <task>_predict.json for CLUE tasks."""
    if len(probabilities) != test.num_examples:  # never drop an example (the original's TPU-padding pitfall)
        raise AssertionError(f"{len(probabilities)} predictions for {test.num_examples} examples")
    path = os.path.join(FLAGS.output_dir, "test_results.tsv")
    classifier_data.write_test_results(path, probabilities)
    print(f"wrote {path} ({len(probabilities)} lines)", flush=True)
    if processor.is_clue:
        path = os.path.join(FLAGS.output_dir, f"{FLAGS.task_name.lower()}_predict.json")
        classifier_data.write_clue_predictions(path, test.examples, probabilities, labels, processor)
        print(f"wrote {path}", flush=True)


def main(_) -> None:
    overrides = finetuning.split_file_overrides(FLAGS)
    strategy, config, tokenizer = finetuning.setup(FLAGS)
    processor = classifier_data.get_processor(FLAGS.task_name, FLAGS.skip_bad_lines)
    processor.use_files(overrides)

    where = [f"in {FLAGS.data_dir}"] if FLAGS.data_dir else []
    where += [f"{split} file {path}" for split, path in overrides.items()]
    stage(f"data: task {FLAGS.task_name} " + ", ".join(where))
    labels = resolve_labels(processor, FLAGS.data_dir, FLAGS.output_dir, FLAGS.label_list)
    print(f"labels ({len(labels)}): {' '.join(labels[:20])}{' ...' if len(labels) > 20 else ''}", flush=True)
    data = load_data(processor, labels, tokenizer)

    task = classification_task(config, len(labels), FLAGS.classifier_dropout, FLAGS.classifier_pooling)
    trainer = finetuning.build_trainer(FLAGS, strategy, task, data["train"].num_examples if FLAGS.do_train else None,
                                       config.model_family)

    def dev_metrics() -> dict[str, float]:
        dev = ordered_dataset(data["dev"], FLAGS.eval_batch_size)
        return training.evaluate(strategy, trainer.model, task, dev, files=[data["dev"].features_file])

    if FLAGS.do_train:
        stage(f"training: {data['train'].num_examples} examples × {FLAGS.num_train_epochs:g} epochs / batch "
              f"{FLAGS.train_batch_size} = {trainer.config.num_train_steps} steps ({trainer.warmup_steps} warmup)")
    step = finetuning.train_and_pick_best(
        FLAGS, trainer, data["train"].features_file if FLAGS.do_train else None,
        input_pipeline.classifier_features(FLAGS.max_seq_length), dev_metrics, metric="accuracy")
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
    finetuning.export_after_training(FLAGS, trainer)


if __name__ == "__main__":
    flags.mark_flags_as_required(["task_name", "bert_config_file", "output_dir"])  # data_dir: split_file_overrides
    cli.list_all_flags_in_help()
    app.run(cli.clean_errors(main))
