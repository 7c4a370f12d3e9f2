"""What pretraining buys on the demo's tasks: dev accuracy against pretraining steps, and the gain over seeds.

Runs the demo's own commands (run_pretraining.py for held-out masked-LM eval, run_classifier.py with demo.sh's
fine-tuning recipe) on what a finished demo and the shipped checkpoint's pretraining run leave behind:

  * **steps**: review-sentiment fine-tuning from random init (step 0) and from kept checkpoints of the shipped
    checkpoint's three pretraining stages (``pretrained/albert_demo_zh/make.sh`` keeps every 500th step: stage 1,
    news, steps 1-4000 in WORK/run; stages 2 and 3, news + reviews, steps 4001-5500 in WORK/run2 and 5501-8500
    in WORK/run3), with the held-out
    masked-LM loss/accuracy of that checkpoint on the news text and on the review text;
  * **seeds**: random init, the shipped checkpoint and the demo's domain-adapted checkpoint, each fine-tuned with
    several seeds (the seed sets the classifier's initialisation, dropout and the data order); the gain is the
    per-seed difference, reported as mean and range.

Usage (after ``bash demo.sh`` and ``bash pretrained/albert_demo_zh/make.sh``):
  python bench/bench_demo_pretraining.py --demo_output output/demo --pretraining_work output/albert_demo_zh \
      --steps 0,1000,2000,4000,5500,8500 --seeds 1,2,3
Prints markdown tables and writes WORK/bench_demo_pretraining.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "pretrained" / "albert_demo_zh"
sys.path.insert(0, str(REPO / "data"))
import demo_report  # noqa: E402

SEQ, PREDICTIONS = 64, 16  # the shipped checkpoint's settings
STAGES = (("run", 0), ("run2", 4000), ("run3", 5500))  # make.sh's runs and the step each starts from
FINAL_STEP = 8500


def run(args: list[str], log: Path) -> None:
    with open(log, "w", encoding="utf-8") as f:
        code = subprocess.call([sys.executable, *args], cwd=REPO, stdout=f, stderr=subprocess.STDOUT)
    if code:
        raise SystemExit(f"{' '.join(args[:1])} failed (exit {code}); see {log}")


def finetune(out: Path, demo: Path, init: str | None, seed: int, lr: str, epochs: str) -> dict[str, float]:
    """demo.sh's fine-tuning command (sentiment); dev accuracy of the best dev checkpoint and its test accuracy."""
    if not (out / "eval_results.txt").exists():
        out.mkdir(parents=True, exist_ok=True)
        run(["run_classifier.py", "--task_name=text_classification", f"--data_dir={demo}/tasks/sentiment",
             f"--vocab_file={SHIPPED}/vocab.txt", f"--bert_config_file={SHIPPED}/albert_config.json",
             *([f"--init_checkpoint={init}"] if init else []), f"--output_dir={out}", "--do_train=true",
             "--do_eval=true", "--do_predict=true", f"--max_seq_length={SEQ}", "--train_batch_size=32",
             "--eval_batch_size=64", "--predict_batch_size=64", f"--learning_rate={lr}", "--bias_correction=true",
             "--adam_epsilon=1e-8", f"--num_train_epochs={epochs}", "--warmup_proportion=0.1", f"--seed={seed}",
             "--save_checkpoints_steps=50", "--iterations_per_loop=50", "--keep_checkpoint_max=1",
             f"--export_dir={out}/saved_model"], out.parent / f"{out.name}.log")
    dev = demo_report.read_key_values(out / "eval_results.txt")
    test = demo_report.test_accuracy(demo / "tasks" / "sentiment" / "test.tsv", out / "test_results.tsv", 0)
    return {"dev_accuracy": dev["eval_accuracy"], "test_accuracy": test, "best_step": int(dev["global_step"])}


def masked_lm_eval(out: Path, checkpoint: str, eval_files: str) -> dict[str, float]:
    """Held-out masked-LM and sentence-order metrics of a checkpoint (run_pretraining.py --do_eval)."""
    if not (out / "eval_results.txt").exists():
        out.mkdir(parents=True, exist_ok=True)
        run(["run_pretraining.py", f"--bert_config_file={SHIPPED}/albert_config.json",
             f"--init_checkpoint={checkpoint}",
             f"--input_file={eval_files}", f"--output_dir={out}", "--do_eval=true", f"--max_seq_length={SEQ}",
             f"--max_predictions_per_seq={PREDICTIONS}", "--eval_batch_size=64", "--max_eval_steps=40"],
            out.parent / f"{out.name}.log")
    return demo_report.read_key_values(out / "eval_results.txt")


def spread(values: list[float]) -> str:
    return f"{statistics.mean(values):.4f} ({min(values):.4f}-{max(values):.4f})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--demo_output", default="output/demo", help="A finished demo's OUT.")
    parser.add_argument("--pretraining_work", default="output/albert_demo_zh",
                        help="make.sh's WORK directory (run/, run2/, run3/: the stages' checkpoints).")
    parser.add_argument("--steps", default="0,1000,2000,4000,5500,8500")
    parser.add_argument("--seeds", default="1,2,3")
    parser.add_argument("--starts", default="random_init,shipped,domain_adapted",
                        help="Which starts the seeds row fine-tunes (random_init first: the gains are against it).")
    parser.add_argument("--learning_rate", default="1e-3")
    parser.add_argument("--epochs", default="2")
    parser.add_argument("--work", default="output/bench_demo_pretraining")
    args = parser.parse_args()
    demo, work, pretraining = Path(args.demo_output).resolve(), Path(args.work).resolve(), Path(args.pretraining_work)
    work.mkdir(parents=True, exist_ok=True)
    reviews_eval = str(demo / "pretrain_data" / "reviews_unlabelled_dev.tfrecord")
    t0, results = time.time(), {"steps": [], "seeds": {}}

    for step in (int(s) for s in args.steps.split(",")):
        run_name, start = [(r, s) for r, s in STAGES if s < step][-1] if step else (None, 0)
        checkpoint = str(pretraining / run_name / f"ckpt-{step - start}") if step else None
        # The demo's own runs are these rows at its seed (12345): random init and the shipped checkpoint.
        reused = {0: "random_init", FINAL_STEP: "shipped"}.get(step)
        out = demo / f"finetune_sentiment_{reused}" if reused else work / f"steps_{step}"
        row = {"step": step, "finetune": finetune(out, demo, checkpoint, 12345, args.learning_rate, args.epochs)}
        if checkpoint:
            row["news"] = masked_lm_eval(work / f"mlm_news_{step}", checkpoint,
                                         str(pretraining / "data" / "heldout-*.tfrecord"))
            row["reviews"] = masked_lm_eval(work / f"mlm_reviews_{step}", checkpoint, reviews_eval)
        results["steps"].append(row)
        print(json.dumps(row), flush=True)

    starts = {"random_init": None, "shipped": str(SHIPPED), "domain_adapted": str(demo / "domain_adapted")}
    starts = {name: starts[name] for name in args.starts.split(",")}
    for seed in (int(s) for s in args.seeds.split(",") if s):
        for name, init in starts.items():
            results["seeds"].setdefault(name, []).append(
                finetune(work / f"seed{seed}_{name}", demo, init, seed, args.learning_rate, args.epochs))
            print(name, seed, results["seeds"][name][-1], flush=True)

    (work / "bench_demo_pretraining.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"\n{time.time() - t0:.0f} s, {os.cpu_count()} CPUs\n")
    print("| pretraining steps | held-out MLM loss / acc, news | held-out MLM loss / acc, reviews | "
          "sentiment dev acc | sentiment test acc |\n|---|---|---|---|---|")
    for row in results["steps"]:
        mlm = ["{:.3f} / {:.3f}".format(row[k]["masked_lm_loss"], row[k]["masked_lm_accuracy"]) if k in row else "-"
               for k in ("news", "reviews")]
        print(f"| {row['step']} | {mlm[0]} | {mlm[1]} | {row['finetune']['dev_accuracy']:.4f} | "
              f"{row['finetune']['test_accuracy']:.4f} |")
    seeds = results["seeds"]
    if not seeds:
        return 0
    print("\n| start | dev acc, mean (min-max) | test acc, mean (min-max) | dev gain over random init, points |"
          "\n|---|---|---|---|")
    for name, rows in seeds.items():
        gains = [100 * (r["dev_accuracy"] - base["dev_accuracy"]) for r, base in zip(rows, seeds["random_init"])]
        gain = f"{statistics.mean(gains):+.1f} ({min(gains):+.1f} to {max(gains):+.1f})" if name != "random_init" \
            else "-"
        print(f"| {name} | {spread([r['dev_accuracy'] for r in rows])} | "
              f"{spread([r['test_accuracy'] for r in rows])} | {gain} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
