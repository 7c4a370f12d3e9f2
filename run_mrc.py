"""Fine-tunes, evaluates and predicts with an ALBERT span extractor: extractive reading comprehension (CMRC2018,
DRCD, SQuAD v1.1 / v2.0).

run_classifier.py's flags and loop (training.py: tf.distribute, checkpoints and resume, progress, TensorBoard; the
best dev checkpoint by F1 kept in ``<output_dir>/best/``), with BERT ``run_squad.py``'s names for the rest:

* ``--task_name``: ``cmrc2018`` (simplified Chinese), ``drcd`` (traditional Chinese; the same JSON), ``squad``
  (v1.1), ``squad_v2`` (implies ``--version_2_with_negative``). It picks the metric: CMRC2018's official F1/EM
  (mrc_metric.py; also DRCD's) or SQuAD's.
* Files: in ``--data_dir`` the first of ``train.json``, ``cmrc2018_train.json``, ``DRCD_training.json``,
  ``train-v1.1.json``, ``train-v2.0.json`` (dev: ``dev.json``, ``cmrc2018_dev.json``, ``DRCD_dev.json``,
  ``dev-v1.1.json``, ``dev-v2.0.json``; predict: ``test.json``, ``cmrc2018_trial.json``, ``DRCD_test.json``);
  ``--train_file``, ``--dev_file`` and ``--predict_file`` override. SQuAD-style JSON or the original CMRC2018
  format; answer offsets are verified and repaired (mrc_data.py's docstring has the rules).
* Windows: ``[CLS] question [SEP] context [SEP]`` of ``--max_seq_length`` pieces; questions cut to
  ``--max_query_length``; long contexts in windows ``--doc_stride`` pieces apart.
* Model: ``modeling.AlbertSpanExtractor`` (start/end logits over the context pieces and [CLS]); loss = the mean of
  the start and end cross-entropies.
* ``--do_eval`` decodes the dev file (n-best across windows, answers cut from the context by character offsets)
  and writes ``eval_results.txt``: the metric (``eval_f1``, ``eval_em``, ``eval_average`` for CMRC2018; SQuAD's
  keys otherwise), per question type (CMRC2018), answer lengths, loss and span accuracy.
* ``--do_predict`` writes ``predictions.json`` ({question id: answer}), ``nbest_predictions.json`` (text,
  probability, start/end logits, character start/end), ``null_odds.json`` (v2) and, when the file has answers,
  ``test_results.txt``.
* ``--question=... --context=...`` answers one question with the trained model (output_dir's best or latest
  checkpoint, or ``--init_checkpoint``) and prints the answer and its n-best list.
* ``python run_mrc.py --evaluate GOLD.json PREDICTIONS.json [--task_name=...]`` scores a predictions file.
* After training (or with ``--export_dir``) the model is exported as a SavedModel (``start_logits``,
  ``end_logits``; export_saved_model.py).

Example (CMRC2018)::

  python run_mrc.py --task_name=cmrc2018 --data_dir=data/cmrc2018 --vocab_file=albert_tiny_zh/vocab.txt \\
      --bert_config_file=albert_config/albert_config_tiny.json --init_checkpoint=albert_tiny_zh/ \\
      --output_dir=output/cmrc2018 --do_train=true --do_eval=true --do_predict=true --max_seq_length=512 \\
      --doc_stride=128 --train_batch_size=32 --learning_rate=2e-4 --num_train_epochs=3
"""

from __future__ import annotations

import dataclasses
import json
import math
import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # before TF is imported; why: training.py

import numpy as np
import tensorflow as tf
from absl import app, flags

import cli
import finetuning
import input_pipeline
import modeling
import mrc_data
import mrc_metric
import training

TASKS = {"cmrc2018": "cmrc2018", "drcd": "cmrc2018", "squad": "squad", "squad_v2": "squad_v2"}  # task -> metric
FILES = {
    "train": ("train.json", "cmrc2018_train.json", "DRCD_training.json", "train-v1.1.json", "train-v2.0.json"),
    "dev": ("dev.json", "cmrc2018_dev.json", "DRCD_dev.json", "dev-v1.1.json", "dev-v2.0.json"),
    "test": ("test.json", "cmrc2018_trial.json", "DRCD_test.json"),
}
REQUIRED = ("task_name", "bert_config_file", "output_dir")

FLAGS = flags.FLAGS
finetuning.define_flags(list(TASKS), "Answer the predict file's questions: predictions.json, nbest_predictions.json "
                                     "(+ null_odds.json, test_results.txt).", unit="window")
FLAGS.set_default("max_seq_length", 384)  # BERT run_squad.py's: a window holds question and context
flags.DEFINE_string("train_file", None, "Training file (default: the first of data_dir's train names).")
flags.DEFINE_string("dev_file", None, "Dev file for --do_eval and checkpoint selection (default: data_dir's).")
flags.DEFINE_string("predict_file", None, "File to answer with --do_predict (default: data_dir's test names).")
flags.DEFINE_integer("doc_stride", 128, "Pieces between the starts of a long context's windows.")
flags.DEFINE_integer("max_query_length", 64, "Question pieces kept (longer questions are cut, and counted).")
flags.DEFINE_integer("max_answer_length", 50, "Longest answer, in pieces (5% of CMRC2018 dev questions have only "
                                              "answers over 30 characters).")
flags.DEFINE_integer("n_best_size", 20, "Start and end candidates per window, and answers kept per question.")
flags.DEFINE_bool("version_2_with_negative", False, "Questions may have no answer (SQuAD v2): [CLS] is the null "
                                                    "answer.")
flags.DEFINE_float("null_score_diff_threshold", 0.0, "v2: no answer when null score - best span score > this.")
flags.DEFINE_enum("train_windows", "all", ["all", "with_answer"],
                  "Training windows: all (BERT's: a window without the whole answer is labelled at [CLS]) or "
                  "with_answer (only windows that hold it; v2's unanswerable questions keep theirs).")
flags.DEFINE_string("question", None, "Answer this one question about --context (and print the answer).")
flags.DEFINE_string("context", None, "The passage for --question.")
flags.DEFINE_bool("evaluate", False, "Score a predictions file: run_mrc.py --evaluate GOLD.json PREDICTIONS.json.")


# ---------------------------------------------------------------------------------------------------------------------
# Task, prediction, scores
# ---------------------------------------------------------------------------------------------------------------------

def span_task(config: modeling.AlbertConfig) -> training.Task:
    """Loss per window: the mean of the start and end cross-entropies; span accuracy: both argmaxes right."""
    def sums(features, out):
        start = tf.reshape(features["start_positions"], [-1])
        end = tf.reshape(features["end_positions"], [-1])
        loss = (tf.nn.sparse_softmax_cross_entropy_with_logits(start, out["start_logits"])
                + tf.nn.sparse_softmax_cross_entropy_with_logits(end, out["end_logits"])) / 2
        hit = (tf.equal(tf.argmax(out["start_logits"], -1, output_type=tf.int32), start)
               & tf.equal(tf.argmax(out["end_logits"], -1, output_type=tf.int32), end))
        return {"loss": tf.reduce_sum(loss), "span_accuracy": tf.reduce_sum(tf.cast(hit, tf.float32))}

    def counts(features):
        n = tf.cast(tf.shape(features["start_positions"])[0], tf.float32)
        return {"loss": n, "span_accuracy": n}

    return training.Task(build_model=lambda: modeling.AlbertSpanExtractor(config), sums=sums, counts=counts,
                         loss_terms=("loss",))


def make_predictor(model, task: training.Task):
    """A traced forward pass: features -> (start logits, end logits [B,T], the task's sums, counts). Made once per
    run; the model is called outside ``strategy.run`` (every worker decodes every window)."""
    @tf.function(reduce_retracing=True)
    def forward(features):
        out = model(features, training=False)
        return out["start_logits"], out["end_logits"], task.sums(features, out), task.counts(features)
    return forward


def predict_logits(forward, task: training.Task, features: dict[str, np.ndarray], batch_size: int
                   ) -> tuple[np.ndarray, np.ndarray, dict[str, float]]:
    """(start logits [N,T], end logits [N,T], {"loss", "span_accuracy"} per window) over ``features`` in order."""
    starts, ends, sums, counts = [], [], {}, {}
    total = len(features["input_ids"])
    progress = cli.Progress(total, "windows", interval=30.0)
    for i in range(0, total, batch_size):
        batch = {k: tf.constant(v[i:i + batch_size]) for k, v in features.items()}
        s, e, batch_sums, batch_counts = forward(batch)
        starts.append(s.numpy())
        ends.append(e.numpy())
        for k in batch_sums:
            sums[k] = sums.get(k, 0.0) + float(batch_sums[k])
            counts[k] = counts.get(k, 0.0) + float(batch_counts[k])
        progress.update(min(i + batch_size, total))
    return np.concatenate(starts), np.concatenate(ends), training.ratios(sums, counts, task.loss_terms)


def score(metric: str, examples: list[mrc_data.MrcExample], answers: dict[str, mrc_data.Answer],
          model_metrics: dict[str, float] | None = None) -> dict[str, float]:
    """The task's metric on the labelled examples (flat: f1, em, average / SQuAD's keys; CMRC2018's per question
    type as ``<type>_f1``...), answer lengths, and the model's loss and span accuracy."""
    labelled = [e for e in examples if e.answers or e.is_impossible]
    gold = mrc_data.gold_answers(labelled)
    predictions = {e.qid: answers[e.qid].text for e in labelled}
    if metric == "cmrc2018":
        scores = mrc_metric.cmrc2018_scores(gold, predictions, {e.qid: e.question for e in labelled})
        flat = {k: float(scores[k]) for k in ("f1", "em", "average")}
        for kind, s in sorted(scores.get("by_type", {}).items()):
            flat.update({f"{kind}_f1": float(s["f1"]), f"{kind}_em": float(s["em"]), f"{kind}_count": s["count"]})
    else:
        null_odds = {e.qid: answers[e.qid].null_odds for e in labelled} if metric == "squad_v2" else None
        # the predictions already hold the empty answers --null_score_diff_threshold chose: the odds only give the
        # best-threshold scores, never a second cut (threshold +inf)
        scores = mrc_metric.squad_scores(gold, predictions, null_odds, threshold=math.inf)
        flat = {k: float(v) for k, v in scores.items() if isinstance(v, (int, float))}
    flat["questions"] = len(labelled)
    flat["answer_chars_mean"] = float(np.mean([len(answers[e.qid].text) for e in labelled])) if labelled else 0.0
    flat["gold_chars_mean"] = float(np.mean([len(e.answers[0]) for e in labelled if e.answers] or [0]))
    flat.update(model_metrics or {})
    return flat


def format_scores(scores: dict[str, float]) -> str:
    """The headline and, for CMRC2018, a per-question-type table."""
    head = "  ".join(f"{k} {scores[k]:.3f}" for k in ("f1", "em", "average", "exact", "exact_match", "loss")
                     if k in scores)
    kinds = sorted(k[:-len("_count")] for k in scores if k.endswith("_count"))
    rows = [f"{'type':>10} {'count':>6} {'f1':>7} {'em':>7}"]
    rows += [f"{k:>10} {int(scores[k + '_count']):6d} {scores[k + '_f1']:7.2f} {scores[k + '_em']:7.2f}" for k in kinds]
    return head + ("\n" + "\n".join(rows) if kinds else "")


# ---------------------------------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------------------------------

@dataclasses.dataclass
class MrcSplit:
    """One file: its questions, their windows, and the windows' features (training: a cached TFRecord file; else
    arrays in memory, decoded in order)."""
    split: str
    path: str
    examples: list[mrc_data.MrcExample]
    windows: list[mrc_data.Window]
    features_file: str | None = None
    features: dict[str, np.ndarray] | None = None


def data_file(split: str) -> str:
    """The file of ``split``: its override flag, else the first of FILES[split] in --data_dir."""
    flag = {"train": "train_file", "dev": "dev_file", "test": "predict_file"}[split]
    if FLAGS[flag].value:
        return FLAGS[flag].value
    if not FLAGS.data_dir:
        raise app.UsageError(f"--data_dir or --{flag} is required for the {split} file")
    for name in FILES[split]:
        path = os.path.join(FLAGS.data_dir, name)
        if tf.io.gfile.exists(path):
            return path
    raise FileNotFoundError(f"{FLAGS.data_dir}: no {split} file (looked for {', '.join(FILES[split])})")


def load_split(split: str, encoder: mrc_data.MrcEncoder, version_2: bool,
               examples: list[mrc_data.MrcExample] | None = None, path: str | None = None) -> MrcSplit:
    """Reads and windows one file (``examples``: already read, e.g. the --question mode's one)."""
    training_split = split == "train"
    if examples is None:
        path = data_file(split)
        examples, report = mrc_data.read_examples(path, training=training_split, version_2=version_2,
                                                  skip_bad=FLAGS.skip_bad_lines)
        print(f"{split}: " + report.summary(len(examples)), flush=True)
    if not examples:
        raise ValueError(f"{path}: no {split} questions")
    truncated_before = encoder.truncated_questions
    encoded = encoder.encode(examples)
    windows: list[mrc_data.Window] = []
    out = MrcSplit(split, path or "", examples, windows)
    if training_split:
        import classifier_data  # the feature cache key the other CLIs use

        task = (f"{FLAGS.task_name}/mrc/stride={encoder.doc_stride}/query={encoder.max_query_length}/v2={version_2}"
                f"/windows={FLAGS.train_windows}")
        key, _ = classifier_data.feature_cache_key(
            path, task=task, labels=[], max_seq_length=encoder.max_seq_length, vocab_file=FLAGS.vocab_file,
            spm_model_file=FLAGS.spm_model_file, do_lower_case=FLAGS.do_lower_case,
            skip_bad_lines=FLAGS.skip_bad_lines)
        cache_dir = os.path.join(FLAGS.output_dir, "features")
        tf.io.gfile.makedirs(cache_dir)
        out.features_file = os.path.join(cache_dir, f"mrc-{split}-{key}.tf_record")
        if FLAGS.train_windows == "with_answer":  # v2's unanswerable questions keep theirs: [CLS] is their answer
            encoded = ((w, row) for w, row in encoded if w.start_position > 0 or examples[w.example].is_impossible)
        rows = collect_windows(encoded, windows)
        if tf.io.gfile.exists(out.features_file):
            for _ in rows:
                pass
        else:
            input_pipeline.write_int_records(out.features_file, rows)
    else:
        out.features = mrc_data.feature_batch(list(collect_windows(encoded, windows)))
    extra = len(windows) - len(examples)
    truncated = encoder.truncated_questions - truncated_before
    print(f"  {split}: {len(windows)} windows of max_seq_length={encoder.max_seq_length}"
          + (f" ({extra} extra for long contexts, stride {encoder.doc_stride})" if extra else "")
          + (f", {truncated} questions cut to --max_query_length={encoder.max_query_length}" if truncated else "")
          + (f" -> {out.features_file}" if out.features_file else ""), flush=True)
    if training_split and FLAGS.train_windows == "all":
        answered = {w.example for w in windows if w.start_position > 0}
        missed = sum(1 for i, e in enumerate(examples) if e.spans and not e.is_impossible and i not in answered)
        if missed:
            print(f"  note: {missed} training answers fit in no window (longer than a window): trained as [CLS]",
                  flush=True)
    return out


def collect_windows(encoded, windows: list[mrc_data.Window]):
    """The feature rows of ``encoded`` (window, row) pairs, appending each window to ``windows`` on the way."""
    for window, row in encoded:
        windows.append(window)
        yield row


def evaluate_files(argv: list[str]) -> dict:
    """``--evaluate GOLD.json PREDICTIONS.json``: prints and returns the scores."""
    if len(argv) != 2:
        raise app.UsageError("--evaluate takes two files: GOLD.json PREDICTIONS.json")
    metric = TASKS.get((FLAGS.task_name or "").lower(), "auto")
    scores = mrc_metric.evaluate_files(argv[0], argv[1], metric=metric)
    print(json.dumps(scores, ensure_ascii=False, indent=2))
    return scores


def check_flags(one_shot: bool) -> None:
    missing = [name for name in REQUIRED if not FLAGS[name].value]
    if missing:
        raise app.UsageError("missing " + ", ".join(f"--{name}" for name in missing))
    if (FLAGS.task_name or "").lower() not in TASKS:
        raise app.UsageError(f"--task_name={FLAGS.task_name}: expected one of {', '.join(TASKS)}")
    if one_shot and not (FLAGS.question and FLAGS.context):
        raise app.UsageError("--question and --context go together (both non-empty)")
    if FLAGS.n_best_size < 1 or FLAGS.max_answer_length < 1:
        raise app.UsageError("--n_best_size and --max_answer_length must be at least 1")


# ---------------------------------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------------------------------

def main(argv: list[str]) -> None:
    if FLAGS.evaluate:
        evaluate_files(argv[1:])
        return
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    one_shot = FLAGS.question is not None or FLAGS.context is not None
    check_flags(one_shot)
    task_name = FLAGS.task_name.lower()
    metric = TASKS[task_name]
    version_2 = FLAGS.version_2_with_negative or task_name == "squad_v2"
    strategy, config, tokenizer = finetuning.setup(FLAGS, require_mode=not one_shot)
    encoder = mrc_data.MrcEncoder(tokenizer, FLAGS.max_seq_length, FLAGS.doc_stride, FLAGS.max_query_length)
    decode_options = dict(n_best_size=FLAGS.n_best_size, max_answer_length=FLAGS.max_answer_length,
                          version_2=version_2, null_score_diff_threshold=FLAGS.null_score_diff_threshold)

    finetuning.stage(f"data: task {task_name}" + (f" in {FLAGS.data_dir}" if FLAGS.data_dir else ""))
    data = {}
    if FLAGS.do_train:
        data["train"] = load_split("train", encoder, version_2)
    if FLAGS.do_eval:
        data["dev"] = load_split("dev", encoder, version_2)
    if FLAGS.do_predict:
        data["test"] = load_split("test", encoder, version_2)
    if one_shot:
        example = mrc_data.MrcExample("question", FLAGS.question, FLAGS.context, [], [])
        data["question"] = load_split("question", encoder, version_2, examples=[example], path="--question")

    task = span_task(config)
    trainer = finetuning.build_trainer(FLAGS, strategy, task, len(data["train"].windows) if FLAGS.do_train else None,
                                       config.model_family)
    forward = make_predictor(trainer.model, task)

    def answer(split: MrcSplit, batch_size: int) -> tuple[dict[str, mrc_data.Answer], dict[str, float]]:
        start, end, metrics = predict_logits(forward, task, split.features, batch_size)
        return mrc_data.decode(split.examples, encoder, split.windows, start, end, **decode_options), metrics

    def dev_metrics() -> dict[str, float]:
        answers, metrics = answer(data["dev"], FLAGS.eval_batch_size)
        return score(metric, data["dev"].examples, answers, metrics)

    if FLAGS.do_train:
        finetuning.stage(f"training: {len(data['train'].windows)} windows ({len(data['train'].examples)} questions) "
                         f"× {FLAGS.num_train_epochs:g} epochs / batch {FLAGS.train_batch_size} = "
                         f"{trainer.config.num_train_steps} steps ({trainer.warmup_steps} warmup)")
    step = finetuning.train_and_pick_best(FLAGS, trainer, data["train"].features_file if FLAGS.do_train else None,
                                          input_pipeline.mrc_features(FLAGS.max_seq_length), dev_metrics,
                                          metric="f1")
    if FLAGS.do_eval:
        finetuning.stage(f"eval: {len(data['dev'].examples)} dev questions, checkpoint step {step}")
        results = dev_metrics()
        print(format_scores(results), flush=True)
        if trainer.chief:
            write_results("eval_results.txt", results, step)
    if FLAGS.do_predict:
        test = data["test"]
        finetuning.stage(f"predict: {len(test.examples)} questions of {test.path}, checkpoint step {step}")
        answers, metrics = answer(test, FLAGS.predict_batch_size)
        labelled = any(e.answers or e.is_impossible for e in test.examples)
        if trainer.chief:
            for path in mrc_data.write_predictions(FLAGS.output_dir, answers, version_2):
                print(f"wrote {path} ({len(answers)} questions)", flush=True)
            if labelled:
                results = score(metric, test.examples, answers, metrics)
                print(format_scores(results), flush=True)
                write_results("test_results.txt", results, step)
    if one_shot:
        answers, _ = answer(data["question"], 1)
        found = answers["question"]
        print(json.dumps({"answer": found.text, "nbest": [c.to_json() for c in found.nbest[:5]]},
                         ensure_ascii=False, indent=2), flush=True)
    finetuning.export_after_training(FLAGS, trainer)


def write_results(name: str, results: dict[str, float], step: int) -> None:
    path = os.path.join(FLAGS.output_dir, name)
    training.write_key_values(path, {**{f"eval_{k}": v for k, v in results.items()}, "global_step": step})
    print(f"wrote {path}", flush=True)


if __name__ == "__main__":
    cli.list_all_flags_in_help()
    app.run(cli.clean_errors(main))
