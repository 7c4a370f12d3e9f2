"""Sentence vectors and sentence-pair similarities from an ALBERT checkpoint, in batches.

The original's similarity.py scored one pair per call; this reads a file and runs batches of ``--batch_size``:

* ``--input_format=lines``: one text a line -> one vector a line, written to each ``--output_file`` path
  (comma-separated): ``*.npy`` a float32 [N, H] array, ``*.jsonl`` / ``*.json`` JSON lines
  ``{"line": n, "text": ..., "vector": [...]}``. Every line is an input, a blank one included, so row i is line i+1.
* ``--input_format=pairs``: ``text_a \\t text_b`` a line -> one score a line (or JSON lines ``{"line", "text_a",
  "text_b", "score", "score_type"}`` for a ``*.jsonl`` output). ``--pair_score``: ``classifier`` scores the pair
  with a fine-tuned 2-label classifier head as one input ``[CLS] a [SEP] b [SEP]`` (the probability of label index
  1, what the original's similarity.py computed); ``cosine`` is the cosine of the two texts' vectors, each encoded
  alone; ``auto`` (default) takes ``classifier`` when the checkpoint has a 2-label head, else ``cosine``. Which one
  is computed is printed and recorded. A line without exactly one tab is an error naming the file and line.

Outputs are checked before anything is encoded (extension, folder), written batch by batch to temporary files
(memory does not grow with the input) and renamed to their names only when complete; a line that is not UTF-8 names
its file and line. Texts longer than ``--max_seq_length`` are truncated and counted.

Vectors: ``--pooling=cls`` is the pooler output (tanh dense layer on [CLS], what the classifier sees);
``--pooling=mean`` the mean of ``sequence_output`` over the real tokens ([CLS] and [SEP] included, padding not).
Each text is encoded on its own as ``[CLS] text [SEP]``, truncated to ``--max_seq_length``, and each batch is padded
only to its longest text.

  python extract_features.py --input_file=sentences.txt --output_file=vectors.npy,vectors.jsonl \
      --bert_config_file=albert_config/albert_config_tiny.json --vocab_file=albert_tiny_zh/vocab.txt \
      --init_checkpoint=albert_tiny_zh/ --pooling=mean
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Iterator, Sequence

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # before TF is imported; why: training.py

import numpy as np
import tensorflow as tf
from absl import app, flags

import classifier_data
import cli
import modeling
import tokenization

FLAGS = flags.FLAGS


def define_flags() -> None:
    """The CLI's flags; defined on demand so that importing this module (for SentenceEncoder) defines none."""
    flags.DEFINE_string("input_file", None, "Text file: one text a line, or text_a<TAB>text_b a line with pairs.")
    flags.DEFINE_string("output_file", None, "Output path(s), comma-separated: .npy and/or .jsonl (pairs: scores).")
    flags.DEFINE_enum("input_format", "lines", ["lines", "pairs"], "lines: vectors; pairs: cosine similarities.")
    flags.DEFINE_enum("pooling", "cls", ["cls", "mean"], "cls: pooled_output; mean: mean of sequence_output.")
    cli.define_model_flags("TF1 (albert_zh or Google) or TF2 checkpoint (also a fine-tuned one).",
                           "Tokens per text, [CLS] and [SEP] included.")
    flags.DEFINE_integer("batch_size", 32, "Texts per forward pass.")
    flags.DEFINE_enum("pair_score", "auto", ["auto", "cosine", "classifier"],
                      "pairs: classifier = P(label 1) of the checkpoint's 2-label head on [CLS] a [SEP] b [SEP]; "
                      "cosine = cosine of the two vectors; auto = classifier when the checkpoint has such a head.")
    flags.DEFINE_enum("classifier_pooling", "cls", list(modeling.CLASSIFIER_POOLINGS),
                      "The pooling the classifier was fine-tuned with (run_classifier.py's flag).")
    flags.mark_flags_as_required(["input_file", "output_file", "bert_config_file", "init_checkpoint"])


def read_inputs(path: str, pairs: bool) -> list[str] | list[tuple[str, str]]:
    """Every line of ``path`` (texts) or every line split at its one tab (pairs)."""
    lines = classifier_data.read_text_lines(path)  # a line that is not UTF-8 is an error naming it
    if not pairs:
        return lines
    out = []
    for number, line in enumerate(lines, start=1):
        parts = line.split("\t")
        if len(parts) != 2:
            raise classifier_data.DataFormatError(
                f"{path}:{number}: {len(parts)} tab-separated fields, expected 2 (text_a TAB text_b)")
        out.append((parts[0], parts[1]))
    return out


class SentenceEncoder:
    """An AlbertModel and a tokenizer; ``encode(texts)`` -> [N, H] float32 vectors."""

    def __init__(self, model: modeling.AlbertModel, tokenizer: tokenization.FullTokenizer, max_seq_length: int,
                 pooling: str = "cls"):
        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.tokenizer, self.max_seq_length, self.pooling = tokenizer, max_seq_length, pooling
        self.width = model.config.hidden_size
        spec = [tf.TensorSpec([None, None], tf.int32)] * 3

        @tf.function(input_signature=spec)  # one trace for every batch shape
        def forward(input_ids, input_mask, segment_ids):
            out = model({"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids},
                        training=False)
            if pooling == "cls":
                return out["pooled_output"]
            mask = tf.cast(input_mask, tf.float32)[:, :, None]
            return tf.reduce_sum(out["sequence_output"] * mask, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)

        self._forward = forward

    def batches(self, texts: Sequence[str], batch_size: int = 32) -> Iterator[tuple[np.ndarray, int]]:
        """(vectors [b, H], how many of the b texts were truncated) for each batch of ``texts``, in order."""
        return run_batches(self._forward, [(text, None) for text in texts], self.tokenizer, self.max_seq_length,
                           batch_size)

    def encode(self, texts: Sequence[str], batch_size: int = 32) -> np.ndarray:
        """[N, H] float32 vectors of ``texts``."""
        vectors = [v for v, _ in self.batches(texts, batch_size)]
        return np.concatenate(vectors) if vectors else np.zeros([0, 0], np.float32)


def run_batches(forward, pairs: Sequence[tuple[str, str | None]], tokenizer: tokenization.FullTokenizer,
                max_seq_length: int, batch_size: int) -> Iterator[tuple[np.ndarray, int]]:
    """(forward's float32 output, how many inputs were truncated) for each batch of ``pairs`` (text_b None: a single
    text), in order."""
    for begin in range(0, len(pairs), batch_size):
        features, truncated = pack(pairs[begin:begin + batch_size], tokenizer, max_seq_length)
        yield forward(*features).numpy().astype(np.float32), truncated


def pack(pairs: Sequence[tuple[str, str | None]], tokenizer: tokenization.FullTokenizer, max_seq_length: int
         ) -> tuple[np.ndarray, int]:
    """(input_ids, input_mask, segment_ids) [3, b, width] padded to the longest of the batch, and how many were
    truncated."""
    encoded = [classifier_data.encode_text(tokenizer, a, b, max_seq_length, pad=False) for a, b in pairs]
    width = max(len(ids) for ids, _, _, _ in encoded)
    features = np.zeros([3, len(encoded), width], np.int32)  # 0 = padding
    for row, (ids, mask, segments, _) in enumerate(encoded):
        features[:, row, :len(ids)] = (ids, mask, segments)
    return features, sum(cut for *_, cut in encoded)


class PairClassifier:
    """A fine-tuned 2-label classifier: ``batches(pairs)`` -> P(label index 1) of ``[CLS] a [SEP] b [SEP]``."""

    def __init__(self, model: modeling.AlbertClassifier, tokenizer: tokenization.FullTokenizer, max_seq_length: int):
        self.tokenizer, self.max_seq_length = tokenizer, max_seq_length

        @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32)] * 3)
        def forward(input_ids, input_mask, segment_ids):
            out = model({"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids},
                        training=False)
            return out["probabilities"][:, 1]

        self._forward = forward

    def batches(self, pairs: Sequence[tuple[str, str]], batch_size: int = 32) -> Iterator[tuple[np.ndarray, int]]:
        return run_batches(self._forward, pairs, self.tokenizer, self.max_seq_length, batch_size)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two [N, H] arrays (0 where a vector is all zeros)."""
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return np.where(norms > 0, np.sum(a * b, -1) / np.maximum(norms, 1e-30), 0.0).astype(np.float32)


def pair_similarities(encoder: SentenceEncoder, pairs: Sequence[tuple[str, str]], batch_size: int = 32
                      ) -> np.ndarray:
    """Cosine similarity of each pair's two vectors, each text encoded alone."""
    return np.concatenate([s for s, _ in cosine_batches(encoder, pairs, batch_size)] or [np.zeros([0], np.float32)])


def cosine_batches(encoder: SentenceEncoder, pairs: Sequence[tuple[str, str]], batch_size: int = 32
                   ) -> Iterator[tuple[np.ndarray, int]]:
    """(cosine similarities, truncated texts) per batch of pairs; a batch encodes its a's, then its b's."""
    for begin in range(0, len(pairs), batch_size):
        chunk = pairs[begin:begin + batch_size]
        (a, cut_a), = encoder.batches([x for x, _ in chunk], len(chunk))
        (b, cut_b), = encoder.batches([y for _, y in chunk], len(chunk))
        yield cosine(a, b), cut_a + cut_b


def load_encoder(config_file: str, init_checkpoint: str, tokenizer: tokenization.FullTokenizer, max_seq_length: int,
                 pooling: str, model_family: str | None = None) -> SentenceEncoder:
    """The backbone of ``init_checkpoint`` (any heads it has are reported as unused) behind a SentenceEncoder."""
    import checkpoints  # lazily, as the other CLIs

    config = modeling.AlbertConfig.from_json_file(config_file, model_family=model_family)
    config.check_sequence_length(max_seq_length, config_file)
    config = checkpoints.config_for_checkpoint(config, init_checkpoint)
    model = modeling.AlbertModel(config)
    model.build()
    checkpoints.load_checkpoint(model, init_checkpoint)
    return SentenceEncoder(model, tokenizer, max_seq_length, pooling)


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process is there
    except ProcessLookupError:
        return False
    except PermissionError:  # there, another user's
        return True
    return True


class OutputWriters:
    """The --output_file paths, written batch by batch to temporary files that get their names when all is written.

    ``.npy``: a float32 [N, width] array (an open_memmap, so rows go to disk as they come); ``.jsonl``/``.json``: one
    JSON record a line; any other name (scores only): one score a line. Local outputs are written beside their final
    name under a hidden temporary name; other file systems (gs://) get a local temporary file, copied when complete.
    A run that was killed leaves its hidden file; the next run for the same output removes it (``remove_stale``).
    """

    def __init__(self, paths: Sequence[str], scores: bool):
        self.paths, self.scores = list(paths), scores
        if not self.paths:
            raise ValueError("--output_file names no file")
        for path in self.paths:
            if not scores and not path.endswith((".npy", ".jsonl", ".json")):
                raise ValueError(f"--output_file: {path!r} should end in .npy or .jsonl for vectors")
            folder = os.path.dirname(path) or "."
            if not tf.io.gfile.isdir(folder):
                raise ValueError(f"--output_file: the folder of {path} does not exist; create it first")
            if "://" not in path and not os.access(folder, os.W_OK):
                raise ValueError(f"--output_file: cannot write in {folder} (permission denied)")
        for path in self.paths:
            if "://" not in path:
                for stale in self.remove_stale(path):
                    print(f"removed {stale}: a partial output of a run that was killed", flush=True)
        self._temps = {p: self._temp_name(p) for p in self.paths}
        self._files: dict[str, Any] = {}
        self._arrays: dict[str, np.ndarray] = {}

    @staticmethod
    def _temp_name(path: str) -> str:
        if "://" in path:
            handle, name = tempfile.mkstemp(suffix=os.path.splitext(path)[1])
            os.close(handle)
            return name
        folder, name = os.path.split(path)
        return os.path.join(folder, f".{name}.partial-{os.getpid()}")

    @staticmethod
    def remove_stale(path: str) -> list[str]:
        """Removes the temporary files (``_temp_name``) of ``path`` whose process is gone; returns their paths.

        Only ``.NAME.partial-PID`` beside ``path`` with PID no live process has: a killed run's, never one still
        being written (the pid of a live process, whatever it is, keeps its file)."""
        folder, name = os.path.split(path)
        prefix = f".{name}.partial-"
        removed = []
        for entry in os.listdir(folder or "."):
            pid = entry[len(prefix):]
            if entry.startswith(prefix) and pid.isdigit() and not _process_exists(int(pid)):
                os.remove(os.path.join(folder, entry))
                removed.append(os.path.join(folder, entry))
        return removed

    def open(self, count: int, width: int | None) -> None:
        for path, temp in self._temps.items():
            if path.endswith(".npy"):
                self._arrays[path] = np.lib.format.open_memmap(temp, mode="w+", dtype=np.float32,
                                                               shape=(count, width or 0))
            else:
                self._files[path] = open(temp, "w", encoding="utf-8")

    def write(self, start: int, records: Sequence[dict], values: np.ndarray) -> None:
        for path, array in self._arrays.items():
            array[start:start + len(values)] = values
        for path, f in self._files.items():
            if path.endswith((".jsonl", ".json")):
                f.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
            else:
                f.writelines(f"{float(score):.6f}\n" for score in values)

    def commit(self) -> None:
        for array in self._arrays.values():
            array.flush()
        self._arrays.clear()
        for f in self._files.values():
            f.close()
        self._files.clear()
        for path, temp in self._temps.items():
            if "://" in path:
                tf.io.gfile.copy(temp, path, overwrite=True)
                os.remove(temp)
            else:
                os.replace(temp, path)
            print(f"wrote {path}", flush=True)
        self._temps.clear()

    def abort(self) -> None:
        self._arrays.clear()
        for f in self._files.values():
            f.close()
        for temp in self._temps.values():
            if os.path.exists(temp):
                os.remove(temp)


def pair_scorer(kind: str, init_checkpoint: str, config_file: str, tokenizer: tokenization.FullTokenizer,
                max_seq_length: int, pooling: str, classifier_pooling: str, model_family: str | None):
    """(--pair_score resolved to 'classifier' or 'cosine', the batch scorer: pairs, batch_size -> batches)."""
    import checkpoints

    info = checkpoints.inspect_checkpoint(init_checkpoint)
    has_head = info.num_labels == 2 and not info.has_crf
    if kind == "auto":
        kind = "classifier" if has_head else "cosine"
    if kind == "classifier":
        if not has_head:
            raise ValueError(f"--pair_score=classifier needs a fine-tuned 2-label classifier head; {init_checkpoint} "
                             f"has {'none' if info.num_labels is None else f'{info.num_labels} labels'}: "
                             f"use --pair_score=cosine")
        model, _ = checkpoints.model_from_checkpoint(config_file, init_checkpoint, model_family=model_family,
                                                     num_labels=2, classifier_pooling=classifier_pooling)
        return kind, PairClassifier(model, tokenizer, max_seq_length).batches
    encoder = load_encoder(config_file, init_checkpoint, tokenizer, max_seq_length, pooling, model_family)
    return kind, lambda pairs, batch_size: cosine_batches(encoder, pairs, batch_size)


def main(_) -> None:
    if not FLAGS.vocab_file and not FLAGS.spm_model_file:
        raise app.UsageError("--vocab_file (or --spm_model_file) is required.")
    pairs = FLAGS.input_format == "pairs"
    outputs = OutputWriters([p.strip() for p in FLAGS.output_file.split(",") if p.strip()], scores=pairs)
    inputs = read_inputs(FLAGS.input_file, pairs)
    print(f"{len(inputs)} {'pairs' if pairs else 'texts'} from {FLAGS.input_file}", flush=True)
    tokenizer = tokenization.FullTokenizer(FLAGS.vocab_file, FLAGS.do_lower_case, FLAGS.spm_model_file,
                                           split_special_tokens=True)  # raw text makes no special ids
    if pairs:
        kind, batches = pair_scorer(FLAGS.pair_score, FLAGS.init_checkpoint, FLAGS.bert_config_file, tokenizer,
                                    FLAGS.max_seq_length, FLAGS.pooling, FLAGS.classifier_pooling, FLAGS.model_family)
        print(f"pair score: {kind}" + (" (P(label 1) of the checkpoint's classifier on [CLS] a [SEP] b [SEP])"
                                       if kind == "classifier" else f" (of the two --pooling={FLAGS.pooling} vectors)"),
              flush=True)
        width = None
    else:
        encoder = load_encoder(FLAGS.bert_config_file, FLAGS.init_checkpoint, tokenizer, FLAGS.max_seq_length,
                               FLAGS.pooling, FLAGS.model_family)
        batches, width = encoder.batches, encoder.width
    progress = cli.Progress(len(inputs), "pairs" if pairs else "texts")
    truncated, done = 0, 0
    outputs.open(len(inputs), width)
    try:
        for values, cut in batches(inputs, FLAGS.batch_size):
            chunk = inputs[done:done + len(values)]
            if pairs:
                records = [{"line": done + i + 1, "text_a": a, "text_b": b, "score": float(v), "score_type": kind}
                           for i, ((a, b), v) in enumerate(zip(chunk, values))]
            else:
                records = [{"line": done + i + 1, "text": text, "vector": [float(x) for x in v]}
                           for i, (text, v) in enumerate(zip(chunk, values))]
            outputs.write(done, records, values)
            done += len(values)
            truncated += cut
            progress.update(done)
        outputs.commit()
    except BaseException:
        outputs.abort()
        raise
    progress.update(done, force=True)
    if truncated:
        print(f"note: {truncated} of {len(inputs) * (2 if pairs and kind == 'cosine' else 1)} texts were longer than "
              f"--max_seq_length={FLAGS.max_seq_length} and were truncated", flush=True)


if __name__ == "__main__":
    define_flags()
    cli.list_all_flags_in_help()
    app.run(cli.clean_errors(main))
