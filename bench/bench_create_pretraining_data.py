# coding=utf-8
"""Benchmark: create_pretraining_data.py against the original's algorithm, on the demo corpus.

Measures instances/s (wall clock, process start included), CPU seconds (user + system of
the process and its workers: the per-core figure, robust to other load on the machine) and
peak RSS (summed over the process and its workers) for
  * the original's algorithm, re-implemented below (brightmart/albert_zh
    create_pretraining_data.py as of 2019-2020: tokenize once, then in EVERY dupe pass
    run jieba and the <=3-character word matching on every sentence, keep all
    instances of all passes in RAM, shuffle them, write them with tf.train.Example);
  * this repo's create_pretraining_data.py with --num_workers 1 and 2 (and
    --work_unit_mb 0.25, so that the 1 MB base corpus has units to share; the two
    outputs are checked to be byte-identical);
on a base corpus (the first --base_mb MB of the People's Daily demo corpus) and on a
corpus 10x larger made by repeating it (with --large_dupe_factor passes, to keep the run
short). Each configuration runs in its own process, one after the other.

Run: .venv/bin/python bench/bench_create_pretraining_data.py  (a few minutes on 2 cores;
needs .cache/demo from data/prepare_demo_corpus.py, which it runs if needed). Prints a
markdown table for bench/README.md.
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

CACHE = REPO / ".cache" / "bench"
DEMO_CORPUS = REPO / ".cache" / "demo" / "people_daily_199801.txt"


# --------------------------------------------------------------------------- the original's algorithm
# Written for this comparison from a reading of the original; kept deliberately as the original
# works (per-pass segmentation, Python lists, everything in memory).

_SEED_HAN = re.compile("[\u4E00-\u9FA5]")
_SEED_HAN_PIECE = re.compile("##[\u4E00-\u9FA5]")
SeedInstance = collections.namedtuple(
    "SeedInstance", "tokens segment_ids is_random_next masked_lm_positions masked_lm_labels")


def seed_mark_words(segment, cut):
    """The original's get_new_segment: jieba on the joined characters, then greedy matching of
    3-, 2-, 1-character spans against the set of jieba's words; followers get "##"."""
    words = set(cut("".join(segment)))
    out, i = [], 0
    while i < len(segment):
        if not _SEED_HAN.findall(segment[i]):
            out.append(segment[i])
            i += 1
            continue
        for length in (3, 2, 1):
            if i + length <= len(segment) and "".join(segment[i:i + length]) in words:
                out.append(segment[i])
                out.extend("##" + t for t in segment[i + 1:i + length])
                i += length
                break
        else:
            out.append(segment[i])
            i += 1
    return out


def seed_truncate(tokens_a, tokens_b, max_num_tokens, rng):
    while len(tokens_a) + len(tokens_b) > max_num_tokens:
        longer = tokens_a if len(tokens_a) > len(tokens_b) else tokens_b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()


def seed_mask(tokens, masked_lm_prob, max_predictions, vocab_words, rng, whole_word):
    candidates = []
    for i, token in enumerate(tokens):
        if token in ("[CLS]", "[SEP]"):
            continue
        if whole_word and candidates and token.startswith("##"):
            candidates[-1].append(i)
        else:
            candidates.append([i])
    rng.shuffle(candidates)
    output = [t[2:] if _SEED_HAN_PIECE.findall(t) else t for t in tokens]
    budget = min(max_predictions, max(1, int(round(len(tokens) * masked_lm_prob))))
    masked, covered = [], set()
    for group in candidates:
        if len(masked) >= budget:
            break
        if len(masked) + len(group) > budget or any(i in covered for i in group):
            continue
        for i in group:
            covered.add(i)
            if rng.random() < 0.8:
                replacement = "[MASK]"
            elif rng.random() < 0.5:
                replacement = tokens[i][2:] if _SEED_HAN_PIECE.findall(tokens[i]) else tokens[i]
            else:
                replacement = vocab_words[rng.randint(0, len(vocab_words) - 1)]
            output[i] = replacement
            masked.append((i, tokens[i]))  # the label keeps "##"
    masked.sort()
    return output, [i for i, _ in masked], [t for _, t in masked]


def seed_document_instances(document, cfg, vocab_words, rng, cut):
    max_num_tokens = cfg.max_seq_length - 3
    target = max_num_tokens
    if rng.random() < cfg.short_seq_prob:
        target = rng.randint(2, max_num_tokens)
    instances, chunk, length, i = [], [], 0, 0
    while i < len(document):
        segment = seed_mark_words(document[i], cut)  # jieba again, in every pass
        chunk.append(segment)
        length += len(segment)
        if i == len(document) - 1 or length >= target:
            a_end = rng.randint(1, len(chunk) - 1) if len(chunk) >= 2 else 1
            tokens_a = [t for s in chunk[:a_end] for t in s]
            tokens_b = [t for s in chunk[a_end:] for t in s]
            if not tokens_a or not tokens_b:
                continue  # as the original: i is not advanced and the chunk is kept
            swapped = rng.random() < 0.5
            if swapped:
                tokens_a, tokens_b = tokens_b, tokens_a
            seed_truncate(tokens_a, tokens_b, max_num_tokens, rng)
            tokens = ["[CLS]"] + tokens_a + ["[SEP]"] + tokens_b + ["[SEP]"]
            segment_ids = [0] * (len(tokens_a) + 2) + [1] * (len(tokens_b) + 1)
            tokens, positions, labels = seed_mask(tokens, cfg.masked_lm_prob, cfg.max_predictions_per_seq,
                                                  vocab_words, rng, cfg.do_whole_word_mask)
            instances.append(SeedInstance(tokens, segment_ids, swapped, positions, labels))
            chunk, length = [], 0
        i += 1
    return instances


def run_seed(args):
    """The original's pipeline end to end (called in a child process)."""
    import jieba
    import tensorflow as tf

    import masking
    import tokenization
    jieba.setLogLevel(60)
    tokenizer = tokenization.FullTokenizer(args.vocab_file, do_lower_case=True)
    cfg = masking.InstanceConfig(args.max_seq_length, args.max_predictions_per_seq, 0.15, 0.1, True)
    rng = random.Random(12345)
    documents = [[]]
    with open(args.input_file, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                documents.append([])
            tokens = tokenizer.tokenize(line)
            if tokens:
                documents[-1].append(tokens)
    documents = [d for d in documents if d]
    rng.shuffle(documents)
    vocab_words = list(tokenizer.vocab.keys())
    instances = []
    for _ in range(args.dupe_factor):
        for document in documents:
            instances.extend(seed_document_instances(document, cfg, vocab_words, rng, jieba.lcut))
    rng.shuffle(instances)

    def ints(values):
        return tf.train.Feature(int64_list=tf.train.Int64List(value=list(values)))

    L, P = args.max_seq_length, args.max_predictions_per_seq
    with tf.io.TFRecordWriter(args.output_file) as writer:
        for inst in instances:
            ids = tokenizer.convert_tokens_to_ids(inst.tokens)
            n, k = len(ids), len(inst.masked_lm_positions)
            labels = tokenizer.convert_tokens_to_ids(inst.masked_lm_labels)
            features = collections.OrderedDict()
            features["input_ids"] = ints(ids + [0] * (L - n))
            features["input_mask"] = ints([1] * n + [0] * (L - n))
            features["segment_ids"] = ints(inst.segment_ids + [0] * (L - n))
            features["masked_lm_positions"] = ints(inst.masked_lm_positions + [0] * (P - k))
            features["masked_lm_ids"] = ints(labels + [0] * (P - k))
            features["masked_lm_weights"] = tf.train.Feature(
                float_list=tf.train.FloatList(value=[1.0] * k + [0.0] * (P - k)))
            features["next_sentence_labels"] = ints([1 if inst.is_random_next else 0])
            example = tf.train.Example(features=tf.train.Features(feature=features))
            writer.write(example.SerializeToString())


# --------------------------------------------------------------------------- measuring

def _tree_rss_kb(root: int) -> int:
    """Resident memory of `root` and all its descendants, in kB."""
    children = collections.defaultdict(list)
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                children[int(fields[1])].append(int(entry))
            except OSError:
                continue
    total, stack = 0, [root]
    while stack:
        pid = stack.pop()
        stack.extend(children.get(pid, []))
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total


def measure(command: list[str]) -> tuple[float, float, float]:
    """Runs a command; returns (wall seconds, CPU seconds, peak RSS of its process tree in MB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                               env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    peak = 0
    while process.poll() is None:
        peak = max(peak, _tree_rss_kb(process.pid))
        time.sleep(0.1)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if process.returncode:
        raise RuntimeError(f"{command} failed:\n{process.stderr.read().decode()[-3000:]}")
    return wall, cpu, peak / 1024


def count_records(path: Path) -> int:
    """Records in a TFRecord file (length-prefixed frames; CRCs not checked)."""
    count = 0
    with open(path, "rb") as f:
        while header := f.read(12):
            f.seek(int.from_bytes(header[:8], "little") + 4, os.SEEK_CUR)
            count += 1
    return count


def cpu_name() -> str:
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
        name = next(line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Model name"))
    except (OSError, StopIteration):
        name = "unknown CPU"
    return f"{name}, {os.cpu_count()} logical CPUs"


def prepare_corpora(base_mb: float) -> tuple[Path, Path, Path]:
    """Base corpus (a prefix of the demo corpus, cut at a blank line), 10x by repetition, vocab."""
    if not DEMO_CORPUS.is_file():
        from data import prepare_demo_corpus
        prepare_demo_corpus.main(["--cache_dir", str(REPO / ".cache")])
    CACHE.mkdir(parents=True, exist_ok=True)
    text = DEMO_CORPUS.read_bytes()
    cut = text.find(b"\n\n", int(base_mb * (1 << 20)))
    base_text = text if cut < 0 else text[:cut + 1]
    base, large, vocab = CACHE / "base.txt", CACHE / "large.txt", CACHE / "vocab.txt"
    base.write_bytes(base_text)
    large.write_bytes(b"\n".join([base_text] * 10))
    if not vocab.is_file():
        from data import build_vocab
        build_vocab.main(["--input_file", str(DEMO_CORPUS), "--output_file", str(vocab), "--cjk_subword_pieces"])
    return base, large, vocab


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base_mb", type=float, default=1.0)
    parser.add_argument("--max_seq_length", type=int, default=128)
    parser.add_argument("--max_predictions_per_seq", type=int, default=20)
    parser.add_argument("--dupe_factor", type=int, default=10, help="Passes on the base corpus.")
    parser.add_argument("--large_dupe_factor", type=int, default=1, help="Passes on the 10x corpus.")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--work_unit_mb", type=float, default=0.25)
    parser.add_argument("--_seed_child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--input_file", help=argparse.SUPPRESS)
    parser.add_argument("--output_file", help=argparse.SUPPRESS)
    parser.add_argument("--vocab_file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._seed_child:
        run_seed(args)
        return 0

    base, large, vocab = prepare_corpora(args.base_mb)
    out = CACHE / "out"  # not output/: that holds users' (and other jobs') runs
    out.mkdir(parents=True, exist_ok=True)
    python = sys.executable
    common = [f"--vocab_file={vocab}", f"--max_seq_length={args.max_seq_length}",
              f"--max_predictions_per_seq={args.max_predictions_per_seq}"]
    rows = []
    for corpus_name, corpus, dupe in [("base", base, args.dupe_factor), ("10x", large, args.large_dupe_factor)]:
        runs = [("seed algorithm", 1, [python, __file__, "--_seed_child", f"--input_file={corpus}",
                                       f"--output_file={out / 'seed.tfrecord'}", f"--dupe_factor={dupe}"] + common)]
        for w in [int(x) for x in args.workers.split(",")]:
            runs.append((f"ours, {w} worker(s)", w, [
                python, str(REPO / "create_pretraining_data.py"), f"--input_file={corpus}",
                f"--output_file={out / f'ours{w}.tfrecord'}", f"--dupe_factor={dupe}", "--num_workers", str(w),
                "--do_whole_word_mask=true", "--log_examples=0", f"--work_unit_mb={args.work_unit_mb}"] + common))
        for name, workers, command in runs:
            wall, cpu, rss = measure(command)
            path = out / ("seed.tfrecord" if name.startswith("seed") else f"ours{workers}.tfrecord")
            instances = count_records(path)
            rows.append((corpus_name, corpus.stat().st_size / 1e6, dupe, name, workers, instances, wall, cpu, rss))
            print(f"{corpus_name} {name}: {instances} instances in {wall:.1f} s ({cpu:.1f} CPU s), "
                  f"peak RSS {rss:.0f} MB", file=sys.stderr, flush=True)
        ours = sorted(out.glob("ours*.tfrecord"))
        if len({p.read_bytes() for p in ours}) != 1:
            raise RuntimeError(f"outputs differ between worker counts: {ours}")
        for path in ours:
            path.unlink()

    load = os.getloadavg()[0]
    print(f"CPU: {cpu_name()} (load average {load:.1f} at the end: other jobs shared the machine); "
          f"max_seq_length {args.max_seq_length}, max_predictions_per_seq {args.max_predictions_per_seq}, "
          f"whole-word masking (jieba); ours with --work_unit_mb {args.work_unit_mb}\n")
    print("| corpus | MB | dupe | program | instances | wall s | instances/s | CPU s | instances/CPU-s "
          "| vs seed, per CPU-s | peak RSS MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    per_cpu = {(r[0], r[3]): r[5] / r[7] for r in rows}
    for corpus_name, mb, dupe, name, workers, instances, wall, cpu, peak in rows:
        ratio = per_cpu[(corpus_name, name)] / per_cpu[(corpus_name, "seed algorithm")]
        print(f"| {corpus_name} | {mb:.1f} | {dupe} | {name} | {instances:,} | {wall:.1f} | "
              f"{instances / wall:,.0f} | {cpu:.1f} | {instances / cpu:,.0f} | {ratio:.2f}x | {peak:,.0f} |")
    print()
    rss = {(r[0], r[3]): r[8] for r in rows}
    for name in sorted({r[3] for r in rows}):
        print(f"- {name}: peak RSS 10x/base = {rss[('10x', name)] / rss[('base', name)]:.2f}")
    wall = {(r[0], r[3]): r[6] for r in rows}
    cpu = {(r[0], r[3]): r[7] for r in rows}
    ws = sorted({r[4] for r in rows if r[3].startswith("ours")})
    if len(ws) > 1:
        one, many = f"ours, {ws[0]} worker(s)", f"ours, {ws[-1]} worker(s)"
        for corpus_name in ("base", "10x"):
            print(f"- {corpus_name}: {ws[-1]} workers vs {ws[0]}: wall-clock speed-up "
                  f"{wall[(corpus_name, one)] / wall[(corpus_name, many)]:.2f}x, CPU seconds "
                  f"{cpu[(corpus_name, many)] / cpu[(corpus_name, one)]:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
