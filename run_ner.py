"""Fine-tunes, evaluates and predicts with an ALBERT named-entity tagger (token classification, optional CRF).

run_classifier.py's flags and loop (training.py: tf.distribute, checkpoints and resume, progress, TensorBoard;
the best dev checkpoint by entity F1 kept in ``<output_dir>/best/``), on NER files:

* ``--task_name``: ``peoples_daily_ner``, ``msra_ner``, ``cluener``, ``weibo_ner``, ``resume_ner`` or
  ``conll_ner`` (ner_data.py's docstring has their files, formats, tag set and checks). The files are the task's
  names in ``--data_dir``, or any paths given by ``--train_file``/``--dev_file``/``--test_file`` (``--data_dir``
  is then needed only for the splits without one). The tags come from the training file and are saved as
  ``tag_list.txt``.
* Tag schemes: BIO, BIOES (BILOU) or BMES, each file's detected from its tags (``--tag_scheme`` imposes one);
  the model works in BIO. The training file's scheme is saved as ``tag_scheme.txt`` (for a test file without
  tags).
* Model: ``modeling.AlbertTokenClassifier``: tag logits on each unit's first piece; ``--use_crf`` adds a
  linear-chain CRF (crf.py) trained on its log-likelihood. Decoding is Viterbi under BIO constraints
  (``--bio_constraints``, default on: an ``I-x`` only after ``B-x``/``I-x``), over the CRF's scores or, without a
  CRF, over the per-token log-probabilities; ``--nobio_constraints`` without a CRF is the plain per-token argmax.
* Long sentences are cut into overlapping windows (``--doc_stride``, less than ``max_seq_length - 2``: windows
  must overlap); every unit gets the tag of the window where it has the most context, so nothing is truncated
  away.
* ``--do_eval`` writes ``eval_results.txt``: entity-level precision/recall/F1 (exact span and type, conlleval
  rules) overall (``eval_f1``...) and per type (``eval_PER_f1``...), token accuracy and loss (each unit counted
  once, in the window its tag comes from), and prints a table.
* ``--do_predict`` writes ``test_predictions.txt`` (``unit TAG`` lines, a blank line after each sentence: the
  test file's units in its order, its tags in the test file's scheme, or the training file's when the test file
  has none), ``cluener_predict.json`` (CLUE's submission format) for cluener, and, when the test file has tags,
  ``test_results.txt`` with the same scores as eval. Both keep one entry per test sentence: one
  that ``--skip_bad_lines`` skipped has its units tagged ``O`` (a ``# skipped: file:line`` line when they cannot be
  told) and an empty label in the JSON; the run says how many.
* After training (or with ``--export_dir``) the tagger is exported as a SavedModel (``logits``, ``probabilities``,
  ``tags``; export_saved_model.py).

Example (People's Daily NER; data/make_ner_data.py builds it from the demo corpus)::

  python run_ner.py --task_name=peoples_daily_ner --data_dir=output/ner_data --vocab_file=albert_tiny_zh/vocab.txt \\
      --bert_config_file=albert_config/albert_config_tiny.json --init_checkpoint=albert_tiny_zh/ \\
      --output_dir=output/ner --do_train=true --do_eval=true --do_predict=true --max_seq_length=128 \\
      --train_batch_size=32 --learning_rate=1e-4 --num_train_epochs=3 --use_crf=true
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # before TF is imported; why: training.py

import numpy as np
import tensorflow as tf
from absl import app, flags

import cli
import finetuning
import input_pipeline
import modeling
import ner_data
import tag_schemes
import training

FLAGS = flags.FLAGS
finetuning.define_flags(list(ner_data.PROCESSORS),
                        "Tag the test file: test_predictions.txt (+ cluener_predict.json).", unit="sentence",
                        split_files=True)
flags.DEFINE_enum("tag_scheme", "auto", ["auto", *tag_schemes.SCHEMES],
                  "The files' tag scheme: auto (each file's, detected from its tags), or one every file must follow "
                  "(a tag outside it is an error). The model works in BIO; test_predictions.txt is written in the "
                  "test file's scheme.")
flags.DEFINE_integer("doc_stride", 0, "Pieces between the starts of a long sentence's windows (0: half a window).")
flags.DEFINE_bool("use_crf", False, "A linear-chain CRF on the tag logits (log-likelihood loss, Viterbi decoding).")
flags.DEFINE_bool("bio_constraints", True, "Decode only BIO-consistent tag paths (I-x only after B-x or I-x).")
flags.DEFINE_float("classifier_dropout", 0.1, "Dropout on the sequence output before the tag logits.")

TAG_LIST = "tag_list.txt"
TAG_SCHEME = "tag_scheme.txt"  # the training file's scheme: predictions for a test file without tags use it


# ---------------------------------------------------------------------------------------------------------------------
# Task, prediction, scores
# ---------------------------------------------------------------------------------------------------------------------

def tagging_task(config: modeling.AlbertConfig, tags: list[str], dropout: float, use_crf: bool,
                 bio_constraints: bool) -> training.Task:
    """Loss per labelled unit: the CRF's negative log-likelihood, or the cross-entropy, summed and divided by the
    number of labelled units; token accuracy (of the decoded tags outside training, of the argmax in training)."""
    constraints = ner_data.bio_constraints(tags) if bio_constraints else None

    def sums(features, out):
        mask = tf.cast(features["label_mask"], tf.float32)
        labels = features["label_ids"]
        if "log_likelihood" in out:
            loss = -tf.reduce_sum(out["log_likelihood"])
        else:
            loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels, out["logits"]) * mask)
        predicted = out["tags"] if "tags" in out else tf.argmax(out["logits"], -1, output_type=tf.int32)
        return {"loss": loss, "accuracy": tf.reduce_sum(tf.cast(tf.equal(predicted, labels), tf.float32) * mask)}

    def counts(features):
        n = tf.reduce_sum(tf.cast(features["label_mask"], tf.float32))
        return {"loss": n, "accuracy": n}

    return training.Task(build_model=lambda: modeling.AlbertTokenClassifier(config, len(tags), dropout, use_crf,
                                                                            constraints),
                         sums=sums, counts=counts, loss_terms=("loss",))


def make_predictor(model):
    """A traced forward pass: features (ordered_dataset's) -> (decoded tag ids [B,T], sums, counts of loss and
    token accuracy over the units each window scores: ner_data.scored_unit_sums). Made once per run, so evaluating
    after each checkpoint does not trace again.

    The model is called outside ``strategy.run`` (every replica's copy holds the same weights): every worker sees
    all windows in file order, as the chief writes them.
    """
    @tf.function(reduce_retracing=True)
    def forward(features):
        out = model({k: v for k, v in features.items() if k != "owned_mask"}, training=False)
        return (out["tags"], *ner_data.scored_unit_sums(features, out))
    return forward


def predict_tags(forward, task: training.Task, dataset) -> tuple[np.ndarray, dict[str, float]]:
    """(decoded tag ids [N,T] over ``dataset`` in its order, {"loss", "accuracy"} per labelled unit)."""
    rows, sums, counts = [], {}, {}
    for features in dataset:
        tags, s, c = forward(features)
        rows.append(tags.numpy())
        for k in s:
            sums[k] = sums.get(k, 0.0) + float(s[k])
            counts[k] = counts.get(k, 0.0) + float(c[k])
    return np.concatenate(rows), training.ratios(sums, counts, task.loss_terms)


def score(split: ner_data.NerSplit, predicted: list[list[str]], metrics: dict[str, float]) -> dict[str, float]:
    """Entity scores of ``predicted`` against the split's tags, flat: f1, precision, recall, <type>_f1, ..."""
    scores = ner_data.entity_scores([e.tags for e in split.examples], predicted)
    flat = {"loss": metrics["loss"], "accuracy": metrics["accuracy"]}
    for name, s in scores.items():
        prefix = "" if name == "overall" else f"{name}_"
        flat.update({f"{prefix}{k}": float(s[k]) for k in ("f1", "precision", "recall")})
        if name != "overall":
            flat[f"{prefix}support"] = s["support"]
    print(ner_data.format_scores(scores), flush=True)
    return flat


# ---------------------------------------------------------------------------------------------------------------------
# Glue
# ---------------------------------------------------------------------------------------------------------------------

def resolve_tags(processor: ner_data.NerProcessor, train: list[ner_data.NerExample] | None,
                 output_dir: str) -> list[str]:
    """The tag set: from the training sentences (checked against, or else saved as, output_dir/tag_list.txt), or
    from tag_list.txt when this run does not train. A tag_list.txt beside no checkpoint is stale (a run that failed
    before its first checkpoint wrote it: no model was trained with it) and is replaced."""
    path = os.path.join(output_dir, TAG_LIST)
    saved = finetuning.read_names(path)
    if train is None:
        if saved is None:
            raise ValueError(f"{path} does not exist: the tag set comes from the training data; run with "
                             f"--do_train (or point --output_dir at the training run)")
        return saved
    tags = ner_data.tag_set(train)
    if saved is not None and saved != tags and not tf.train.latest_checkpoint(output_dir):
        print(f"note: replacing {path} ({' '.join(saved)}): no checkpoint in {output_dir} was trained with it",
              flush=True)
        saved = None
    return finetuning.keep_names(path, tags, saved, "tags", "the training data")


def ordered_dataset(split: ner_data.NerSplit, batch_size: int):
    """One pass in file order, the partial last batch kept, each window with its ``owned_mask`` (ner_data.owned_mask:
    the eval metrics count each unit once)."""
    records = input_pipeline.make_dataset([split.features_file], ner_data.ner_features(FLAGS.max_seq_length),
                                          batch_size, is_training=False, drop_remainder=False)
    owned = tf.data.Dataset.from_tensor_slices(ner_data.owned_mask(split.windows, FLAGS.max_seq_length))
    return tf.data.Dataset.zip(records, owned.batch(batch_size)).map(
        lambda features, mask: {**features, "owned_mask": mask})


def write_results(name: str, results: dict[str, float], step: int, num_sentences: int,
                  extra: dict[str, float] | None = None) -> None:
    training.write_key_values(os.path.join(FLAGS.output_dir, name),
                              {**{f"eval_{k}": v for k, v in results.items()}, "global_step": step,
                               "num_sentences": num_sentences, **(extra or {})})
    print(f"wrote {os.path.join(FLAGS.output_dir, name)}: f1 {results['f1']:.4f}  precision "
          f"{results['precision']:.4f}  recall {results['recall']:.4f}", flush=True)


def resolve_scheme(processor: ner_data.NerProcessor, output_dir: str) -> None:
    """Saves the training file's tag scheme beside tag_list.txt, or, in a run that does not train, tells the
    processor the saved one (the scheme of predictions for a test file without tags)."""
    path = os.path.join(output_dir, TAG_SCHEME)
    if processor.train_scheme is not None:
        with tf.io.gfile.GFile(path, "w") as f:
            f.write(processor.train_scheme + "\n")
    else:
        saved = finetuning.read_names(path)
        if saved and saved[0] in tag_schemes.SCHEMES:
            processor.train_scheme = saved[0]


def main(_) -> None:
    try:  # before any work: a stride with no overlap splits entities at window starts
        ner_data.window_stride(FLAGS.max_seq_length, FLAGS.doc_stride)
    except ValueError as err:
        cli.usage_error(str(err))
    overrides = finetuning.split_file_overrides(FLAGS)
    strategy, config, tokenizer = finetuning.setup(FLAGS)
    processor = ner_data.get_processor(FLAGS.task_name, FLAGS.skip_bad_lines, FLAGS.tag_scheme, overrides)
    encoder = ner_data.WindowEncoder(tokenizer, FLAGS.max_seq_length, FLAGS.doc_stride)

    given = " ".join(f"--{split}_file={path}" for split, path in overrides.items())
    finetuning.stage(f"data: task {FLAGS.task_name}" + (f" in {FLAGS.data_dir}" if FLAGS.data_dir else "")
                     + (f" ({given})" if given else ""))
    train_examples = None
    if FLAGS.do_train:
        train_examples = processor.get_examples(FLAGS.data_dir, "train")
    tags = resolve_tags(processor, train_examples, FLAGS.output_dir)
    resolve_scheme(processor, FLAGS.output_dir)
    print(f"tags ({len(tags)}): {' '.join(tags)}", flush=True)

    def load(split: str, examples=None) -> ner_data.NerSplit:
        return ner_data.load_split(processor, FLAGS.data_dir, split, tags, encoder,
                                   os.path.join(FLAGS.output_dir, "features"), vocab_file=FLAGS.vocab_file,
                                   spm_model_file=FLAGS.spm_model_file, do_lower_case=FLAGS.do_lower_case,
                                   examples=examples)

    data = {}
    if FLAGS.do_train:
        data["train"] = load("train", train_examples)
    if FLAGS.do_eval:
        data["dev"] = load("dev")
    if FLAGS.do_predict:
        data["test"] = load("test")
    # msra_ner without a dev file: ner_data falls back to the test file, which must not select a checkpoint
    dev_is_test = "dev" in data and processor.dev_is_test

    task = tagging_task(config, tags, FLAGS.classifier_dropout, FLAGS.use_crf, FLAGS.bio_constraints)
    trainer = finetuning.build_trainer(FLAGS, strategy, task, len(data["train"].windows) if FLAGS.do_train else None,
                                       config.model_family)

    forward = make_predictor(trainer.model)

    def evaluate(split: ner_data.NerSplit, batch_size: int) -> tuple[list[list[str]], dict[str, float]]:
        ids, metrics = predict_tags(forward, task, ordered_dataset(split, batch_size))
        return ner_data.assemble(split.examples, split.windows, ids, tags), metrics

    def dev_metrics() -> dict[str, float]:
        predicted, metrics = evaluate(data["dev"], FLAGS.eval_batch_size)
        return score(data["dev"], predicted, metrics)

    if FLAGS.do_train:
        finetuning.stage(f"training: {len(data['train'].windows)} windows ({len(data['train'].examples)} sentences) × "
                         f"{FLAGS.num_train_epochs:g} epochs / batch {FLAGS.train_batch_size} = "
                         f"{trainer.config.num_train_steps} steps ({trainer.warmup_steps} warmup)"
                         f"{', CRF' if FLAGS.use_crf else ''}")
    step = finetuning.train_and_pick_best(
        FLAGS, trainer, data["train"].features_file if FLAGS.do_train else None,
        ner_data.ner_features(FLAGS.max_seq_length), dev_metrics, metric="f1", dev_is_test=dev_is_test)
    if FLAGS.do_eval:
        finetuning.stage(f"eval: {len(data['dev'].examples)} dev sentences, checkpoint step {step}")
        results = dev_metrics()
        if trainer.chief:
            write_results("eval_results.txt", results, step, len(data["dev"].examples))
    if FLAGS.do_predict:
        test = data["test"]
        finetuning.stage(f"predict: {len(test.examples)} test sentences, checkpoint step {step}")
        predicted, metrics = evaluate(test, FLAGS.predict_batch_size)
        labelled = all(e.tags is not None for e in test.examples)
        results = score(test, predicted, metrics) if labelled else None
        if trainer.chief:
            report = processor.reports["test"]
            skipped = report.skipped  # --skip_bad_lines: they keep their place, so outputs line up with the input
            path = os.path.join(FLAGS.output_dir, "test_predictions.txt")
            ner_data.write_bio_predictions(path, test.examples, predicted, report.separator, skipped, report.scheme)
            print(f"wrote {path} ({len(test.examples)} sentences"
                  + (f" + {len(skipped)} skipped by --skip_bad_lines, written with every unit tagged O (or as a "
                     f"'# skipped: file:line' line where the units cannot be told)" if skipped else "")
                  + f"), {report.scheme.upper()} tags ({report.scheme_source})",
                  flush=True)
            if processor.writes_clue_predictions:
                path = os.path.join(FLAGS.output_dir, f"{FLAGS.task_name.lower()}_predict.json")
                ner_data.write_clue_predictions(path, test.examples, predicted, skipped)
                print(f"wrote {path}" + (f" ({len(skipped)} skipped sentences with an empty label)"
                                         if skipped else ""), flush=True)
            if results is not None:
                write_results("test_results.txt", results, step, len(test.examples),
                              {"selected_on_test": 0} if dev_is_test else None)
    finetuning.export_after_training(FLAGS, trainer)


if __name__ == "__main__":
    flags.mark_flags_as_required(["task_name", "bert_config_file", "output_dir"])
    cli.list_all_flags_in_help()
    app.run(cli.clean_errors(main))
