"""Deployment formats side by side: accuracy of each export on a dev set, and inference speed against HF's PyTorch.

  * accuracy: a fine-tuned classifier exported by export_model.py as SavedModel, LiteRT fp32 / dynamic int8 and
    ONNX fp32 / dynamic int8, each scored on the dev set of its task (the demo's sentiment dev set by default);
  * speed: sequences per second at batch 32 and the median latency at batch 1 (seq 128) of our Keras model, the
    SavedModel, LiteRT and ONNX Runtime (fp32, int8), and HF transformers' AlbertModel (PyTorch fp32,
    torch.inference_mode), for each config given, with random weights, in one process.

Usage (after bash demo.sh):
  python bench/bench_export.py --classifier output/demo/finetune_sentiment_domain_adapted/best \\
      --config pretrained/albert_demo_zh/albert_config.json --vocab pretrained/albert_demo_zh/vocab.txt \\
      --dev_tsv output/demo/tasks/sentiment/dev.tsv --max_seq_length 64 \\
      --speed_configs pretrained/albert_demo_zh/albert_config.json,albert_config/albert_config_base_google.json
Prints markdown tables (the CPU named) and writes --work/bench_export.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
import checkpoints  # noqa: E402
import classifier_data  # noqa: E402
import export_model  # noqa: E402
import modeling  # noqa: E402
import tokenization  # noqa: E402

VARIANTS = [("saved_model", "none"), ("litert", "none"), ("litert", "dynamic_int8"), ("onnx", "none"),
            ("onnx", "dynamic_int8")]


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} CPUs"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs"


def runner(fmt: str, path: str):
    """inputs dict -> outputs dict, for one exported file or directory."""
    if fmt == "saved_model":
        import tensorflow as tf
        serve = tf.saved_model.load(path).signatures["serving_default"]
        return lambda feed: {k: v.numpy() for k, v in serve(**{k: tf.constant(v) for k, v in feed.items()}).items()}
    if fmt == "litert":
        from ai_edge_litert.interpreter import Interpreter
        interpreter = Interpreter(model_path=path, num_threads=os.cpu_count())
        signature = interpreter.get_signature_runner("serving_default")
        return lambda feed: signature(**feed)
    import onnxruntime
    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return lambda feed: dict(zip(names, session.run(None, feed)))


def dev_features(dev_tsv: str, vocab: str, max_seq_length: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    processor = classifier_data.get_processor("text_classification")
    examples = processor.read_file(dev_tsv, "dev")
    labels = sorted({e.label for e in examples})
    tokenizer = tokenization.FullTokenizer(vocab, split_special_tokens=True)
    rows = [classifier_data.encode_text(tokenizer, e.text_a, e.text_b, max_seq_length)[:3] for e in examples]
    feed = {k: np.asarray([r[i] for r in rows], np.int32)
            for i, k in enumerate(("input_ids", "input_mask", "segment_ids"))}
    return feed, np.asarray([labels.index(e.label) for e in examples])


def accuracy_rows(args, work: Path) -> list[dict]:
    model, _ = checkpoints.model_from_checkpoint(args.config, args.classifier, verbose=False)
    feed, gold = dev_features(args.dev_tsv, args.vocab, args.max_seq_length)
    rows = []
    for fmt, quantize in VARIANTS:
        path = export_model.export(model, str(work / f"{fmt}_{quantize}"), fmt, args.max_seq_length, quantize)
        run = runner(fmt, path)
        predicted = []
        for i in range(0, len(gold), 32 if fmt != "litert" else 1):
            batch = {k: v[i:i + (32 if fmt != "litert" else 1)] for k, v in feed.items()}
            predicted.append(run(batch)["probabilities"].argmax(-1))
        size = sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file()) if os.path.isdir(path) \
            else os.path.getsize(path)
        rows.append({"format": fmt, "quantize": quantize, "dev_accuracy": float(np.mean(np.concatenate(predicted)
                                                                                      == gold)),
                     "megabytes": size / 1e6})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def timed(run, feed, repeats: int) -> float:
    run(feed)  # warm-up (tracing, allocation)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(feed)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def speed_rows(config_file: str, seq: int, work: Path, repeats: int) -> list[dict]:
    import tensorflow as tf
    import torch
    import transformers

    config = modeling.AlbertConfig.from_json_file(config_file, model_family="google")
    model = modeling.AlbertModel(config)
    model.build()
    name = Path(config_file).stem
    results = []

    def row(path_name: str, run, make_feed) -> None:
        throughput = 32 / timed(run, make_feed(32), repeats)
        latency = timed(run, make_feed(1), repeats * 3) * 1000
        results.append({"config": name, "path": path_name, "seq_per_s_b32": throughput, "latency_ms_b1": latency})
        print(json.dumps(results[-1]), flush=True)

    def feed(batch: int) -> dict[str, np.ndarray]:
        return export_model.check_inputs(seq, config.vocab_size, batch=batch)

    forward = tf.function(lambda f: model(f, training=False)["sequence_output"], reduce_retracing=True)
    row("Keras (tf.function)", lambda f: forward({k: tf.constant(v) for k, v in f.items()}).numpy(), feed)
    for fmt, quantize in VARIANTS:
        if fmt == "litert":  # LiteRT keeps one shape per interpreter: one file, two interpreters
            path = export_model.export(model, str(work / f"{name}_{fmt}_{quantize}"), fmt, seq, quantize)
            runs = {b: runner(fmt, path) for b in (1, 32)}
            row(f"{fmt} {quantize}", lambda f: runs[len(f["input_ids"])](f), feed)
        else:
            path = export_model.export(model, str(work / f"{name}_{fmt}_{quantize}"), fmt, seq, quantize)
            row(f"{fmt} {quantize}", runner(fmt, path), feed)
    hf_config = transformers.AlbertConfig(
        vocab_size=config.vocab_size, embedding_size=config.embedding_size, hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers, num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size, hidden_act="gelu_new", max_position_embeddings=512,
        num_hidden_groups=config.num_hidden_groups)
    hf = transformers.AlbertModel(hf_config).eval()

    def hf_run(f):
        with torch.inference_mode():
            return hf(input_ids=torch.from_numpy(f["input_ids"]).long(),
                      attention_mask=torch.from_numpy(f["input_mask"]).long(),
                      token_type_ids=torch.from_numpy(f["segment_ids"]).long()).last_hidden_state

    row("HF AlbertModel (PyTorch fp32)", hf_run, feed)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--classifier", help="A fine-tuned classifier checkpoint (accuracy rows).")
    parser.add_argument("--config", help="Its config file.")
    parser.add_argument("--vocab", help="Its vocab.")
    parser.add_argument("--dev_tsv", help="The dev set (label \\t text).")
    parser.add_argument("--max_seq_length", type=int, default=64)
    parser.add_argument("--speed_configs", default="", help="Comma-separated config files for the speed rows.")
    parser.add_argument("--speed_seq", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--work", default="output/bench_export")
    args = parser.parse_args()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    results = {"cpu": cpu_name(), "accuracy": [], "speed": []}
    with tempfile.TemporaryDirectory(dir=work) as scratch:
        if args.classifier:
            results["accuracy"] = accuracy_rows(args, Path(scratch))
        for config_file in filter(None, args.speed_configs.split(",")):
            results["speed"] += speed_rows(config_file, args.speed_seq, Path(scratch), args.repeats)
    (work / "bench_export.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"\n{results['cpu']}\n")
    if results["accuracy"]:
        base = results["accuracy"][0]["dev_accuracy"]
        print("| format | quantize | dev accuracy | change, points | size MB |\n|---|---|---|---|---|")
        for r in results["accuracy"]:
            print(f"| {r['format']} | {r['quantize']} | {r['dev_accuracy']:.4f} | "
                  f"{100 * (r['dev_accuracy'] - base):+.1f} | {r['megabytes']:.1f} |")
    if results["speed"]:
        print("\n| config | path | seq/s at batch 32 | × HF | latency at batch 1, ms | × HF |\n"
              "|---|---|---|---|---|---|")
        for config in dict.fromkeys(r["config"] for r in results["speed"]):
            rows = [r for r in results["speed"] if r["config"] == config]
            hf = rows[-1]
            for r in rows:
                print(f"| {config} | {r['path']} | {r['seq_per_s_b32']:.1f} | "
                      f"{r['seq_per_s_b32'] / hf['seq_per_s_b32']:.2f} | {r['latency_ms_b1']:.1f} | "
                      f"{r['latency_ms_b1'] / hf['latency_ms_b1']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
