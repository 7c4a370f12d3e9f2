"""Exports a checkpoint for serving: a TF SavedModel, a LiteRT flatbuffer (fp32 or dynamic-range int8) or ONNX.

    python export_model.py --bert_config_file=albert_config/albert_config_tiny.json \\
        --init_checkpoint=output/lcqmc/best --num_labels=2 --max_seq_length=128 \\
        --export_dir=export/lcqmc_litert --format=litert --quantize=dynamic_int8
    python export_model.py --bert_config_file=albert_config/albert_config_tiny.json \\
        --init_checkpoint=output/cmrc2018/best --span_extraction --max_seq_length=512 \\
        --export_dir=export/cmrc2018_onnx --format=onnx

Every format has the SavedModel's interface: inputs ``input_ids``, ``input_mask``, ``segment_ids`` (int32 [B,T]),
outputs ``pooled_output`` [B,H], ``sequence_output`` [B,T,H] and, per head:

* a run_classifier.py classifier: ``logits`` and ``probabilities`` [B,C];
* a run_ner.py tagger (``--token_classification``, implied by a CRF or ``--tag_list_file``): ``logits`` and
  ``probabilities`` [B,T,K], ``tags`` [B,T] int32;
* a run_mrc.py span extractor (``--span_extraction``; its head is stored as a 2-label classifier's, so only the
  flag tells them apart): ``start_logits`` and ``end_logits`` [B,T], for inputs laid out as ``[CLS] question
  [SEP] context [SEP]`` with segment id 1 from the context on, and -10000 outside [CLS] and the context pieces
  (mrc_data.py decodes them; SQuAD v2's null score is their sum at position 0).

The formats (export_saved_model.py describes the SavedModel itself):

* ``--format=saved_model``: ``EXPORT_DIR`` is the SavedModel (``serving_default``). ``--with_tokenizer
  --vocab_file=... [--do_lower_case=false]`` adds ``serving_text(text_a)`` and ``serving_text_pair(text_a, text_b)``,
  which take raw UTF-8 strings and tokenize inside the graph (graph_tokenizer.py; core TF ops only, so TF Serving
  needs nothing else); after export their ids are checked against the Python tokenizer on sample texts. A long
  text costs what a short one does: it is cut after its first max_seq_length words, which leaves its features
  exactly those of the whole text; one whose first max_seq_length words do not lie within its first
  ``max_seq_length * 101`` characters (long runs of spaces, words of over 100 characters) fails naming the row,
  as invalid UTF-8 does. A tagger's text signatures tag words: ``label_mask`` marks each word's first piece, and
  ``tags`` is 0 on ``##`` pieces (export_saved_model.py).
  For a span extractor, ``serving_text_pair(text_a=question, text_b=context)`` packs the pair as BERT does,
  ``[CLS] question [SEP] context [SEP]`` with segment id 1 from the context's first piece to the final [SEP]:
  the layout the span head reads, and run_mrc.py's first window (mrc_data.MrcEncoder) exactly when the question
  has at most min(max_query_length, ceil((max_seq_length - 3) / 2)) pieces. There is no window striding in the
  graph: a longer pair is cut longest-first (the context loses its tail, and a question longer than half the room
  its own tail).
  The logits index pieces, not characters: cutting the answer from the context needs the pieces' character
  offsets (``tokenization.FullTokenizer.tokenize_with_offsets``), so for long contexts or answer text, tokenize
  in the app with mrc_data.MrcEncoder and call ``serving_default`` per window.
* ``--format=litert``: ``EXPORT_DIR/model.tflite``, converted from that SavedModel with LiteRT's built-in ops only
  (the Flex delegate is gone from ai_edge_litert and TF 2.20+), one signature ``serving_default`` with the names
  above, any batch and length up to ``max_seq_length``; a tagger's Viterbi loop needs static shapes there, so a
  LiteRT tagger takes [1, max_seq_length]. ``--quantize=dynamic_int8`` stores weights as int8 (activations stay
  float): about 4× smaller; ``--quantize=float16`` stores them as float16: half the size (CPU kernels compute in
  float32; GPU delegates can compute in float16).
* ``--format=onnx``: ``EXPORT_DIR/model.onnx`` by tf2onnx (pinned 1.17.0, run as ``python -m tf2onnx.convert`` on
  the SavedModel: its ``from_keras`` does not work under Keras 3), opset 17. ``--quantize=dynamic_int8`` runs
  onnxruntime's ``quantize_dynamic`` on it; ``--quantize=float16`` converts its weights and arithmetic to float16
  (inputs and outputs keep their types): for GPU providers; ONNX Runtime's CPU one runs it at 0.77× fp32.

After writing, the file is loaded with its own runtime (ai_edge_litert, onnxruntime) and run on a check batch
next to the SavedModel; the largest difference of each output is printed, and NaN or a float difference above
1e-3 (fp32) is an error, as are decisions that differ: a tagger's ``tags`` (on the real tokens) and a classifier's
argmax must all be equal in fp32 and at least 99 % equal with int8 or float16 weights. So a broken export never
gets its final name. Files are written under a temporary name and renamed when complete. The runtimes come from
requirements-export.txt.
"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf
from absl import flags

import checkpoints
import cli
import export_saved_model
import graph_tokenizer
import modeling
import ner_data

FORMATS = ("saved_model", "litert", "onnx")
QUANTIZATIONS = ("none", "dynamic_int8", "float16")
FP32_TOLERANCE = 1e-3  # outputs of a float export may differ from the SavedModel's by rounding only
QUANTIZED_SUFFIX = ".quantized"  # to_onnx writes the quantized model here, then renames it over the float one
INT8_AGREEMENT = 0.99  # tags and classifier argmax of an int8 or float16 export that must equal the SavedModel's
ONNX_OPSET = 17


def check_inputs(max_seq_length: int, vocab_size: int, batch: int = 2, seed: int = 0,
                 pair: bool = False) -> dict[str, np.ndarray]:
    """A batch of token ids with padding, for comparing an export with its SavedModel.

    pair: segment id 1 from a quarter of the length on (a span extractor's context; without it every logit but
    [CLS]'s would be the masked constant, and the comparison would test nothing)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab_size, size=(batch, max_seq_length)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[-1, max_seq_length // 2:] = 0  # the last row is padded
    ids[mask == 0] = 0
    ids[:, 0] = 2
    segments = np.zeros_like(ids)
    if pair:
        segments[:, max(1, max_seq_length // 4):] = 1
        segments *= mask
    return {"input_ids": ids, "input_mask": mask, "segment_ids": segments}


def saved_model_outputs(saved_model_dir: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    serve = tf.saved_model.load(saved_model_dir).signatures["serving_default"]
    return {k: v.numpy() for k, v in serve(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def to_litert(saved_model_dir: str, quantize: str) -> bytes:
    """SavedModel -> LiteRT flatbuffer, built-in ops only."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model_dir, signature_keys=["serving_default"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    if quantize == "dynamic_int8":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # dynamic range: int8 weights, float activations
    elif quantize == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]  # float16 weights; CPUs compute in float32
    return converter.convert()


def run_litert(path: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=path).get_signature_runner("serving_default")
    return runner(**inputs)


def litert_ops(path: str) -> set[str]:
    """The operator names a LiteRT file uses (custom and Flex ops included, by name)."""
    from ai_edge_litert.interpreter import Interpreter

    return {op["op_name"] for op in Interpreter(model_path=path)._get_ops_details()}


def to_onnx(saved_model_dir: str, path: str, quantize: str) -> None:
    """SavedModel -> ONNX by the tf2onnx CLI (its Python from_keras is broken under Keras 3)."""
    done = subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--saved-model", saved_model_dir,
                           "--signature_def", "serving_default", "--opset", str(ONNX_OPSET), "--output", path],
                          capture_output=True, text=True)
    if done.returncode != 0 or not os.path.exists(path):
        raise RuntimeError(f"tf2onnx could not convert {saved_model_dir}:\n{done.stderr[-3000:]}")
    quantized = path + QUANTIZED_SUFFIX
    if quantize == "dynamic_int8":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(path, quantized, weight_type=QuantType.QInt8)
        os.replace(quantized, path)
    elif quantize == "float16":
        import onnx
        from onnxruntime.transformers.float16 import convert_float_to_float16

        # Inputs and outputs keep their types (int32 ids, float32 logits): callers feed and read the same arrays.
        onnx.save(convert_float_to_float16(onnx.load(path), keep_io_types=True), quantized)
        os.replace(quantized, path)


def run_onnx(path: str, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    import onnxruntime

    session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(None, inputs)))


def compare(name: str, ours: dict[str, np.ndarray], reference: dict[str, np.ndarray], quantize: str,
            input_mask: np.ndarray | None = None) -> tuple[dict[str, float], dict[str, float]]:
    """(largest absolute difference per float output, agreement of the decisions) of an export with its SavedModel.

    The decisions are a tagger's ``tags`` and a classifier's argmax (``logits`` [B,C]), as fractions equal to the
    SavedModel's (tags on the real tokens, ``input_mask``). ValueError, naming the output and what was found, on a
    missing output, NaN or Inf; in fp32 on a difference above FP32_TOLERANCE or any other decision; with int8
    weights on decisions that agree less than INT8_AGREEMENT (rounding may flip a near tie, not more)."""
    if set(ours) != set(reference):
        raise ValueError(f"{name}: outputs {sorted(ours)} but the SavedModel has {sorted(reference)}")
    diffs, agreement = {}, {}
    for key, ref in reference.items():
        value = np.asarray(ours[key])
        if key == "tags":
            real = np.ones(ref.shape, bool) if input_mask is None else np.asarray(input_mask, bool)
            agreement[key] = float((value == ref)[real].mean()) if real.any() else 1.0
            continue
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            raise ValueError(f"{name}: output {key} holds NaN or Inf")
        diffs[key] = float(np.max(np.abs(value.astype(np.float64) - ref.astype(np.float64)))) if ref.size else 0.0
    if "logits" in reference and reference["logits"].ndim == 2 and "start_logits" not in reference:
        agreement["argmax"] = float((np.asarray(ours["logits"]).argmax(-1) == reference["logits"].argmax(-1)).mean())
    worst = {k: v for k, v in diffs.items() if v > FP32_TOLERANCE}
    if quantize == "none" and worst:
        raise ValueError(f"{name}: outputs differ from the SavedModel's by {worst} (more than {FP32_TOLERANCE})")
    needed = 1.0 if quantize == "none" else INT8_AGREEMENT
    for key, found in agreement.items():
        if found < needed:
            what = "tags" if key == "tags" else "argmax of logits"
            raise ValueError(f"{name}: {what} equal the SavedModel's on {found:.1%} of the check batch "
                             f"({quantize}: needs {needed:.0%})")
    return diffs, agreement


CHECK_TEXTS = ("这家酒店的服务很好，下次还来。", "Hello, WORLD! Café 3.14 😀", "",
               "北京欢迎你" * 40, "[SEP] literal [MASK] text\u3000全角　空格")


def check_text_signatures(export_dir: str, tokenizer: graph_tokenizer.GraphTokenizer, vocab_file: str,
                          do_lower_case: bool) -> None:
    """The exported text signatures give run_classifier.py's features for CHECK_TEXTS, alone and as pairs."""
    import classifier_data
    import tokenization

    python = tokenization.FullTokenizer(vocab_file, do_lower_case=do_lower_case, split_special_tokens=True)
    loaded = tf.saved_model.load(export_dir)
    a, b = list(CHECK_TEXTS), list(CHECK_TEXTS[::-1])
    for out, pairs in ((loaded.signatures["serving_text"](text_a=tf.constant(a)), [None] * len(a)),
                       (loaded.signatures["serving_text_pair"](text_a=tf.constant(a), text_b=tf.constant(b)), b)):
        for i, (text_a, text_b) in enumerate(zip(a, pairs)):
            want = classifier_data.encode_text(python, text_a, text_b, tokenizer.max_seq_length)[0]
            if out["input_ids"][i].numpy().tolist() != want:
                raise ValueError(f"{export_dir}: serving_text gives other ids than the Python tokenizer for "
                                 f"{text_a!r} / {text_b!r}")


def export(model, export_dir: str, fmt: str, max_seq_length: int, quantize: str = "none",
           tokenizer: graph_tokenizer.GraphTokenizer | None = None) -> str:
    """Writes ``model`` (built and loaded) in ``fmt`` under ``export_dir``; returns the path written.

    ``tokenizer`` (SavedModel only) adds the text signatures."""
    if fmt not in FORMATS:
        raise ValueError(f"--format={fmt!r}: expected one of {', '.join(FORMATS)}")
    if quantize not in QUANTIZATIONS:
        raise ValueError(f"--quantize={quantize!r}: expected one of {', '.join(QUANTIZATIONS)}")
    if tokenizer is not None and fmt != "saved_model":
        raise ValueError(f"--with_tokenizer needs --format=saved_model: {fmt} has no string ops for the "
                         f"tokenizer; tokenize in the app (tokenization.py) and feed ids")
    if fmt == "saved_model":
        if quantize != "none":
            raise ValueError("--quantize applies to --format=litert and onnx; a SavedModel keeps float weights")
        export_saved_model.export_saved_model(model, export_dir, max_seq_length, tokenizer=tokenizer)
        return export_dir
    os.makedirs(export_dir, exist_ok=True)
    tagger = isinstance(model, modeling.AlbertTokenClassifier)
    static = (1, max_seq_length) if fmt == "litert" and tagger else None
    with tempfile.TemporaryDirectory(dir=export_dir, prefix=".saved_model.") as staging:
        export_saved_model.export_saved_model(model, staging, max_seq_length, static_shape=static)
        albert, _ = checkpoints.split_model(model)
        inputs = check_inputs(max_seq_length, albert.config.vocab_size, batch=1 if static else 2,
                              pair=isinstance(model, modeling.AlbertSpanExtractor))
        reference = saved_model_outputs(staging, inputs)
        final = os.path.join(export_dir, "model.tflite" if fmt == "litert" else "model.onnx")
        partial = final + ".partial"
        size = None  # bytes of the file being written: the flatbuffer's, or about the float weights' (ONNX)
        try:
            if fmt == "litert":
                flatbuffer = to_litert(staging, quantize)
                size = len(flatbuffer)
                with open(partial, "wb") as f:
                    f.write(flatbuffer)
                outputs = run_litert(partial, inputs)
            else:
                to_onnx(staging, partial, quantize)
                outputs = run_onnx(partial, inputs)
            diffs, agreement = compare(final, outputs, reference, quantize, inputs["input_mask"])
            os.replace(partial, final)
        except BaseException as err:
            # Any failure (a full disk, a converter or runtime error, NaN, Ctrl-C) leaves no partial file behind.
            for path in (partial, partial + QUANTIZED_SUFFIX):  # to_onnx quantizes into the second
                if os.path.exists(path):
                    os.remove(path)
            if (isinstance(err, OSError) and err.errno == errno.ENOSPC) or "No space left on device" in str(err):
                size = size or sum(v.numpy().nbytes for v in model.variables)
                raise RuntimeError(f"no space left to write {final} ({size / 1e6:.1f} MB): free space in {export_dir} "
                                   f"or use another --export_dir") from None
            raise
    print(f"wrote {final} ({os.path.getsize(final) / 1e6:.1f} MB, {quantize}); largest difference from the "
          f"SavedModel on a check batch: " + ", ".join(f"{k} {v:.2g}" for k, v in sorted(diffs.items()))
          + "".join(f"; {k} equal on {v:.1%}" for k, v in sorted(agreement.items())))
    return final


def define_flags(fv: flags.FlagValues) -> None:
    """export_model.py's flags, on ``fv`` (see cli.parse_flags)."""
    cli.define_model_flags("Checkpoint prefix or directory (TF1 or ours).",
                           "The exported model's sequence length (at most max_position_embeddings).", flag_values=fv)
    flags.DEFINE_string("export_dir", None, "Where the export goes (the SavedModel, model.tflite or model.onnx).",
                        flag_values=fv)
    flags.DEFINE_enum("format", "saved_model", list(FORMATS), "What to export.", flag_values=fv)
    flags.DEFINE_enum("quantize", "none", list(QUANTIZATIONS), "dynamic_int8: int8 weights (LiteRT, ONNX); "
                      "float16: float16 weights (half the size; on CPUs LiteRT computes in float32 at float32's "
                      "speed, ONNX Runtime is slower than float32).",
                      flag_values=fv)
    flags.DEFINE_enum("mixed_precision", "none", ["none", "bf16"], "SavedModel only: bf16 builds the model under "
                      "Keras' mixed_bfloat16 policy (matmuls in bf16; LayerNorm, softmax and the outputs in float32): "
                      "1.6x float32's throughput at batch 32 on CPUs with avx512_bf16 or AMX, no faster at batch 1, "
                      "slower on CPUs without them.", flag_values=fv)
    flags.DEFINE_integer("num_labels", None, "Classifier labels or tagger tags; 0 = backbone only; default: what "
                         "the checkpoint holds.", flag_values=fv)
    flags.DEFINE_enum("classifier_pooling", "cls", list(modeling.CLASSIFIER_POOLINGS),
                      "The pooling the classifier was fine-tuned with (run_classifier.py's flag).", flag_values=fv)
    flags.DEFINE_bool("token_classification", False, "A run_ner.py tagger (implied by a CRF in the checkpoint).",
                      flag_values=fv)
    flags.DEFINE_string("tag_list_file", None, "run_ner.py's tag_list.txt: decode under its BIO constraints (as "
                        "run_ner.py does).", flag_values=fv)
    flags.DEFINE_bool("span_extraction", False, "A run_mrc.py model: outputs start_logits, end_logits (its head is "
                      "stored as a 2-label classifier's, so this flag tells them apart).", flag_values=fv)
    flags.DEFINE_bool("with_tokenizer", False, "SavedModel only: add serving_text(text_a) / "
                      "serving_text_pair(text_a, text_b), which take raw UTF-8 text and tokenize in the graph "
                      "(needs --vocab_file). Each text is cut after its first max_seq_length words before "
                      "tokenizing (the features stay exactly the whole text's); a text whose first max_seq_length "
                      "words do not lie within its first max_seq_length * 101 characters, or that is not valid "
                      "UTF-8, is an error naming the row.", flag_values=fv)
    flags.mark_flags_as_required(["bert_config_file", "init_checkpoint", "export_dir"], flag_values=fv)


def parse_flags(argv: list[str] | None = None) -> flags.FlagValues:
    """Parses and checks the flags (exit status 2 with ``PROG: error: ...`` when they do not fit together)."""
    fv = cli.parse_flags(argv, define_flags, __doc__)
    cli.check_head_flags(fv)
    if fv.with_tokenizer:
        if fv.spm_model_file:
            cli.usage_error("--with_tokenizer tokenizes with a WordPiece --vocab_file only: a SentencePiece model "
                            "(--spm_model_file) has no in-graph tokenizer here; tokenize in the app and feed ids")
        if not fv.vocab_file:
            cli.usage_error("--with_tokenizer needs --vocab_file")
        if fv.format != "saved_model":
            cli.usage_error(f"--with_tokenizer needs --format=saved_model (not {fv.format}): LiteRT and ONNX have no "
                            f"string ops for it; tokenize in the app and feed ids")
    if fv.mixed_precision != "none" and fv.format != "saved_model":
        cli.usage_error(f"--mixed_precision={fv.mixed_precision} needs --format=saved_model (not {fv.format}): "
                        f"LiteRT and ONNX convert the float32 graph; --quantize=float16 or dynamic_int8 shrink theirs")
    return fv


def main(argv: list[str] | None = None) -> str:
    args = parse_flags(argv)
    policy = keras.mixed_precision.global_policy()
    if args.mixed_precision == "bf16":
        keras.mixed_precision.set_global_policy("mixed_bfloat16")  # the model's layers take it when built
    try:
        return _export_from_flags(args)
    finally:
        keras.mixed_precision.set_global_policy(policy)


def _export_from_flags(args: flags.FlagValues) -> str:
    tokenizer = None
    if args.with_tokenizer:
        tokenizer = graph_tokenizer.GraphTokenizer(args.vocab_file, args.do_lower_case, args.max_seq_length)
    tagger = not args.span_extraction and (args.token_classification or bool(args.tag_list_file) or
                                           checkpoints.inspect_checkpoint(args.init_checkpoint).has_crf)
    constraints = None
    if args.tag_list_file:
        with open(args.tag_list_file, encoding="utf-8") as f:
            constraints = ner_data.bio_constraints([line.strip() for line in f if line.strip()])
    model, _ = checkpoints.model_from_checkpoint(args.bert_config_file, args.init_checkpoint,
                                                 model_family=args.model_family, num_labels=args.num_labels,
                                                 classifier_pooling=args.classifier_pooling, tagger=tagger,
                                                 constraints=constraints, span_extraction=args.span_extraction)
    if isinstance(model, modeling.AlbertPretrainingModel):
        raise SystemExit(f"{args.init_checkpoint} holds a pretraining model (MLM and SOP heads): pass --num_labels=0 "
                         f"to export its backbone, or a fine-tuned checkpoint")
    path = export(model, args.export_dir, args.format, args.max_seq_length, args.quantize, tokenizer)
    if tokenizer is not None:
        check_text_signatures(path, tokenizer, args.vocab_file, args.do_lower_case)
        print(f"serving_text / serving_text_pair: ids equal the Python tokenizer's on {len(CHECK_TEXTS)} check texts")
    return path


if __name__ == "__main__":
    cli.clean_errors(main)(sys.argv[1:])
