# coding=utf-8
"""Benchmark: ALBERT pretraining and encoder inference, ours (TF 2 / Keras 3) against HF transformers (PyTorch).

Rows (bench/README.md, "## Pretraining and inference speed", has the FLOP model and the results):
  * GEMM ceiling: a 2048x2048 matmul, tf.linalg.matmul and torch.mm, fp32 and bf16;
  * tiny train, seq 128, fp32: ours (training.Trainer._train_loop + run_pretraining.pretraining_task, LAMB) as a
    tf.function and with use_xla=True, against HF AlbertForPreTraining + torch.optim.AdamW;
  * base train, seq 128, fp32: the same (XLA with --xla all);
  * base encoder inference, batch 32, seq 128: our AlbertModel in a tf.function against HF AlbertModel under
    torch.inference_mode;
  * bf16 (tiny), bf16base (base, --only): ours under mixed_bfloat16 (no XLA) against ours fp32 and HF under
    torch.autocast(bfloat16);
  * bf16infer (--only): base encoder inference with our model built under mixed_bfloat16, against ours fp32 and
    HF AlbertModel under torch.autocast(bfloat16);
  * --curve: loss curves of ours bf16 and fp32 (and fp32 with another init seed, the noise reference).

Method: each framework runs in its own worker process (their thread pools never compete); the parent drives them
in rounds: each of our variants, HF, and one 2048² fp32 matmul per framework, repeated (5 rounds, at least 3 when a
group's time budget runs out), after a warmup step that takes compilation out. seq/s is the median over rounds;
ours/HF is the median over rounds of the ratio within a round (neighbours in time share the machine's load);
MFU divides model FLOP/s by the faster framework's matmul rate from the same rounds. Both frameworks get the same
threads (--threads, default all cores: torch.set_num_threads(N), TF intra-op and inter-op N). Our main worker runs
with TF_ENABLE_ONEDNN_OPTS=1; a second one with TF's default environment is timed too where that differs.

Run: .venv/bin/python bench/bench_pretraining.py   (about 8 min on 2 idle cores, more under load)
     .venv/bin/python bench/bench_pretraining.py --quick   (smoke run, smaller batches, ~3.5 min)
     .venv/bin/python bench/bench_pretraining.py --only curve --curve   (bf16 loss curve, ~3.5 min)
Prints a markdown table for bench/README.md; raw numbers go to .cache/bench_pretraining/pretraining*.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".cache" / "bench_pretraining"  # own folder: other benches clean theirs
MARK = "@@BENCH "
GEMM_N = 2048
CONFIGS = {"tiny": "albert_config/albert_config_tiny.json", "base": "albert_config/albert_config_base.json"}


# ======================================================================================================= FLOP model

def forward_flops(c: dict, seq: int, preds: int, *, heads: bool, family: str = "brightmart") -> float:
    """Forward FLOPs of one sequence (2 x multiply-accumulates of the matmuls; element-wise work not counted).

    Embedding projection E->H per token; per layer QKV 3H^2, attention output H^2, FFN 2HI, scores T*H and
    context T*H per token; pooler H^2. With heads: the MLM head on the P gathered positions only (brightmart:
    dense H*H, then H*E and E*V through the tied embeddings; google: dense H*E, then E*V) and SOP 2H.
    """
    t, h, e, i, v, n_layers = seq, c["hidden_size"], c["embedding_size"], c["intermediate_size"], c["vocab_size"], \
        c["num_hidden_layers"]
    per_token_layer = 3 * h * h + h * h + 2 * h * i + 2 * t * h
    macs = t * e * h + n_layers * t * per_token_layer + h * h
    if heads:
        head = (h * h + h * e + e * v) if family == "brightmart" else (h * e + e * v)
        macs += preds * head + 2 * h
    return 2.0 * macs


def train_flops(c: dict, seq: int, preds: int, family: str = "brightmart") -> float:
    """Training FLOPs of one sequence: forward + backward ~= 3 x forward."""
    return 3.0 * forward_flops(c, seq, preds, heads=True, family=family)


# ======================================================================================================= data

def synthetic_batches(n_batches: int, batch: int, seq: int, preds: int, vocab: int, seed: int = 0) -> list[dict]:
    """Full-length sequences of Zipf-distributed ids with a learnable signal (the masked positions keep their ids,
    so MLM can learn the unigram distribution, then to copy; the SOP label is 1 when the second token is odd)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n_batches):
        ids = (5 + (rng.zipf(1.3, (batch, seq)) - 1) % (vocab - 5)).astype(np.int32)  # Zipfian, as text
        positions = np.sort(np.stack([rng.choice(np.arange(1, seq), preds, replace=False) for _ in range(batch)]),
                            axis=1).astype(np.int32)
        out.append({
            "input_ids": ids, "input_mask": np.ones((batch, seq), np.int32),
            "segment_ids": np.broadcast_to((np.arange(seq) >= seq // 2).astype(np.int32), (batch, seq)).copy(),
            "masked_lm_positions": positions, "masked_lm_ids": np.take_along_axis(ids, positions, 1),
            "masked_lm_weights": np.ones((batch, preds), np.float32),
            "next_sentence_labels": (ids[:, 1:2] % 2 == 1).astype(np.int32),
        })
    return out


# ======================================================================================================= workers

class TFWorker:
    """Ours: the real training step (training.Trainer._train_loop, as run_pretraining.py runs it)."""

    def __init__(self, threads: int):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(int(os.environ.get("BENCH_TF_INTER_OP", threads)))
        sys.path.insert(0, str(REPO))
        self.tf = tf
        self.cases: dict = {}
        self.tmp = tempfile.mkdtemp(prefix="bench_pretraining_")

    def info(self) -> dict:
        import keras
        from tensorflow.python.util import _pywrap_util_port  # oneDNN status as TF decided it at import
        return {"tensorflow": self.tf.__version__, "keras": keras.__version__,
                "intra_op": self.tf.config.threading.get_intra_op_parallelism_threads(),
                "inter_op": self.tf.config.threading.get_inter_op_parallelism_threads(),
                "onednn": bool(_pywrap_util_port.IsMklEnabled()),
                "TF_ENABLE_ONEDNN_OPTS": os.environ.get("TF_ENABLE_ONEDNN_OPTS")}

    def gemm(self, n: int, dtype: str, reps: int) -> list[float]:
        tf = self.tf
        a = tf.cast(tf.random.normal([n, n]), dtype)
        b = tf.cast(tf.random.normal([n, n]), dtype)
        f = tf.function(lambda x, y: tf.reduce_sum(tf.cast(tf.linalg.matmul(x, y)[:1, :1], tf.float32)))
        f(a, b).numpy()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            f(a, b).numpy()
            times.append(time.perf_counter() - t0)
        return times

    def _policy(self, precision: str):
        import keras

        keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bf16" else "float32")

    def setup_train(self, name, model, batch, seq, preds, xla=False, precision="fp32", warmup=2, seed=12345,
                    lr=1e-4, data_seed=0, n_batches=4, keep_policy=False, train_steps=10 ** 6, warmup_steps=0):
        import keras

        import modeling
        import optimization
        import run_pretraining
        import training

        tf = self.tf
        config = modeling.AlbertConfig.from_json_file(str(REPO / CONFIGS[model]))
        self._policy(precision)
        try:
            task = run_pretraining.pretraining_task(config)
            cfg = training.TrainConfig(output_dir=os.path.join(self.tmp, name), num_train_steps=10 ** 6,
                                       train_batch_size=batch, use_xla=xla, seed=seed)
            trainer = training.Trainer(
                tf.distribute.get_strategy(), task,
                lambda: optimization.create_optimizer(lr, train_steps, warmup_steps, optimizer="lamb"), cfg)
            batches = synthetic_batches(n_batches, batch, seq, preds, config.vocab_size, data_seed)
            stacked = {k: tf.constant([b[k] for b in batches]) for k in batches[0]}
            ds = tf.data.Dataset.from_tensor_slices(stacked).repeat().prefetch(tf.data.AUTOTUNE)
            iterator = iter(trainer.strategy.distribute_datasets_from_function(lambda ctx: ds))
            t0 = time.perf_counter()
            # Traces and compiles here, under the policy (_train_loop always runs at least one step).
            loss = self._run_train(trainer, iterator, warmup) if warmup else float("nan")
            compile_s = time.perf_counter() - t0
        finally:
            if not keep_policy:
                keras.mixed_precision.set_global_policy("float32")
        self.cases[name] = ("train", trainer, iterator)
        return {"compile_s": compile_s, "loss": loss}

    def _run_train(self, trainer, iterator, steps: int) -> float:
        import training

        sums, counts = trainer._train_loop(iterator, self.tf.constant(steps))
        metrics = training.ratios({k: v.numpy() for k, v in sums.items()}, {k: v.numpy() for k, v in counts.items()},
                                  trainer.task.loss_terms)
        return metrics["loss"]

    def setup_infer(self, name, model, batch, seq, xla=False, warmup=1, precision="fp32"):
        import keras

        import modeling

        tf = self.tf
        config = modeling.AlbertConfig.from_json_file(str(REPO / CONFIGS[model]))
        self._policy(precision)
        try:
            keras.utils.set_random_seed(0)
            net = modeling.AlbertModel(config)
            net.build()
            b = synthetic_batches(1, batch, seq, 1, config.vocab_size)[0]
            inputs = {k: tf.constant(b[k]) for k in ("input_ids", "input_mask", "segment_ids")}

            # The sum keeps every position of the last layer live (pooled_output alone would not need them all).
            @tf.function(jit_compile=xla)
            def forward(x):
                out = net(x, training=False)
                return tf.reduce_sum(out["sequence_output"]) + tf.reduce_sum(out["pooled_output"])

            t0 = time.perf_counter()
            for _ in range(warmup):
                forward(inputs).numpy()
            compile_s = time.perf_counter() - t0
        finally:
            keras.mixed_precision.set_global_policy("float32")
        self.cases[name] = ("infer", forward, inputs)
        return {"compile_s": compile_s}

    def run(self, name, steps) -> dict:
        kind, a, b = self.cases[name]
        t0 = time.perf_counter()
        if kind == "train":
            loss = self._run_train(a, b, steps)
        else:
            for _ in range(steps):
                loss = float(a(b).numpy())
        return {"seconds": time.perf_counter() - t0, "loss": loss}

    def curve(self, model, batch, seq, preds, steps, every, precision, seed, lr, data_seed) -> list[float]:
        """Losses (each the mean over `every` steps) of a fresh run: same init and data for the same seeds."""
        import keras

        name = f"curve_{precision}_{seed}"
        try:
            self.setup_train(name, model, batch, seq, preds, precision=precision, warmup=0, seed=seed, lr=lr,
                             data_seed=data_seed, n_batches=64, keep_policy=True, train_steps=steps,
                             warmup_steps=steps // 10)
            _, trainer, iterator = self.cases.pop(name)
            return [self._run_train(trainer, iterator, every) for _ in range(steps // every)]
        finally:
            keras.mixed_precision.set_global_policy("float32")

    def drop(self, names):
        for n in names:
            self.cases.pop(n, None)
        import gc

        gc.collect()
        return {}


class TorchWorker:
    """HF transformers: AlbertForPreTraining (Google ALBERT layout) + torch.optim.AdamW; AlbertModel inference."""

    def __init__(self, threads: int):
        import torch

        torch.set_num_threads(threads)
        self.torch = torch
        self.cases: dict = {}

    def info(self) -> dict:
        import transformers

        torch = self.torch
        return {"torch": torch.__version__, "transformers": transformers.__version__,
                "torch_threads": torch.get_num_threads(),
                "mkldnn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
                "cpu_capability": torch.backends.cpu.get_cpu_capability()}

    def gemm(self, n: int, dtype: str, reps: int) -> list[float]:
        torch = self.torch
        dt = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
        a, b = torch.randn(n, n).to(dt), torch.randn(n, n).to(dt)
        torch.mm(a, b)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            torch.mm(a, b)
            times.append(time.perf_counter() - t0)
        return times

    def _config(self, model: str):
        import transformers

        c = json.loads((REPO / CONFIGS[model]).read_text())
        hf = transformers.AlbertConfig(
            vocab_size=c["vocab_size"], embedding_size=c["embedding_size"], hidden_size=c["hidden_size"],
            num_hidden_layers=c["num_hidden_layers"], num_hidden_groups=1, inner_group_num=1,
            num_attention_heads=c["num_attention_heads"], intermediate_size=c["intermediate_size"],
            hidden_act="gelu_new", hidden_dropout_prob=c["hidden_dropout_prob"],
            attention_probs_dropout_prob=c["attention_probs_dropout_prob"], classifier_dropout_prob=0.0,
            max_position_embeddings=c["max_position_embeddings"], type_vocab_size=c["type_vocab_size"],
            layer_norm_eps=1e-12)
        return hf, c

    def _tensors(self, b: dict, vocab_labels: bool):
        torch = self.torch
        t = {k: torch.from_numpy(v).long() for k, v in b.items() if k != "masked_lm_weights"}
        out = {"input_ids": t["input_ids"], "attention_mask": t["input_mask"], "token_type_ids": t["segment_ids"]}
        if vocab_labels:
            labels = torch.full_like(t["input_ids"], -100)  # HF: -100 = not predicted (but the decoder runs on all T)
            labels.scatter_(1, t["masked_lm_positions"], t["masked_lm_ids"])
            out["labels"] = labels
            out["sentence_order_label"] = t["next_sentence_labels"].view(-1)
        return out

    def setup_train(self, name, model, batch, seq, preds, precision="fp32", warmup=2, seed=12345, lr=1e-4,
                    data_seed=0, n_batches=4, **_):
        import transformers

        torch = self.torch
        torch.manual_seed(seed)
        cfg, c = self._config(model)
        net = transformers.AlbertForPreTraining(cfg).train()
        opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=0.01)
        batches = [self._tensors(b, True) for b in synthetic_batches(n_batches, batch, seq, preds, c["vocab_size"],
                                                                    data_seed)]
        state = {"net": net, "opt": opt, "batches": batches, "i": 0, "bf16": precision == "bf16"}
        self.cases[name] = ("train", state)
        t0 = time.perf_counter()
        loss = self._train_steps(state, warmup) if warmup else float("nan")
        return {"compile_s": time.perf_counter() - t0, "loss": loss,
                "attn_implementation": net.config._attn_implementation}

    def _train_steps(self, s, steps) -> float:
        torch = self.torch
        losses = []
        for _ in range(steps):
            b = s["batches"][s["i"] % len(s["batches"])]
            s["i"] += 1
            s["opt"].zero_grad(set_to_none=True)
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=s["bf16"]):
                loss = s["net"](**b).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(s["net"].parameters(), 1.0)  # as ours (global norm 1.0)
            s["opt"].step()
            losses.append(float(loss.detach()))
        return sum(losses) / len(losses)

    def setup_infer(self, name, model, batch, seq, warmup=1, precision="fp32", **_):
        import transformers

        torch = self.torch
        torch.manual_seed(0)
        cfg, c = self._config(model)
        net = transformers.AlbertModel(cfg).eval()
        inputs = self._tensors(synthetic_batches(1, batch, seq, 1, c["vocab_size"])[0], False)
        state = {"net": net, "inputs": inputs, "bf16": precision == "bf16"}
        self.cases[name] = ("infer", state)
        t0 = time.perf_counter()
        for _ in range(warmup):
            self._infer(state)
        return {"compile_s": time.perf_counter() - t0, "attn_implementation": net.config._attn_implementation}

    def _infer(self, s) -> float:
        torch = self.torch
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=s["bf16"]):
            out = s["net"](**s["inputs"])
            return float(out.last_hidden_state.float().sum() + out.pooler_output.float().sum())

    def run(self, name, steps) -> dict:
        kind, s = self.cases[name]
        t0 = time.perf_counter()
        if kind == "train":
            loss = self._train_steps(s, steps)
        else:
            for _ in range(steps):
                loss = self._infer(s)
        return {"seconds": time.perf_counter() - t0, "loss": loss}

    def drop(self, names):
        for n in names:
            self.cases.pop(n, None)
        import gc

        gc.collect()
        return {}


def worker_main(kind: str, threads: int) -> None:
    """Reads one JSON command a line on stdin, answers MARK + JSON on the original stdout."""
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # library prints go to stderr; stdout carries only the protocol
    variant = os.environ.get("BENCH_MODELING_FILE")
    if kind == "tf" and variant:  # --compare_modeling: this worker imports another modeling.py as `modeling`
        import importlib.util

        spec = importlib.util.spec_from_file_location("modeling", variant)
        sys.modules["modeling"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(sys.modules["modeling"])
    worker = TFWorker(threads) if kind == "tf" else TorchWorker(threads)
    proto.write(MARK + json.dumps({"ready": True}) + "\n")
    proto.flush()
    for line in sys.stdin:
        cmd = json.loads(line)
        op = cmd.pop("op")
        try:
            reply = {"result": getattr(worker, op)(**cmd)}
        except Exception as err:  # reported to the parent, which stops the run with the traceback
            reply = {"error": f"{type(err).__name__}: {err}", "traceback": traceback.format_exc()}
        proto.write(MARK + json.dumps(reply) + "\n")
        proto.flush()


# ======================================================================================================= parent

class Worker:
    """A worker process speaking the JSON-lines protocol: ``script --worker KIND --threads N`` (default: this
    script; bench_finetune_speed.py starts its own workers through it)."""

    def __init__(self, kind: str, threads: int, env: dict, log: Path, script: str = __file__):
        self.kind, self.log = kind, log
        self.stderr = open(log, "w")
        self.proc = subprocess.Popen([sys.executable, script, "--worker", kind, "--threads", str(threads)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                     env=env, cwd=REPO)
        self._read()

    def _read(self):
        for line in self.proc.stdout:
            if line.startswith(MARK):
                reply = json.loads(line[len(MARK):])
                if "error" in reply:
                    raise RuntimeError(f"{self.kind} worker: {reply['error']}\n{reply['traceback']}")
                return reply.get("result")
        raise RuntimeError(f"{self.kind} worker died (rc {self.proc.wait()}); see {self.log}")

    def __call__(self, op: str, **kw):
        self.proc.stdin.write(json.dumps(dict(kw, op=op)) + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:  # its results are in; a TF teardown that hangs must not lose them
                self.proc.kill()
                self.proc.wait()
        self.stderr.close()


def median(xs):
    return statistics.median(xs)


def interleave(variants: list[tuple[str, Worker, str]], reps: int, steps: dict[str, int],
               budget_s: float | None = None, min_reps: int = 3) -> dict[str, list[float]]:
    """Runs variant after variant for `reps` rounds (fewer, but at least `min_reps`, once `budget_s` is spent);
    returns the seconds per step of each round, per variant."""
    out: dict[str, list[float]] = {label: [] for label, _, _ in variants}
    t0 = time.time()
    for r in range(reps):
        if budget_s is not None and r >= min_reps and time.time() - t0 > budget_s:
            break
        for label, worker, case in variants:
            if case.startswith("gemm:"):  # the GEMM ceiling, sampled in the same rounds (same load)
                out[label].append(worker("gemm", n=GEMM_N, dtype=case[5:], reps=1)[0])
                continue
            res = worker("run", name=case, steps=steps[label])
            out[label].append(res["seconds"] / steps[label])
    return out


def paired(ref: list[float], other: list[float]) -> list[float]:
    """Per-round speed ratios other/ref from seconds per step measured in the same rounds (ref time / other time):
    neighbours in time share the machine's load, so their ratio is steadier than a ratio of medians."""
    return [a / b for a, b in zip(ref, other)]


def cpu_info() -> dict:
    info = {"model": platform.processor(), "cores": os.cpu_count(), "family": None, "cpu_model": None}
    flags: set[str] = set()
    try:
        for line in open("/proc/cpuinfo"):
            key, _, value = (part.strip() for part in line.partition(":"))
            if key == "model name":
                info["model"] = value
            elif key == "cpu family":
                info["family"] = value
            elif key == "model":
                info["cpu_model"] = value
            elif key == "flags":
                flags = set(value.split())
    except OSError:
        pass
    wanted = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_tile"]
    info["flags"] = {f: f in flags for f in wanted}
    return info


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


@contextlib.contextmanager
def announced(title: str):
    """A row group: its title with the load average before, its wall time after."""
    started = time.time()
    print(f"{title} (load {load()})", flush=True)
    yield
    print(f"  {time.time() - started:.0f}s", flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: 2 repetitions, smaller batches (base train 4, inference 8, bf16 8), no XLA, "
                         "no TF-default-env rows")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="threads for both frameworks")
    ap.add_argument("--tf_inter_op", type=int, default=None, help="TF inter-op threads (default: --threads)")
    ap.add_argument("--reps", type=int, default=None,
                    help="interleaved rounds per group (default 5, fewer (>= 3) once the group's time budget is spent; "
                         "quick 2)")
    ap.add_argument("--xla", choices=["none", "tiny", "all"], default="tiny",
                    help="which rows also run ours with use_xla/jit_compile (all: base train and inference too)")
    ap.add_argument("--infer_batch", type=int, default=32)
    ap.add_argument("--only", default="tiny,base,infer,bf16", help="row groups, from tiny,base,infer,bf16,"
                    "bf16base,bf16infer,curve (the GEMM ceiling always runs)")
    ap.add_argument("--curve", action="store_true", help="also the bf16-vs-fp32 loss curve (~5 min more)")
    ap.add_argument("--curve_steps", type=int, default=200)
    ap.add_argument("--curve_lr", type=float, default=1e-2)
    ap.add_argument("--tiny_batch", type=int, default=32)
    ap.add_argument("--base_batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--preds", type=int, default=20)
    ap.add_argument("--compare_modeling", metavar="FILE",
                    help="also time a variant of modeling.py (imported as `modeling` in an extra TF worker)")
    ap.add_argument("--worker", choices=["tf", "torch"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker_main(args.worker, args.threads)
        return

    quick = args.quick
    reps = args.reps or (2 if quick else 5)
    scale = 0.3 if quick else 1.0  # time budget of each group's timed rounds (at least 3 rounds, or reps if fewer)
    if quick:
        args.base_batch, args.infer_batch, args.tiny_batch, args.xla = 4, 8, 8, "none"
    groups = set(args.only.split(",")) | ({"curve"} if args.curve else set())
    CACHE.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1")
    env.pop("BENCH_MODELING_FILE", None)
    if args.tf_inter_op:
        env["BENCH_TF_INTER_OP"] = str(args.tf_inter_op)
    started, load_start = time.time(), load()
    results: dict = {"cpu": cpu_info(), "load_start": load_start, "threads": args.threads, "quick": quick,
                     "reps": reps, "rows": [], "started": time.strftime("%Y-%m-%d %H:%M")}
    print(f"CPU {results['cpu']['model']} x{results['cpu']['cores']}, load {load_start}", flush=True)

    # Our workers: "on" sets TF_ENABLE_ONEDNN_OPTS=1; "default" leaves TF to decide (on x86 it turns oneDNN on
    # only for CPUs with AVX512-VNNI/BF16 or AMX); "variant" is "on" with --compare_modeling's modeling.py.
    tf_envs = {"on": {"TF_ENABLE_ONEDNN_OPTS": "1"}}
    if not quick:
        tf_envs["default"] = {"TF_ENABLE_ONEDNN_OPTS": None}
    if args.compare_modeling:
        tf_envs["variant"] = {"TF_ENABLE_ONEDNN_OPTS": "1",
                              "BENCH_MODELING_FILE": str(Path(args.compare_modeling).resolve())}
    tfw: dict[str, Worker] = {}
    for mode, extra in tf_envs.items():
        e = dict(env)
        for k, v in extra.items():
            e.pop(k, None) if v is None else e.__setitem__(k, v)
        tfw[mode] = Worker("tf", args.threads, e, CACHE / f"tf_{mode}.log")
    infos = {m: w("info") for m, w in tfw.items()}
    if "default" in tfw and infos["default"]["onednn"]:  # TF's default is oneDNN on here: the same as "on"
        tfw.pop("default").close()
        infos.pop("default")
    th = Worker("torch", args.threads, env, CACHE / "torch.log")
    results["tf"], results["torch"] = infos, th("info")
    print(json.dumps({"tf": infos, "torch": results["torch"]}), flush=True)

    def label(mode: str, xla: bool = False, precision: str = "fp32") -> str:
        name = {"on": "ours", "default": "ours, TF default env (oneDNN off)",
                "variant": f"ours [{Path(args.compare_modeling or '').name}]"}[mode]
        return f"{name} {'XLA' if xla else 'tf.function'}" + (" bf16" if precision == "bf16" else "")

    def add(row):
        results["rows"].append(row)
        print("  " + json.dumps(row), flush=True)

    # ---------------------------------------------------------------------------------------- GEMM ceiling
    n = GEMM_N
    ceiling: dict = {}
    print(f"GEMM (load {load()})", flush=True)
    for dtype in ("float32", "bfloat16"):
        times: dict[str, list[float]] = {}
        probe = None
        if dtype == "bfloat16":  # without a bf16 matmul unit torch's bf16 mm runs at ~0.2 GFLOP/s: probe first
            t = median(th("gemm", n=512, dtype=dtype, reps=1))
            probe = 2 * 512 ** 3 / t
        for _ in range(reps):
            for mode, w in tfw.items():
                if mode != "variant":
                    times.setdefault(f"tf.linalg.matmul ({label(mode).split(' tf.')[0]})", []).extend(
                        w("gemm", n=n, dtype=dtype, reps=2))
            if probe is None or probe > 5e9:
                times.setdefault("torch.mm", []).extend(th("gemm", n=n, dtype=dtype, reps=2))
        if probe is not None and probe <= 5e9:
            times["torch.mm (512², too slow for 2048²)"] = [2 * n ** 3 / probe]
        for lbl, ts in times.items():
            rate = 2 * n ** 3 / median(ts)
            ceiling[(lbl, dtype)] = rate
            add({"group": "gemm", "row": f"GEMM ceiling {n}² {dtype}", "variant": lbl, "gflops": rate / 1e9})
    fp32_ceiling = max(v for (_, dt), v in ceiling.items() if dt == "float32")
    bf16_ceiling = max(v for (_, dt), v in ceiling.items() if dt == "bfloat16")
    torch_bf16_slow = min(v for (lbl, dt), v in ceiling.items() if dt == "bfloat16" and "torch" in lbl) \
        < 0.2 * ceiling[("torch.mm", "float32")]
    results["ceiling"] = {"float32": fp32_ceiling, "bfloat16": bf16_ceiling}

    cfgs = {m: json.loads((REPO / p).read_text()) for m, p in CONFIGS.items()}

    def gemm_variants(precision: str) -> list[tuple[str, Worker, str]]:
        """One GEMM sample per round and framework, in the fp32 rows' dtype (and bf16 for the bf16 rows)."""
        out = [(f"gemm float32 {k}", w, "gemm:float32") for k, w in (("tf", tfw["on"]), ("torch", th))]
        if precision == "bf16":
            out.append(("gemm bfloat16 tf", tfw["on"], "gemm:bfloat16"))
            if not torch_bf16_slow:
                out.append(("gemm bfloat16 torch", th, "gemm:bfloat16"))
        return out

    def record_ceiling(group: str, times: dict) -> dict:
        """The group's GEMM ceiling: the faster framework's median 2048² matmul rate over the group's rounds."""
        rates = {k: 2 * GEMM_N ** 3 / median(v) for k, v in list(times.items()) if k.startswith("gemm ")}
        for k in [k for k in times if k.startswith("gemm ")]:
            times.pop(k)
        out = {"float32": max(v for k, v in rates.items() if "float32" in k),
               "bfloat16": max([v for k, v in rates.items() if "bfloat16" in k] or [bf16_ceiling])}
        results.setdefault("group_ceiling", {})[group] = {"rates": rates, **out}
        names = {"tf": "tf.linalg.matmul (ours)", "torch": "torch.mm"}
        for k, v in rates.items():
            _, dtype, fw = k.split()
            add({"group": group, "row": f"{group}: GEMM {GEMM_N}² {dtype}, same rounds", "variant": names[fw],
                 "gflops": v / 1e9})
        return out

    def steps_for(seconds_per_step: float) -> int:
        """Steps per timed sample: about 3 s (quick) or 6 s of work, at least 1."""
        return max(1, min(10, int((3.0 if quick else 6.0) / seconds_per_step)))

    def train_group(group: str, model: str, batch: int, ours: list[tuple[str, bool, str]], hf_precision="fp32",
                    budget: float = 60.0):
        seq, preds = args.seq, args.preds
        flops = train_flops(cfgs[model], seq, preds)
        guess = flops * batch / (0.5 * fp32_ceiling)
        variants, steps = [], {}
        for mode, xla, precision in ours:
            lbl, case = label(mode, xla, precision), f"{group}_{mode}_{xla}_{precision}"
            r = tfw[mode]("setup_train", name=case, model=model, batch=batch, seq=seq, preds=preds, xla=xla,
                          precision=precision, warmup=1)
            print(f"  setup {lbl}: trace/compile + 1 step {r['compile_s']:.1f}s, loss {r['loss']:.3f}", flush=True)
            variants.append((lbl, tfw[mode], case, batch))
            steps[lbl] = steps_for(guess)
        hf_batch, hf_reps = batch, reps
        if hf_precision == "bf16" and torch_bf16_slow:  # one short step: enough to show the order of magnitude
            hf_batch, hf_reps = max(1, batch // 8), 1
        lbl = "HF AlbertForPreTraining + AdamW" + (" autocast bf16" if hf_precision == "bf16" else "")
        if hf_batch != batch:
            lbl += f" (batch {hf_batch}: too slow here)"
        r = th("setup_train", name=group, model=model, batch=hf_batch, seq=seq, preds=preds, precision=hf_precision,
               warmup=1)
        print(f"  setup {lbl}: 1 step {r['compile_s']:.1f}s, loss {r['loss']:.3f}, attention "
              f"{r['attn_implementation']}", flush=True)
        hf = (lbl, th, group, hf_batch)
        steps[lbl] = steps_for(guess * 2 * hf_batch / batch) if hf_batch == batch else 1
        together = [v[:3] for v in variants] + ([hf[:3]] if hf_reps == reps else []) + gemm_variants(hf_precision)
        times = interleave(together, reps, steps, budget)
        if hf_reps != reps:
            times.update(interleave([hf[:3]], hf_reps, steps))
        group_ceiling = record_ceiling(group, times)
        hf_rate = hf_batch / median(times[hf[0]])
        fp32_label = next((v[0] for v in variants if "bf16" not in v[0]), None) if hf_precision == "bf16" else None
        for lbl, _, _, b in variants + [hf]:
            rate = b / median(times[lbl])
            ceil = group_ceiling["bfloat16" if "bf16" in lbl else "float32"]
            bf16 = "bf16" in lbl
            row = {"group": group, "row": f"{model} train b{batch} s{seq} P{preds}" + (" bf16" if hf_precision ==
                                                                                     "bf16" else " fp32"),
                   "variant": lbl, "seq_per_s": rate, "ratio_vs_hf": rate / hf_rate, "ratio_of_medians": rate / hf_rate,
                   "mfu": flops * rate / ceil, "mfu_of": "bf16" if bf16 else "fp32",
                   "samples": len(times[lbl]), "steps_per_sample": steps[lbl]}
            if len(times[lbl]) == len(times[hf[0]]) and lbl != hf[0]:
                row["per_rep_ratio"] = [r * b / hf_batch for r in paired(times[hf[0]], times[lbl])]
                row["ratio_vs_hf"] = median(row["per_rep_ratio"])
            if fp32_label and bf16 and "ours" in lbl:
                row["vs_ours_fp32"] = median(paired(times[fp32_label], times[lbl]))
                print(f"  {lbl}: {row['vs_ours_fp32']:.2f}x ours fp32", flush=True)
            add(row)
        for _, w, case, _ in variants + [hf]:
            w("drop", names=[case])

    if "tiny" in groups:
        with announced("tiny train"):
            ours = [("on", False, "fp32")] + [("on", True, "fp32")] * (args.xla != "none") + \
                [(m, False, "fp32") for m in tfw if m != "on"]
            train_group("tiny", "tiny", args.tiny_batch, ours, budget=scale * 60)
    if "base" in groups:
        with announced("base train"):
            ours = [("on", False, "fp32")] + [("on", True, "fp32")] * (args.xla == "all") + \
                [("variant", False, "fp32")] * ("variant" in tfw)
            train_group("base", "base", args.base_batch, ours, budget=scale * 90)

    def infer_group(group: str, ours: list[tuple[str, bool, str]], hf_precision: str = "fp32"):
        """Base encoder inference: each of ``ours`` (mode, xla, precision) against HF AlbertModel in hf_precision."""
        batch, seq = args.infer_batch, args.seq
        flops = forward_flops(cfgs["base"], seq, 0, heads=False)
        variants = []
        for mode, xla, precision in ours:
            lbl, case = label(mode, xla, precision), f"{group}_{mode}_{xla}_{precision}"
            r = tfw[mode]("setup_infer", name=case, model="base", batch=batch, seq=seq, xla=xla, precision=precision)
            print(f"  setup {lbl}: trace/compile + 1 batch {r['compile_s']:.1f}s", flush=True)
            variants.append((lbl, tfw[mode], case))
        if hf_precision == "bf16" and torch_bf16_slow:
            hf_precision = "fp32"  # torch's bf16 without bf16 hardware is an order of magnitude slower: no reference
        r = th("setup_infer", name=group, model="base", batch=batch, seq=seq, precision=hf_precision)
        hf = "HF AlbertModel, inference_mode" + (" autocast bf16" if hf_precision == "bf16" else "")
        print(f"  setup {hf}: 1 batch {r['compile_s']:.1f}s, attention {r['attn_implementation']}", flush=True)
        variants.append((hf, th, group))
        times = interleave(variants + gemm_variants(hf_precision), reps, {v[0]: 1 for v in variants}, scale * 120)
        group_ceiling = record_ceiling(group, times)
        fp32_label = next((v[0] for v in variants[:-1] if "bf16" not in v[0]), None)
        for lbl, _, _ in variants:
            ts = times[lbl]
            bf16 = "bf16" in lbl
            row = {"group": group, "row": f"base inference b{batch} s{seq} {hf_precision}", "variant": lbl,
                   "seq_per_s": batch / median(ts), "ratio_vs_hf": median(times[hf]) / median(ts),
                   "ratio_of_medians": median(times[hf]) / median(ts),
                   "mfu": flops * batch / median(ts) / group_ceiling["bfloat16" if bf16 else "float32"],
                   "mfu_of": "bf16" if bf16 else "fp32", "samples": len(ts)}
            if lbl != hf:
                row["per_rep_ratio"] = paired(times[hf], ts)
                row["ratio_vs_hf"] = median(row["per_rep_ratio"])
            if fp32_label and bf16 and lbl != hf:
                row["vs_ours_fp32"] = median(paired(times[fp32_label], ts))
                print(f"  {lbl}: {row['vs_ours_fp32']:.2f}x ours fp32", flush=True)
            add(row)
        for _, w, case in variants:
            w("drop", names=[case])

    if "infer" in groups:
        with announced("base inference"):
            infer_group("infer", [(mode, xla, "fp32") for mode in tfw
                                  for xla in ((False, True) if mode == "on" and args.xla == "all" else (False,))])
    bf16_and_fp32 = [("on", False, "bf16"), ("on", False, "fp32")]  # ours in both precisions, oneDNN on, no XLA
    if "bf16infer" in groups:
        with announced("base inference bf16"):
            infer_group("bf16infer", bf16_and_fp32, hf_precision="bf16")
    if "bf16" in groups:
        with announced("bf16 train"):
            train_group("bf16", "tiny", args.tiny_batch, bf16_and_fp32,
                        hf_precision="bf16", budget=scale * 45)
    if "bf16base" in groups:
        with announced("bf16 base train"):
            train_group("bf16base", "base", args.base_batch, bf16_and_fp32,
                        hf_precision="bf16", budget=scale * 90)
    if "curve" in groups:
        with announced("bf16 loss curve"):
            kw = dict(model="tiny", batch=8, seq=64, preds=10, steps=args.curve_steps, every=10, lr=args.curve_lr,
                      data_seed=0)
            curves = {"fp32 seed 1": tfw["on"]("curve", precision="fp32", seed=1, **kw),
                      "bf16 seed 1": tfw["on"]("curve", precision="bf16", seed=1, **kw),
                      "fp32 seed 2": tfw["on"]("curve", precision="fp32", seed=2, **kw)}
            tail = max(1, len(curves["fp32 seed 1"]) // 5)
            final = {k: sum(v[-tail:]) / tail for k, v in curves.items()}
            add({"group": "curve", "row": f"loss curve, tiny b8 s64 P10, LAMB lr {args.curve_lr:g} "
                                          f"(10% warmup, linear decay), {args.curve_steps} steps",
                 "curves": curves, "first": {k: v[0] for k, v in curves.items()}, "final": final,
                 "bf16_minus_fp32": final["bf16 seed 1"] - final["fp32 seed 1"],
                 "seed_noise": final["fp32 seed 2"] - final["fp32 seed 1"]})

    for w in list(tfw.values()) + [th]:
        w.close()
    finish(results, started, CACHE / ("pretraining_quick.json" if quick else "pretraining.json"), print_table)


def finish(results: dict, started: float, out: Path, table: Callable[[dict], None]) -> None:
    """The end of a bench run (this script's, bench_finetune_speed's, bench_serving's): the load average and wall
    time into ``results``, the raw numbers written to ``out``, the markdown table printed."""
    results["load_end"] = load()
    results["wall_s"] = time.time() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1))
    table(results)
    print(f"\nraw numbers: {out}")


def print_table(results: dict) -> None:
    cpu, tf_info, torch_info = results["cpu"], results["tf"], results["torch"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in cpu["flags"].items())
    tf_v = next(iter(tf_info.values()))
    print(f"\n{results['started']}: {cpu['model']} (family {cpu['family']} model {cpu['cpu_model']}), "
          f"{cpu['cores']} cores ({flags}). TensorFlow {tf_v['tensorflow']} / Keras {tf_v['keras']}, "
          f"torch {torch_info['torch']} ({torch_info['cpu_capability']}) / transformers "
          f"{torch_info['transformers']}. Threads: {results['threads']} for both (TF intra-op, "
          f"torch.set_num_threads; TF inter-op {tf_v['inter_op']}). "
          f"Load average {results['load_start']} at start, {results['load_end']} at end; "
          f"{results['wall_s'] / 60:.1f} min; {results['reps']} interleaved repetitions.\n")
    print("| row | variant | seq/s | ours/HF | MFU | ours/HF per repetition |")
    print("|---|---|---|---|---|---|")
    for r in results["rows"]:
        if "gflops" in r:
            print(f"| {r['row']} | {r['variant']} | {r['gflops']:.0f} GFLOP/s | | | |")
        elif "seq_per_s" in r:
            reps = ", ".join(f"{x:.2f}" for x in r.get("per_rep_ratio", []))
            extra = f" ({r['vs_ours_fp32']:.2f}× ours fp32)" if "vs_ours_fp32" in r else ""
            mfu = f"{100 * r['mfu']:.0f}%" + (" of bf16" if r["mfu_of"] == "bf16" else "")
            print(f"| {r['row']} | {r['variant']}{extra} | {r['seq_per_s']:.2f} | {r['ratio_vs_hf']:.2f}× | {mfu} "
                  f"| {reps} |")
        else:
            f = r["final"]
            print(f"| {r['row']} | final loss (mean of last 20%): " +
                  ", ".join(f"{k} {v:.3f}" for k, v in f.items()) +
                  f" | bf16−fp32 {r['bf16_minus_fp32']:+.3f} | seed-to-seed {r['seed_noise']:+.3f} | | |")


if __name__ == "__main__":
    main()
