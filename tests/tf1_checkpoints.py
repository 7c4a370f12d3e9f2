"""TF1 checkpoints for tests, written as the TF1 code bases wrote them: graph mode and ``tf.compat.v1.train.Saver``.

The TF1 names here are spelled out from HF transformers' state-dict keys (Google family) and from our Keras
variable paths (brightmart family), independently of checkpoints.py's table, so a wrong row there shows up.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def save_tf1(prefix: str, arrays: dict[str, np.ndarray], global_step: int | None = None) -> str:
    """Saves ``arrays`` under their names (plus an int64 ``global_step``); returns the written prefix."""
    with tf.Graph().as_default():
        variables = {name: tf.compat.v1.get_variable(name, initializer=tf.constant(value))
                     for name, value in arrays.items()}
        if global_step is not None:
            variables["global_step"] = tf.compat.v1.get_variable(
                "global_step", initializer=tf.constant(global_step, tf.int64))
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            return tf.compat.v1.train.Saver(variables).save(sess, prefix, global_step=global_step)


def with_slots(arrays: dict[str, np.ndarray], slots: tuple[str, ...], seed: int = 5) -> dict[str, np.ndarray]:
    """Adds optimizer slot variables (e.g. ``kernel/lamb_m``) beside every weight, as a training job leaves them."""
    rng = np.random.default_rng(seed)
    out = dict(arrays)
    for name, value in arrays.items():
        for slot in slots:
            out[f"{name}/{slot}"] = rng.normal(size=value.shape).astype(np.float32)
    return out


def google_from_hf(sd: dict[str, np.ndarray], layers: int, groups: int) -> dict[str, np.ndarray]:
    """HF ``AlbertForPreTraining`` state dict -> google-research/albert TF1 names (only the groups layers use)."""
    out: dict[str, np.ndarray] = {}

    def linear(tf1: str, hf: str) -> None:  # HF Linear (out, in) -> TF1 kernel [in, out]
        out[tf1 + "/kernel"] = np.ascontiguousarray(sd[hf + ".weight"].T)
        out[tf1 + "/bias"] = sd[hf + ".bias"]

    def norm(tf1: str, hf: str) -> None:
        out[tf1 + "/gamma"] = sd[hf + ".weight"]
        out[tf1 + "/beta"] = sd[hf + ".bias"]

    for table in ("word_embeddings", "token_type_embeddings", "position_embeddings"):
        out[f"bert/embeddings/{table}"] = sd[f"albert.embeddings.{table}.weight"]
    norm("bert/embeddings/LayerNorm", "albert.embeddings.LayerNorm")
    linear("bert/encoder/embedding_hidden_mapping_in", "albert.encoder.embedding_hidden_mapping_in")
    for g in sorted({int(i * groups / layers) for i in range(layers)}):
        tf1 = f"bert/encoder/transformer/group_{g}/inner_group_0/"
        hf = f"albert.encoder.albert_layer_groups.{g}.albert_layers.0."
        for name in ("query", "key", "value"):
            linear(tf1 + "attention_1/self/" + name, hf + "attention." + name)
        linear(tf1 + "attention_1/output/dense", hf + "attention.dense")
        norm(tf1 + "LayerNorm", hf + "attention.LayerNorm")
        linear(tf1 + "ffn_1/intermediate/dense", hf + "ffn")
        linear(tf1 + "ffn_1/intermediate/output/dense", hf + "ffn_output")
        norm(tf1 + "LayerNorm_1", hf + "full_layer_layer_norm")
    linear("bert/pooler/dense", "albert.pooler")
    linear("cls/predictions/transform/dense", "predictions.dense")
    norm("cls/predictions/transform/LayerNorm", "predictions.LayerNorm")
    out["cls/predictions/output_bias"] = sd["predictions.bias"]
    out["cls/seq_relationship/output_weights"] = sd["sop_classifier.classifier.weight"]  # [2, H] in both
    out["cls/seq_relationship/output_bias"] = sd["sop_classifier.classifier.bias"]
    return {k: np.asarray(v, np.float32) for k, v in out.items()}


def brightmart_from_keras(w: dict[str, np.ndarray], share: str, layers: int) -> dict[str, np.ndarray]:
    """Our pretraining model's variables keyed by Keras path (``tests.test_modeling.weights_of``) -> albert_zh names.

    share_type decides the layer scopes as in the original: ``layer_shared`` for what is shared, ``layer_%d`` when
    nothing is, ``attention_%d`` / ``intermediate_%d`` / ``output_%d`` under ``layer_shared`` for per-layer halves.
    """
    e = "albert/embeddings/"
    out = {f"bert/embeddings/{t}": w[e + t]
           for t in ("word_embeddings", "word_embeddings_2", "token_type_embeddings", "position_embeddings")}
    out["bert/embeddings/LayerNorm/gamma"] = w[e + "layer_norm/gamma"]
    out["bert/embeddings/LayerNorm/beta"] = w[e + "layer_norm/beta"]
    for i in range(layers):
        att_ours = f"albert/encoder/attention_{0 if share in ('all', 'attention') else i}/"
        ffn_ours = f"albert/encoder/ffn_{0 if share in ('all', 'ffn') else i}/"
        if share == "none":
            att, inter, output = (f"bert/encoder/layer_{i}/attention/", f"bert/encoder/layer_{i}/intermediate/",
                                  f"bert/encoder/layer_{i}/output/")
        else:
            att = "bert/encoder/layer_shared/" + ("attention/" if share != "ffn" else f"attention_{i}/")
            inter = "bert/encoder/layer_shared/" + ("intermediate/" if share != "attention" else f"intermediate_{i}/")
            output = "bert/encoder/layer_shared/" + ("output/" if share != "attention" else f"output_{i}/")
        pairs = [(att + f"self/{n}/", att_ours + f"{n}/") for n in ("query", "key", "value")]
        pairs += [(att + "output/dense/", att_ours + "output/"), (inter + "dense/", ffn_ours + "intermediate/"),
                  (output + "dense/", ffn_ours + "output/")]
        for tf1, ours in pairs:
            out[tf1 + "kernel"], out[tf1 + "bias"] = w[ours + "kernel"], w[ours + "bias"]
        for tf1, ours in ((att + "output/LayerNorm/", att_ours), (output + "LayerNorm/", ffn_ours)):
            out[tf1 + "gamma"], out[tf1 + "beta"] = w[ours + "layer_norm/gamma"], w[ours + "layer_norm/beta"]
    out["bert/pooler/dense/kernel"], out["bert/pooler/dense/bias"] = w["albert/pooler/kernel"], w["albert/pooler/bias"]
    for part in ("kernel", "bias"):
        out[f"cls/predictions/transform/dense/{part}"] = w[f"mlm/dense/{part}"]
    out["cls/predictions/transform/LayerNorm/gamma"] = w["mlm/layer_norm/gamma"]
    out["cls/predictions/transform/LayerNorm/beta"] = w["mlm/layer_norm/beta"]
    out["cls/predictions/output_bias"] = w["mlm/output_bias"]
    out["cls/seq_relationship/output_weights"] = w["sop/output_weights"]
    out["cls/seq_relationship/output_bias"] = w["sop/output_bias"]
    return {k: np.asarray(v, np.float32) for k, v in out.items()}
