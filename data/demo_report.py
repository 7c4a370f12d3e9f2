# coding=utf-8
"""The demo's results: ``OUT/results.json``, ``OUT/report.png`` and the closing lines demo.sh prints.

Inputs are what the demo's steps leave behind, read as files (nothing is recomputed):
  * each fine-tuning run's ``eval_results.txt`` (dev accuracy of its best dev checkpoint) and ``test_results.tsv``
    (test predictions, scored here against the test file's labels). The random-init and domain-adapted arms are
    fine-tuned with several seeds (``finetune_<arm>`` with the first, ``finetune_<arm>_seed<N>`` with the others):
    their accuracies are the means over seeds, each seed listed beside them, so one lucky or unlucky seed does not
    decide the comparison;
  * each pretrained model's ``eval_results.txt`` (held-out masked-LM and sentence-order metrics) and
    ``progress.jsonl`` (the training curve that training.py appends a line to per loop);
  * the pretraining TFRecords, for the *masked-token unigram entropy*: the cross-entropy a model reaches by
    predicting every masked token with the corpus' token frequencies and ignoring the context. A masked-LM loss
    below it means the model reads the context; at it, the model has learned frequencies only (the "plateau");
  * ``timings.tsv`` (stage, seconds), written by demo.sh.

Usage (demo.sh runs both: the first right after making the pretraining data, the second at the end):

    python data/demo_report.py --demo_output OUT --entropy=reviews=OUT/pretrain_data/reviews_unlabelled.tfrecord
    python data/demo_report.py --demo_output OUT --shipped_dir pretrained/albert_demo_zh
"""

from __future__ import annotations

import collections
import json
import math
import os
import sys
from pathlib import Path
from typing import Iterable

from absl import flags

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cli  # noqa: E402  (the repo root's: flags, and bad input prints one clean line)

GAIN_GOAL_POINTS = 3.0  # what the demo sets out to show: pretrained ≥ random init + 3 points
PAIRS_GOAL = 0.60
ENTROPY_FILE = "masked_token_entropy.json"


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


def test_accuracy(test_file: str | Path, predictions_file: str | Path, label_column: int) -> float:
    """Accuracy of run_classifier.py's test_results.tsv (one row of class probabilities per test line, columns in
    label_list.txt's order) against the labels in the task's test file."""
    run_dir = Path(predictions_file).parent
    labels = (run_dir / "label_list.txt").read_text(encoding="utf-8").split()
    with open(test_file, encoding="utf-8") as f:
        rows = [line.rstrip("\n").split("\t") for line in f if line.strip()]
    if rows and rows[0][label_column] == "label":  # header line (text_classification's TSVs)
        rows = rows[1:]
    gold = [row[label_column] for row in rows]
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
            for line in f:
                if line.strip():
                    stage, seconds = line.rstrip("\n").rsplit("\t", 1)
                    out[stage] = float(seconds)
    return out


# ---------------------------------------------------------------------------------------------------------------------
# results.json
# ---------------------------------------------------------------------------------------------------------------------

def collect(out: Path, shipped_dir: Path) -> dict:
    """Everything results.json holds, from the files the demo wrote under ``out``."""
    tasks = out / "tasks"

    def one_run(run: Path, test_file: Path, label_column: int) -> dict[str, float]:
        dev = read_key_values(run / "eval_results.txt")
        return {"dev_accuracy": dev["eval_accuracy"], "best_step": int(dev["global_step"]),
                "test_accuracy": test_accuracy(test_file, run / "test_results.tsv", label_column)}

    def finetune(name: str, test_file: Path, label_column: int) -> dict:
        """The run ``finetune_<name>`` and its other seeds ``finetune_<name>_seed<N>``: mean accuracies, and each."""
        runs = [out / f"finetune_{name}"] + sorted(out.glob(f"finetune_{name}_seed*"))
        each = {run.name[len(f"finetune_{name}"):].lstrip("_") or "first": one_run(run, test_file, label_column)
                for run in runs}
        if len(each) == 1:
            return each["first"]
        mean = {k: round(sum(r[k] for r in each.values()) / len(each), 6) for k in ("dev_accuracy", "test_accuracy")}
        return {**mean, "seeds": each}

    sentiment_test, pairs_test = tasks / "sentiment" / "test.tsv", tasks / "pairs" / "test.txt"
    finetuned = {
        "sentiment_random_init": finetune("sentiment_random_init", sentiment_test, 0),
        "sentiment_shipped": finetune("sentiment_shipped", sentiment_test, 0),
        "sentiment_domain_adapted": finetune("sentiment_domain_adapted", sentiment_test, 0),
        "pairs_shipped": finetune("pairs_shipped", pairs_test, 2),
    }

    def pretrained(eval_file: Path, progress: Path) -> dict:
        metrics = read_key_values(eval_file)
        return {"masked_lm_loss": metrics["masked_lm_loss"], "masked_lm_accuracy": metrics["masked_lm_accuracy"],
                "sentence_order_loss": metrics["sentence_order_loss"],
                "sentence_order_accuracy": metrics["sentence_order_accuracy"],
                "steps": int(metrics["global_step"]), "curve": read_curve(progress)}

    models = {
        # The shipped checkpoint as it comes (news), measured on the review text before adaptation ...
        "shipped_on_reviews": pretrained(out / "eval_shipped_on_reviews" / "eval_results.txt", Path("-")),
        # ... its own record, on held-out news (made when it was pretrained) ...
        "shipped": pretrained(shipped_dir / "eval_results.txt", shipped_dir / "progress.jsonl"),
        # ... and after domain-adaptive pretraining on the unlabelled training reviews.
        "domain_adapted": pretrained(out / "domain_adapted" / "eval_results.txt",
                                     out / "domain_adapted" / "progress.jsonl"),
    }
    entropy = {}  # the shipped checkpoint's record (news) and the demo's own count (reviews)
    for directory in (shipped_dir, out):
        if (directory / ENTROPY_FILE).exists():
            entropy.update(json.loads((directory / ENTROPY_FILE).read_text(encoding="utf-8")))
    gain = finetuned["sentiment_domain_adapted"]["dev_accuracy"] - finetuned["sentiment_random_init"]["dev_accuracy"]
    timings = read_timings(out / "timings.tsv")
    return {
        "sentiment_dev_accuracy_pretrained": finetuned["sentiment_domain_adapted"]["dev_accuracy"],
        "sentiment_dev_accuracy_random_init": finetuned["sentiment_random_init"]["dev_accuracy"],
        "sentiment_dev_accuracy_shipped": finetuned["sentiment_shipped"]["dev_accuracy"],
        "sentiment_gain_points": round(100 * gain, 2),
        "sentiment_gain_points_per_seed": per_seed_gains(finetuned),
        "pairs_dev_accuracy_pretrained": finetuned["pairs_shipped"]["dev_accuracy"],
        "goals": {"gain_points": GAIN_GOAL_POINTS, "pairs_accuracy": PAIRS_GOAL,
                  "met": 100 * gain >= GAIN_GOAL_POINTS
                  and finetuned["pairs_shipped"]["dev_accuracy"] >= PAIRS_GOAL},
        "finetuned": finetuned,
        "pretrained_models": models,
        "masked_token_unigram_entropy_nats": entropy,
        "stage_seconds": timings,
        "total_seconds": round(sum(timings.values()), 1),
    }


def per_seed_gains(finetuned: dict) -> dict[str, float]:
    """Dev-accuracy gain (points) of the domain-adapted arm over random init, seed by seed (same seeds)."""
    pretrained, random_init = finetuned["sentiment_domain_adapted"], finetuned["sentiment_random_init"]
    if "seeds" not in pretrained or "seeds" not in random_init:
        return {"first": round(100 * (pretrained["dev_accuracy"] - random_init["dev_accuracy"]), 2)}
    return {seed: round(100 * (run["dev_accuracy"] - random_init["seeds"][seed]["dev_accuracy"]), 2)
            for seed, run in pretrained["seeds"].items() if seed in random_init["seeds"]}


# ---------------------------------------------------------------------------------------------------------------------
# report.png and the closing lines
# ---------------------------------------------------------------------------------------------------------------------

def plot_report(results: dict, path: str | Path) -> None:
    """Left: masked-LM loss against steps for each pretraining stage, with each corpus' unigram-entropy line.
    Right: dev accuracy of each fine-tuned model as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 5.2), gridspec_kw={"width_ratios": [1.25, 1]})
    models, entropy = results["pretrained_models"], results["masked_token_unigram_entropy_nats"]
    shipped_curve, adapted_curve = models["shipped"]["curve"], models["domain_adapted"]["curve"]
    offset = shipped_curve[-1][0] if shipped_curve else 0
    if shipped_curve:
        left.plot(*zip(*shipped_curve), color="tab:blue", label="shipped checkpoint (make.sh): its pretraining")
    if adapted_curve:
        left.plot([offset + s for s, _ in adapted_curve], [v for _, v in adapted_curve], color="tab:orange",
                  label="demo: domain-adaptive pretraining on reviews")
    for name, color in (("news", "tab:blue"), ("reviews", "tab:orange")):
        if name in entropy:
            left.axhline(entropy[name], color=color, linestyle="--", linewidth=1,
                         label=f"unigram entropy of masked tokens, {name} ({entropy[name]:.2f})")
    left.set(xlabel="pretraining step", ylabel="masked-LM loss (nats)",
             title="Below the dashed line the model reads context")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)

    bars = [("sentiment\nrandom init", results["sentiment_dev_accuracy_random_init"], "tab:gray"),
            ("sentiment\nshipped ckpt", results["sentiment_dev_accuracy_shipped"], "tab:blue"),
            ("sentiment\ndomain-adapted", results["sentiment_dev_accuracy_pretrained"], "tab:orange"),
            ("pairs\nshipped ckpt", results["pairs_dev_accuracy_pretrained"], "tab:green")]
    positions = range(len(bars))
    right.bar(positions, [b[1] for b in bars], color=[b[2] for b in bars])
    for x, (_, value, _) in zip(positions, bars):
        right.text(x, value + 0.005, f"{value:.3f}", ha="center", fontsize=9)
    right.set_xticks(list(positions), [b[0] for b in bars], fontsize=9)
    right.set_ylim(0.4, 1.0)
    right.axhline(0.5, color="black", linewidth=0.8, linestyle=":")
    right.set(ylabel="dev accuracy (best dev checkpoint; mean over seeds)",
              title=f"Pretraining: {results['sentiment_gain_points']:+.1f} points on sentiment")
    right.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def summary_lines(results: dict) -> list[str]:
    f = results["finetuned"]
    models = results["pretrained_models"]
    entropy = results["masked_token_unigram_entropy_nats"]
    shipped, nan = models["shipped"], float("nan")

    def seeds(run: dict) -> str:
        return ("  (seeds: " + ", ".join(f"{r['dev_accuracy']:.3f}" for r in run["seeds"].values()) + ")"
                if "seeds" in run else "")
    return [
        f"pretraining (shipped checkpoint, news): masked-LM loss {shipped['masked_lm_loss']:.3f} "
        f"(unigram entropy {entropy.get('news', nan):.3f}), masked-LM accuracy "
        f"{shipped['masked_lm_accuracy']:.3f}, sentence order {shipped['sentence_order_accuracy']:.3f}",
        f"domain adaptation on reviews: masked-LM loss {models['shipped_on_reviews']['masked_lm_loss']:.3f} -> "
        f"{models['domain_adapted']['masked_lm_loss']:.3f} (unigram entropy {entropy.get('reviews', nan):.3f})",
        f"review sentiment, random init    : dev {f['sentiment_random_init']['dev_accuracy']:.4f}  "
        f"test {f['sentiment_random_init']['test_accuracy']:.4f}{seeds(f['sentiment_random_init'])}",
        f"review sentiment, shipped ckpt   : dev {f['sentiment_shipped']['dev_accuracy']:.4f}  "
        f"test {f['sentiment_shipped']['test_accuracy']:.4f}",
        f"review sentiment, domain-adapted : dev {f['sentiment_domain_adapted']['dev_accuracy']:.4f}  "
        f"test {f['sentiment_domain_adapted']['test_accuracy']:.4f}{seeds(f['sentiment_domain_adapted'])}",
        f"pretraining pays: {results['sentiment_gain_points']:+.1f} points of sentiment dev accuracy over random init "
        f"(goal +{GAIN_GOAL_POINTS:g}; per seed: "
        + ", ".join(f"{v:+.1f}" for v in results["sentiment_gain_points_per_seed"].values()) + ")",
        f"sentence pairs (does B follow A?), shipped ckpt: dev {results['pairs_dev_accuracy_pretrained']:.4f} "
        f"(goal {PAIRS_GOAL:.2f})",
        f"wall time: {results['total_seconds'] / 60:.1f} min ("
        + ", ".join(f"{k} {v:.0f} s" for k, v in results["stage_seconds"].items()) + ")",
    ]


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
        known = json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}
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
