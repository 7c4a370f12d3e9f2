"""Sentence vectors and sentence-pair similarities from an ALBERT checkpoint, in batches.

The seed's similarity.py scored one pair per call; this reads a file and runs batches of ``--batch_size``:

* ``--input_format=lines``: one text a line -> one vector a line, written to each ``--output_file`` path
  (comma-separated): ``*.npy`` a float32 [N, H] array, ``*.jsonl`` / ``*.json`` JSON lines
  ``{"line": n, "text": ..., "vector": [...]}``. Every line is an input, a blank one included, so row i is line i+1.
* ``--input_format=pairs``: ``text_a \\t text_b`` a line -> the cosine similarity of the two texts' vectors, one
  score a line (or JSON lines ``{"line", "text_a", "text_b", "score"}`` for a ``*.jsonl`` output). A line without
  exactly one tab is an error naming the file and line.

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
import time
from typing import Sequence

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")  # before TF is imported; why: training.py

import numpy as np
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
    flags.DEFINE_string("bert_config_file", None, "ALBERT config JSON.")
    flags.DEFINE_string("vocab_file", None, "WordPiece vocab the model was pretrained with.")
    flags.DEFINE_string("spm_model_file", None, "SentencePiece model (Google ALBERT); replaces --vocab_file.")
    flags.DEFINE_bool("do_lower_case", True, "Lower-case the text (True for the Chinese vocabs).")
    flags.DEFINE_string("init_checkpoint", None, "TF1 (albert_zh or Google) or TF2 checkpoint (also a fine-tuned one).")
    flags.DEFINE_enum("model_family", None, list(modeling.MODEL_FAMILIES), "Overrides the config's model family.")
    flags.DEFINE_integer("max_seq_length", 128, "Tokens per text, [CLS] and [SEP] included.")
    flags.DEFINE_integer("batch_size", 32, "Texts per forward pass.")
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
        import tensorflow as tf

        if pooling not in ("cls", "mean"):
            raise ValueError(f"pooling must be 'cls' or 'mean', got {pooling!r}")
        self.tokenizer, self.max_seq_length, self.pooling = tokenizer, max_seq_length, pooling
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

    def encode(self, texts: Sequence[str], batch_size: int = 32, progress: bool = False) -> np.ndarray:
        vectors, start = [], time.time()
        for begin in range(0, len(texts), batch_size):
            encoded = [classifier_data.encode_text(self.tokenizer, text, None, self.max_seq_length, pad=False)
                       for text in texts[begin:begin + batch_size]]
            width = max(len(ids) for ids, _, _, _ in encoded)
            batch = np.zeros([3, len(encoded), width], np.int32)  # input_ids, input_mask, segment_ids; 0 = padding
            for row, (ids, mask, segments, _) in enumerate(encoded):
                batch[:, row, :len(ids)] = (ids, mask, segments)
            vectors.append(self._forward(*batch).numpy())
            done = begin + len(encoded)
            if progress and (done == len(texts) or (begin // batch_size) % 50 == 49):
                print(f"  encoded {done}/{len(texts)} texts ({time.time() - start:.1f}s)", flush=True)
        if not vectors:
            return np.zeros([0, 0], np.float32)
        return np.concatenate(vectors).astype(np.float32)


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two [N, H] arrays (0 where a vector is all zeros)."""
    norms = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return np.where(norms > 0, np.sum(a * b, -1) / np.maximum(norms, 1e-30), 0.0).astype(np.float32)


def pair_similarities(encoder: SentenceEncoder, pairs: Sequence[tuple[str, str]], batch_size: int = 32,
                      progress: bool = False) -> np.ndarray:
    """Cosine similarity of each pair's two vectors. Both sides go through one encode call, a's then b's, so
    each batch holds texts of one kind."""
    vectors = encoder.encode([a for a, _ in pairs] + [b for _, b in pairs], batch_size, progress=progress)
    return cosine(vectors[:len(pairs)], vectors[len(pairs):])


def load_encoder(config_file: str, init_checkpoint: str, tokenizer: tokenization.FullTokenizer, max_seq_length: int,
                 pooling: str, model_family: str | None = None) -> SentenceEncoder:
    """The backbone of ``init_checkpoint`` (any heads it has are reported as unused) behind a SentenceEncoder."""
    import checkpoints  # lazily, as the other CLIs

    config = modeling.AlbertConfig.from_json_file(config_file, model_family=model_family)
    if max_seq_length > config.max_position_embeddings:
        raise ValueError(f"--max_seq_length={max_seq_length} exceeds max_position_embeddings "
                         f"({config.max_position_embeddings}) of {config_file}")
    config = checkpoints.config_for_checkpoint(config, init_checkpoint)
    model = modeling.AlbertModel(config)
    model.build()
    checkpoints.load_checkpoint(model, init_checkpoint)
    return SentenceEncoder(model, tokenizer, max_seq_length, pooling)


def write_outputs(paths: list[str], records: list[dict], array: np.ndarray) -> None:
    """``array`` to each .npy path; ``records`` (one dict per input) to each .jsonl/.json path; for pairs (1-D
    ``array``) any other path gets one score a line."""
    import tensorflow as tf

    for path in paths:
        if path.endswith(".npy"):
            with tf.io.gfile.GFile(path, "wb") as f:
                np.save(f, array)
        elif path.endswith((".jsonl", ".json")):
            with tf.io.gfile.GFile(path, "w") as f:
                for record in records:
                    f.write(json.dumps(record, ensure_ascii=False) + "\n")
        elif array.ndim == 1:
            with tf.io.gfile.GFile(path, "w") as f:
                f.write("".join(f"{float(score):.6f}\n" for score in array))
        else:
            raise ValueError(f"--output_file: {path!r} should end in .npy or .jsonl for vectors")
        print(f"wrote {path}", flush=True)


def main(_) -> None:
    if not FLAGS.vocab_file and not FLAGS.spm_model_file:
        raise app.UsageError("--vocab_file (or --spm_model_file) is required.")
    pairs = FLAGS.input_format == "pairs"
    inputs = read_inputs(FLAGS.input_file, pairs)
    print(f"{len(inputs)} {'pairs' if pairs else 'texts'} from {FLAGS.input_file}", flush=True)
    tokenizer = tokenization.FullTokenizer(FLAGS.vocab_file, FLAGS.do_lower_case, FLAGS.spm_model_file,
                                           split_special_tokens=True)  # raw text makes no special ids
    encoder = load_encoder(FLAGS.bert_config_file, FLAGS.init_checkpoint, tokenizer, FLAGS.max_seq_length,
                           FLAGS.pooling, FLAGS.model_family)
    paths = [p.strip() for p in FLAGS.output_file.split(",") if p.strip()]
    if pairs:
        scores = pair_similarities(encoder, inputs, FLAGS.batch_size, progress=True)
        records = [{"line": i + 1, "text_a": a, "text_b": b, "score": float(s)}
                   for i, ((a, b), s) in enumerate(zip(inputs, scores))]
        write_outputs(paths, records, scores)
    else:
        vectors = encoder.encode(inputs, FLAGS.batch_size, progress=True)
        records = [{"line": i + 1, "text": text, "vector": [float(x) for x in vector]}
                   for i, (text, vector) in enumerate(zip(inputs, vectors))]
        write_outputs(paths, records, vectors)


if __name__ == "__main__":
    define_flags()
    app.run(cli.clean_errors(main))
