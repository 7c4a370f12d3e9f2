# coding=utf-8
"""Benchmark: fine-tuning step speed, ours (TF 2 / Keras 3) against HF transformers (PyTorch), fp32 and bf16.

What is timed: one optimizer step on a fixed batch (forward, loss, backward, global-norm clip 1.0, AdamW update),
examples per second, for each fine-tuning head:

  * classifier (seq --seq): ours = run_classifier.classification_task (AlbertClassifier, dropout 0.1 on the pooled
    output as the CLI's default); HF = AlbertForSequenceClassification (classifier_dropout_prob 0.1), 2 labels;
  * ner (seq --seq): ours = run_ner.tagging_task with and without CRF (7 BIO tags, dropout 0.1); HF =
    AlbertForTokenClassification (HF has no CRF: its row is the no-CRF head, so "ours CRF / HF" includes the
    CRF's cost, and "ours no CRF / HF" is the like-for-like ratio);
  * mrc (seq --mrc_seq, 384 by default as run_mrc.py's): ours = run_mrc.span_task (AlbertSpanExtractor); HF =
    AlbertForQuestionAnswering;

for the configs in albert_config/ named by --sizes (tiny: the original albert_tiny, H 312, L 4, I 1248, 12 heads,
E 128, vocab 21128; base: H 768, L 12), in fp32 and bf16 (ours: keras mixed_bfloat16, as --mixed_precision=bf16
sets it, no XLA; HF: torch.autocast("cpu", torch.bfloat16)). Weights are random (speed does not depend on them);
the data are full-length synthetic batches (bench_pretraining.synthetic_batches: Zipf-distributed ids) with random
labels of each head's kind, the same numbers for both frameworks.

Ours runs the training step the CLIs run: training.Trainer._train_loop (a tf.function over
``strategy.run``) with optimization.create_optimizer(optimizer="adamw"), BERT's AdamW with global-norm clipping at
1.0. HF runs bench_pretraining.TorchWorker's step: zero_grad, forward with labels (HF's own loss),
backward, clip_grad_norm_(1.0), torch.optim.AdamW(weight_decay 0.01).

Method (bench_pretraining.py's, reused by import: its worker processes, interleave(), paired(), cpu_info()): each
framework runs in its own worker process (a fresh TF worker per size and head, one torch worker), both with the
same threads (--threads, default all cores: TF intra-op and inter-op, torch.set_num_threads). For each size and head
every variant (ours fp32/bf16, with/without CRF; HF fp32/bf16) is set up and run twice (tracing, oneDNN primitive
caches), run once more after all are set up (untimed: a TF step's first call after other functions were traced is
slow), then timed in interleaved rounds: every variant once per round, each sample about --sample_seconds of steps
after an idle --pause (spinning threads of the previous sample, in the other process, die down).
ex/s = batch / median seconds per step; ours/HF and bf16/fp32 are medians over rounds of the ratio within a round
(neighbours in time share the machine's load).

Run (full size; roughly 20-30 min on 2 idle cores):
    .venv/bin/python bench/bench_finetune_speed.py
Smoke run (seconds of timing; most of the time is TF start-up and tracing):
    .venv/bin/python bench/bench_finetune_speed.py --smoke
Prints the CPU (model, avx512_bf16 / AMX flags), threads and a markdown table; raw numbers go to --out
(default .cache/bench_finetune/finetune_speed.json).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_pretraining as bp  # noqa: E402  (workers, timing rounds, CPU description)

REPO = bp.REPO
CACHE = REPO / ".cache" / "bench_finetune"
HEADS = ("classifier", "ner", "mrc")
NER_TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG"]
NUM_LABELS = 2
HEAD_DROPOUT = 0.1  # run_classifier.py's and run_ner.py's --classifier_dropout default
MAX_ANSWER = 30  # answer length in pieces, at most


# ======================================================================================================= data

def head_batches(head: str, n_batches: int, batch: int, seq: int, vocab: int, seed: int = 0) -> list[dict]:
    """n_batches full-length batches (bench_pretraining.synthetic_batches: segment 1 from seq // 2 on) with random
    labels of the head's kind, in our feature names: classifier label_ids [B] and is_real_example; ner label_ids and
    label_mask [B,T] (every piece but [CLS] and the last); mrc start/end_positions [B] inside the second segment
    (run_mrc's context)."""
    rng = np.random.default_rng(seed + 1)
    out = []
    for b in bp.synthetic_batches(n_batches, batch, seq, 1, vocab, seed):
        f = {k: b[k] for k in ("input_ids", "input_mask", "segment_ids")}
        if head == "classifier":
            f["label_ids"] = rng.integers(0, NUM_LABELS, batch).astype(np.int32)
            f["is_real_example"] = np.ones(batch, np.int32)
        elif head == "ner":
            mask = np.zeros((batch, seq), np.int32)
            mask[:, 1:seq - 1] = 1
            f["label_mask"] = mask
            f["label_ids"] = (rng.integers(0, len(NER_TAGS), (batch, seq)) * mask).astype(np.int32)
        elif head == "mrc":
            start = rng.integers(seq // 2, seq - 1, batch)
            f["start_positions"] = start.astype(np.int32)
            f["end_positions"] = np.minimum(start + rng.integers(0, MAX_ANSWER, batch), seq - 2).astype(np.int32)
        else:
            raise ValueError(f"unknown head {head!r}: expected one of {HEADS}")
        out.append(f)
    return out


# ======================================================================================================= workers

class TFWorker(bp.TFWorker):
    """Ours: a CLI's task on training.Trainer (bench_pretraining.TFWorker times it: run(name, steps))."""

    def setup_finetune(self, name: str, head: str, model: str, batch: int, seq: int, precision: str = "fp32",
                       crf: bool = False, xla: bool = False, warmup: int = 1, lr: float = 5e-5,
                       n_batches: int = 4) -> dict:
        import keras

        import modeling
        import optimization
        import training

        tf = self.tf
        config = modeling.AlbertConfig.from_json_file(str(REPO / bp.CONFIGS[model]))
        self._policy(precision)  # mixed_bfloat16 or float32: the model is built and traced under it
        try:
            task = cli_task(head, config, crf)
            cfg = training.TrainConfig(output_dir=os.path.join(self.tmp, name), num_train_steps=10 ** 6,
                                       train_batch_size=batch, use_xla=xla)
            trainer = training.Trainer(tf.distribute.get_strategy(), task,
                                       lambda: optimization.create_optimizer(lr, 10 ** 6, 0, optimizer="adamw"), cfg)
            batches = head_batches(head, n_batches, batch, seq, config.vocab_size)
            stacked = {k: tf.constant(np.stack([b[k] for b in batches])) for k in batches[0]}
            ds = tf.data.Dataset.from_tensor_slices(stacked).repeat().prefetch(tf.data.AUTOTUNE)
            iterator = iter(trainer.strategy.distribute_datasets_from_function(lambda ctx: ds))
            t0 = time.perf_counter()
            loss = self._run_train(trainer, iterator, warmup)
            setup_s = time.perf_counter() - t0
        finally:
            keras.mixed_precision.set_global_policy("float32")
        self.cases[name] = ("train", trainer, iterator)
        return {"compile_s": setup_s, "loss": loss,
                "compute_dtype": trainer.model.albert.encoder.attention[0].query.compute_dtype}


def cli_task(head: str, config, crf: bool):
    """The training.Task the head's CLI builds (each TF worker imports one CLI module: they all define the same absl
    flags at import)."""
    if head == "classifier":
        import run_classifier
        return run_classifier.classification_task(config, NUM_LABELS, HEAD_DROPOUT)
    if head == "ner":
        import run_ner
        return run_ner.tagging_task(config, NER_TAGS, HEAD_DROPOUT, use_crf=crf, bio_constraints=True)
    import run_mrc
    return run_mrc.span_task(config)


class TorchWorker(bp.TorchWorker):
    """HF: AlbertFor{SequenceClassification,TokenClassification,QuestionAnswering} + torch.optim.AdamW, timed by
    bench_pretraining.TorchWorker (its _train_steps: autocast bf16 when asked, clip 1.0, AdamW step)."""

    def setup_finetune(self, name: str, head: str, model: str, batch: int, seq: int, precision: str = "fp32",
                       warmup: int = 1, lr: float = 5e-5, n_batches: int = 4, seed: int = 12345) -> dict:
        import transformers

        torch = self.torch
        torch.manual_seed(seed)
        cfg, c = self._config(model)
        cfg.classifier_dropout_prob = HEAD_DROPOUT if head != "mrc" else 0.0
        if head == "classifier":
            cfg.num_labels = NUM_LABELS
            net = transformers.AlbertForSequenceClassification(cfg)
        elif head == "ner":
            cfg.num_labels = len(NER_TAGS)
            net = transformers.AlbertForTokenClassification(cfg)
        else:
            net = transformers.AlbertForQuestionAnswering(cfg)
        net.train()
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
        batches = [self._hf_inputs(head, b) for b in head_batches(head, n_batches, batch, seq, c["vocab_size"])]
        state = {"net": net, "opt": opt, "batches": batches, "i": 0, "bf16": precision == "bf16"}
        self.cases[name] = ("train", state)
        t0 = time.perf_counter()
        loss = self._train_steps(state, warmup)
        return {"compile_s": time.perf_counter() - t0, "loss": loss,
                "attn_implementation": net.config._attn_implementation}

    def _hf_inputs(self, head: str, f: dict) -> dict:
        torch = self.torch
        out = {"input_ids": torch.from_numpy(f["input_ids"]).long(),
               "attention_mask": torch.from_numpy(f["input_mask"]).long(),
               "token_type_ids": torch.from_numpy(f["segment_ids"]).long()}
        if head == "classifier":
            out["labels"] = torch.from_numpy(f["label_ids"]).long()
        elif head == "ner":  # HF: -100 = not scored (our label_mask 0)
            out["labels"] = torch.from_numpy(np.where(f["label_mask"] > 0, f["label_ids"], -100)).long()
        else:
            out["start_positions"] = torch.from_numpy(f["start_positions"]).long()
            out["end_positions"] = torch.from_numpy(f["end_positions"]).long()
        return out


# ======================================================================================================= parent

class Paused:
    """A worker that waits ``seconds`` before each command: the previous sample's threads (torch's OpenMP, TF's Eigen
    pool) spin for a while after their work, which would slow the next sample in the other process. The pause is
    outside the timed steps (each worker times its own)."""

    def __init__(self, worker: bp.Worker, seconds: float):
        self.worker, self.seconds = worker, seconds

    def __call__(self, op: str, **kw):
        time.sleep(self.seconds)
        return self.worker(op, **kw)


def error_summary(text: str) -> str:
    """One line from a worker's error: the exception's type and its message's last line (TF's errors put the
    failing op there, before "Arguments received")."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", text).split("Arguments received")[0]
    lines = [line.strip() for line in text.split("\nTraceback")[0].splitlines() if line.strip()]
    kind = lines[0].split(": ", 1)[-1].split(":")[0] if lines else "error"
    return f"{kind}: {lines[-1]}"[:300] if lines else kind


def variants_for(head: str, precisions: list[str], xla: bool) -> list[dict]:
    """The rows of one size and head: ours (CRF and no CRF for ner; XLA fp32 with --xla) and HF, per precision."""
    out = []
    for precision in precisions:
        for crf in ((True, False) if head == "ner" else (False,)):
            for use_xla in ((False, True) if xla and precision == "fp32" else (False,)):
                label = f"ours {precision}" + (" CRF" if crf else " no CRF" if head == "ner" else "") + \
                    (" XLA" if use_xla else "")
                out.append({"label": label, "framework": "ours", "precision": precision, "crf": crf, "xla": use_xla})
        out.append({"label": hf_label(head, precision), "framework": "hf", "precision": precision, "crf": False,
                    "xla": False})
    return out


def hf_label(head: str, precision: str) -> str:
    """HF's row of a head and precision."""
    return f"HF {precision}" + (" (no CRF)" if head == "ner" else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="tiny,base", help="configs, from " + ",".join(bp.CONFIGS))
    ap.add_argument("--heads", default=",".join(HEADS), help="from " + ",".join(HEADS))
    ap.add_argument("--precisions", default="fp32,bf16", help="from fp32,bf16")
    ap.add_argument("--seq", type=int, default=128, help="sequence length of classifier and ner")
    ap.add_argument("--mrc_seq", type=int, default=384, help="sequence length of mrc (run_mrc.py's default)")
    ap.add_argument("--tiny_batch", type=int, default=32)
    ap.add_argument("--base_batch", type=int, default=8)
    ap.add_argument("--mrc_tiny_batch", type=int, default=8)
    ap.add_argument("--mrc_base_batch", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5, help="interleaved rounds (at least 3 once --budget is spent)")
    ap.add_argument("--budget", type=float, default=240.0, help="seconds of timed rounds per size and head")
    ap.add_argument("--sample_seconds", type=float, default=6.0, help="about this much work per timed sample")
    ap.add_argument("--pause", type=float, default=0.5, help="idle seconds before each timed sample")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both frameworks")
    ap.add_argument("--xla", action="store_true", help="also ours fp32 with use_xla (jit_compile)")
    ap.add_argument("--smoke", action="store_true",
                    help="seconds of timing to prove the script: tiny, seq 32 (mrc 48), batch 2, 1 round, 1 step")
    ap.add_argument("--out", default=str(CACHE / "finetune_speed.json"))
    ap.add_argument("--worker", choices=["tf", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        # bench_pretraining's worker loop, serving this script's worker classes.
        bp.TFWorker, bp.TorchWorker = TFWorker, TorchWorker
        bp.worker_main(args.worker, args.threads)
        return
    if args.smoke:
        args.sizes = "tiny" if args.sizes == "tiny,base" else args.sizes
        args.seq, args.mrc_seq, args.reps, args.sample_seconds, args.pause = 32, 48, 1, 0.0, 0.0
        args.tiny_batch = args.base_batch = args.mrc_tiny_batch = args.mrc_base_batch = 2
    sizes, heads = args.sizes.split(","), args.heads.split(",")
    precisions = args.precisions.split(",")
    for name, values, allowed in (("--sizes", sizes, bp.CONFIGS), ("--heads", heads, HEADS),
                                  ("--precisions", precisions, ("fp32", "bf16"))):
        if not values or any(v not in allowed for v in values):
            ap.error(f"{name}={','.join(values)}: expected a comma-separated subset of {', '.join(allowed)}")

    CACHE.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", TF_ENABLE_ONEDNN_OPTS="1")
    env.pop("BENCH_MODELING_FILE", None)
    started = time.time()
    results: dict = {"cpu": bp.cpu_info(), "threads": args.threads, "load_start": bp.load(),
                     "started": time.strftime("%Y-%m-%d %H:%M"), "args": vars(args), "rows": []}
    cpu = results["cpu"]
    print(f"CPU {cpu['model']} x{cpu['cores']} ({', '.join(f'{k} {v}' for k, v in cpu['flags'].items())}), "
          f"threads {args.threads}, load {results['load_start']}", flush=True)
    torch_worker = bp.Worker("torch", args.threads, env, CACHE / "torch.log", script=__file__)
    results["torch"] = torch_worker("info")
    for size in sizes:
        for head in heads:
            seq = args.mrc_seq if head == "mrc" else args.seq
            batch = getattr(args, ("mrc_" if head == "mrc" else "") + f"{size}_batch")
            group = f"{size} {head}"
            print(f"\n{group}: seq {seq}, batch {batch} (load {bp.load()})", flush=True)
            tf_worker = bp.Worker("tf", args.threads, env, CACHE / f"tf_{size}_{head}.log",
                                  script=__file__)
            results.setdefault("tf", tf_worker("info"))
            timed, steps, info, failed = [], {}, {}, {}
            for v in variants_for(head, precisions, args.xla):
                case = f"{size}_{head}_{v['label']}".replace(" ", "_")
                kw = dict(name=case, head=head, model=size, batch=batch, seq=seq, precision=v["precision"])
                worker = tf_worker if v["framework"] == "ours" else torch_worker
                if v["framework"] == "ours":
                    kw.update(crf=v["crf"], xla=v["xla"])
                try:
                    r = worker("setup_finetune", **kw)
                except RuntimeError as err:  # the worker answered with an error: a row that says so, the rest runs
                    failed[v["label"]] = error_summary(str(err))
                    print(f"  setup {v['label']}: FAILED: {failed[v['label']]}", flush=True)
                    continue
                one = worker("run", name=case, steps=1)["seconds"]  # a second step: the first ran the tracing
                steps[v["label"]] = max(1, min(50, int(args.sample_seconds / max(one, 1e-6))))
                info[v["label"]] = dict(r, first_step_s=r["compile_s"], second_step_s=one)
                print(f"  setup {v['label']}: first step {r['compile_s']:.1f}s, then {one:.3f}s, loss "
                      f"{r['loss']:.3f}" + (f", compute {r['compute_dtype']}" if "compute_dtype" in r else
                                            f", attention {r.get('attn_implementation')}"), flush=True)
                timed.append((v["label"], worker, case))
            # One untimed step of each variant after all are set up: in a TF process the first call of a traced step
            # after other functions were traced (the next variant's setup) costs about a second more, though nothing
            # is traced again; this keeps that out of the first timed round.
            for label, worker, case in timed:
                info[label]["warm_round_s"] = worker("run", name=case, steps=1)["seconds"]
            paused = [(label, Paused(worker, args.pause), case) for label, worker, case in timed]
            times = bp.interleave(paused, args.reps, steps, args.budget, min_reps=min(3, args.reps)) if timed else {}
            for v in variants_for(head, precisions, args.xla):
                label = v["label"]
                row = {"size": size, "head": head, "seq": seq, "batch": batch, "precision": v["precision"],
                       "variant": label, "crf": v["crf"], "xla": v["xla"]}
                if label in failed:
                    results["rows"].append(dict(row, error=failed[label]))
                    continue
                row.update({"examples_per_s": batch / bp.median(times[label]), "seconds_per_step": times[label],
                            "steps_per_sample": steps[label], "first_step_s": info[label]["first_step_s"],
                            "warm_round_s": info[label]["warm_round_s"],
                            "loss_after_first_step": info[label]["loss"]})
                hf, fp32 = hf_label(head, v["precision"]), label.replace("bf16", "fp32")
                if v["framework"] == "ours" and hf in times:
                    row["ours_over_hf"] = bp.median(bp.paired(times[hf], times[label]))
                if v["precision"] == "bf16" and fp32 in times:
                    row["bf16_over_fp32"] = bp.median(bp.paired(times[fp32], times[label]))
                results["rows"].append(row)
                print("  " + json.dumps({k: row[k] for k in row if k != "seconds_per_step"}), flush=True)
            for _, worker, case in timed:
                if worker is torch_worker:
                    worker("drop", names=[case])
            tf_worker.close()
    torch_worker.close()
    bp.finish(results, started, Path(args.out), print_table)


def print_table(results: dict) -> None:
    """The markdown table for bench/README.md, after a line naming the machine and the software."""
    cpu, tf_info, torch_info = results["cpu"], results.get("tf", {}), results["torch"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in cpu["flags"].items())
    print(f"\n{results['started']}: {cpu['model']} (family {cpu['family']} model {cpu['cpu_model']}), "
          f"{cpu['cores']} logical CPUs ({flags}). TensorFlow {tf_info.get('tensorflow')} / Keras "
          f"{tf_info.get('keras')} (oneDNN {tf_info.get('onednn')}), torch {torch_info['torch']} "
          f"({torch_info['cpu_capability']}, mkldnn bf16 {torch_info['mkldnn_bf16']}) / transformers "
          f"{torch_info['transformers']}. Threads: {results['threads']} for both. Load average "
          f"{results['load_start']} at start, {results['load_end']} at end; {results['wall_s'] / 60:.1f} min.\n")
    print("| size | head | seq | batch | variant | examples/s | ours/HF | bf16/fp32 |")
    print("|---|---|---|---|---|---|---|---|")
    for r in results["rows"]:
        if "error" in r:
            print(f"| {r['size']} | {r['head']} | {r['seq']} | {r['batch']} | {r['variant']} | failed: "
                  f"{r['error'][:120]} | | |")
            continue
        ratio = f"{r['ours_over_hf']:.2f}×" if "ours_over_hf" in r else ""
        speedup = f"{r['bf16_over_fp32']:.2f}×" if "bf16_over_fp32" in r else ""
        print(f"| {r['size']} | {r['head']} | {r['seq']} | {r['batch']} | {r['variant']} | "
              f"{r['examples_per_s']:.2f} | {ratio} | {speedup} |")
    print("\nours/HF: against HF at the same precision (for ner, HF's head has no CRF); bf16/fp32: the same "
          "framework's bf16 row against its fp32 row; both medians of per-round ratios.")


if __name__ == "__main__":
    main()
