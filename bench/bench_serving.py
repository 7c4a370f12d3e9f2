# coding=utf-8
"""Benchmark: one-core serving of albert_tiny, against the original's headline (17 queries/s on one CPU core at
sequence length 64).

What is measured: queries per second and per-query latency (p50, p99) of a classifier on the original albert_tiny
config (albert_config/albert_config_tiny.json: H 312, L 4, I 1248, 12 heads, E 128, vocab 21128) at batch 1,
sequence length 64 (every position a real token: the padding-free worst case), one thread, through each serving path:

  * ``saved_model``: our SavedModel (export_saved_model.py via export_model.export), its ``serving_default``
    signature, fp32; ``saved_model_bf16``: the same model built under keras mixed_bfloat16 and exported (a row says
    so when that does not export);
  * ``litert`` / ``litert_int8`` / ``litert_fp16``: export_model.export's LiteRT flatbuffer, fp32, dynamic-range
    int8 and float16 weights, run by ai_edge_litert's Interpreter(num_threads=1) through its ``serving_default``
    signature runner (LiteRT offers no bf16; its CPU kernels compute float16 weights in float32);
  * ``onnx`` / ``onnx_int8`` / ``onnx_fp16``: export_model.export's ONNX file (tf2onnx; int8 by onnxruntime's
    quantize_dynamic; float16 by onnxruntime.transformers' converter), run by onnxruntime with
    intra_op_num_threads=1, inter_op_num_threads=1, sequential execution (its CPU provider has no bf16 MatMul);
  * ``hf``: HF transformers' AlbertForSequenceClassification (PyTorch, the same sizes through
    bench_pretraining.TorchWorker's config mapping), torch.set_num_threads(1), set_num_interop_threads(1),
    torch.inference_mode; ``hf_bf16``: the same under torch.autocast("cpu", torch.bfloat16).

Weights are random (a 2-label head on top; speed does not depend on the values). Each path runs in its own
subprocess, pinned to one CPU (sched_setaffinity, unless --no_pin) before any framework is imported, with its
threads set before anything runs (TF: tf.config.threading intra/inter-op 1; OMP/MKL_NUM_THREADS=1 for all). A path
answers --warmup queries untimed, then as many as fit in --seconds, each timed alone (perf_counter around the call,
outputs fetched to numpy): QPS = queries / wall time of the loop; p50/p99 of the per-query latencies; "CPU/wall" is
the process's user+system time over the loop's wall time (about 1.0 on one core). "Δp vs SavedModel": the largest
difference of the path's output probabilities on the timed query from the fp32 SavedModel's (the same weights; it
shows what bf16 and int8 change, and that they ran).

Accuracy per path (optional, --demo_output): the demo's fine-tuned sentiment classifier (run_classifier.py's output
folder: ``best/`` checkpoint, ``label_list.txt``, ``saved_model/`` unless it ran with --noexport_saved_model as
demo.sh does), exported by the same functions (its own saved_model/, when there, is the fp32 SavedModel row), each
path scoring the demo's test file at batch 1 in its own one-thread subprocess. HF has no loader for our checkpoints
here: its accuracy is left blank.

Run (full size; about 5 min on an idle machine, more with --demo_output):
    .venv/bin/python bench/bench_serving.py
    .venv/bin/python bench/bench_serving.py --demo_output output/demo/finetune_sentiment_shipped \\
        --demo_config pretrained/albert_demo_zh/albert_config.json --demo_vocab pretrained/albert_demo_zh/vocab.txt \\
        --demo_test output/demo/tasks/sentiment/test.tsv
Smoke run (a second per path): .venv/bin/python bench/bench_serving.py --smoke
Prints a markdown table; raw numbers go to --out (default .cache/bench_serving/serving.json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
CACHE = REPO / ".cache" / "bench_serving"
MARK = "@@SERVING "
ORIGINAL_QPS = 17.0  # brightmart/albert_zh's README: albert_tiny, one CPU core, sequence length 64
PATHS = ("saved_model", "saved_model_bf16", "litert", "litert_int8", "litert_fp16", "onnx", "onnx_int8", "onnx_fp16",
         "hf", "hf_bf16")
EXPORTS = {"saved_model": ("saved_model", "none"), "saved_model_bf16": ("saved_model", "none"),
           "litert": ("litert", "none"), "litert_int8": ("litert", "dynamic_int8"),
           "litert_fp16": ("litert", "float16"), "onnx": ("onnx", "none"), "onnx_int8": ("onnx", "dynamic_int8"),
           "onnx_fp16": ("onnx", "float16")}
INPUTS = ("input_ids", "input_mask", "segment_ids")


# ======================================================================================================= child

def query(seq: int, vocab_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """One query [1, seq], int32: [CLS] then random ids, every position real."""
    ids = np.random.default_rng(seed).integers(5, vocab_size, (1, seq)).astype(np.int32)
    ids[0, 0] = 2
    return {"input_ids": ids, "input_mask": np.ones_like(ids), "segment_ids": np.zeros_like(ids)}


def load_predictor(kind: str, path: str | None, config_file: str | None):
    """inputs dict (numpy int32 [B,T]) -> probabilities [B,C] (numpy), for one path, one thread."""
    if kind.startswith("saved_model"):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(1)  # before any op runs
        tf.config.threading.set_inter_op_parallelism_threads(1)
        serve = tf.saved_model.load(path).signatures["serving_default"]
        return lambda feed: serve(**{k: tf.constant(feed[k]) for k in INPUTS})["probabilities"].numpy()
    if kind.startswith("litert"):
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=path, num_threads=1).get_signature_runner("serving_default")
        return lambda feed: runner(**{k: feed[k] for k in INPUTS})["probabilities"]
    if kind.startswith("onnx"):
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        names = [o.name for o in session.get_outputs()]
        index = names.index("probabilities")
        return lambda feed: session.run(None, {k: feed[k] for k in INPUTS})[index]
    if kind.startswith("hf"):
        sys.path.insert(0, str(BENCH))
        import bench_pretraining
        import torch
        import transformers

        torch.set_num_interop_threads(1)  # before any parallel work
        bench_pretraining.CONFIGS["serving"] = config_file  # an absolute path: REPO / it is itself
        worker = bench_pretraining.TorchWorker(1)  # torch.set_num_threads(1)
        hf_config, _ = worker._config("serving")  # our config's sizes in HF's AlbertConfig
        hf_config.num_labels = 2
        torch.manual_seed(0)
        net = transformers.AlbertForSequenceClassification(hf_config).eval()
        bf16 = kind == "hf_bf16"

        def predict(feed):
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                logits = net(input_ids=torch.from_numpy(feed["input_ids"]).long(),
                             attention_mask=torch.from_numpy(feed["input_mask"]).long(),
                             token_type_ids=torch.from_numpy(feed["segment_ids"]).long()).logits
                return torch.softmax(logits.float(), -1).numpy()
        return predict
    raise ValueError(f"unknown path {kind!r}")


def child(spec: dict) -> dict:
    """Runs in the path's own process: pins, loads, times (and scores, with features)."""
    import resource

    if spec.get("cpu") is not None:
        os.sched_setaffinity(0, {spec["cpu"]})
    t0 = time.perf_counter()
    predict = load_predictor(spec["kind"], spec.get("path"), spec.get("config_file"))
    out: dict = {"load_s": time.perf_counter() - t0, "affinity": sorted(os.sched_getaffinity(0))}
    if spec["kind"].startswith("saved_model"):
        import tensorflow as tf
        out["tf_threads"] = [tf.config.threading.get_intra_op_parallelism_threads(),
                             tf.config.threading.get_inter_op_parallelism_threads()]
    elif spec["kind"].startswith("hf"):
        import torch
        out["torch_threads"] = [torch.get_num_threads(), torch.get_num_interop_threads()]
    if spec.get("features"):
        data = np.load(spec["features"])
        gold, hits = data["gold"], 0
        for i in range(len(gold)):
            feed = {k: data[k][i:i + 1] for k in INPUTS}
            hits += int(np.argmax(predict(feed)[0]) == gold[i])
        out.update(accuracy=hits / len(gold), examples=len(gold))
        return out
    feed = query(spec["seq"], spec["vocab_size"])
    for _ in range(spec["warmup"]):
        probabilities = predict(feed)
    latencies = []
    usage = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    while not latencies or (time.perf_counter() - start < spec["seconds"] and len(latencies) < spec["max_queries"]):
        t = time.perf_counter()
        probabilities = predict(feed)
        latencies.append(time.perf_counter() - t)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime - usage.ru_utime) + (after.ru_stime - usage.ru_stime)
    ms = np.asarray(latencies) * 1000
    out.update(queries=len(latencies), seconds=wall, qps=len(latencies) / wall, p50_ms=float(np.percentile(ms, 50)),
               p99_ms=float(np.percentile(ms, 99)), mean_ms=float(ms.mean()), cpu_over_wall=cpu / wall,
               probabilities=np.asarray(probabilities).ravel().tolist())
    return out


def child_main(spec_json: str) -> None:
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)  # library prints go to stderr; stdout carries the result line only
    proto.write(MARK + json.dumps(child(json.loads(spec_json))) + "\n")
    proto.flush()


# ======================================================================================================= parent

def run_child(spec: dict, env: dict, log: Path, timeout: float) -> dict:
    """The path's subprocess: its result, or {"error": ...} with the log's tail."""
    with open(log, "w") as err:
        try:
            done = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], stdout=subprocess.PIPE,
                                  stderr=err, text=True, env=env, cwd=REPO, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"error": f"timed out after {timeout:.0f}s (log {log})"}
    for line in done.stdout.splitlines():
        if line.startswith(MARK):
            return json.loads(line[len(MARK):])
    tail = [line for line in log.read_text(errors="replace").splitlines() if line.strip()][-3:]
    return {"error": f"exit {done.returncode}: {' | '.join(tail)[-400:]} (log {log})"}


def export_paths(model, bf16_model, paths: list[str], seq: int, work: Path) -> dict[str, dict]:
    """Each exported path's file (export_model.export), or the error it failed with."""
    import export_model

    out = {}
    for kind in paths:
        if kind not in EXPORTS:
            continue
        fmt, quantize = EXPORTS[kind]
        source = bf16_model if kind == "saved_model_bf16" else model
        t0 = time.perf_counter()
        try:
            if source is None:
                raise RuntimeError("the model does not build under mixed_bfloat16")
            path = export_model.export(source, str(work / kind), fmt, seq, quantize)
            size = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) if os.path.isdir(path) \
                else os.path.getsize(path)
            out[kind] = {"file": path, "megabytes": size / 1e6, "export_s": time.perf_counter() - t0}
        except Exception as err:  # a row that says why this path is missing; the others still run
            out[kind] = {"error": f"does not export: {type(err).__name__}: {str(err).strip().splitlines()[0][:300]}"}
        print(f"  export {kind}: " + (out[kind].get("error") or f"{out[kind]['megabytes']:.1f} MB in "
                                                                f"{out[kind]['export_s']:.0f}s"), flush=True)
    return out


def build_models(config, num_labels: int, weights_from=None):
    """(fp32 classifier, the same weights under mixed_bfloat16 or None when that fails): random weights, or those
    of ``weights_from``."""
    import keras

    import modeling
    import training

    keras.utils.set_random_seed(0)
    model = weights_from or modeling.AlbertClassifier(config, num_labels, 0.0)
    if not model.built:
        model.build()
    bf16 = None
    training.set_precision("bf16")
    try:
        bf16 = modeling.AlbertClassifier(config, num_labels, 0.0, model.pooling)
        bf16.build()
        bf16.set_weights(model.get_weights())
    except Exception as err:
        print(f"  mixed_bfloat16 model: {type(err).__name__}: {err}", flush=True)
        bf16 = None
    finally:
        training.set_precision("none")
    return model, bf16


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--config", default="albert_config/albert_config_tiny.json", help="the timed model's config")
    ap.add_argument("--seq", type=int, default=64)
    ap.add_argument("--paths", default=",".join(PATHS), help="from " + ",".join(PATHS))
    ap.add_argument("--seconds", type=float, default=20.0, help="timed seconds per path")
    ap.add_argument("--warmup", type=int, default=20, help="untimed queries first")
    ap.add_argument("--max_queries", type=int, default=100000)
    ap.add_argument("--cpu", type=int, default=None, help="the CPU to pin each path to (default: the last allowed)")
    ap.add_argument("--no_pin", action="store_true", help="do not pin (threads are still limited to one)")
    ap.add_argument("--demo_output", help="a run_classifier.py output folder (best/, saved_model/, label_list.txt): "
                                          "adds accuracy per path")
    ap.add_argument("--demo_config", default="pretrained/albert_demo_zh/albert_config.json")
    ap.add_argument("--demo_vocab", default="pretrained/albert_demo_zh/vocab.txt")
    ap.add_argument("--demo_test", default="output/demo/tasks/sentiment/test.tsv", help="label \\t text, with header")
    ap.add_argument("--demo_limit", type=int, default=0, help="score only the first N test rows (0: all)")
    ap.add_argument("--smoke", action="store_true", help="1 s per path, 3 warmup queries (proves the script)")
    ap.add_argument("--work", default=str(CACHE / "work"), help="exports go here (removed after the run)")
    ap.add_argument("--out", default=str(CACHE / "serving.json"))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child_main(args.child)
        return
    if args.smoke:
        args.seconds, args.warmup = 1.0, 3
    paths = args.paths.split(",")
    if not paths or any(p not in PATHS for p in paths):
        ap.error(f"--paths={args.paths}: expected a comma-separated subset of {', '.join(PATHS)}")
    cpu = None if args.no_pin else (args.cpu if args.cpu is not None else max(os.sched_getaffinity(0)))

    sys.path[:0] = [str(REPO), str(BENCH)]
    import bench_export
    import bench_pretraining

    import modeling

    CACHE.mkdir(parents=True, exist_ok=True)
    work_root = Path(args.work)
    work_root.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONUNBUFFERED="1", TF_ENABLE_ONEDNN_OPTS="1",
               OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1")
    results: dict = {"cpu": bench_pretraining.cpu_info(), "cpu_name": bench_export.cpu_name(), "pinned_cpu": cpu,
                     "load_start": bench_pretraining.load(), "started": time.strftime("%Y-%m-%d %H:%M"),
                     "args": vars(args), "original_qps": ORIGINAL_QPS, "rows": []}
    started = time.time()
    info = results["cpu"]
    print(f"CPU {info['model']} x{info['cores']} ({', '.join(f'{k} {v}' for k, v in info['flags'].items())}); "
          f"each path pinned to CPU {cpu}, one thread; load {results['load_start']}", flush=True)
    config = modeling.AlbertConfig.from_json_file(str(REPO / args.config))
    with tempfile.TemporaryDirectory(dir=work_root) as scratch:
        work = Path(scratch)
        print(f"exports of {args.config} (random weights, 2 labels), seq {args.seq}", flush=True)
        model, bf16 = build_models(config, 2)
        exports = export_paths(model, bf16, paths, args.seq, work / "speed")
        for kind in paths:
            spec = {"kind": kind, "seq": args.seq, "vocab_size": config.vocab_size, "warmup": args.warmup,
                    "seconds": args.seconds, "max_queries": args.max_queries, "cpu": cpu,
                    "config_file": str(REPO / args.config)}
            row = {"path": kind}
            if kind in exports:
                row.update(exports[kind])
                spec["path"] = exports[kind].get("file")
            if "error" not in row:
                row.update(run_child(spec, env, CACHE / f"{kind}.log", timeout=args.seconds + 600))
            if "qps" in row:
                row["vs_original"] = row["qps"] / ORIGINAL_QPS
            reference = next((r for r in results["rows"] if r["path"] == "saved_model" and "probabilities" in r), None)
            if "probabilities" in row and reference is not None and not kind.startswith("hf"):
                # The same weights and query: how far this path's output is from the fp32 SavedModel's.
                row["max_abs_diff_vs_saved_model"] = float(np.max(np.abs(np.subtract(row["probabilities"],
                                                                                     reference["probabilities"]))))
            results["rows"].append(row)
            print("  " + json.dumps({k: v for k, v in row.items() if k != "probabilities"}), flush=True)
        if args.demo_output:
            results["accuracy"] = demo_accuracy(args, paths, env, cpu, work / "demo")
    bench_pretraining.finish(results, started, Path(args.out), print_table)


def demo_accuracy(args, paths: list[str], env: dict, cpu: int | None, work: Path) -> dict[str, dict]:
    """Accuracy of each exported path on the demo's test file, the demo classifier exported as the speed model."""
    import bench_export

    import checkpoints

    demo = Path(args.demo_output)
    labels = [line.strip() for line in (demo / "label_list.txt").read_text(encoding="utf-8").splitlines()
              if line.strip()]
    print(f"\naccuracy: {demo} on {args.demo_test}", flush=True)
    feed, gold = bench_export.dev_features(args.demo_test, args.demo_vocab, args.seq)
    if sorted(labels) != labels:  # dev_features numbers the labels in sorted order, the classifier in its list's
        raise SystemExit(f"{demo / 'label_list.txt'}: labels {labels} are not in sorted order")
    if args.demo_limit:
        feed, gold = {k: v[:args.demo_limit] for k, v in feed.items()}, gold[:args.demo_limit]
    work.mkdir(parents=True, exist_ok=True)
    features = work / "test_features.npz"
    np.savez(features, gold=gold, **feed)
    checkpoint = demo / "best" if (demo / "best").is_dir() else demo
    trained, _ = checkpoints.model_from_checkpoint(args.demo_config, str(checkpoint), num_labels=len(labels),
                                                   verbose=False)
    model, bf16 = build_models(trained.config, len(labels), weights_from=trained)
    own = (demo / "saved_model").is_dir()  # the run's own export, unless it ran with --noexport_saved_model
    exports = export_paths(model, bf16, [p for p in paths if p != "saved_model" or not own], args.seq, work)
    if "saved_model" in paths and own:
        exports["saved_model"] = {"file": str(demo / "saved_model")}
    out = {}
    for kind in paths:
        if kind.startswith("hf"):
            out[kind] = {"error": "n/a: HF has no loader for our checkpoints here"}
        elif "error" in exports.get(kind, {}):
            out[kind] = exports[kind]
        else:
            out[kind] = run_child({"kind": kind, "path": exports[kind]["file"], "features": str(features), "cpu": cpu},
                                  env, CACHE / f"accuracy_{kind}.log", timeout=1800)
        print(f"  {kind}: " + json.dumps(out[kind]), flush=True)
    return out


def print_table(results: dict) -> None:
    """Markdown for bench/README.md, after a line naming the machine."""
    info = results["cpu"]
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in info["flags"].items())
    print(f"\n{results['started']}: {results['cpu_name']} ({flags}); each path in its own process, one thread, "
          f"pinned to CPU {results['pinned_cpu']}; batch 1, seq {results['args']['seq']}, "
          f"{results['args']['config']} with random weights. Load average {results['load_start']} at start, "
          f"{results['load_end']} at end; {results['wall_s'] / 60:.1f} min.\n")
    accuracy = results.get("accuracy", {})
    header = "| path | queries/s | × original's 17 | p50 ms | p99 ms | CPU/wall | size MB | Δp vs SavedModel |"
    print(header + (" demo test accuracy |" if accuracy else ""))
    print("|---" * (header.count("|") - 1 + bool(accuracy)) + "|")
    for r in results["rows"]:
        acc = ""
        if accuracy:
            a = accuracy.get(r["path"], {})
            acc = f" {a['accuracy']:.4f} |" if "accuracy" in a else f" {a.get('error', '')[:60]} |"
        if "qps" not in r:
            print(f"| {r['path']} | {r.get('error', '')[:150]} | | | | | | |" + acc)
            continue
        size = f"{r['megabytes']:.1f}" if "megabytes" in r else ""
        diff = f"{r['max_abs_diff_vs_saved_model']:.1e}" if "max_abs_diff_vs_saved_model" in r else ""
        print(f"| {r['path']} | {r['qps']:.1f} | {r['vs_original']:.2f}× | {r['p50_ms']:.2f} | {r['p99_ms']:.2f} | "
              f"{r['cpu_over_wall']:.2f} | {size} | {diff} |" + acc)


if __name__ == "__main__":
    main()
