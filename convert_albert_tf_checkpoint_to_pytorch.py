"""TF1 (either family) or our TF2 checkpoint + config -> a directory HF ``transformers`` loads with ``from_pretrained``.

    python convert_albert_tf_checkpoint_to_pytorch.py --tf_checkpoint_path=albert_tiny/ \\
        --albert_config_file=albert_tiny/albert_config_tiny.json --pytorch_dump_path=albert_tiny_pt/

Writes ``config.json`` and ``model.safetensors`` (numpy + safetensors only: neither torch nor transformers is needed
to convert). What the directory holds follows the checkpoint: a fine-tuned classifier (root ``output_weights``)
-> ``*ForSequenceClassification``; a run_ner.py tagger (``--token_classification``, implied by a CRF; tag names
from ``--tag_list_file``) -> ``*ForTokenClassification`` (+ ``crf.json`` with the CRF's scores); a run_mrc.py span
extractor (``--span_extraction``: its head is stored as a 2-label classifier's, so only the flag tells them apart)
-> ``*ForQuestionAnswering`` (``qa_outputs`` = ``output_weights`` [2,H], row 0 start, row 1 end; HF's
``start_logits`` / ``end_logits`` are not masked: ours are -10000 outside [CLS] and the context pieces, so compare
or decode there only); MLM/SOP heads -> ``*ForPreTraining``; otherwise the bare backbone model. HF's token
classification and question answering models have no pooler, so none is written for them.

Google family -> HF ALBERT (``AlbertForPreTraining`` …). HF creates all ``num_hidden_groups`` groups while the
checkpoint (and our model) has only those some layer uses (G > L configs such as ``*_google_fast``); each unused
HF group gets a copy of the nearest used group below it, so every group holds trained weights, and no layer runs it.

brightmart family: HF's ALBERT cannot express it (the E -> H projection sits before the type/position sum, and
the MLM head maps back through it), so asking for an ALBERT layout fails (``albert_state_dict``). Post-LN
brightmart models are however exactly a BERT: ``word_embeddings`` [V,E] × ``word_embeddings_2`` [E,H] is a [V,H]
table (no bias, nothing between), a shared layer is the same layer repeated, and the MLM decoder
× ``word_embeddings_2``ᵀ × ``word_embeddings``ᵀ is × (that table)ᵀ. So they are written as HF BERT
(``BertForPreTraining`` …) with the product multiplied out and shared layers repeated: exact, but the file is
larger (V·H instead of V·E + E·H embedding values; L layers instead of one). Pre-LN models have no HF
equivalent at all (HF BERT and ALBERT are post-LN) and are refused (their heads' ``loss/LayerNorm`` could not be
expressed either: HF's classification, tagging and QA heads are a bare Linear).

SOP logits land in BERT's ``seq_relationship`` head (label 0 = original order, as NSP's 0 = "is next").
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import keras
import numpy as np
from absl import flags

import checkpoints
import cli
import modeling

# Our hidden_act -> HF's name. Our "gelu" is the tanh approximation, HF's "gelu_new"; HF's "gelu" is the erf form.
_HF_ACT = {"gelu": "gelu_new", "gelu_new": "gelu_new", "gelu_tanh": "gelu_new", "gelu_pytorch_tanh": "gelu_new",
           "gelu_exact": "gelu", "gelu_erf": "gelu", "relu": "relu", "tanh": "tanh", "linear": "linear"}


class _Tensors(dict):
    """HF state dict under construction: name -> float32 array; Linear weights are (out, in), Keras' are (in, out)."""

    def linear(self, key: str, dense: keras.layers.Dense) -> None:
        self[key + ".weight"] = dense.kernel.numpy().T
        self[key + ".bias"] = dense.bias.numpy()

    def norm(self, key: str, layer: keras.layers.LayerNormalization) -> None:
        self[key + ".weight"] = layer.gamma.numpy()
        self[key + ".bias"] = layer.beta.numpy()


def _check_convertible(config: modeling.AlbertConfig) -> None:
    if config.ln_type != "postln":
        raise ValueError(f"ln_type: {config.ln_type!r} has no HF transformers equivalent (HF ALBERT and BERT are "
                         f"post-LN); only post-LN models convert")


def _heads(model: keras.Model, sd: _Tensors, mlm_transform: str, mlm_bias: str, sop_key: str) -> str:
    """Adds the task heads; returns the HF architecture suffix (ForPreTraining, ForSequenceClassification, Model).

    The MLM decoder weight is tied to the word embeddings in both HF models, so only its bias is written.
    """
    if isinstance(model, modeling.AlbertPretrainingModel):
        sd.linear(mlm_transform + "dense", model.mlm.dense)
        sd.norm(mlm_transform + "LayerNorm", model.mlm.layer_norm)
        sd[mlm_bias] = model.mlm.output_bias.numpy()
        sd[sop_key + ".weight"] = model.sop.output_weights.numpy()  # already (2, H) = (out, in)
        sd[sop_key + ".bias"] = model.sop.output_bias.numpy()
        return "ForPreTraining"
    if isinstance(model, modeling.AlbertClassifier):
        sd["classifier.weight"] = model.output_weights.numpy()  # (C, H) = (out, in)
        sd["classifier.bias"] = model.output_bias.numpy()
        return "ForSequenceClassification"
    if isinstance(model, modeling.AlbertTokenClassifier):
        sd["classifier.weight"] = model.output_weights.numpy()  # (K, H) = (out, in)
        sd["classifier.bias"] = model.output_bias.numpy()
        return "ForTokenClassification"
    if isinstance(model, modeling.AlbertSpanExtractor):
        sd["qa_outputs.weight"] = model.output_weights.numpy()  # (2, H) = (out, in): start, end
        sd["qa_outputs.bias"] = model.output_bias.numpy()
        return "ForQuestionAnswering"
    return "Model"


def _has_pooler(model: keras.Model) -> bool:
    """HF's *ForTokenClassification and *ForQuestionAnswering models are built without a pooler
    (add_pooling_layer=False)."""
    return not isinstance(model, (modeling.AlbertTokenClassifier, modeling.AlbertSpanExtractor))


def albert_state_dict(model: keras.Model) -> tuple[dict[str, np.ndarray], str]:
    """A Google-family model -> (HF ALBERT state dict, architecture name). ValueError for what HF cannot hold."""
    albert, _ = checkpoints.split_model(model)
    config = albert.config
    if config.model_family != modeling.GOOGLE:
        raise ValueError("model_family: HF transformers' ALBERT cannot express the brightmart family (its E -> H "
                         "projection sits before the position/type sum); use bert_state_dict for post-LN models")
    _check_convertible(config)
    if config.share_type != "all":
        raise ValueError(f"share_type: HF ALBERT shares whole layers per group; {config.share_type!r} does not fit")
    layers, groups = config.num_hidden_layers, config.num_hidden_groups
    for i, (g, _) in enumerate(albert.encoder.blocks):
        if int(i / (layers / groups)) != g:  # HF's float formula must pick the group our integer formula picks
            raise ValueError(f"num_hidden_groups: HF would run group {int(i / (layers / groups))} at layer {i}, "
                             f"ours runs group {g}")
    sd = _Tensors()
    emb, enc = albert.embeddings, albert.encoder
    sd["albert.embeddings.word_embeddings.weight"] = emb.word_embeddings.numpy()
    sd["albert.embeddings.token_type_embeddings.weight"] = emb.token_type_embeddings.numpy()
    sd["albert.embeddings.position_embeddings.weight"] = emb.position_embeddings.numpy()
    sd.norm("albert.embeddings.LayerNorm", emb.layer_norm)
    if emb.embedding_hidden_mapping_in is not None:
        sd.linear("albert.encoder.embedding_hidden_mapping_in", emb.embedding_hidden_mapping_in)
    else:  # E == H: Google's TF1 model has no mapping; HF always applies one, so it gets the identity
        sd["albert.encoder.embedding_hidden_mapping_in.weight"] = np.eye(config.hidden_size, dtype=np.float32)
        sd["albert.encoder.embedding_hidden_mapping_in.bias"] = np.zeros(config.hidden_size, np.float32)
    used = sorted(enc.attention)
    for g in range(groups):
        source = max(u for u in used if u <= g)  # unused HF groups: a copy of the nearest used group below
        prefix = f"albert.encoder.albert_layer_groups.{g}.albert_layers.0."
        att, ffn = enc.attention[source], enc.ffn[source]
        for name, dense in (("query", att.query), ("key", att.key), ("value", att.value), ("dense", att.output_dense)):
            sd.linear(prefix + "attention." + name, dense)
        sd.norm(prefix + "attention.LayerNorm", att.layer_norm)
        sd.linear(prefix + "ffn", ffn.intermediate)
        sd.linear(prefix + "ffn_output", ffn.output_dense)
        sd.norm(prefix + "full_layer_layer_norm", ffn.layer_norm)
    if _has_pooler(model):
        sd.linear("albert.pooler", albert.pooler)
    return sd, "Albert" + _heads(model, sd, "predictions.", "predictions.bias", "sop_classifier.classifier")


def bert_state_dict(model: keras.Model) -> tuple[dict[str, np.ndarray], str]:
    """A post-LN brightmart-family (or plain BERT) model -> (HF BERT state dict, architecture name), exactly."""
    albert, _ = checkpoints.split_model(model)
    config = albert.config
    if config.model_family != modeling.BRIGHTMART:
        raise ValueError("model_family: Google-family models convert to HF ALBERT (albert_state_dict)")
    _check_convertible(config)
    sd = _Tensors()
    emb, enc = albert.embeddings, albert.encoder
    words = emb.word_embeddings.numpy()
    if emb.word_embeddings_2 is not None:
        words = words.astype(np.float64) @ emb.word_embeddings_2.numpy().astype(np.float64)  # [V,E]×[E,H] -> [V,H]
    sd["bert.embeddings.word_embeddings.weight"] = words.astype(np.float32)
    sd["bert.embeddings.token_type_embeddings.weight"] = emb.token_type_embeddings.numpy()
    sd["bert.embeddings.position_embeddings.weight"] = emb.position_embeddings.numpy()
    sd.norm("bert.embeddings.LayerNorm", emb.layer_norm)
    for i, (a, f) in enumerate(enc.blocks):  # shared blocks are written once per layer that runs them
        prefix = f"bert.encoder.layer.{i}."
        att, ffn = enc.attention[a], enc.ffn[f]
        for name, dense in (("query", att.query), ("key", att.key), ("value", att.value)):
            sd.linear(prefix + "attention.self." + name, dense)
        sd.linear(prefix + "attention.output.dense", att.output_dense)
        sd.norm(prefix + "attention.output.LayerNorm", att.layer_norm)
        sd.linear(prefix + "intermediate.dense", ffn.intermediate)
        sd.linear(prefix + "output.dense", ffn.output_dense)
        sd.norm(prefix + "output.LayerNorm", ffn.layer_norm)
    if _has_pooler(model):
        sd.linear("bert.pooler.dense", albert.pooler)
    return sd, "Bert" + _heads(model, sd, "cls.predictions.transform.", "cls.predictions.bias",
                                     "cls.seq_relationship")


def hf_config(model: keras.Model, architecture: str, labels: list[str] | None = None) -> dict[str, Any]:
    """The HF config.json for ``model`` written as ``architecture``; ``labels``: the head's label (tag) names."""
    albert, heads = checkpoints.split_model(model)
    c = albert.config
    out: dict[str, Any] = {
        "architectures": [architecture], "model_type": "albert" if architecture.startswith("Albert") else "bert",
        "vocab_size": c.vocab_size, "hidden_size": c.hidden_size, "num_hidden_layers": c.num_hidden_layers,
        "num_attention_heads": c.num_attention_heads, "intermediate_size": c.intermediate_size,
        "hidden_act": _HF_ACT[c.hidden_act.lower()], "hidden_dropout_prob": c.hidden_dropout_prob,
        "attention_probs_dropout_prob": c.attention_probs_dropout_prob,
        "max_position_embeddings": c.max_position_embeddings, "type_vocab_size": c.type_vocab_size,
        "initializer_range": c.initializer_range, "layer_norm_eps": c.layer_norm_eps,
        "position_embedding_type": "absolute", "pad_token_id": 0, "dtype": "float32",
    }
    if out["model_type"] == "albert":
        out.update(embedding_size=c.embedding_size, num_hidden_groups=c.num_hidden_groups, inner_group_num=1)
    clf = heads.get("classifier")
    if isinstance(clf, modeling.AlbertSpanExtractor):  # HF's QA head: num_labels 2 (start, end), no dropout
        out["id2label"], out["label2id"] = {"0": "start", "1": "end"}, {"start": 0, "end": 1}
    elif clf is not None:
        rate = float(clf.dropout.rate)
        out["classifier_dropout_prob" if out["model_type"] == "albert" else "classifier_dropout"] = rate
        count = getattr(clf, "num_labels", getattr(clf, "num_tags", None))
        names = labels if labels is not None else [f"LABEL_{i}" for i in range(count)]
        if len(names) != count:
            raise ValueError(f"{len(names)} label names for a head of {count} labels")
        out["id2label"] = {str(i): name for i, name in enumerate(names)}
        out["label2id"] = {name: i for i, name in enumerate(names)}
    return out


def write_hf_directory(model: keras.Model, out_dir: str, labels: list[str] | None = None) -> str:
    """Writes ``config.json`` + ``model.safetensors`` for ``model``; returns the HF architecture name.

    Google family -> HF ALBERT; post-LN brightmart -> HF BERT (see the module docstring); pre-LN -> ValueError.
    A tagger with a CRF also gets ``crf.json`` (transitions [from][to], start and end scores, tag names): HF has no
    CRF layer, so its model gives the emission scores and decoding with the CRF needs these.
    """
    from safetensors.numpy import save_file

    albert, _ = checkpoints.split_model(model)
    if albert.config.model_family == modeling.GOOGLE:
        sd, architecture = albert_state_dict(model)
    else:
        sd, architecture = bert_state_dict(model)
    os.makedirs(out_dir, exist_ok=True)
    save_file({k: np.ascontiguousarray(v, dtype=np.float32) for k, v in sd.items()},
              os.path.join(out_dir, "model.safetensors"), metadata={"format": "pt"})
    with open(os.path.join(out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(hf_config(model, architecture, labels), f, indent=2, sort_keys=True)
    crf = getattr(model, "crf", None)
    if crf is not None:
        with open(os.path.join(out_dir, "crf.json"), "w", encoding="utf-8") as f:
            json.dump({"transitions": crf.transitions.numpy().tolist(),
                       "start_transitions": crf.start_transitions.numpy().tolist(),
                       "end_transitions": crf.end_transitions.numpy().tolist(), "labels": labels}, f)
    return architecture


def define_flags(fv: flags.FlagValues) -> None:
    """The converter's flags, on ``fv`` (see cli.parse_flags): the old converters' names."""
    flags.DEFINE_string("tf_checkpoint_path", None, "Checkpoint prefix or directory (TF1 or ours).", flag_values=fv)
    flags.DEFINE_string("albert_config_file", None, "The model's JSON config.", flag_values=fv)
    flags.DEFINE_alias("bert_config_file", "albert_config_file", flag_values=fv)
    flags.DEFINE_string("pytorch_dump_path", None, "Output directory (a path ending in .bin means its directory).",
                        flag_values=fv)
    flags.DEFINE_integer("num_labels", None, "Classifier label count (default: what the checkpoint holds).",
                         flag_values=fv)
    flags.DEFINE_enum("model_family", None, list(modeling.MODEL_FAMILIES), "Overrides the config's model family.",
                      flag_values=fv)
    flags.DEFINE_bool("token_classification", False,
                      "The checkpoint is a run_ner.py tagger (implied when it has a CRF).", flag_values=fv)
    flags.DEFINE_string("tag_list_file", None, "Tag names for id2label (run_ner.py's output_dir/tag_list.txt).",
                        flag_values=fv)
    flags.DEFINE_bool("span_extraction", False, "A run_mrc.py model: outputs start_logits, end_logits (written as "
                      "HF *ForQuestionAnswering; its head is stored as a 2-label classifier's, so this flag tells "
                      "them apart).", flag_values=fv)
    flags.mark_flags_as_required(["tf_checkpoint_path", "albert_config_file", "pytorch_dump_path"], flag_values=fv)


def parse_flags(argv: list[str] | None = None) -> flags.FlagValues:
    """Parses and checks the flags (exit status 2 with ``PROG: error: ...`` when they do not fit together)."""
    fv = cli.parse_flags(argv, define_flags, __doc__)
    cli.check_head_flags(fv)
    return fv


def main(argv: list[str] | None = None) -> str:
    args = parse_flags(argv)
    out_dir = args.pytorch_dump_path
    if out_dir.endswith(".bin"):  # the old converters took a pytorch_model.bin file path
        out_dir = os.path.dirname(out_dir) or "."
    tagger = not args.span_extraction and (args.token_classification or
                                           checkpoints.inspect_checkpoint(args.tf_checkpoint_path).has_crf)
    model, _ = checkpoints.model_from_checkpoint(args.albert_config_file, args.tf_checkpoint_path, tagger=tagger,
                                                 model_family=args.model_family, num_labels=args.num_labels,
                                                 span_extraction=args.span_extraction)
    labels = None
    if args.tag_list_file:
        with open(args.tag_list_file, encoding="utf-8") as f:
            labels = [line.strip() for line in f if line.strip()]
    architecture = write_hf_directory(model, out_dir, labels)
    if architecture.startswith("Bert"):
        print("brightmart family: HF ALBERT cannot express it; written as the equivalent HF BERT "
              "(word_embeddings × word_embeddings_2 multiplied out, shared layers repeated)")
    print(f"wrote {out_dir}: load it with transformers.{architecture}.from_pretrained({out_dir!r})")
    return architecture


if __name__ == "__main__":
    cli.clean_errors(main)(sys.argv[1:])
