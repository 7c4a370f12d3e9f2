"""MLM + SOP pretraining of ALBERT on the TFRecords create_pretraining_data.py writes.

The original's flags and files, on tf.distribute instead of the TF1 TPU Estimator. A run resumes by itself from the
latest checkpoint in --output_dir (model, optimizer slots, step and data position); --init_checkpoint (TF1 albert_zh or
Google ALBERT, or one of ours) is only read when there is nothing to resume.

Example:
  python run_pretraining.py --bert_config_file=albert_config/albert_config_tiny.json \
      --input_file='output/pretrain/tf_examples.tfrecord*' --output_dir=output/pretrain_model \
      --do_train=true --do_eval=true --train_batch_size=64 --max_seq_length=128 --max_predictions_per_seq=20 \
      --num_train_steps=1000 --num_warmup_steps=100 --learning_rate=1e-4
"""

from __future__ import annotations

import json
import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # before TF is imported; why: training.py

import tensorflow as tf
from absl import app, flags

import checkpoints
import cli
import input_pipeline
import masking
import modeling
import optimization
import training

FLAGS = flags.FLAGS
cli.define_model_flags("TF1 (albert_zh or Google) or TF2 checkpoint to start from.",
                       "Sequence length of the data (checked against it).", tokenizer=False)
flags.DEFINE_string("input_file", None, "Comma-separated globs of pretraining TFRecords.")
flags.DEFINE_string("eval_input_file", None,
                    "Held-out TFRecords for --do_eval (default: --input_file, as the original).")
flags.DEFINE_string("output_dir", None, "Checkpoints, TensorBoard summaries and eval_results.txt go here.")
flags.DEFINE_integer("max_predictions_per_seq", 20, "Masked positions per sequence in the data (checked).")
flags.DEFINE_bool("do_train", False, "Train.")
flags.DEFINE_bool("do_eval", False, "Evaluate (after training when both are set).")
flags.DEFINE_integer("train_batch_size", 32, "Global training batch.")
flags.DEFINE_integer("eval_batch_size", 8, "Global eval batch.")
flags.DEFINE_float("learning_rate", 5e-5, "Peak learning rate.")
flags.DEFINE_integer("num_train_steps", 100000, "Optimizer steps.")
flags.DEFINE_integer("num_warmup_steps", 10000, "Linear warmup steps.")
flags.DEFINE_integer("max_eval_steps", 100, "Eval batches at most.")
optimization.define_flags("lamb")
flags.DEFINE_float("poly_power", 1.0, "Power of the polynomial decay (1 = linear, the original's).")
flags.DEFINE_integer("start_warmup_step", 0, "Google's option: warmup counts from this step.")
training.define_flags()
# Dynamic masking: data made by create_pretraining_data.py --masking=dynamic is masked here, every epoch afresh.
flags.DEFINE_string("vocab_file", None, "Dynamic masking: the vocab the data was made with ([MASK] and the ids of "
                    "the 10% random replacements).")
# Their defaults are the values create_pretraining_data.py recorded beside the records (.NAME.masking.json), if any.
flags.DEFINE_float("masked_lm_prob", 0.15, "Dynamic masking: share of the tokens to predict (create_pretraining_data's "
                   "flag; default: the records' recorded value).")
flags.DEFINE_integer("ngram", 1, "Dynamic masking: spans of up to N whole words, p(n) ~ 1/n (default: recorded).")
flags.DEFINE_bool("favor_shorter_ngram", True, "Dynamic masking: false reverses the n-gram weights (default: "
                  "recorded).")


def apply_masking_record(files: list[str]) -> None:
    """Dynamic records: the masking flags the user did not pass take the values the records were made with (their
    settings files); a contradicting flag, or another vocab than theirs, is refused. Older records have none."""
    record, missing = input_pipeline.read_masking_records(files)
    if record is None:
        print(f"note: {files[0]} has no masking settings file (made by an older create_pretraining_data.py): masking "
              f"with the flags as given, unchecked against the data", flush=True)
        return
    if missing:
        print(f"note: {len(missing)} input file(s) have no masking settings file (e.g. {missing[0]}): checked "
              f"against the others'", flush=True)
    sha = None
    if FLAGS.vocab_file:
        import hashlib

        with tf.io.gfile.GFile(FLAGS.vocab_file, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
    values, lines = input_pipeline.masking_flags_from_record(
        record, {name: FLAGS[name].value for name in masking.RECORDED_FLAGS},
        {name for name in masking.RECORDED_FLAGS if FLAGS[name].present}, sha, FLAGS.vocab_file)
    for name, value in values.items():
        setattr(FLAGS, name, value)
    for line in lines:
        print(line, flush=True)


def dynamic_masker():
    """The input pipeline's masker for unmasked (--masking=dynamic) records, from the masking flags."""
    import tokenization

    if not FLAGS.vocab_file:
        raise ValueError("--input_file holds unmasked records (create_pretraining_data.py --masking=dynamic): pass "
                         "--vocab_file, the vocab they were made with, so that they can be masked here")
    special = masking.special_ids_from_vocab(tokenization.load_vocab(FLAGS.vocab_file), FLAGS.vocab_file)
    cfg = masking.InstanceConfig(FLAGS.max_seq_length, FLAGS.max_predictions_per_seq, FLAGS.masked_lm_prob,
                                 ngram=FLAGS.ngram, favor_shorter_ngram=FLAGS.favor_shorter_ngram)
    print(f"dynamic masking: {FLAGS.masked_lm_prob:.0%} of the tokens (at most {FLAGS.max_predictions_per_seq}), "
          f"whole words marked in the data, n-grams up to {FLAGS.ngram}; fresh masks every epoch", flush=True)
    return input_pipeline.dynamic_masker(cfg, special, FLAGS.seed)


def pretraining_task(config: modeling.AlbertConfig) -> training.Task:
    """MLM on the masked positions (weighted by masked_lm_weights) + SOP, the original's losses."""

    def sums(features, out):
        weights = tf.cast(features["masked_lm_weights"], tf.float32)
        labels = features["masked_lm_ids"]
        mlm = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=out["mlm_logits"])
        mlm_hit = tf.cast(tf.equal(tf.argmax(out["mlm_logits"], -1, output_type=tf.int32), labels), tf.float32)
        sop_labels = tf.reshape(features["next_sentence_labels"], [-1])
        sop = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=sop_labels, logits=out["sop_logits"])
        sop_hit = tf.cast(tf.equal(tf.argmax(out["sop_logits"], -1, output_type=tf.int32), sop_labels), tf.float32)
        return {"masked_lm_loss": tf.reduce_sum(mlm * weights), "masked_lm_accuracy": tf.reduce_sum(mlm_hit * weights),
                "sentence_order_loss": tf.reduce_sum(sop), "sentence_order_accuracy": tf.reduce_sum(sop_hit)}

    def counts(features):
        tokens = tf.reduce_sum(tf.cast(features["masked_lm_weights"], tf.float32))
        examples = tf.cast(tf.shape(features["input_ids"])[0], tf.float32)
        return {"masked_lm_loss": tokens, "masked_lm_accuracy": tokens,
                "sentence_order_loss": examples, "sentence_order_accuracy": examples}

    return training.Task(build_model=lambda: modeling.AlbertPretrainingModel(config), sums=sums, counts=counts,
                         loss_terms=("masked_lm_loss", "sentence_order_loss"))


EFFECTIVE_CONFIG = "albert_config.json"  # in output_dir: the config the run's checkpoints were trained with


def effective_config(output_dir: str, config_file: str, model_family: str | None,
                     init_checkpoint: str | None) -> modeling.AlbertConfig:
    """The config to build the model with. A run that resumes uses the one it started with (written to
    output_dir/albert_config.json), so a decision taken from --init_checkpoint (e.g. its model family) holds on every
    restart, even when the checkpoint has moved since; a new run reads --bert_config_file (and --model_family), and
    takes the family --init_checkpoint needs when the config does not set one."""
    saved = os.path.join(output_dir, EFFECTIVE_CONFIG)
    if tf.train.latest_checkpoint(output_dir) and tf.io.gfile.exists(saved):
        with tf.io.gfile.GFile(saved) as f:
            return modeling.AlbertConfig.from_dict(json.loads(f.read()))
    config = modeling.AlbertConfig.from_json_file(config_file, model_family=model_family)
    if init_checkpoint:
        config = checkpoints.config_for_checkpoint(config, init_checkpoint)  # the family the weights need
    return config


def write_eval_results(path: str, results: dict[str, float], step: int) -> None:
    """eval_results.txt as the original wrote it (key = value), with the original's next_sentence_* names too."""
    results = dict(results, global_step=step)
    results["next_sentence_accuracy"] = results["sentence_order_accuracy"]
    results["next_sentence_loss"] = results["sentence_order_loss"]
    training.write_key_values(path, results)


def main(_) -> None:
    if not FLAGS.do_train and not FLAGS.do_eval:
        raise app.UsageError("At least one of --do_train or --do_eval must be true.")
    for name in ("bert_config_file", "input_file", "output_dir"):
        if not getattr(FLAGS, name):
            raise app.UsageError(f"--{name} is required.")
    strategy = training.strategy_from_flags(FLAGS)  # first: multi-worker setup must precede other TF work
    training.set_precision(FLAGS.mixed_precision, FLAGS.use_xla)
    config = effective_config(FLAGS.output_dir, FLAGS.bert_config_file, FLAGS.model_family, FLAGS.init_checkpoint)
    config.check_sequence_length(FLAGS.max_seq_length, FLAGS.bert_config_file)
    files = input_pipeline.expand_files(FLAGS.input_file)
    eval_files = input_pipeline.expand_files(FLAGS.eval_input_file) if FLAGS.eval_input_file else files
    kinds = {input_pipeline.check_pretraining_data(checked, FLAGS.max_seq_length, FLAGS.max_predictions_per_seq,
                                                   config.vocab_size)
             for checked in {files[0]: files, eval_files[0]: eval_files}.values()}
    if len(kinds) > 1:
        raise ValueError("--input_file and --eval_input_file hold different kinds of records (static and dynamic "
                         "masking): make both the same way")
    masker = None
    if kinds == {input_pipeline.DYNAMIC}:
        apply_masking_record(list(dict.fromkeys(files + eval_files)))
        masker = dynamic_masker()
    tf.io.gfile.makedirs(FLAGS.output_dir)
    saved_config = os.path.join(FLAGS.output_dir, EFFECTIVE_CONFIG)
    if training.is_chief(strategy) and not tf.io.gfile.exists(saved_config):
        with tf.io.gfile.GFile(saved_config, "w") as f:
            f.write(config.to_json_string())
    task = pretraining_task(config)
    spec = (input_pipeline.unmasked_pretraining_features(FLAGS.max_seq_length) if masker else
            input_pipeline.pretraining_features(FLAGS.max_seq_length, FLAGS.max_predictions_per_seq))

    def make_optimizer():
        return optimization.create_optimizer(FLAGS.learning_rate, FLAGS.num_train_steps, FLAGS.num_warmup_steps,
                                             poly_power=FLAGS.poly_power, start_warmup_step=FLAGS.start_warmup_step,
                                             **optimization.flag_kwargs(FLAGS, config.model_family))

    trainer = training.Trainer(strategy, task, make_optimizer,
                               training.config_from_flags(FLAGS, FLAGS.num_train_steps, FLAGS.train_batch_size))
    trainer.restore_or_initialize(
        init_fn=(lambda model: checkpoints.load_checkpoint(model, FLAGS.init_checkpoint))
        if FLAGS.init_checkpoint else None, model_only=not FLAGS.do_train)
    if FLAGS.do_train:
        def dataset_fn(ctx, skip_batches):
            return input_pipeline.make_dataset(
                files, spec, trainer.per_replica_batch, is_training=True, input_context=ctx, seed=FLAGS.seed,
                skip_batches=skip_batches, masker=masker, vocab_size=config.vocab_size)
        trainer.train(dataset_fn, files)
    if FLAGS.do_eval:
        # dynamic: the same masks on every evaluation
        dataset = input_pipeline.make_dataset(eval_files, spec, FLAGS.eval_batch_size, is_training=False,
                                              masker=masker, vocab_size=config.vocab_size)
        results = training.evaluate(strategy, trainer.model, task, dataset, FLAGS.max_eval_steps, eval_files)
        if trainer.chief:
            write_eval_results(os.path.join(FLAGS.output_dir, "eval_results.txt"), results, trainer.step)
        print("eval: " + "  ".join(f"{k} = {v:.4f}" for k, v in sorted(results.items())), flush=True)


if __name__ == "__main__":
    cli.list_all_flags_in_help()
    app.run(cli.clean_errors(main))
