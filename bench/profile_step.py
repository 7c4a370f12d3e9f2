# coding=utf-8
"""Profile: where a training step's time goes, by TF op type, fp32 against bf16 (mixed_bfloat16).

The speed benchmarks (bench_pretraining.py, bench_finetune_speed.py) say how fast a step is; this says why. It runs
the same step they time (training.Trainer._train_loop on a CLI's task, synthetic full-length batches) under the TF
profiler (tf.profiler.experimental), reads the host plane of the trace (xplane.pb, TF's own protobuf), and sums the
self time of each op event by op type (MatMul, _FusedMatMul, BatchMatMulV3, Cast, Softmax, the Adam/LAMB update,
...). It prints a table per precision: each op type's milliseconds per step and share of the step, grouped into
GEMM (matrix multiplies, oneDNN or Eigen), casts, and the rest (element-wise, reductions, gathers, optimizer), so
that "bf16 is only 1.2x fp32" can be read as "the GEMMs got 2x faster, the element-wise part did not".

Run (one process, one size and head at a time; ~1-2 min each on 2 cores):
    .venv/bin/python bench/profile_step.py --size tiny --head classifier --seq 128 --batch 32
    .venv/bin/python bench/profile_step.py --size tiny --head pretraining --seq 128 --batch 32
    .venv/bin/python bench/profile_step.py --size tiny --head classifier --autodiff_gelu   (before the fused GELU)
    .venv/bin/python bench/profile_step.py --size tiny --head pretraining --sites Cast,Mul,Slice   (which ones)
Raw per-op totals go to --out (JSON). Threads: all cores (TF's default), as the CLIs run.
"""

from __future__ import annotations

import argparse
import collections
import glob
import json
import os
import re
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_finetune_speed as bf  # noqa: E402  (its TF worker sets up each CLI's real training step)
import bench_pretraining as bp  # noqa: E402

sys.path.insert(0, str(bp.REPO))

GEMM = re.compile(r"MatMul|Conv|Einsum")  # _FusedMatMul, BatchMatMulV2/V3, _MklMatMul, _MklNativeFusedMatMul, ...
CAST = re.compile(r"^(_Mkl)?Cast$")
XLA_KERNEL = re.compile(r"fusion(\.\d+)?$|^wrapped_|^copy(\.\d+)?$")  # XLA CPU kernel names, on the op's own thread


def group_of(kind: str) -> str:
    if GEMM.search(kind):
        return "GEMM"
    if CAST.search(kind):
        return "cast"
    return "other"


def phase_of(scope: str) -> str:
    """forward, backward (under gradient_tape/) or optimizer (the update: adam_weight_decay/, lamb/, clipping)."""
    if "gradient_tape/" in scope:
        return "backward"
    if re.search(r"(^|/)(adam_weight_decay|lamb|adamw?|clip_by_global_norm|global_norm)[_0-9]*/", scope):
        return "optimizer"
    return "forward"


def op_events(logdir: str):
    """(event name, duration in ms) of every event on the TF executor's compute threads of the newest trace in logdir.

    Op events are named 'scope/op_name:OpType'; the executor's own events ('ExecutorState::Process', thread-pool
    markers) enclose them; the kernels of an XLA-compiled function ('multiply_tanh_fusion', ...) run on the same
    threads under their own names."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    path = sorted(glob.glob(os.path.join(logdir, "plugins", "profile", "*", "*.xplane.pb")))[-1]
    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(path).read_bytes())
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        names = {k: m.name for k, m in plane.event_metadata.items()}
        for line in plane.lines:
            if line.name.startswith("tf_Compute"):
                for event in line.events:
                    yield names.get(event.metadata_id, ""), event.duration_ps / 1e9


def op_times(logdir: str) -> dict[str, dict[str, float]]:
    """Summed duration (ms) of TF op events per phase and op type, from the newest trace in logdir.

    The executor's own events are left out; XLA kernels are counted under the phase "XLA kernels". Durations are
    summed over the inter-op threads, so the total can exceed wall time: the shares are of the op time, which is what
    a precision change can shrink."""
    totals: dict[str, dict[str, float]] = collections.defaultdict(collections.Counter)
    for name, ms in op_events(logdir):
        if XLA_KERNEL.search(name):  # a kernel of an XLA-compiled function (modeling.fused_gelu_tanh)
            totals["XLA kernels"][f"XLA {name}"] += ms
        if ":" not in name or "::" in name:
            continue
        scope, kind = name.rsplit(":", 1)
        totals[phase_of(scope)][kind] += ms
    return {phase: dict(ops) for phase, ops in totals.items()}


def op_sites(logdir: str, kinds: set[str]) -> dict[str, float]:
    """Summed duration (ms) of the ops of the given types per place in the model: the op's scope with the training
    loop's and layers' instance numbers collapsed ('.../encoder/attention/Cast_N'), so the four calls of a shared
    layer add up. Answers "which Cast / Mul / Slice is it?"."""
    sites: dict[str, float] = collections.Counter()
    for name, ms in op_events(logdir):
        if ":" in name and "::" not in name:
            scope, kind = name.rsplit(":", 1)
            if kind in kinds:
                sites[f"{kind} {re.sub(r'_[0-9]+', '_N', scope)}"] += ms
    return dict(sites)


def profile(worker, name: str, steps: int, site_kinds: set[str] = frozenset()) -> dict:
    import tensorflow as tf

    logdir = tempfile.mkdtemp(prefix=f"profile_{name}_")
    worker.run(name, 2)  # warm: oneDNN primitive caches, first-call overheads
    tf.profiler.experimental.start(logdir)
    wall = worker.run(name, steps)["seconds"]
    tf.profiler.experimental.stop()
    per_step = {phase: {k: v / steps for k, v in ops.items()} for phase, ops in op_times(logdir).items()}
    sites = {k: v / steps for k, v in op_sites(logdir, set(site_kinds)).items()} if site_kinds else {}
    return {"wall_ms_per_step": 1000 * wall / steps, "ops_ms_per_step": per_step, "sites_ms_per_step": sites}


def flat(ops: dict[str, dict[str, float]]) -> dict[str, float]:
    out: dict[str, float] = collections.Counter()
    for by_kind in ops.values():
        for kind, ms in by_kind.items():
            out[kind] += ms
    return dict(out)


def table(results: dict[str, dict], top: int) -> None:
    """Rows: wall, then op time by group (GEMM / cast / other), by phase, and the top op types; a column pair
    (ms per step, % of op time) per precision, and bf16's speed-up per row when both precisions ran."""
    flats = {p: flat(r["ops_ms_per_step"]) for p, r in results.items()}
    totals = {p: sum(f.values()) for p, f in flats.items()}
    pair = "fp32" in results and "bf16" in results

    def row(label: str, values: dict[str, float], share: bool = True) -> None:
        cells = "".join(f"{v:10.1f}" + (f"{100 * v / totals[p]:6.1f}%" if share else " " * 7)
                        for p, v in values.items())
        ratio = f"{values['fp32'] / values['bf16']:8.2f}x" if pair and values["bf16"] > 0 else ""
        print(f"  {label[:36]:36}{cells}{ratio}")

    print(f"\n  {'ms per step (op time over threads)':36}"
          + "".join(f"{p:>10}{'%':>7}" for p in results) + ("   fp32/bf16" if pair else ""))
    row("wall", {p: r["wall_ms_per_step"] for p, r in results.items()}, share=False)
    row("op time (all threads)", totals)
    for group in ("GEMM", "cast", "other"):
        row(f"  {group}", {p: sum(v for k, v in f.items() if group_of(k) == group) for p, f in flats.items()})
    for phase in ("forward", "backward", "optimizer", "XLA kernels"):
        row(f"  {phase}", {p: sum(r["ops_ms_per_step"].get(phase, {}).values()) for p, r in results.items()})
    kinds = sorted({k for f in flats.values() for k in f}, key=lambda k: -max(f.get(k, 0) for f in flats.values()))
    print(f"  top {top} op types")
    for kind in kinds[:top]:
        row(f"  {kind}", {p: f.get(kind, 0.0) for p, f in flats.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", default="tiny", choices=sorted(bp.CONFIGS))
    parser.add_argument("--head", default="classifier", choices=["classifier", "ner", "mrc", "pretraining"])
    parser.add_argument("--crf", action="store_true", help="NER head with CRF")
    parser.add_argument("--seq", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--preds", type=int, default=20, help="masked positions per sequence (pretraining)")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--autodiff_gelu", action="store_true",
                        help="train with autodiff through tf.nn.gelu, as before modeling.fused_gelu_tanh")
    parser.add_argument("--sites", default="", metavar="TYPES",
                        help="comma-separated op types (e.g. Cast,Mul,Slice): also list where in the model their time "
                             "goes, by op scope")
    parser.add_argument("--out", default=str(bp.REPO / ".cache" / "profile_step.json"))
    args = parser.parse_args()

    if args.autodiff_gelu:
        import modeling

        modeling._TRAINING_ACTIVATIONS.clear()  # get_training_activation falls back to get_activation
    worker = bf.TFWorker(os.cpu_count() or 1)
    results = {}
    for precision in args.precisions.split(","):
        name = f"{args.head}_{precision}"
        if args.head == "pretraining":
            worker.setup_train(name, args.size, args.batch, args.seq, args.preds, precision=precision)
        else:
            worker.setup_finetune(name, args.head, args.size, args.batch, args.seq, precision=precision, crf=args.crf)
        results[precision] = profile(worker, name, args.steps, set(filter(None, args.sites.split(","))))
        worker.drop([name])
    print(f"{args.size} {args.head}{' +CRF' if args.crf else ''}, batch {args.batch}, seq {args.seq}, "
          f"GELU {'autodiff' if args.autodiff_gelu else 'fused under mixed precision'}; "
          f"CPU: {bp.cpu_info()}")
    table(results, args.top)
    for precision, result in results.items():
        if result["sites_ms_per_step"]:
            print(f"\n  where the {args.sites} time goes, {precision} (ms per step, op scope)")
            for site, ms in sorted(result["sites_ms_per_step"].items(), key=lambda kv: -kv[1])[:args.top]:
                print(f"    {ms:7.2f}  {site}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "results": results}, indent=1))


if __name__ == "__main__":
    main()
