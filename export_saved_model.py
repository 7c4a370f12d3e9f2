"""Exports a model (backbone, or backbone + a classifier, tagger or span head) as a TF SavedModel for serving.

    python export_saved_model.py --bert_config_file=albert_config/albert_config_tiny.json \\
        --init_checkpoint=output/lcqmc/ --export_dir=export/lcqmc --max_seq_length=128 --num_labels=2
    python export_saved_model.py ... --init_checkpoint=output/cmrc2018/best --span_extraction  # run_mrc.py's

The SavedModel has one signature, ``serving_default(input_ids, input_mask, segment_ids)`` (int32 [B,T], any B and
T <= max_position_embeddings) -> ``pooled_output`` [B,H], ``sequence_output`` [B,T,H] (float32), plus ``logits`` and
``probabilities`` [B,C] when the model has a classifier head; a tagger (run_ner.py) gives ``logits`` and
``probabilities`` [B,T,K] and ``tags`` [B,T] (int32 tag ids, in tag_list.txt's order, 0 on [CLS], [SEP] and
padding); a span extractor (run_mrc.py) gives ``start_logits`` and ``end_logits`` [B,T] (inputs laid out as
``[CLS] question [SEP] context [SEP]``, segment ids 1 from the context on, -10000 outside [CLS] and the context;
mrc_data.py decodes them). A span head is stored as a 2-label classifier's: ``--span_extraction`` says which.
It needs no project code to load::

    served = tf.saved_model.load("export/lcqmc").signatures["serving_default"]
    served(input_ids=ids, input_mask=mask, segment_ids=seg)["probabilities"]

With a ``graph_tokenizer.GraphTokenizer`` (export_model.py ``--with_tokenizer``) it also takes raw text, tokenized
inside the graph with core TensorFlow ops (no Python tokenizer, no custom ops on the server):

* ``serving_text(text_a)`` and ``serving_text_pair(text_a, text_b)`` (tf.string [B], UTF-8): the outputs above plus
  the ``input_ids``, ``input_mask``, ``segment_ids`` [B, max_seq_length] the text became (equal to
  run_classifier.py's features). An empty ``text_b`` makes that row a single text. A tagger also gives
  ``label_mask`` [B, max_seq_length]: 1 on the first piece of each word (BasicTokenizer's words: each CJK
  character, each punctuation mark, each run of other characters between spaces), the positions run_ner.py labels
  and decodes; its ``tags`` are the Viterbi path over those positions only, and 0 elsewhere (``##`` pieces,
  [CLS], [SEP], padding), so read one tag per word where ``label_mask`` is 1. Texts are cut before tokenizing
  (graph_tokenizer.py, point 3): the features are the whole text's, and a text over ``max_seq_length * 101``
  characters whose first ``max_seq_length`` words lie beyond them fails naming the row, as invalid UTF-8 does.
  A span extractor takes ``serving_text_pair(text_a=question, text_b=context)``: BERT's pair packing is its window
  layout (one window, cut longest-first; export_model.py's docstring says when it equals run_mrc.py's).
* In Python, ``tf.saved_model.load(d).serving_text(text_a, text_b=None)`` takes either form.
"""

from __future__ import annotations

import sys

import keras
import tensorflow as tf
from absl import flags

import checkpoints
import cli
import graph_tokenizer
import modeling

SIGNATURE_INPUTS = ("input_ids", "input_mask", "segment_ids")


def export_saved_model(model: keras.Model, export_dir: str, max_seq_length: int | None = None,
                       static_shape: tuple[int, int] | None = None,
                       tokenizer: graph_tokenizer.GraphTokenizer | None = None) -> list[str]:
    """Writes ``model`` (AlbertModel, AlbertClassifier, AlbertTokenClassifier or AlbertSpanExtractor, built) to
    ``export_dir``; returns the signature's outputs.

    The serving module tracks the model's variables itself and keeps the Keras model out of its attributes: the
    SavedModel then holds only the variables and the traced function, so loading needs neither Keras nor our code.
    max_seq_length, when given, is checked against max_position_embeddings and used for a check call.
    static_shape: a fixed input shape [B,T] instead of [None, None] (for converters that need static shapes).
    tokenizer: adds the text signatures (see the module docstring); its max_seq_length is the padded length.
    """
    albert, heads = checkpoints.split_model(model)
    if "mlm" in heads:
        raise ValueError("export the backbone (AlbertModel) or a classifier, not the pretraining model")
    if max_seq_length is not None:
        albert.config.check_sequence_length(max_seq_length)
    outputs = ["pooled_output", "sequence_output"]
    if isinstance(model, modeling.AlbertSpanExtractor):
        outputs += ["start_logits", "end_logits"]  # [B,T], masked outside the context and [CLS]
    elif heads:
        outputs += ["logits", "probabilities"]
    if isinstance(model, modeling.AlbertTokenClassifier):
        outputs.append("tags")  # int32 [B,T]: decoded tag ids (Viterbi; the CRF's when the tagger has one)

    shape = list(static_shape) if static_shape else [None, None]

    def run(features: dict[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        out = model(features, training=False)
        return {k: out[k] if k == "tags" else tf.cast(out[k], tf.float32) for k in outputs}

    @tf.function(input_signature=[tf.TensorSpec(shape, tf.int32, name=n) for n in SIGNATURE_INPUTS])
    def serve(input_ids, input_mask, segment_ids):
        return run({"input_ids": input_ids, "input_mask": input_mask, "segment_ids": segment_ids})

    module = tf.Module(name="albert_serving")
    # The tf.Variables behind the Keras variables: what the traced function captures, and so what must be saved.
    module.model_variables = [v.value for v in model.variables]
    module.serve = serve
    if max_seq_length:
        ones = tf.ones([static_shape[0] if static_shape else 1, max_seq_length], tf.int32)
        serve(ones, ones, tf.zeros_like(ones))
    signatures = {"serving_default": serve}
    if tokenizer is not None:
        albert.config.check_sequence_length(tokenizer.max_seq_length)
        module.tokenizer = tokenizer  # tracks its lookup tables

        tagger = isinstance(model, modeling.AlbertTokenClassifier)

        @tf.function
        def serving_text(text_a, text_b=None):
            # A tagger decodes over the words' first pieces only, as run_ner.py trains and decodes it.
            features = tokenizer.encode(text_a, text_b, label_mask=tagger)
            return {**run(features), **features}

        module.serving_text = serving_text
        signatures["serving_text"] = serving_text.get_concrete_function(tf.TensorSpec([None], tf.string, "text_a"))
        signatures["serving_text_pair"] = serving_text.get_concrete_function(
            tf.TensorSpec([None], tf.string, "text_a"), tf.TensorSpec([None], tf.string, "text_b"))
    tf.saved_model.save(module, export_dir, signatures=signatures)
    text = ", serving_text(text_a), serving_text_pair(text_a, text_b)" if tokenizer is not None else ""
    print(f"exported {type(model).__name__} to {export_dir}: serving_default(input_ids, input_mask, segment_ids)"
          f"{text} -> {', '.join(outputs)}")
    return outputs


def define_flags(fv: flags.FlagValues) -> None:
    """export_saved_model.py's flags, on ``fv`` (see cli.parse_flags)."""
    cli.define_model_flags("Checkpoint prefix or directory (TF1 or ours).",
                           "The length of the check call (at most max_position_embeddings).", tokenizer=False,
                           flag_values=fv)
    flags.DEFINE_string("export_dir", None, "Where the SavedModel goes.", flag_values=fv)
    flags.DEFINE_integer("num_labels", 0, "Classifier label count; 0 = backbone only.", flag_values=fv)
    flags.DEFINE_enum("classifier_pooling", "cls", list(modeling.CLASSIFIER_POOLINGS),
                      "The pooling the classifier was fine-tuned with (run_classifier.py's flag).", flag_values=fv)
    flags.DEFINE_bool("span_extraction", False, "A run_mrc.py model: outputs start_logits, end_logits (its head is "
                      "stored as a 2-label classifier's, so this flag tells them apart).", flag_values=fv)
    flags.mark_flags_as_required(["bert_config_file", "init_checkpoint", "export_dir"], flag_values=fv)


def parse_flags(argv: list[str] | None = None) -> flags.FlagValues:
    """Parses and checks the flags (exit status 2 with ``PROG: error: ...`` when they do not fit together)."""
    fv = cli.parse_flags(argv, define_flags, __doc__)
    if fv.span_extraction and fv.num_labels not in (0, 2):
        cli.usage_error(f"--span_extraction: the span head has 2 rows (start, end), not --num_labels={fv.num_labels}; "
                        f"leave --num_labels out")
    return fv


def main(argv: list[str] | None = None) -> list[str]:
    args = parse_flags(argv)
    model, _ = checkpoints.model_from_checkpoint(args.bert_config_file, args.init_checkpoint,
                                                 model_family=args.model_family,
                                                 num_labels=None if args.span_extraction else args.num_labels,
                                                 classifier_pooling=args.classifier_pooling,
                                                 span_extraction=args.span_extraction)
    return export_saved_model(model, args.export_dir, args.max_seq_length)


if __name__ == "__main__":
    cli.clean_errors(main)(sys.argv[1:])
