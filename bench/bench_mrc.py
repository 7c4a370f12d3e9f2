"""Reading comprehension on a real benchmark: run_mrc.py from random init against a pretrained checkpoint, same
config and recipe, on CMRC2018 (or any file set in its SQuAD-style JSON, e.g. DRCD).

Selection and result are kept apart: checkpoints are chosen on ``--select_file`` (CMRC2018's trial set) and the
result is the chosen checkpoint's score on ``--test_file`` (CMRC2018's dev set, where the published numbers are),
which no choice saw. ``--train_questions`` takes the first N training questions (whole articles, file order) when
the full set is more than the machine affords; 0 = all.

Usage (CMRC2018 from ../shared/datasets or your own copy):
  python bench/bench_mrc.py --data_dir ../shared/datasets/cmrc2018 --work output/bench_mrc \
      --train_questions 0 --epochs 3 --learning_rate 1e-3 --seeds 12345 --save_steps 300

The recipe is the NER section's for this model (AdamW with bias correction, epsilon 1e-8), the same for both
starts; --train_windows=with_answer (default here) trains on the windows that hold the answer only, a third of
all windows at --max_seq_length=256.
Prints a markdown table and writes WORK/bench_mrc_<starts>.json (every run's scores, wall seconds, command).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "pretrained" / "albert_demo_zh"


def subset(train_file: Path, questions: int, out: Path) -> Path:
    """The first ``questions`` questions of ``train_file`` (whole articles), as a file of the same format."""
    data = json.loads(train_file.read_text(encoding="utf-8"))
    kept, count = [], 0
    for article in data["data"]:
        if count >= questions:
            break
        kept.append(article)
        count += sum(len(p["qas"]) for p in article["paragraphs"])
    out.write_text(json.dumps({**data, "data": kept}, ensure_ascii=False), encoding="utf-8")
    return out


def read_results(path: Path) -> dict[str, float]:
    return {k: float(v) for k, v in (line.split(" = ") for line in path.read_text().splitlines())}


def run_logged(command: list[str], out: Path) -> None:
    """Runs a CLI (``command``: python, script, flags) from the repo root with ``out`` as its output folder and
    its output in ``out``.log beside it; exits naming the log when it fails (bench_real_data.py runs its CLIs so)."""
    out.mkdir(parents=True, exist_ok=True)
    log_path = out.parent / f"{out.name}.log"
    with open(log_path, "w", encoding="utf-8") as log:
        code = subprocess.call(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    if code:
        raise SystemExit(f"{Path(command[1]).name} failed (exit {code}); see {log_path}")


def finetune(out: Path, args: argparse.Namespace, train_file: Path, init: str | None, seed: int) -> dict:
    command = [sys.executable, "run_mrc.py", "--task_name=cmrc2018", f"--train_file={train_file}",
               f"--dev_file={args.select_file}", f"--predict_file={args.test_file}",
               f"--vocab_file={args.checkpoint}/vocab.txt", f"--bert_config_file={args.checkpoint}/albert_config.json",
               *([f"--init_checkpoint={init}"] if init else []), f"--output_dir={out}", "--do_train=true",
               "--do_eval=true", "--do_predict=true", f"--max_seq_length={args.max_seq_length}",
               f"--doc_stride={args.doc_stride}", f"--max_query_length={args.max_query_length}",
               f"--train_batch_size={args.batch_size}", "--eval_batch_size=64", "--predict_batch_size=64",
               f"--learning_rate={args.learning_rate}", f"--num_train_epochs={args.epochs}", f"--seed={seed}",
               f"--save_checkpoints_steps={args.save_steps}", "--iterations_per_loop=50", "--keep_checkpoint_max=1",
               f"--train_windows={args.train_windows}", "--bias_correction=true", "--adam_epsilon=1e-8"]
    start = time.time()
    if not (out / "test_results.txt").exists():
        run_logged(command, out)
    test = read_results(out / "test_results.txt")
    select = read_results(out / "eval_results.txt")
    return {"test_f1": test["eval_f1"], "test_em": test["eval_em"], "test_average": test["eval_average"],
            "select_f1": select["eval_f1"], "step": int(test["global_step"]), "seconds": round(time.time() - start),
            "command": " ".join(command[1:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data_dir", type=Path, required=True, help="train.json, dev.json, trial.json")
    parser.add_argument("--work", type=Path, default=REPO / "output" / "bench_mrc")
    parser.add_argument("--checkpoint", type=Path, default=SHIPPED, help="the pretrained start (config + vocab)")
    parser.add_argument("--train_questions", type=int, default=0)
    parser.add_argument("--epochs", default="2")
    parser.add_argument("--learning_rate", default="3e-4")
    parser.add_argument("--seeds", default="12345")
    parser.add_argument("--max_seq_length", type=int, default=256)
    parser.add_argument("--doc_stride", type=int, default=128)
    parser.add_argument("--max_query_length", type=int, default=32)
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--save_steps", type=int, default=150)
    parser.add_argument("--train_windows", default="with_answer", help="run_mrc.py's --train_windows")
    parser.add_argument("--starts", default="pretrained,random_init",
                        help="which starts to run (one each in two processes runs them side by side)")
    args = parser.parse_args()
    args.select_file = args.data_dir / "trial.json"
    args.test_file = args.data_dir / "dev.json"
    args.work.mkdir(parents=True, exist_ok=True)
    train_file = args.data_dir / "train.json"
    if args.train_questions:
        train_file = subset(train_file, args.train_questions, args.work / f"train_{args.train_questions}.json")
    tag = f"q{args.train_questions or 'all'}_e{args.epochs}_lr{args.learning_rate}_{args.train_windows}"
    runs = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        for start, init in (("pretrained", str(args.checkpoint)), ("random_init", None)):
            if start not in args.starts.split(","):
                continue
            runs[f"{start}/seed{seed}"] = finetune(args.work / f"{tag}_{start}_seed{seed}", args, train_file, init,
                                                   seed)
            print(start, seed, runs[f"{start}/seed{seed}"], flush=True)
    out = args.work / f"bench_mrc_{args.starts.replace(',', '_')}.json"
    out.write_text(json.dumps(runs, indent=2, ensure_ascii=False) + "\n")
    print("\n| start | seed | test F1 | test EM | test AVERAGE | selection F1 (trial) | step | wall s |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in runs.items():
        start, seed = name.split("/")
        print(f"| {start} | {seed[4:]} | {r['test_f1']:.2f} | {r['test_em']:.2f} | {r['test_average']:.2f} | "
              f"{r['select_f1']:.2f} | {r['step']} | {r['seconds']} |")


if __name__ == "__main__":
    main()
