# coding=utf-8
"""Creates ALBERT pre-training data: SOP sentence pairs with Chinese whole-word / n-gram masking.

Input: UTF-8 text files, one sentence a line, a blank line between documents.
Output: TFRecord files of `tf.train.Example`s with exactly the features the original
(brightmart/albert_zh) writes, so records from either script train in both:

  input_ids, input_mask, segment_ids           int64   [max_seq_length]
  masked_lm_positions, masked_lm_ids           int64   [max_predictions_per_seq]
  masked_lm_weights                            float32 [max_predictions_per_seq]
  next_sentence_labels                         int64   [1]   (SOP: 1 = segments swapped)

The parts, one concept per module:
  * pretraining_instances.py: sentences (tokenization, Chinese word grouping) and SOP instances (the Chinese
    whole-word masking and instance rules are described there);
  * masking.py: the masking rules, shared by this script (static masks) and run_pretraining.py's pipeline (dynamic);
  * tfrecord_io.py: tf.train.Example and TFRecord bytes, without TensorFlow;
  * work_units.py: work units, the worker pool and the output files (how a run is organised, and why);
  * this file: the flags, gs:// paths and the run.
"""

from __future__ import annotations

import glob
import os
import shutil
import sys
import tempfile
import time
import types
from pathlib import Path
from typing import Sequence

from absl import flags

import cli
from masking import (
    InstanceConfig,
    masking_record,
    masking_record_path,
    special_ids_from_vocab,
    write_masking_record,
)
from pretraining_instances import SEGMENTERS
from work_units import (
    DIVERSITY_WINDOW,
    PROG,
    InputError,
    Progress,
    RunConfig,
    Stats,
    make_temporary_dir,
    make_tokenizer,
    no_space,
    plan_work_units,
    remove_stale_temporaries,
    run_units,
    write_tfrecords,
)

# The feature names of the original's TFRecords, in the order the original writes them.
FEATURE_NAMES = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions",
                 "masked_lm_ids", "masked_lm_weights", "next_sentence_labels")
# --------------------------------------------------------------------------- flags



ALIASES = {"seed_wwm_labels": "wwm_subword_labels"}  # old flag name -> its name now


def define_flags(fv: flags.FlagValues) -> None:
    """The original's flags (same names, ``--flag=value`` or ``--flag value``) plus the new ones."""
    def string(name, default, help_text):
        flags.DEFINE_string(name, default, help_text, flag_values=fv)

    def integer(name, default, help_text):
        flags.DEFINE_integer(name, default, help_text, flag_values=fv)

    def boolean(name, default, help_text):
        flags.DEFINE_bool(name, default, help_text, flag_values=fv)

    string("input_file", None, "Input raw text file(s): comma-separated paths or globs.")
    string("output_file", None, "Output TFRecord file(s), comma-separated; instances are dealt round-robin.")
    string("vocab_file", None, "BERT vocab file (one token a line). Required unless --spm_model_file.")
    string("spm_model_file", None, "SentencePiece model (Google ALBERT); tokens and vocab then come from it.")
    boolean("do_lower_case", True, "Lower-case (and strip accents) before tokenizing.")
    boolean("do_whole_word_mask", False, "Mask whole words: jieba words for Chinese, ##-WordPieces with their word.")
    integer("max_seq_length", 128, "Maximum sequence length.")
    integer("max_predictions_per_seq", 20, "Maximum number of masked LM predictions per sequence.")
    integer("random_seed", 12345, "Random seed for data generation.")
    integer("dupe_factor", 10, "Number of passes over the data (each with different masks).")
    flags.DEFINE_float("masked_lm_prob", 0.15, "Masked LM probability.", flag_values=fv)
    flags.DEFINE_float("short_seq_prob", 0.1, "Probability of a target length shorter than the maximum.",
                       flag_values=fv)
    boolean("non_chinese", False, "The corpus is not Chinese: no jieba; whole words are ##-WordPiece groups only.")
    flags.DEFINE_enum("segmenter", "rjieba", list(SEGMENTERS),
                      "Chinese word segmenter for whole-word masking: rjieba (jieba-rs, the same words as jieba on "
                      "the CJK text it is given, ~13x faster) or jieba 0.42.1 (the reference).", flag_values=fv)
    integer("ngram", 1, "Mask spans of up to N whole words, p(n) ~ 1/n (ALBERT paper: 3).")
    boolean("favor_shorter_ngram", True,
            "p(n) ~ 1/n; false reverses the weights so that the longest n-grams are likeliest (upstream Google "
            "ALBERT's meaning; the original albert_zh's copy of Google's script inverted the flag).")
    boolean("wwm_subword_labels", False,
            "Whole-word masking: label the characters inside a Chinese word with their ##字 subword ids, as the "
            "original did (only to match an old run: the model never sees ##字 as input).")
    for alias, name in ALIASES.items():
        flags.DEFINE_alias(alias, name, flag_values=fv)
    flags.DEFINE_enum("masking", "static", ["static", "dynamic"],
                      "static: masked instances, --dupe_factor passes (the original's records); dynamic: each "
                      "instance unmasked, with its words marked (feature word_starts), for run_pretraining.py to "
                      "mask afresh every epoch, with the --masked_lm_prob, --ngram, --max_predictions_per_seq given "
                      "here (recorded in .OUTPUT.masking.json beside each output, with the vocab's sha256). The SOP "
                      "pairs (A/B split, swap label) are fixed at creation in both modes: --dupe_factor > 1 gives "
                      "dynamic records that many different pairs of each document, as static ones.",
                      flag_values=fv)
    integer("num_workers", 1, "Processes; the output does not depend on it.")
    flags.DEFINE_float("work_unit_mb", 1.0,
                       "Input is processed in units of about this many MB cut at blank lines; it sets the shuffle "
                       "scope and bounds memory (changing it changes the output).", flag_values=fv)
    integer("interleave_units", 32,
            "Records of this many work units alternate in the output, so that a stretch of records (a batch, a "
            "shuffle buffer) mixes text from across the corpus; memory holds that many units' records of one pass. "
            "1: each unit's records in one block (changing it changes the output).")
    flags.DEFINE_enum("decode_errors", "fail", ["fail", "skip"],
                      "A line that is not UTF-8: fail naming file and line, or skip and count it.", flag_values=fv)
    integer("log_examples", 1, "Print this many instances of the first unit to stderr.")
    flags.mark_flags_as_required(["input_file", "output_file"], flag_values=fv)




def parse_flags(argv: Sequence[str] | None = None) -> types.SimpleNamespace:
    """Parses and checks the flags (exits with status 2 and a usage message on a bad value)."""
    fv = cli.parse_flags(argv, define_flags, __doc__)
    args = types.SimpleNamespace(**{k: v for k, v in fv.flag_values_dict().items() if k not in ALIASES})
    checks = [
        (bool(args.vocab_file or args.spm_model_file), "--vocab_file is required (or --spm_model_file)"),
        (args.max_seq_length >= 5, "--max_seq_length must be >= 5 ([CLS] A [SEP] B [SEP])"),
        (args.max_predictions_per_seq >= 1, "--max_predictions_per_seq must be >= 1"),
        (0.0 < args.masked_lm_prob < 1.0, "--masked_lm_prob must be in (0, 1)"),
        (0.0 <= args.short_seq_prob <= 1.0, "--short_seq_prob must be in [0, 1]"),
        (args.dupe_factor >= 1, "--dupe_factor must be >= 1"),
        (args.ngram >= 1, "--ngram must be >= 1"),
        (args.num_workers >= 1, "--num_workers must be >= 1"),
        (args.work_unit_mb > 0, "--work_unit_mb must be > 0"),
        (args.interleave_units >= 1, "--interleave_units must be >= 1"),
        (not (args.masking == "dynamic" and args.wwm_subword_labels),
         "--wwm_subword_labels needs --masking=static: dynamic masking labels each token with its input id"),
    ]
    for ok, message in checks:
        if not ok:
            cli.usage_error(message, PROG)
    return args


PATH_FLAGS = ("input_file", "output_file", "vocab_file", "spm_model_file")


def run_with_remote_paths(args: types.SimpleNamespace) -> Stats:
    """``run`` for gs:// (or any TensorFlow file system) paths: remote inputs and vocab are copied to a local staging
    folder (the workers read byte ranges of local files in parallel), outputs are written there and uploaded when
    complete, under a temporary name renamed at the end. Only this path imports TensorFlow (for tf.io.gfile)."""
    import tensorflow as tf

    staging = tempfile.mkdtemp(prefix=".create_pretraining_data-remote-")
    local = types.SimpleNamespace(**vars(args))

    def fetch(path: str, index: int) -> str:
        target = os.path.join(staging, f"in{index:05d}-{os.path.basename(path)}")
        try:
            tf.io.gfile.copy(path, target, overwrite=True)
        except tf.errors.OpError as err:
            raise InputError(f"cannot read {path}: {err.message.splitlines()[0]}") from None
        return target

    def remote_matches(pattern: str) -> list[str]:
        try:
            matched = sorted(tf.io.gfile.glob(pattern))
        except tf.errors.OpError as err:
            raise InputError(f"--input_file: cannot list {pattern}: {err.message.splitlines()[0]}") from None
        if not matched:
            raise InputError(f"--input_file: no file matches {pattern!r} (or it cannot be reached)")
        return matched

    try:
        inputs: list[str] = []
        for pattern in (p.strip() for p in args.input_file.split(",") if p.strip()):
            inputs += [fetch(p, len(inputs) + i) for i, p in enumerate(remote_matches(pattern))] \
                if "://" in pattern else [pattern]
        local.input_file = ",".join(inputs)
        for flag in ("vocab_file", "spm_model_file"):
            value = getattr(args, flag)
            if value and "://" in value:
                setattr(local, flag, fetch(value, 99999))
        uploads: list[tuple[str, str]] = []
        outputs = []
        for index, name in enumerate(o.strip() for o in args.output_file.split(",") if o.strip()):
            if "://" not in name:
                outputs.append(name)
                continue
            folder = name.rsplit("/", 1)[0]
            try:
                tf.io.gfile.makedirs(folder)
            except tf.errors.OpError as err:
                raise InputError(f"--output_file: cannot write to {folder}: {err.message.splitlines()[0]}") from None
            staged = os.path.join(staging, "out", f"{index}-{os.path.basename(name)}")
            outputs.append(staged)
            uploads.append((staged, name))
        local.output_file = ",".join(outputs)
        stats = run(local)
        for staged, remote in uploads:
            folder, base = remote.rsplit("/", 1)
            partial = f"{folder}/.{base}.partial-{os.getpid()}"
            tf.io.gfile.copy(staged, partial, overwrite=True)
            tf.io.gfile.rename(partial, remote, overwrite=True)
            print(f"[{PROG}] uploaded {remote}", file=sys.stderr, flush=True)
            if os.path.exists(masking_record_path(staged)):  # dynamic records' settings, beside them
                tf.io.gfile.copy(masking_record_path(staged), masking_record_path(remote), overwrite=True)
        return stats
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def expand_input_files(patterns: str) -> list[str]:
    """Comma-separated paths/globs -> files (each glob sorted, so the order is reproducible)."""
    files: list[str] = []
    for pattern in (p.strip() for p in patterns.split(",")):
        if not pattern:
            continue
        matches = sorted(glob.glob(pattern))
        if not matches:
            raise InputError(f"--input_file: no file matches {pattern!r}")
        files.extend(m for m in matches if os.path.isfile(m))
    if not files:
        raise InputError("--input_file names no files")
    return files


def summary_lines(stats: Stats, seconds: float, num_units: int, num_workers: int,
                  output_files: Sequence[str]) -> list[str]:
    """Human-readable end-of-run summary."""
    tokens, masked = max(stats.tokens, 1), max(stats.masked, 1)
    lines = [
        f"input: {stats.input_bytes / 1e6:,.2f} MB in {num_units} work unit(s), {num_workers} worker(s)",
        f"documents: {stats.documents:,}  sentences: {stats.sentences:,}  "
        f"skipped non-UTF-8 lines: {stats.skipped_lines:,}",
        f"instances: {stats.instances:,}  tokens: {stats.tokens:,} "
        f"({stats.tokens / max(stats.instances, 1):.1f} per instance)",
        (f"masked: {stats.masked:,} tokens = {stats.masked / tokens:.2%} of tokens; "
         f"[MASK] {stats.masked_mask / masked:.1%}, kept {stats.masked_keep / masked:.1%}, "
         f"random {stats.masked_random / masked:.1%}") if stats.masked else
        "masked: none (--masking=dynamic: run_pretraining.py masks every epoch afresh)",
        f"SOP: {stats.swapped / max(stats.instances, 1):.2%} swapped (label 1)",
        f"single-sentence documents (cut in two): {stats.single_sentence_documents:,}; "
        f"one-token documents (no instance): {stats.one_token_documents:,}; "
        f"documents cut at a work-unit boundary: {stats.documents_split_at_unit:,}",
        f"batch diversity: {stats.units_per_window:.1f} work units (places in the corpus) per {DIVERSITY_WINDOW:,} "
        f"consecutive records ({num_units} units in all)",
        f"lines longer than an instance holds: {stats.long_sentences:,} "
        f"({stats.long_sentence_tokens_lost:,} tokens past the limit dropped"
        f"{'; put one sentence on each line' if stats.long_sentences else ''})",
        f"seconds: {seconds:,.1f} ({stats.instances / max(seconds, 1e-9):,.0f} instances/s)",
        f"output: {', '.join(output_files)}",
    ]
    return lines


def run(args: types.SimpleNamespace) -> Stats:
    """Creates the output files; returns the statistics.

    Raises:
      InputError: bad input files, vocabulary or corpus.
    """
    if any("://" in (getattr(args, flag) or "") for flag in PATH_FLAGS):
        return run_with_remote_paths(args)
    started = time.monotonic()
    input_files = expand_input_files(args.input_file)
    output_files = [o.strip() for o in args.output_file.split(",") if o.strip()]
    if not output_files or len(set(output_files)) != len(output_files):
        raise InputError("--output_file must name distinct files")
    protected = {Path(p).resolve(): "an --input_file" for p in input_files}
    for flag in ("vocab_file", "spm_model_file"):
        if getattr(args, flag):
            protected[Path(getattr(args, flag)).resolve()] = f"the --{flag}"
    for name in output_files:
        if Path(name).resolve() in protected:
            raise InputError(f"--output_file={name} is {protected[Path(name).resolve()]}: writing it would replace "
                             f"that file with TFRecords; name another output file")
    # Check the vocabulary here, before any worker starts.
    tokenizer = make_tokenizer(args.vocab_file, args.do_lower_case, args.spm_model_file)
    try:
        special_ids_from_vocab(tokenizer.vocab, args.spm_model_file or args.vocab_file)
    except ValueError as err:
        raise InputError(str(err)) from None
    units = plan_work_units(input_files, max(1, int(args.work_unit_mb * (1 << 20))))
    if not units:
        raise InputError(f"the input is empty: {', '.join(input_files)}")
    output_dirs = list(dict.fromkeys(str(Path(name).resolve().parent) for name in output_files))
    for directory in output_dirs:
        Path(directory).mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(directory)
    # Hidden folders next to the outputs (same file system, so the final rename is atomic), where no glob for
    # the outputs can match a partial file.
    tmp_dirs = {directory: make_temporary_dir(directory) for directory in output_dirs}
    tmp_dir = tmp_dirs[output_dirs[0]]
    cfg = InstanceConfig(args.max_seq_length, args.max_predictions_per_seq, args.masked_lm_prob,
                         args.short_seq_prob, args.do_whole_word_mask, args.ngram,
                         args.favor_shorter_ngram, dynamic=args.masking == "dynamic")
    config = RunConfig(
        vocab_file=args.vocab_file, spm_model_file=args.spm_model_file, do_lower_case=args.do_lower_case,
        use_jieba=(args.do_whole_word_mask or args.wwm_subword_labels) and not args.non_chinese,
        wwm_subword_labels=args.wwm_subword_labels and not args.non_chinese, instance=cfg,
        dupe_factor=args.dupe_factor, random_seed=args.random_seed, decode_errors=args.decode_errors,
        tmp_dir=tmp_dir, log_examples=args.log_examples, segmenter=args.segmenter)
    print(f"[{PROG}] {len(input_files)} input file(s), {len(units)} work unit(s), "
          f"{args.num_workers} worker(s) -> {', '.join(output_files)}", file=sys.stderr, flush=True)
    total_mb = sum(u.end - u.start for u in units) / 1e6
    progress = Progress(total_mb, "MB")
    try:
        try:
            ordered, stats = run_units(units, config, args.num_workers, progress)
        except OSError as err:  # the units' temporary records, beside the outputs, need about as much disk
            written = sum(f.stat().st_size for d in tmp_dirs.values() for f in Path(d).rglob("*") if f.is_file())
            full = no_space(err, output_files[0], None, written)
            if full is None:
                raise
            raise full from None
        progress.update(total_mb, stats.instances, "reading and masking", force=True)
        if stats.documents == 0:
            raise InputError(f"no sentences in {', '.join(input_files)} "
                             f"(expected one sentence a line, blank lines between documents)")
        if stats.instances == 0:
            raise InputError("the corpus gave no instances (every document has a single token)")
        for text in ordered[0].examples:  # the first unit's
            print(f"[{PROG}] *** Example ***\n{text}", file=sys.stderr)
        diversity = write_tfrecords(ordered, output_files, args.dupe_factor, args.random_seed, tmp_dirs,
                                    args.interleave_units)
        stats.units_per_window = diversity.mean
        write_masking_records(output_files, cfg, args.spm_model_file or args.vocab_file, bool(args.spm_model_file))
    finally:
        for directory in tmp_dirs.values():
            shutil.rmtree(directory, ignore_errors=True)
    for line in summary_lines(stats, time.monotonic() - started, len(units), args.num_workers, output_files):
        print(f"[{PROG}] {line}", file=sys.stderr)
    return stats


def write_masking_records(output_files: Sequence[str], cfg: InstanceConfig, vocab_file: str,
                          spm_model: bool = False) -> None:
    """Dynamic records: writes each output's masking settings file (masking.masking_record_path), which
    run_pretraining.py checks the vocab against and takes its masking defaults from. Static records: removes a
    settings file an earlier dynamic run left for the same name, which would no longer describe it."""
    for name in output_files:
        if cfg.dynamic:
            write_masking_record(name, masking_record(cfg, vocab_file, spm_model))
        elif os.path.exists(masking_record_path(name)):
            os.remove(masking_record_path(name))


def main(argv: Sequence[str] | None = None) -> int:
    """CLI entry point; returns the exit status."""
    args = parse_flags(argv)
    try:
        run(args)
    except InputError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(cli.clean_errors(main)())
