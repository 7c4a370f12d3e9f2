# coding=utf-8
"""The demo's results: ``OUT/results.json``, ``OUT/report.png`` and the closing lines demo.sh prints.

Every number called a result is on TEST data. Each fine-tuning run keeps the checkpoint with the best dev score, so
dev is the *selection set*: its numbers are optimistic, and they appear only under keys (and in lines) that say dev.

Inputs are what the demo's steps leave behind, read as files (nothing is recomputed); OUT is ``--demo_output``,
SHIPPED is ``--shipped_dir``:
  * three tasks, each fine-tuned from random init and from the shipped pretrained checkpoint ("pretrained"):
      - review sentiment (run_classifier.py): ``OUT/finetune_sentiment_random_init`` and
        ``OUT/finetune_sentiment_shipped``, each with ``eval_results.txt`` (dev: ``eval_accuracy`` and the
        ``global_step`` of the best dev checkpoint), ``test_results.tsv`` (class probabilities per test row, in
        ``label_list.txt``'s order), scored here against the labels of ``OUT/tasks/sentiment/test.tsv``;
      - NER (run_ner.py): ``OUT/ner_random_init`` and ``OUT/ner_shipped``, each with ``eval_results.txt`` (dev) and
        ``test_results.txt`` (test), both with run_ner's ``eval_``-prefixed keys: entity ``eval_f1``,
        ``eval_precision``, ``eval_recall`` (fractions), ``eval_<TYPE>_f1`` per entity type, ``global_step``,
        ``num_sentences``;
      - reading comprehension (run_mrc.py): ``OUT/mrc_random_init`` and ``OUT/mrc_shipped``, the same two files with
        CMRC2018's ``eval_f1``, ``eval_em``, ``eval_average`` (percent), ``eval_<question type>_f1``,
        ``eval_questions``; ``OUT/tasks/mrc/summary.json``'s test baselines (data/make_mrc_data.py), when there,
        give the scale.
    Any run may be repeated with other seeds in ``<run>_seed<N>`` folders (the plain folder is seed "first"): an
    arm's numbers are then the means over its seeds, each seed listed beside them, so one lucky or unlucky seed
    does not decide the comparison;
  * the shipped checkpoint's own record, ``SHIPPED/eval_results.txt`` (held-out masked-LM and sentence-order
    metrics on news) and ``SHIPPED/progress.jsonl`` (its pretraining curve, a line per loop), and the demo's
    evaluation of it on held-out review text, ``OUT/eval_shipped_on_reviews/eval_results.txt``;
  * the *masked-token unigram entropy* (``masked_token_entropy.json``: SHIPPED's for news, OUT's for reviews, made
    by ``--entropy``): the cross-entropy a model reaches by predicting every masked token with the corpus' token
    frequencies and ignoring the context. A masked-LM loss below it means the model reads the context; at it, the
    model has learned frequencies only (the "plateau");
  * ``OUT/timings.tsv`` (stage, seconds), written by demo.sh.

Usage (demo.sh runs both: the first right after making the pretraining data, the second at the end):

    python data/demo_report.py --demo_output OUT --entropy=reviews=OUT/pretrain_data/reviews_unlabelled.tfrecord
    python data/demo_report.py --demo_output OUT --shipped_dir pretrained/albert_demo_zh
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import os
import re
import sys
from pathlib import Path
from typing import Iterable

from absl import flags

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cli  # noqa: E402  (the repo root's: flags, and bad input prints one clean line)

ENTROPY_FILE = "masked_token_entropy.json"
SELECTION = ("dev is the selection set (each run keeps the checkpoint with the best dev score, evaluated at every "
             "saved checkpoint), so dev numbers are optimistic; every *_test_* number is on test data no choice saw")


@dataclasses.dataclass(frozen=True)
class Task:
    """One task of the demo: where its runs are, what they report and what the demo sets out to show on it."""

    name: str  # the results' key prefix
    title: str
    run_prefix: str  # its runs are OUT/<run_prefix>_<arm folder>[_seed<N>]
    tool: str  # what writes the runs (named in errors)
    metrics: tuple[str, ...]  # read from each run, dev and test; the first is the headline (goals, plot)
    reported: tuple[str, ...]  # the metrics results.json lists at its top level
    scale: float  # points per unit of a metric: 100 for fractions, 1 for percentages
    headline: str  # the first metric, as report.png's titles say it
    words: str  # the reported metrics, as the closing lines say them
    unit: str  # what a test example is
    axis: str  # what report.png's axis says
    goal_points: float  # the test gain over random init the demo sets out to show

    def gain_key(self, split: str, metric: str) -> str:
        """``sentiment_test_gain_points``; the metric is named where the task reports several (``mrc_test_f1_...``)."""
        return f"{self.name}_{split}_{metric + '_' if len(self.reported) > 1 else ''}gain_points"

    def format(self, value: float) -> str:
        return f"{value:.3f}" if self.scale == 100 else f"{value:.1f}"


TASKS = (
    Task("sentiment", "review sentiment", "finetune_sentiment", "run_classifier.py", ("accuracy",), ("accuracy",),
         100.0, "accuracy", "accuracy", "reviews", "test accuracy", 3.0),
    Task("ner", "NER", "ner", "run_ner.py", ("f1", "precision", "recall"), ("f1",), 100.0, "entity F1", "entity F1",
         "sentences", "test entity F1", 10.0),
    Task("mrc", "reading comprehension", "mrc", "run_mrc.py", ("f1", "em", "average"), ("f1", "em"), 1.0, "F1",
         "F1 / EM (CMRC2018, %)", "questions", "test F1 (CMRC2018, %)", 5.0),
)
ARMS = {"random_init": "random_init", "pretrained": "shipped"}  # results' name -> the run folders' name
PRETRAINING_METRICS = ("masked_lm_loss", "masked_lm_accuracy", "sentence_order_loss", "sentence_order_accuracy")


# ---------------------------------------------------------------------------------------------------------------------
# Masked-token unigram entropy
# ---------------------------------------------------------------------------------------------------------------------

def unigram_entropy(counts: dict[int, float] | collections.Counter) -> float:
    """-Σ p log p (nats) of the distribution the counts define."""
    total = float(sum(counts.values()))
    if total <= 0:
        raise ValueError("no tokens counted: the entropy of an empty distribution is undefined")
    return -sum(c / total * math.log(c / total) for c in counts.values() if c > 0)


def masked_token_counts(files: Iterable[str], max_records: int | None = None) -> collections.Counter:
    """How often each token id is a masked-LM target (weight > 0) in pretraining TFRecords."""
    import tensorflow as tf  # only here: the rest of the report needs no TensorFlow

    counts: collections.Counter = collections.Counter()
    records = tf.data.TFRecordDataset(list(files))
    if max_records:
        records = records.take(max_records)
    for serialized in records.as_numpy_iterator():
        feature = tf.train.Example.FromString(serialized).features.feature
        ids = feature["masked_lm_ids"].int64_list.value
        weights = feature["masked_lm_weights"].float_list.value
        counts.update(i for i, w in zip(ids, weights) if w > 0)
    return counts


# ---------------------------------------------------------------------------------------------------------------------
# Reading what the runs wrote
# ---------------------------------------------------------------------------------------------------------------------

def read_key_values(path: str | Path) -> dict[str, float]:
    """``key = value`` lines (eval_results.txt) -> dict; values that are not numbers are skipped."""
    out = {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            key, sep, value = line.partition(" = ")
            if not sep:
                raise ValueError(f"{path}:{number}: expected 'key = value', got {line.strip()!r}")
            try:
                out[key.strip()] = float(value)
            except ValueError:
                pass
    return out


def read_curve(progress_file: str | Path, key: str = "masked_lm_loss") -> list[tuple[int, float]]:
    """(step, value) per loop from a progress.jsonl (a killed run's partial last line is skipped)."""
    points: dict[int, float] = {}
    if not os.path.exists(progress_file):
        return []
    with open(progress_file, encoding="utf-8") as f:
        for line in f:
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if key in record:
                points[int(record["step"])] = float(record[key])
    return sorted(points.items())


def read_labels(test_file: str | Path, label_column: int) -> list[str]:
    """The gold labels of a task's test file (TSV; a header line naming the column ``label`` is skipped)."""
    with open(test_file, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    if rows and rows[0][label_column] == "label":  # header line (text_classification's TSVs)
        rows = rows[1:]
    return [row[label_column] for row in rows]


def test_accuracy(test_file: str | Path, predictions_file: str | Path, label_column: int) -> float:
    """Accuracy of run_classifier.py's test_results.tsv (one row of class probabilities per test line, columns in
    label_list.txt's order) against the labels in the task's test file."""
    run_dir = Path(predictions_file).parent
    labels = (run_dir / "label_list.txt").read_text(encoding="utf-8").split()
    gold = read_labels(test_file, label_column)
    predicted = []
    with open(predictions_file, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                probabilities = [float(p) for p in line.split("\t")]
                predicted.append(labels[probabilities.index(max(probabilities))])  # the first on ties, as argmax
    if len(predicted) != len(gold):
        raise ValueError(f"{predictions_file} has {len(predicted)} rows but {test_file} has {len(gold)} examples")
    return sum(p == g for p, g in zip(predicted, gold)) / len(gold)


def read_timings(path: str | Path) -> dict[str, float]:
    """timings.tsv (``stage \\t seconds``) -> dict, in order; a stage run twice keeps its last time."""
    out: dict[str, float] = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if line.strip():
                    stage, _, seconds = line.rstrip("\n").rpartition("\t")
                    try:
                        out[stage] = float(seconds)
                    except ValueError:
                        raise ValueError(f"{path}:{number}: expected 'stage<TAB>seconds', "
                                         f"got {line.strip()!r}") from None
    return out


def read_json(path: Path) -> dict:
    """A JSON file; a broken one is an error that names it."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise ValueError(f"{path}: not JSON ({err})") from None


def _require(path: Path, writer: str) -> Path:
    """``path``, or a one-line error naming it and what should have written it."""
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: {writer} should have written it")
    return path


def _metric(values: dict[str, float], key: str, path: Path) -> float:
    if key not in values:
        raise ValueError(f"{path} has no {key} (its keys: {', '.join(sorted(values)) or 'none'})")
    return values[key]


# ---------------------------------------------------------------------------------------------------------------------
# Fine-tuning runs
# ---------------------------------------------------------------------------------------------------------------------

def read_run(task: Task, run: Path, sentiment_test: Path) -> dict:
    """One run: ``dev_<metric>`` (eval_results.txt), ``test_<metric>`` (its test predictions), per-type F1 where
    the run writes them (``dev_f1_by_type``...), ``best_step`` (the dev-chosen checkpoint that made the test
    predictions) and ``test_examples``."""
    writer = f"demo.sh's {run.name.removeprefix('finetune_')} stage ({task.tool})"
    if not run.is_dir():
        raise FileNotFoundError(f"{run} is missing: {writer} should have made it")
    dev_file = _require(run / "eval_results.txt", f"{writer} with --do_eval")
    dev = read_key_values(dev_file)
    record: dict = {"best_step": int(_metric(dev, "global_step", dev_file))}
    if task.tool == "run_classifier.py":  # test predictions, scored here
        record["dev_accuracy"] = _metric(dev, "eval_accuracy", dev_file)
        predictions = _require(run / "test_results.tsv", f"{writer} with --do_predict")
        _require(run / "label_list.txt", writer)
        test_file = _require(sentiment_test, "demo.sh's data stage (data/make_demo_tasks.py)")
        record["test_accuracy"] = test_accuracy(test_file, predictions, 0)
        record["test_examples"] = len(read_labels(test_file, 0))
        return record
    # run_ner.py and run_mrc.py score the test file themselves, with the keys of eval_results.txt (eval_ prefix too)
    test_path = _require(run / "test_results.txt", f"{writer} with --do_predict on a labelled test file")
    test = read_key_values(test_path)
    test_step = int(_metric(test, "global_step", test_path))
    if test_step != record["best_step"]:  # both come from the dev-chosen weights: a mismatch is a stale file
        raise ValueError(f"{test_path} is from step {test_step} but {dev_file} chose step {record['best_step']}: "
                         f"one of them is left over from another run; rerun {run.name}")
    for split, values, path in (("dev", dev, dev_file), ("test", test, test_path)):
        for metric in task.metrics:
            record[f"{split}_{metric}"] = _metric(values, f"eval_{metric}", path)
        by_type = {m.group(1): value for key, value in sorted(values.items())
                   if (m := re.fullmatch(r"eval_(\w+)_f1", key))}
        if by_type:
            record[f"{split}_f1_by_type"] = by_type
    examples = test.get("num_sentences", test.get("eval_questions"))
    if examples is not None:
        record["test_examples"] = int(examples)
    return record


def seed_runs(out: Path, run: str) -> dict[str, Path]:
    """``out/run`` (seed "first": demo.sh gives it the first of its seeds) and the same run with other seeds,
    ``out/<run>_seed<N>`` (seed "seed<N>", by N)."""
    others = {}
    for path in out.glob(f"{run}_seed*"):
        if path.is_dir() and re.fullmatch(r"seed\d+", label := path.name[len(run) + 1:]):
            others[label] = path
    return {"first": out / run, **dict(sorted(others.items(), key=lambda item: int(item[0][len("seed"):])))}


def _mean(records: list[dict]) -> dict:
    """The mean of each number (nested per-type dicts too, over the types every record has), rounded."""
    out: dict = {}
    for key, value in records[0].items():
        if key in ("best_step", "test_examples"):  # not averaged: listed per seed
            continue
        if isinstance(value, dict):
            common = [k for k in value if all(k in r.get(key, {}) for r in records)]
            out[key] = _mean([{k: r[key][k] for k in common} for r in records])
        elif all(key in r for r in records):
            out[key] = round(sum(r[key] for r in records) / len(records), 6)
    return out


def read_arm(task: Task, out: Path, run: str, sentiment_test: Path) -> dict:
    """A run and its other seeds: the means over seeds (``dev_<metric>``, ``test_<metric>``...), ``seeds``: each
    run's numbers, and ``test_examples`` (the same for every seed, or an error)."""
    seeds = {label: read_run(task, path, sentiment_test) for label, path in seed_runs(out, run).items()}
    arm = {**_mean(list(seeds.values())), "seeds": seeds}
    sizes = {r["test_examples"] for r in seeds.values() if "test_examples" in r}
    if len(sizes) > 1:
        raise ValueError(f"the seeds of {out / run} were tested on different numbers of examples ({sorted(sizes)}): "
                         f"rerun them on one test set")
    if sizes:
        arm["test_examples"] = sizes.pop()
    return arm


# ---------------------------------------------------------------------------------------------------------------------
# results.json
# ---------------------------------------------------------------------------------------------------------------------

def compare(task: Task, arms: dict[str, dict]) -> dict:
    """The task's top-level results: each reported metric of each arm on test, then on dev (the selection set), the
    per-seed values where an arm has several seeds, and the gains of pretrained over random init in points."""
    out: dict = {}
    random_init, pretrained = arms["random_init"], arms["pretrained"]
    for split in ("test", "dev"):
        for metric in task.reported:
            key = f"{split}_{metric}"
            for arm, record in arms.items():
                out[f"{task.name}_{key}_{arm}"] = record[key]
                if len(record["seeds"]) > 1:
                    out[f"{task.name}_{key}_{arm}_per_seed"] = {s: r[key] for s, r in record["seeds"].items()}
            gain = task.gain_key(split, metric)
            out[gain] = round(task.scale * (pretrained[key] - random_init[key]), 2)
            shared = [s for s in pretrained["seeds"] if s in random_init["seeds"]]
            if len(shared) > 1:  # same seed, same data order: the paired differences
                out[f"{gain}_per_seed"] = {
                    s: round(task.scale * (pretrained["seeds"][s][key] - random_init["seeds"][s][key]), 2)
                    for s in shared}
    return out


def goals(results: dict) -> dict:
    """The demo's targets, judged on test only: pretrained ≥ random init on every task, and each task's gain of
    its headline metric at least its goal (``met`` each and overall). The gains compared are the ones reported
    (points, 2 decimals), so float noise cannot turn a shown +3.00 into a miss."""
    gains = {task.name: results[task.gain_key("test", task.metrics[0])] for task in TASKS}
    out: dict = {"split": "test",
                 "pretrained_at_least_random_init": {"test_gain_points": gains,
                                                     "met": all(g >= 0 for g in gains.values())}}
    for task in TASKS:
        out[f"{task.name}_{task.metrics[0]}_gain"] = {"target_points": task.goal_points,
                                                      "test_gain_points": gains[task.name],
                                                      "met": gains[task.name] >= task.goal_points}
    out["met"] = all(goal["met"] for goal in out.values() if isinstance(goal, dict))
    return out


def pretrained_metrics(eval_file: Path, writer: str) -> dict:
    """A pretrained model's held-out metrics (run_pretraining.py's eval_results.txt) and its step."""
    metrics = read_key_values(_require(eval_file, writer))
    return {**{k: _metric(metrics, k, eval_file) for k in PRETRAINING_METRICS},
            "steps": int(_metric(metrics, "global_step", eval_file))}


def mrc_baselines(summary_file: Path) -> dict:
    """The test baselines of data/make_mrc_data.py's summary.json ({name: {f1, em}}, percent); {} without it."""
    if not summary_file.exists():
        return {}
    summary = read_json(summary_file)
    return {name: {k: scores[k] for k in ("f1", "em") if k in scores}
            for name, scores in summary.get("baselines", {}).get("test", {}).items()}


def collect(out: Path, shipped_dir: Path) -> dict:
    """Everything results.json holds, from the files the demo wrote under ``out`` and the shipped checkpoint's."""
    results: dict = {"selection": SELECTION, "pretrained_checkpoint": str(shipped_dir)}
    finetuned = {}
    for task in TASKS:
        arms = {}
        for arm, folder in ARMS.items():
            run = f"{task.run_prefix}_{folder}"
            arms[arm] = finetuned[f"{task.name}_{folder}"] = read_arm(task, out, run,
                                                                       out / "tasks" / "sentiment" / "test.tsv")
        sizes = {arm: record["test_examples"] for arm, record in arms.items() if "test_examples" in record}
        if len(set(sizes.values())) > 1:  # a comparison is only fair on one test set
            raise ValueError(f"{task.name}: the arms were tested on different numbers of examples ({sizes}): rerun "
                             f"them on one test set")
        results.update(compare(task, arms))
    results["mrc_test_baselines"] = mrc_baselines(out / "tasks" / "mrc" / "summary.json")
    results["goals"] = goals(results)
    results["finetuned"] = finetuned

    entropy = {}  # the shipped checkpoint's record (news) and the demo's own count (reviews)
    for directory in (shipped_dir, out):
        if (directory / ENTROPY_FILE).exists():
            entropy.update(read_json(directory / ENTROPY_FILE))
    results["pretrained_models"] = {
        # the shipped checkpoint's own record: held-out news, measured when it was pretrained, and its curve ...
        "shipped_on_news": {**pretrained_metrics(shipped_dir / "eval_results.txt",
                                                 f"{shipped_dir}/make.sh (the checkpoint ships with it)"),
                            "curve": read_curve(shipped_dir / "progress.jsonl")},
        # ... and the demo's measurement of it on held-out review text, the fine-tuning tasks' domain
        "shipped_on_reviews": pretrained_metrics(out / "eval_shipped_on_reviews" / "eval_results.txt",
                                                 "demo.sh's shipped_eval stage (run_pretraining.py --do_eval)"),
    }
    results["masked_token_unigram_entropy_nats"] = entropy
    timings = read_timings(out / "timings.tsv")
    results["stage_seconds"] = timings
    results["total_seconds"] = round(sum(timings.values()), 1)
    return results


# ---------------------------------------------------------------------------------------------------------------------
# report.png and the closing lines
# ---------------------------------------------------------------------------------------------------------------------

def plot_report(results: dict, path: str | Path) -> None:
    """Left: the shipped checkpoint's masked-LM loss against its pretraining steps, with each corpus' unigram-entropy
    line and its held-out losses. Right: random init against pretrained on each task's test set (bar: the mean over
    seeds, dots: each seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(16, 5.2))
    grid = fig.add_gridspec(1, 1 + len(TASKS), width_ratios=[1.7] + [1] * len(TASKS))
    left = fig.add_subplot(grid[0])
    models, entropy = results["pretrained_models"], results["masked_token_unigram_entropy_nats"]
    curve = models["shipped_on_news"]["curve"]
    if curve:
        left.plot(*zip(*curve), color="tab:blue", linewidth=1,
                  label="shipped checkpoint's pretraining\n(news, then news + training reviews)")
    for corpus, color in (("news", "tab:blue"), ("reviews", "tab:orange")):
        if corpus in entropy:
            left.axhline(entropy[corpus], color=color, linestyle="--", linewidth=1,
                         label=f"unigram entropy of masked tokens, {corpus} ({entropy[corpus]:.2f})")
        held_out = models[f"shipped_on_{corpus}"]
        # an eval-only run records step 0: the weights it measured are the shipped checkpoint's, at its last step
        step = held_out["steps"] or models["shipped_on_news"]["steps"]
        left.plot(step, held_out["masked_lm_loss"], marker="*", markersize=13, color=color,
                  linestyle="none", label=f"held-out {corpus}: {held_out['masked_lm_loss']:.2f}")
    left.set(xlabel="pretraining step", ylabel="masked-LM loss (nats)",
             title="Below the dashed line the model reads context")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)

    for column, task in enumerate(TASKS, 1):
        _plot_task(fig.add_subplot(grid[column]), task, results)
    fig.suptitle("Each task fine-tuned from random init (gray) and from the shipped pretrained checkpoint (blue), "
                 "scored on its TEST set (bars: mean over seeds, dots: each seed)", fontsize=10)
    fig.tight_layout()
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def _plot_task(ax, task: Task, results: dict) -> None:
    """One task's two test bars (mean over seeds, the value written in it), each seed a dot, the gain on top."""
    metric = task.metrics[0]
    values = []
    for x, (arm, color) in enumerate((("random_init", "tab:gray"), ("pretrained", "tab:blue"))):
        record = results["finetuned"][f"{task.name}_{ARMS[arm]}"]
        mean, seeds = record[f"test_{metric}"], [r[f"test_{metric}"] for r in record["seeds"].values()]
        ax.bar(x, mean, color=color, width=0.6)
        top = 100.0 if task.scale == 1 else 1.0
        inside = mean > 0.15 * top  # a short bar gets its value above it
        ax.text(x, 0.7 * mean if inside else mean + 0.03 * top, task.format(mean), ha="center",
                va="center" if inside else "bottom", color="white" if inside else "black", fontweight="bold")
        if len(seeds) > 1:  # the seeds' spread: how much of the gap one seed could move
            offsets = [0.16 * (i / (len(seeds) - 1) - 0.5) for i in range(len(seeds))]
            ax.plot([x + o for o in offsets], seeds, "o", color="black", markersize=3.5,
                    label="a seed" if x == 0 else None)
        values += seeds + [mean]
    if task.name == "mrc":  # the scale: what answering without a model scores
        for (name, scores), style in zip(results["mrc_test_baselines"].items(), (":", "-.", "--")):
            if "f1" in scores:
                ax.axhline(scores["f1"], color="black", linestyle=style, linewidth=0.8,
                           label=f"baseline {name.replace('_', ' ')}: {scores['f1']:.1f}")
                values.append(scores["f1"])
    full = 100.0 / task.scale  # 1 for fractions, 100 for percentages
    ax.set_ylim(0, min(1.05 * full, 1.2 * max(values)) if max(values) > 0 else full)
    ax.set_xticks([0, 1], ["random init", "pretrained\n(shipped)"])
    ax.set(ylabel=task.axis, title=f"{task.title}\n{task.headline} {results[task.gain_key('test', metric)]:+.1f} "
                                   f"points on test")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7, loc="upper left")
    ax.grid(axis="y", alpha=0.3)


def _task_line(task: Task, results: dict) -> str:
    """``NER, test entity F1 on N sentences: random init 0.412 -> pretrained 0.653: +24.1 points  (notes)``."""
    random_init, pretrained = (results["finetuned"][f"{task.name}_{folder}"] for folder in ARMS.values())
    several = len(task.reported) > 1
    size = f" on {pretrained['test_examples']} {task.unit}" if "test_examples" in pretrained else ""
    both = {arm: " / ".join(task.format(record[f"test_{m}"]) for m in task.reported)
            for arm, record in (("random_init", random_init), ("pretrained", pretrained))}
    gains = ", ".join(f"{m.upper() + ' ' if several else ''}{results[task.gain_key('test', m)]:+.1f}"
                      for m in task.reported)
    notes = []
    if len(random_init["seeds"]) > 1 or len(pretrained["seeds"]) > 1:
        notes.append("per seed: " + "; ".join(
            f"{name} " + " ".join(task.format(r[f"test_{task.metrics[0]}"]) for r in record["seeds"].values())
            for name, record in (("random init", random_init), ("pretrained", pretrained))))
    if "test_f1_by_type" in pretrained and task.name == "ner":  # (MRC's are CMRC2018's question words: not cloze)
        notes.append("pretrained F1 by type: " + " ".join(f"{kind} {task.format(value)}"
                                                          for kind, value in pretrained["test_f1_by_type"].items()))
    baselines = {name: s["f1"] for name, s in results["mrc_test_baselines"].items() if "f1" in s}
    if task.name == "mrc" and baselines:
        notes.append("baselines F1: " + ", ".join(f"{name.replace('_', ' ')} {f1:.1f}"
                                                  for name, f1 in baselines.items()))
    return (f"{task.title}, test {task.words}{size}: random init {both['random_init']} -> pretrained "
            f"{both['pretrained']}: {gains} points" + "".join(f"  ({note})" for note in notes))


def summary_lines(results: dict) -> list[str]:
    """The closing lines: each task on test, dev as the selection set, the pretrained model, the goals, wall time."""
    lines = [_task_line(task, results) for task in TASKS]
    dev = ", ".join(f"{task.name} {task.metrics[0]} "
                    + " -> ".join(task.format(results[f"{task.name}_dev_{task.metrics[0]}_{arm}"]) for arm in ARMS)
                    for task in TASKS)
    lines.append(f"dev, the selection set (each run keeps its best dev checkpoint; optimistic, not a result): {dev}")
    news, reviews = (results["pretrained_models"][f"shipped_on_{corpus}"] for corpus in ("news", "reviews"))
    entropy, nan = results["masked_token_unigram_entropy_nats"], float("nan")
    lines.append(f"pretrained model (shipped, {news['steps']} steps on training-portion news and reviews), held-out "
                 f"news / reviews: masked-LM loss "
                 f"{news['masked_lm_loss']:.3f} / {reviews['masked_lm_loss']:.3f} against unigram entropy "
                 f"{entropy.get('news', nan):.3f} / {entropy.get('reviews', nan):.3f}, masked-LM accuracy "
                 f"{news['masked_lm_accuracy']:.3f} / {reviews['masked_lm_accuracy']:.3f}, sentence order accuracy "
                 f"{news['sentence_order_accuracy']:.3f} / {reviews['sentence_order_accuracy']:.3f}")
    targets, met = results["goals"], {True: "met", False: "NOT met"}
    each = [f"pretrained >= random init on every task {met[targets['pretrained_at_least_random_init']['met']]}"]
    for task in TASKS:
        goal = targets[f"{task.name}_{task.metrics[0]}_gain"]
        each.append(f"{task.name} {task.metrics[0]} +{task.goal_points:g} points {met[goal['met']]} "
                    f"({goal['test_gain_points']:+.1f})")
    lines.append(f"goals on test: {'; '.join(each)} -> {'all met' if targets['met'] else 'NOT all met'}")
    lines.append(f"wall time: {results['total_seconds'] / 60:.1f} min ("
                 + ", ".join(f"{k} {v:.0f} s" for k, v in results["stage_seconds"].items()) + ")")
    return lines


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("demo_output", None, "The demo's OUT directory.", flag_values=fv)
    flags.DEFINE_string("shipped_dir", "pretrained/albert_demo_zh", "The shipped checkpoint.", flag_values=fv)
    flags.DEFINE_multi_string("entropy", None, "NAME=TFRECORD_GLOB: only count the masked-token unigram entropy of "
                              "these TFRecords into OUT/masked_token_entropy.json and exit (demo.sh does it right "
                              "after making the data)", flag_values=fv)
    flags.register_validator("entropy", lambda values: all(_entropy_pair(v) for v in values or ()),
                             "expected NAME=TFRECORD_GLOB, e.g. --entropy=reviews=OUT/pretrain_data/*.tfrecord",
                             flag_values=fv)
    flags.mark_flags_as_required(["demo_output"], flag_values=fv)


def _entropy_pair(value: str) -> tuple[str, str] | None:
    """``NAME=GLOB`` -> (NAME, GLOB); None when either part is missing."""
    name, sep, pattern = value.partition("=")
    return (name, pattern) if sep and name and pattern else None


def parse_flags(argv: list[str] | None = None) -> flags.FlagValues:
    return cli.parse_flags(argv, define_flags, __doc__)


def main(argv: list[str] | None = None) -> int:
    args = parse_flags(argv)
    out = Path(args.demo_output)
    if args.entropy:
        import glob

        path = out / ENTROPY_FILE
        known = read_json(path) if path.exists() else {}
        for name, pattern in map(_entropy_pair, args.entropy):
            files = sorted(glob.glob(pattern))
            if not files:
                raise SystemExit(f"demo_report.py: no TFRecord matches {pattern!r}")
            known[name] = round(unigram_entropy(masked_token_counts(files)), 4)
            print(f"masked-token unigram entropy, {name}: {known[name]:.4f} nats")
        path.write_text(json.dumps(known, indent=2) + "\n", encoding="utf-8")
        return 0
    results = collect(out, Path(args.shipped_dir))
    tmp = out / "results.json.tmp"
    tmp.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, out / "results.json")
    plot_report(results, out / "report.png")
    print("\n".join(summary_lines(results)))
    print(f"results: {out / 'results.json'}, picture: {out / 'report.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.clean_errors(main)())
