"""modeling.py against independent references.

Google family: HF transformers' AlbertForPreTraining (PyTorch) with the same random weights copied across.
brightmart family: a NumPy forward pass written here from docs/equations.md (1b, 2a-2f, 3b, 3s).
"""

from __future__ import annotations

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import modeling

TOL = 1e-4
V, E, H, N, I, P_MAX = 97, 16, 32, 4, 48, 40  # noqa: E741  (I: intermediate size, as in the paper's tables)


def small_config(**kw) -> modeling.AlbertConfig:
    base = dict(embedding_size=E, hidden_size=H, num_hidden_layers=4, num_attention_heads=N, intermediate_size=I,
                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, max_position_embeddings=P_MAX)
    base.update(kw)
    return modeling.AlbertConfig(V, **base)


def batch(seed: int = 0, b: int = 3, t: int = 11, p: int = 4) -> dict[str, np.ndarray]:
    """Random ids with padding in the mask (row 1 padded after 7 tokens, row 2 after 3)."""
    rng = np.random.default_rng(seed)
    mask = np.ones((b, t), np.int32)
    mask[1, 7:] = 0
    mask[2, 3:] = 0
    return {
        "input_ids": rng.integers(0, V, (b, t)).astype(np.int32) * mask,
        "input_mask": mask,
        "segment_ids": (np.arange(t)[None, :] >= t // 2).astype(np.int32).repeat(b, 0) * mask,
        "masked_lm_positions": rng.integers(0, t, (b, p)).astype(np.int32),
    }


def randomize(model: keras.Model, seed: int = 1) -> None:
    """Gives every variable (biases, LayerNorm gamma/beta too) non-trivial values, so no term can hide."""
    rng = np.random.default_rng(seed)
    for v in model.trainable_variables:
        value = rng.normal(0.0, 0.2, v.shape)
        if v.path.endswith("gamma"):
            value += 1.0
        v.assign(value.astype(np.float32))


def max_abs(a, b) -> float:
    return float(np.max(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64))))


# ---------------------------------------------------------------------------------------------------------------------
# Google family vs HF transformers
# ---------------------------------------------------------------------------------------------------------------------

def copy_hf_to_ours(hf, ours: modeling.AlbertPretrainingModel) -> None:
    """HF state dict -> our variables, written from HF's key names (Linear weights are (out, in))."""
    sd = {k: v.detach().numpy() for k, v in hf.state_dict().items()}
    emb, enc = ours.albert.embeddings, ours.albert.encoder

    def dense(layer, prefix):
        layer.kernel.assign(sd[prefix + ".weight"].T)
        layer.bias.assign(sd[prefix + ".bias"])

    def norm(layer, prefix):
        layer.gamma.assign(sd[prefix + ".weight"])
        layer.beta.assign(sd[prefix + ".bias"])

    emb.word_embeddings.assign(sd["albert.embeddings.word_embeddings.weight"])
    emb.token_type_embeddings.assign(sd["albert.embeddings.token_type_embeddings.weight"])
    emb.position_embeddings.assign(sd["albert.embeddings.position_embeddings.weight"])
    norm(emb.layer_norm, "albert.embeddings.LayerNorm")
    dense(emb.embedding_hidden_mapping_in, "albert.encoder.embedding_hidden_mapping_in")
    for g in enc.attention:
        pre = f"albert.encoder.albert_layer_groups.{g}.albert_layers.0."
        att, ffn = enc.attention[g], enc.ffn[g]
        for ours_dense, name in ((att.query, "query"), (att.key, "key"), (att.value, "value"),
                                 (att.output_dense, "dense")):
            dense(ours_dense, pre + "attention." + name)
        norm(att.layer_norm, pre + "attention.LayerNorm")
        dense(ffn.intermediate, pre + "ffn")
        dense(ffn.output_dense, pre + "ffn_output")
        norm(ffn.layer_norm, pre + "full_layer_layer_norm")
    dense(ours.albert.pooler, "albert.pooler")
    dense(ours.mlm.dense, "predictions.dense")
    norm(ours.mlm.layer_norm, "predictions.LayerNorm")
    ours.mlm.output_bias.assign(sd["predictions.bias"])
    ours.sop.output_weights.assign(sd["sop_classifier.classifier.weight"])
    ours.sop.output_bias.assign(sd["sop_classifier.classifier.bias"])


@pytest.mark.parametrize("groups", [1, 2])
def test_google_family_matches_hf(groups):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf_config = transformers.AlbertConfig(
        vocab_size=V, embedding_size=E, hidden_size=H, num_hidden_layers=4, num_hidden_groups=groups,
        num_attention_heads=N, intermediate_size=I, inner_group_num=1, hidden_act="gelu_new",
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, classifier_dropout_prob=0.0,
        max_position_embeddings=P_MAX, type_vocab_size=2, layer_norm_eps=1e-12)
    hf_config._attn_implementation = "eager"
    hf = transformers.AlbertForPreTraining(hf_config).eval()
    with torch.no_grad():  # non-trivial biases and LayerNorm parameters
        for name, param in hf.named_parameters():
            param.add_(torch.randn_like(param) * 0.2)

    config = small_config(num_hidden_groups=groups)
    assert config.model_family == modeling.GOOGLE
    ours = modeling.AlbertPretrainingModel(config)
    ours.build()
    assert sorted(ours.albert.encoder.attention) == list(range(groups))
    copy_hf_to_ours(hf, ours)

    inputs = batch()
    out = ours({k: tf.constant(v) for k, v in inputs.items()}, training=False)
    with torch.no_grad():
        t = {k: torch.tensor(v, dtype=torch.long) for k, v in inputs.items()}
        hf_out = hf(input_ids=t["input_ids"], attention_mask=t["input_mask"], token_type_ids=t["segment_ids"],
                    output_hidden_states=True)
        backbone = hf.albert(input_ids=t["input_ids"], attention_mask=t["input_mask"],
                             token_type_ids=t["segment_ids"])
    positions = inputs["masked_lm_positions"]
    hf_mlm = np.take_along_axis(hf_out.prediction_logits.numpy(), positions[:, :, None], axis=1)

    assert max_abs(out["sequence_output"], backbone.last_hidden_state.numpy()) <= TOL
    assert max_abs(out["pooled_output"], backbone.pooler_output.numpy()) <= TOL
    assert max_abs(out["mlm_logits"], hf_mlm) <= TOL
    assert max_abs(out["sop_logits"], hf_out.sop_logits.numpy()) <= TOL
    assert np.std(hf_mlm) > 0.1  # the comparison is not between near-constant tensors


# ---------------------------------------------------------------------------------------------------------------------
# brightmart family vs a NumPy re-derivation
# ---------------------------------------------------------------------------------------------------------------------

def np_layer_norm(x, gamma, beta, eps=1e-12):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * gamma + beta


def np_gelu(x):
    return 0.5 * x * (1.0 + np.tanh(np.sqrt(2.0 / np.pi) * (x + 0.044715 * x ** 3)))


def np_softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def weights_of(model: modeling.AlbertPretrainingModel) -> dict:
    """Our variables as NumPy arrays, keyed by their Keras paths without the model prefix."""
    return {v.path.split("/", 1)[1]: v.numpy().astype(np.float64) for v in model.variables}


def np_brightmart_forward(w: dict, inputs: dict, ln_type: str, share: str, layers: int) -> dict:
    """ALBERT as albert_zh computes it: factorized word embeddings projected to H before the type/position sum."""
    ids, mask, seg = inputs["input_ids"], inputs["input_mask"], inputs["segment_ids"]
    e = "albert/embeddings/"
    x = w[e + "word_embeddings"][ids] @ w[e + "word_embeddings_2"]
    x = x + w[e + "token_type_embeddings"][seg] + w[e + "position_embeddings"][: ids.shape[1]][None]
    x = np_layer_norm(x, w[e + "layer_norm/gamma"], w[e + "layer_norm/beta"])
    bias = (1.0 - mask[:, None, None, :]) * -10000.0
    b, t = ids.shape
    d = H // N
    for i in range(layers):
        a = f"albert/encoder/attention_{0 if share in ('all', 'attention') else i}/"
        f = f"albert/encoder/ffn_{0 if share in ('all', 'ffn') else i}/"

        def lin(h, p):
            return h @ w[p + "kernel"] + w[p + "bias"]

        ln_a = lambda h: np_layer_norm(h, w[a + "layer_norm/gamma"], w[a + "layer_norm/beta"])  # noqa: E731
        ln_f = lambda h: np_layer_norm(h, w[f + "layer_norm/gamma"], w[f + "layer_norm/beta"])  # noqa: E731
        h = ln_a(x) if ln_type == "preln" else x
        q, k, v = (lin(h, a + n).reshape(b, t, N, d).transpose(0, 2, 1, 3) for n in ("query/", "key/", "value/"))
        probs = np_softmax(q @ k.transpose(0, 1, 3, 2) / np.sqrt(d) + bias)
        ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(b, t, H)
        x = x + lin(ctx, a + "output/") if ln_type == "preln" else ln_a(x + lin(ctx, a + "output/"))
        h = ln_f(x) if ln_type == "preln" else x
        ff = lin(np_gelu(lin(h, f + "intermediate/")), f + "output/")
        x = x + ff if ln_type == "preln" else ln_f(x + ff)
    pooled = np.tanh(x[:, 0] @ w["albert/pooler/kernel"] + w["albert/pooler/bias"])
    gathered = np.take_along_axis(x, inputs["masked_lm_positions"][:, :, None], axis=1)
    m = np_gelu(gathered @ w["mlm/dense/kernel"] + w["mlm/dense/bias"])
    m = np_layer_norm(m, w["mlm/layer_norm/gamma"], w["mlm/layer_norm/beta"])
    mlm = m @ w[e + "word_embeddings_2"].T @ w[e + "word_embeddings"].T + w["mlm/output_bias"]
    sop = pooled @ w["sop/output_weights"].T + w["sop/output_bias"]
    return {"sequence_output": x, "pooled_output": pooled, "mlm_logits": mlm, "sop_logits": sop}


@pytest.mark.parametrize("ln_type,share", [("postln", "all"), ("preln", "all"), ("postln", "none"),
                                           ("preln", "none"), ("postln", "attention"), ("preln", "ffn")])
def test_brightmart_family_matches_numpy(ln_type, share):
    config = small_config(ln_type=ln_type, share_type=share)
    assert config.model_family == modeling.BRIGHTMART
    model = modeling.AlbertPretrainingModel(config)
    model.build()
    randomize(model)
    inputs = batch(seed=3)
    out = model({k: tf.constant(v) for k, v in inputs.items()}, training=False)
    ref = np_brightmart_forward(weights_of(model), inputs, ln_type, share, config.num_hidden_layers)
    for key in ("sequence_output", "pooled_output", "mlm_logits", "sop_logits"):
        assert out[key].dtype == tf.float32
        assert max_abs(out[key], ref[key]) <= TOL, key
    assert np.std(ref["mlm_logits"]) > 0.1


def test_padding_does_not_leak_into_real_tokens():
    model = modeling.AlbertModel(small_config())
    model.build()
    randomize(model)
    inputs = batch()
    out = model({k: tf.constant(v) for k, v in inputs.items()})["sequence_output"].numpy()
    changed = dict(inputs)
    changed["input_ids"] = inputs["input_ids"].copy()
    changed["input_ids"][1, 7:] = 5  # only padded positions change
    out2 = model({k: tf.constant(v) for k, v in changed.items()})["sequence_output"].numpy()
    assert max_abs(out[1, :7], out2[1, :7]) < 1e-5
    assert max_abs(out[1, 7:], out2[1, 7:]) > 1e-3


# ---------------------------------------------------------------------------------------------------------------------
# Sharing modes, parameter counts
# ---------------------------------------------------------------------------------------------------------------------

def count(variables) -> int:
    return sum(int(np.prod(v.shape)) for v in variables)


def test_sharing_modes_share_exactly_what_they_say():
    layers = 4
    for share, n_att, n_ffn in (("all", 1, 1), ("attention", 1, layers), ("ffn", layers, 1),
                                ("none", layers, layers)):
        model = modeling.AlbertModel(small_config(share_type=share))
        model.build()
        enc = model.encoder
        att = {v.path for v in model.variables if "/attention_" in v.path}
        ffn = {v.path for v in model.variables if "/ffn_" in v.path}
        assert len(enc.attention) == n_att and len(enc.ffn) == n_ffn, share
        assert len(att) == 10 * n_att and len(ffn) == 6 * n_ffn, share  # q,k,v,o kernels+biases, LN; 2 dense + LN
        per_att = 4 * (H * H + H) + 2 * H
        per_ffn = H * I + I + I * H + H + 2 * H
        assert count(enc.trainable_variables) == n_att * per_att + n_ffn * per_ffn, share


def test_google_groups_map_layers_like_google():
    config = small_config(num_hidden_layers=4, num_hidden_groups=12)  # albert_config_tiny_google_fast's layout
    assert [a for a, _ in modeling.layer_blocks(config)] == [0, 3, 6, 9]
    config = small_config(num_hidden_layers=6, num_hidden_groups=4)
    assert [a for a, _ in modeling.layer_blocks(config)] == [int(i / 6 * 4) for i in range(6)]
    # Google's float rule int(i / L * G), where integer arithmetic (i * G // L) would put these layers elsewhere:
    for layers, groups, layer, group in ((22, 22, 15, 14), (23, 23, 13, 12), (11, 55, 3, 14), (11, 55, 6, 29)):
        config = small_config(num_hidden_layers=layers, num_hidden_groups=groups)
        assert modeling.layer_blocks(config)[layer][0] == group, (layers, groups, layer)


def test_parameter_counts_of_released_configs():
    import test_changes

    counts = test_changes.parameter_counts()
    assert counts["base"] == {"backbone": 10_877_440, "embeddings": 3_198_976, "layer": 7_087_872,
                              "pooler": 590_592, "with_heads": 11_492_234}
    assert counts["tiny"]["backbone"] == 4_175_152 and counts["tiny"]["with_heads"] == 4_295_186
    assert counts["tiny_google"]["with_heads"] == 4_142_594
    assert counts["base_unshared_encoder"] == 12 * 7_087_872


def test_hf_parameter_count_of_google_tiny():
    transformers = pytest.importorskip("transformers")
    hf = transformers.AlbertForPreTraining(transformers.AlbertConfig(
        vocab_size=21128, embedding_size=128, hidden_size=312, num_hidden_layers=4, num_attention_heads=12,
        intermediate_size=1248))
    assert sum(p.numel() for p in hf.parameters()) == 4_142_594


# ---------------------------------------------------------------------------------------------------------------------
# Configs
# ---------------------------------------------------------------------------------------------------------------------

def test_every_reference_config_loads_and_builds(reference_dir):
    files = sorted((reference_dir / "albert_config").glob("*.json"))
    assert len(files) >= 10
    for path in files:
        config = modeling.AlbertConfig.from_json_file(str(path))
        raw = json.loads(path.read_text())
        expected = modeling.GOOGLE if "num_hidden_groups" in raw else modeling.BRIGHTMART
        assert config.model_family == expected, path.name
        assert config.factorized == ("embedding_size" in raw), path.name
        small = config.replace(vocab_size=50)  # the structure is what is under test; keep memory small
        model = modeling.AlbertModel(small)
        model.build()
        out = model({"input_ids": tf.constant([[1, 2, 3]])})
        assert out["sequence_output"].shape == (1, 3, config.hidden_size), path.name


def test_our_configs_equal_the_reference_numbers(reference_dir):
    from pathlib import Path

    ours_dir = Path(modeling.__file__).parent / "albert_config"
    for path in sorted((reference_dir / "albert_config").glob("albert_config_*.json")):
        assert json.loads((ours_dir / path.name).read_text()) == json.loads(path.read_text()), path.name
    for name in ("base_google", "large_google"):
        c = modeling.AlbertConfig.from_json_file(str(ours_dir / f"albert_config_{name}.json"))
        assert c.model_family == modeling.GOOGLE and c.num_hidden_groups == 1


def test_bert_config_has_no_factorization(reference_dir):
    config = modeling.AlbertConfig.from_json_file(str(reference_dir / "albert_config" / "bert_config.json"))
    model = modeling.AlbertModel(config.replace(vocab_size=50, num_hidden_layers=1))
    model.build()
    assert model.embeddings.word_embeddings.shape == (50, 768)
    assert model.embeddings.word_embeddings_2 is None


def test_config_round_trip_keeps_unknown_keys(tmp_path, reference_dir):
    config = modeling.AlbertConfig.from_json_file(str(reference_dir / "albert_config" / "albert_config_tiny.json"))
    assert config.extra["directionality"] == "bidi" and config.extra["pooler_fc_size"] == 768
    path = tmp_path / "c.json"
    config.to_json_file(str(path))
    again = modeling.AlbertConfig.from_json_file(str(path))
    assert again == config and again.to_json_string() == config.to_json_string()
    assert modeling.AlbertConfig.from_json_file(str(path), model_family="google").model_family == "google"


@pytest.mark.parametrize("change,words", [
    ({"num_attention_heads": 10}, ["hidden_size", "768", "num_attention_heads", "10"]),
    ({"inner_group_num": 2}, ["inner_group_num", "2"]),
    ({"net_structure_type": 1}, ["net_structure_type", "1"]),
    ({"ln_type": "sandwich"}, ["ln_type", "sandwich"]),
    ({"share_type": "half"}, ["share_type", "half"]),
    ({"hidden_act": "swish2"}, ["hidden_act", "swish2"]),
    ({"num_hidden_layers": 0}, ["num_hidden_layers", "0"]),
    ({"hidden_dropout_prob": 1.5}, ["hidden_dropout_prob", "1.5"]),
])
def test_broken_config_names_the_key(tmp_path, change, words):
    raw = {"vocab_size": 100, "hidden_size": 768, "num_attention_heads": 12, "embedding_size": 128}
    raw.update(change)
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(ValueError) as err:
        modeling.AlbertConfig.from_json_file(str(path))
    for word in words + ["broken.json"]:
        assert word in str(err.value)


def test_missing_vocab_size_and_bad_json(tmp_path):
    path = tmp_path / "c.json"
    path.write_text('{"hidden_size": 768}')
    with pytest.raises(ValueError, match="vocab_size"):
        modeling.AlbertConfig.from_json_file(str(path))
    path.write_text('{"hidden_size": 768,')
    with pytest.raises(ValueError, match="not valid JSON"):
        modeling.AlbertConfig.from_json_file(str(path))


@pytest.mark.parametrize("act,fn", [("gelu", lambda x: np_gelu(x)), ("gelu_new", lambda x: np_gelu(x)),
                                    ("relu", lambda x: np.maximum(x, 0)), ("tanh", np.tanh),
                                    ("linear", lambda x: x)])
def test_activation_names(act, fn):
    x = np.linspace(-3, 3, 13).astype(np.float32)
    f = modeling.get_activation(act)
    got = x if f is None else f(tf.constant(x)).numpy()
    assert max_abs(got, fn(x)) < 1e-5
    from math import erf
    exact = np.array([0.5 * v * (1 + erf(v / np.sqrt(2))) for v in x])
    assert max_abs(modeling.get_activation("gelu_exact")(tf.constant(x)), exact) < 1e-5
    assert max_abs(modeling.get_activation("gelu")(tf.constant(x)), exact) > 1e-4  # tanh approx differs


# ---------------------------------------------------------------------------------------------------------------------
# Execution modes: XLA, mixed precision, dropout
# ---------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("family", ["brightmart", "google"])
def test_xla_forward_equals_eager(family):
    model = modeling.AlbertPretrainingModel(small_config(model_family=family))
    model.build()
    randomize(model)
    inputs = {k: tf.constant(v) for k, v in batch().items()}
    eager = model(inputs, training=False)
    xla = tf.function(lambda x: model(x, training=False), jit_compile=True)(inputs)
    for key in eager:
        assert max_abs(eager[key], xla[key]) < 1e-5, key


def pretraining_model_under_mixed_bfloat16(config: modeling.AlbertConfig) -> modeling.AlbertPretrainingModel:
    """A built model whose layers compute in bfloat16 (float32 variables); the global policy is restored after."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = modeling.AlbertPretrainingModel(config)
        model.build()
    finally:
        keras.mixed_precision.set_global_policy("float32")
    return model


def test_mixed_bfloat16_stays_within_bf16_tolerance():
    config = small_config()
    fp32 = modeling.AlbertPretrainingModel(config)
    fp32.build()
    randomize(fp32)
    bf16 = pretraining_model_under_mixed_bfloat16(config)
    bf16.set_weights(fp32.get_weights())
    assert bf16.albert.encoder.attention[0].query.compute_dtype == "bfloat16"
    assert all(v.dtype == "float32" for v in bf16.variables)
    inputs = {k: tf.constant(v) for k, v in batch().items()}
    ref = fp32(inputs)
    out = bf16(inputs)
    for key in ref:
        assert out[key].dtype == tf.float32, key
        scale = float(np.max(np.abs(ref[key])))
        err = max_abs(out[key], ref[key])
        assert err <= 0.05 * scale, (key, err, scale)
        assert err > 0.0, key  # bf16 really ran
    xla = tf.function(lambda x: bf16(x), jit_compile=True)(inputs)
    assert max_abs(xla["sop_logits"], ref["sop_logits"]) <= 0.05 * float(np.max(np.abs(ref["sop_logits"])))


def test_dropout_only_when_training():
    model = modeling.AlbertPretrainingModel(small_config(hidden_dropout_prob=0.3, attention_probs_dropout_prob=0.3))
    model.build()
    inputs = {k: tf.constant(v) for k, v in batch().items()}
    a, b = model(inputs, training=False), model(inputs, training=False)
    assert max_abs(a["sequence_output"], b["sequence_output"]) == 0.0
    c, d = model(inputs, training=True), model(inputs, training=True)
    assert max_abs(c["sequence_output"], d["sequence_output"]) > 1e-3
    assert max_abs(a["sequence_output"], c["sequence_output"]) > 1e-3


@pytest.mark.parametrize("share,groups", [("all", 1), ("none", 1), ("attention", 1), ("ffn", 1), ("all", 12)])
def test_every_weight_is_in_a_tf_checkpoint(tmp_path, share, groups):
    """Keras 3 layers held only in lists or dicts are invisible to tf.train.Checkpoint; none of ours may be."""
    config = small_config(share_type=share, num_hidden_groups=groups, model_family="google" if groups > 1 else None)
    for model in (modeling.AlbertPretrainingModel(config), modeling.AlbertClassifier(config, 3)):
        model.build()
        saved = tf.train.Checkpoint(model=model).save(str(tmp_path / model.name))
        keys = [k for k, _ in tf.train.list_variables(saved) if k.startswith("model/")]
        assert len(keys) == len(model.trainable_variables), (share, groups, model.name)
        assert any(k.startswith("model/albert/encoder/attention_") for k in keys)


@pytest.mark.slow  # a subprocess (CLI, converter or replicas): the full run, not the edit loop
def test_test_changes_script_asserts_all_three_changes():
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(modeling.__file__).parent
    proc = subprocess.run([sys.executable, str(repo / "test_changes.py")], capture_output=True, text=True, cwd=repo,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    for line in ("1. factorized embeddings", "2. cross-layer sharing", "3. sentence-order prediction",
                 "all ALBERT changes checked"):
        assert line in proc.stdout


@pytest.mark.parametrize("ln_type", ["postln", "preln"])
def test_classifier_mean_pooling_reads_the_mean_of_the_real_tokens(ln_type):
    config = small_config(ln_type=ln_type)
    model = modeling.AlbertClassifier(config, 3, pooling="mean")
    model.build()
    randomize(model)
    inputs = batch()
    out = model(inputs, training=False)
    mask = inputs["input_mask"][:, :, None].astype(np.float64)
    pooled = (out["sequence_output"].numpy() * mask).sum(1) / mask.sum(1)  # padding never counts
    if ln_type == "preln":  # the original's loss/LayerNorm before the classifier
        gamma, beta = model.layer_norm.gamma.numpy(), model.layer_norm.beta.numpy()
        mean, var = pooled.mean(-1, keepdims=True), pooled.var(-1, keepdims=True)
        pooled = (pooled - mean) / np.sqrt(var + config.layer_norm_eps) * gamma + beta
    expected = pooled @ model.output_weights.numpy().T + model.output_bias.numpy()
    np.testing.assert_allclose(out["logits"].numpy(), expected, rtol=1e-4, atol=1e-5)
    cls = modeling.AlbertClassifier(config, 3)
    cls.build()
    cls.set_weights(model.get_weights())  # same weights, the original's [CLS] pooling: other logits
    assert not np.allclose(cls(inputs, training=False)["logits"].numpy(), out["logits"].numpy(), atol=1e-3)
    with pytest.raises(ValueError, match="expected one of cls, mean"):
        modeling.AlbertClassifier(config, 3, pooling="max")


@pytest.mark.parametrize("dtype, tol", [(tf.float32, 1e-5), (tf.bfloat16, 0.02)])
def test_fused_gelu_equals_tf_nn_gelu_in_value_and_gradient(dtype, tol):
    """The training step's GELU (derivative written out, XLA-fused) against autodiff through tf.nn.gelu."""
    x32 = tf.constant(np.random.default_rng(0).normal(0.0, 3.0, (64, 48)).astype(np.float32))
    x = tf.cast(x32, dtype)
    weights = tf.constant(np.random.default_rng(1).normal(size=(64, 48)).astype(np.float32))
    values, grads = [], []
    for gelu in (lambda v: tf.nn.gelu(v, approximate=True), modeling.fused_gelu_tanh):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = gelu(x)
            loss = tf.reduce_sum(tf.cast(y, tf.float32) * weights)
        grad = tape.gradient(loss, x)
        assert y.dtype == dtype and grad.dtype == dtype
        values.append(tf.cast(y, tf.float32))
        grads.append(tf.cast(grad, tf.float32))
    # Relative to the largest value: bf16 rounds the autodiff chain's every step, the written-out one once.
    assert max_abs(values[0], values[1]) <= tol * float(np.max(np.abs(values[0])))
    assert max_abs(grads[0], grads[1]) <= tol * float(np.max(np.abs(grads[0])))


def test_training_step_gelu_gives_the_inference_gradient():
    """Under mixed_bfloat16, FeedForwardBlock uses the fused GELU only when training: with dropout off,
    training=True and training=False (autodiff through tf.nn.gelu) give the same output and weight gradients within
    bf16 rounding; in float32 both are the same graph."""
    model = pretraining_model_under_mixed_bfloat16(small_config())
    randomize(model)
    assert model.albert.encoder.ffn[0].training_activation is modeling.fused_gelu_tanh
    inputs = {k: tf.constant(v) for k, v in batch().items()}
    results = []
    for training in (False, True):
        with tf.GradientTape() as tape:
            out = model(inputs, training=training)
            loss = tf.reduce_sum(out["mlm_logits"] ** 2) + tf.reduce_sum(out["sop_logits"])
        results.append((out["mlm_logits"], [tf.convert_to_tensor(g) for g in tape.gradient(loss,
                                                                                          model.trainable_variables)]))
    assert max_abs(results[0][0], results[1][0]) <= 0.02 * float(np.max(np.abs(results[0][0])))
    scale = max(float(np.max(np.abs(g))) for g in results[0][1])  # some gradients are ~0 (a cancelling sum)
    for variable, a, b in zip(model.trainable_variables, results[0][1], results[1][1]):
        assert max_abs(a, b) <= 0.03 * scale, variable.path
    assert any(max_abs(a, b) > 0 for a, b in zip(results[0][1], results[1][1]))  # the fused GELU really ran
