"""checkpoints.py, the HF converter and the SavedModel export, against independent references.

TF1 checkpoints are written here with ``tf.compat.v1.train.Saver`` (tests/tf1_checkpoints.py, names spelled out from
HF's keys and our Keras paths); outputs are compared with HF transformers (Google family) and with the NumPy
brightmart forward pass of tests/test_modeling.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import convert_albert_tf_checkpoint_to_pytorch as convert
import export_saved_model
import modeling
import tf1_checkpoints as tf1
from test_modeling import TOL, batch, max_abs, np_brightmart_forward, randomize, small_config, weights_of

LAYERS = 4
OUTPUTS = ("sequence_output", "pooled_output", "mlm_logits", "sop_logits")


def run(model, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v.numpy() for k, v in model({k: tf.constant(v) for k, v in inputs.items()}, training=False).items()}


def built(model):
    model.build()
    return model


def hf_outputs(hf, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """An HF *ForPreTraining / *ForSequenceClassification model's outputs under our names (MLM gathered)."""
    import torch

    t = {k: torch.tensor(v, dtype=torch.long) for k, v in inputs.items()}
    args = dict(input_ids=t["input_ids"], attention_mask=t["input_mask"], token_type_ids=t["segment_ids"])
    with torch.no_grad():
        base = getattr(hf, hf.base_model_prefix)(**args)
        full = hf(**args)
    out = {"sequence_output": base.last_hidden_state.numpy(), "pooled_output": base.pooler_output.numpy()}
    if hasattr(full, "prediction_logits"):
        positions = inputs["masked_lm_positions"][:, :, None]
        out["mlm_logits"] = np.take_along_axis(full.prediction_logits.numpy(), positions, axis=1)
        out["sop_logits"] = (full.sop_logits if hasattr(full, "sop_logits") else full.seq_relationship_logits).numpy()
    else:
        out["logits"] = full.logits.numpy()
    return out


def assert_close(ours: dict, ref: dict, keys) -> None:
    for key in keys:
        assert max_abs(ours[key], ref[key]) <= TOL, key
        assert np.std(ref[key]) > 0.05, key  # not a comparison between near-constant tensors


# ---------------------------------------------------------------------------------------------------------------------
# Fixtures: one checkpoint of each family, written once
# ---------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def google_ckpt(tmp_path_factory):
    """A random HF AlbertForPreTraining (2 groups) written as a Google TF1 checkpoint with Adam slots."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    hf_config = transformers.AlbertConfig(
        vocab_size=97, embedding_size=16, hidden_size=32, num_hidden_layers=LAYERS, num_hidden_groups=2,
        num_attention_heads=4, intermediate_size=48, inner_group_num=1, hidden_act="gelu_new",
        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, max_position_embeddings=40, type_vocab_size=2,
        layer_norm_eps=1e-12)
    hf = transformers.AlbertForPreTraining(hf_config).eval()
    with torch.no_grad():
        for param in hf.parameters():
            param.add_(torch.randn_like(param) * 0.2)
    arrays = tf1.google_from_hf({k: v.numpy() for k, v in hf.state_dict().items()}, LAYERS, 2)
    arrays = tf1.with_slots(arrays, ("adam_m", "adam_v"))
    arrays["bert/encoder/some_future_variable"] = np.zeros(3, np.float32)
    directory = tmp_path_factory.mktemp("google")
    tf1.save_tf1(str(directory / "model.ckpt"), arrays, global_step=100)
    return directory, hf


@pytest.fixture(scope="module")
def brightmart_ckpt(tmp_path_factory):
    """A post-LN share-all brightmart pretraining checkpoint: (prefix, our Keras-path weights)."""
    source = built(modeling.AlbertPretrainingModel(small_config()))
    randomize(source, seed=11)
    w = weights_of(source)
    prefix = tf1.save_tf1(str(tmp_path_factory.mktemp("brightmart") / "model.ckpt"),
                          tf1.brightmart_from_keras(w, "all", LAYERS))
    return prefix, w


# ---------------------------------------------------------------------------------------------------------------------
# Loading TF1 checkpoints
# ---------------------------------------------------------------------------------------------------------------------

def test_google_tf1_checkpoint_gives_hf_outputs(google_ckpt):
    directory, hf = google_ckpt
    model = built(modeling.AlbertPretrainingModel(small_config(num_hidden_groups=2)))
    report = checkpoints.load_checkpoint(model, str(directory))  # a directory: followed through `checkpoint`
    assert report.format == "tf1" and report.family == "google"
    assert report.missing == [] and len(report.matched) == len(model.variables)
    assert report.unused == ["bert/encoder/some_future_variable"]
    assert any("WARNING" in n and "some_future_variable" in n for n in report.notes)
    assert len(report.skipped) == 2 * len(model.variables) + 1 and "global_step" in report.skipped
    inputs = batch()
    assert_close(run(model, inputs), hf_outputs(hf, inputs), OUTPUTS)


@pytest.mark.parametrize("ln_type,share", [("postln", "all"), ("preln", "none"), ("preln", "attention"),
                                           ("postln", "ffn")])
def test_brightmart_tf1_checkpoint_gives_numpy_reference(tmp_path, ln_type, share):
    config = small_config(ln_type=ln_type, share_type=share)
    source = built(modeling.AlbertPretrainingModel(config))
    randomize(source, seed=4)
    w = weights_of(source)
    arrays = tf1.with_slots(tf1.brightmart_from_keras(w, share, LAYERS), ("lamb_m", "lamb_v"))
    prefix = tf1.save_tf1(str(tmp_path / "model.ckpt"), arrays, global_step=7)

    model = built(modeling.AlbertPretrainingModel(config))  # a fresh init: only the checkpoint can make it match
    report = checkpoints.load_checkpoint(model, prefix + ".index")  # a file of the checkpoint works as its prefix
    assert report.missing == [] and report.unused == []
    assert len(report.skipped) == 2 * len(report.matched) + 1
    inputs = batch(seed=3)
    ref = np_brightmart_forward(w, inputs, ln_type, share, LAYERS)
    assert_close(run(model, inputs), ref, OUTPUTS)


def test_classifier_from_pretraining_and_from_fine_tuned_checkpoints(tmp_path):
    config = small_config(ln_type="preln")
    pre = built(modeling.AlbertPretrainingModel(config))
    randomize(pre, seed=2)
    pre_prefix = tf1.save_tf1(str(tmp_path / "pre" / "model.ckpt"),
                              tf1.brightmart_from_keras(weights_of(pre), "all", LAYERS))
    clf = built(modeling.AlbertClassifier(config, num_labels=3))
    report = checkpoints.load_checkpoint(clf, pre_prefix)
    assert sorted(report.missing) == ["loss/LayerNorm/beta", "loss/LayerNorm/gamma", "output_bias", "output_weights"]
    assert any("classifier head" in n and "expected when fine-tuning from a pretraining checkpoint" in n
               for n in report.notes)
    assert all(n.startswith("cls/") for n in report.unused) and len(report.unused) == 5 + 2  # MLM, SOP
    assert any("MLM head" in n and "(expected)" in n for n in report.notes)
    assert not any("WARNING" in n for n in report.notes)
    inputs = batch()
    assert max_abs(run(clf, inputs)["sequence_output"], run(pre, inputs)["sequence_output"]) <= TOL

    # A fine-tuned checkpoint (root output_weights, loss/LayerNorm) written by write_tf1_checkpoint loads fully.
    randomize(clf, seed=8)
    prefix = checkpoints.write_tf1_checkpoint(clf, str(tmp_path / "ft" / "model.ckpt"), global_step=3)
    shapes = dict(tf.train.list_variables(prefix))
    assert shapes["output_weights"] == [3, 32] and "loss/LayerNorm/gamma" in shapes and "global_step" in shapes
    again = built(modeling.AlbertClassifier(config, num_labels=3))
    report = checkpoints.load_checkpoint(again, str(tmp_path / "ft"))
    assert report.missing == [] and report.unused == [] and report.skipped == ["global_step"]
    assert max_abs(run(again, inputs)["logits"], run(clf, inputs)["logits"]) == 0.0


def test_optimizer_slot_names():
    for name in ("bert/pooler/dense/kernel/adam_m", "a/lamb_v", "x/Adam_1", "x/Momentum", "x/ExponentialMovingAverage",
                 "global_step", "loss_scale", "current_loss_scale/good_steps"):
        assert checkpoints.is_optimizer_variable(name), name
    for name in ("bert/pooler/dense/kernel", "output_bias", "bert/encoder/layer_shared/output/LayerNorm/beta"):
        assert not checkpoints.is_optimizer_variable(name), name


# ---------------------------------------------------------------------------------------------------------------------
# Mismatches fail, naming what to change
# ---------------------------------------------------------------------------------------------------------------------

def test_cross_family_fails_with_the_family_message(google_ckpt, brightmart_ckpt):
    google_dir, _ = google_ckpt
    bright_prefix, _ = brightmart_ckpt
    google_model = built(modeling.AlbertModel(small_config(num_hidden_groups=2)))
    with pytest.raises(checkpoints.CheckpointError) as err:
        checkpoints.load_checkpoint(google_model, bright_prefix)
    assert "brightmart-family checkpoint" in str(err.value) and '"model_family": "brightmart"' in str(err.value)
    bright_model = built(modeling.AlbertModel(small_config()))
    with pytest.raises(checkpoints.CheckpointError) as err:
        checkpoints.load_checkpoint(bright_model, str(google_ckpt[0]), family_given=False)
    assert "google-family checkpoint" in str(err.value) and "--model_family=google" in str(err.value)
    assert "config_for_checkpoint" in str(err.value)

    # Before building: a family the config chose fails; a derived one follows the checkpoint and says so.
    given = small_config(model_family="brightmart")
    with pytest.raises(checkpoints.CheckpointError, match="model_family"):
        checkpoints.config_for_checkpoint(given, str(google_dir), family_given=True)
    derived = checkpoints.config_for_checkpoint(small_config(), str(google_dir), family_given=False)
    assert derived.model_family == "google"


def test_wrong_sizes_name_the_variable_both_shapes_and_the_key(brightmart_ckpt, tmp_path):
    prefix, _ = brightmart_ckpt
    model = built(modeling.AlbertModel(small_config(hidden_size=48, intermediate_size=48)))
    with pytest.raises(checkpoints.CheckpointError) as err:
        checkpoints.load_checkpoint(model, prefix)
    msg = str(err.value)
    assert "bert/embeddings/word_embeddings_2: checkpoint shape [16, 32], model shape [16, 48]" in msg
    assert "hidden_size is 48 in the config but 32 in the checkpoint: wrong config file?" in msg
    assert model.embeddings.word_embeddings_2.numpy().std() < 0.1  # nothing assigned before the error

    with pytest.raises(checkpoints.CheckpointError, match=r"vocab_size is 50 in the config but 97"):
        checkpoints.load_checkpoint(built(modeling.AlbertModel(small_config().replace(vocab_size=50))), prefix)

    clf = built(modeling.AlbertClassifier(small_config(), num_labels=3))
    ft = checkpoints.write_tf1_checkpoint(clf, str(tmp_path / "model.ckpt"))
    with pytest.raises(checkpoints.CheckpointError, match=r"output_weights: .*num_labels is 2 in the config but 3"):
        checkpoints.load_checkpoint(built(modeling.AlbertClassifier(small_config(), num_labels=2)), ft)


def test_sharing_groups_and_layers_mismatch_name_the_key(google_ckpt, brightmart_ckpt):
    prefix, _ = brightmart_ckpt
    with pytest.raises(checkpoints.CheckpointError, match=r"share_type: .*'all'.*set \"share_type\": \"all\""):
        checkpoints.load_checkpoint(built(modeling.AlbertModel(small_config(share_type="none"))), prefix)
    one_group = built(modeling.AlbertModel(small_config(num_hidden_groups=1, model_family="google")))
    with pytest.raises(checkpoints.CheckpointError, match=r"num_hidden_groups: .*\[0, 1\].*\"num_hidden_groups\": 2"):
        checkpoints.load_checkpoint(one_group, str(google_ckpt[0]))
    # Per-layer blocks tell the layer count: a share-none checkpoint of 4 layers and a 2-layer config.
    model = built(modeling.AlbertModel(small_config(share_type="none")))
    none_prefix = checkpoints.write_tf1_checkpoint(model, prefix + "_none")
    with pytest.raises(checkpoints.CheckpointError, match=r"num_hidden_layers: .*\"num_hidden_layers\": 4"):
        checkpoints.load_checkpoint(built(modeling.AlbertModel(small_config(share_type="none", num_hidden_layers=2))),
                                    none_prefix)


def test_directory_with_a_stale_checkpoint_file_and_missing_paths(tmp_path, brightmart_ckpt):
    _, w = brightmart_ckpt
    arrays = tf1.brightmart_from_keras(w, "all", LAYERS)
    tf1.save_tf1(str(tmp_path / "model.ckpt"), {k: v + 1.0 for k, v in arrays.items()}, global_step=5)
    tf1.save_tf1(str(tmp_path / "model.ckpt"), arrays, global_step=20)  # the newest: what must load
    (tmp_path / "checkpoint").write_text('model_checkpoint_path: "/home/brightmart/albert_tiny/model.ckpt-99"\n')
    assert checkpoints.resolve_checkpoint_path(str(tmp_path)) == str(tmp_path / "model.ckpt-20")
    model = built(modeling.AlbertPretrainingModel(small_config()))
    checkpoints.load_checkpoint(model, str(tmp_path))
    inputs = batch()
    assert_close(run(model, inputs), np_brightmart_forward(w, inputs, "postln", "all", LAYERS), OUTPUTS)

    with pytest.raises(FileNotFoundError, match="nowhere/model.ckpt"):
        checkpoints.load_checkpoint(model, str(tmp_path / "nowhere" / "model.ckpt"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"no checkpoint \(no \*.index file\)"):
        checkpoints.resolve_checkpoint_path(str(tmp_path / "empty"))


# ---------------------------------------------------------------------------------------------------------------------
# Our own TF2 checkpoints
# ---------------------------------------------------------------------------------------------------------------------

def test_tf2_checkpoint_backbone_maps_between_pretraining_and_classifier(tmp_path):
    config = small_config(num_hidden_groups=2)
    pre = built(modeling.AlbertPretrainingModel(config))
    randomize(pre, seed=6)
    optimizer = tf.keras.optimizers.Adam()
    optimizer.build(pre.trainable_variables)
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(model=pre, optimizer=optimizer, step=tf.Variable(12, dtype=tf.int64)), str(tmp_path), 2)
    manager.save()
    clf = built(modeling.AlbertClassifier(config, num_labels=2))
    report = checkpoints.load_checkpoint(clf, str(tmp_path))
    assert report.format == "tf2" and report.family == "google"
    assert sorted(report.missing) == ["output_bias", "output_weights"]
    assert len(report.unused) == 5 + 2 and all(n.startswith(("mlm/", "sop/")) for n in report.unused)
    assert "step/.ATTRIBUTES/VARIABLE_VALUE" in report.skipped
    assert any(n.startswith("optimizer/") for n in report.skipped)
    inputs = batch()
    assert max_abs(run(clf, inputs)["pooled_output"], run(pre, inputs)["pooled_output"]) == 0.0

    randomize(clf, seed=9)
    tf.train.Checkpoint(model=clf).save(str(tmp_path / "clf" / "ckpt"))
    back = built(modeling.AlbertPretrainingModel(config))
    report = checkpoints.load_checkpoint(back, str(tmp_path / "clf"))
    assert sorted(report.unused) == ["output_bias", "output_weights"] and len(report.missing) == 7
    assert max_abs(run(back, inputs)["pooled_output"], run(clf, inputs)["pooled_output"]) == 0.0


# ---------------------------------------------------------------------------------------------------------------------
# HF transformers conversion
# ---------------------------------------------------------------------------------------------------------------------

def _hf_load(cls, directory):
    model, info = cls.from_pretrained(str(directory), output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set(), info  # no random weights, no leftovers
    assert info["mismatched_keys"] == set() and not info["error_msgs"], info
    return model.eval()


def test_convert_google_pretraining_with_unused_groups(tmp_path):
    transformers = pytest.importorskip("transformers")
    config = small_config(num_hidden_groups=12)  # albert_config_tiny_google_fast's layout: layers use groups 0,3,6,9
    model = built(modeling.AlbertPretrainingModel(config))
    randomize(model, seed=5)
    prefix = checkpoints.write_tf1_checkpoint(model, str(tmp_path / "ckpt" / "model.ckpt"))
    config.to_json_file(str(tmp_path / "albert_config.json"))
    architecture = convert.main([f"--tf_checkpoint_path={prefix}", f"--pytorch_dump_path={tmp_path}/hf",
                                 f"--albert_config_file={tmp_path}/albert_config.json"])
    assert architecture == "AlbertForPreTraining"
    hf = _hf_load(transformers.AlbertForPreTraining, tmp_path / "hf")
    assert hf.config.hidden_act == "gelu_new" and hf.config.num_hidden_groups == 12
    groups = hf.albert.encoder.albert_layer_groups
    assert (groups[1].albert_layers[0].ffn.weight == groups[0].albert_layers[0].ffn.weight).all()  # filled from 0
    assert not (groups[3].albert_layers[0].ffn.weight == groups[0].albert_layers[0].ffn.weight).all()
    inputs = batch()
    assert_close(run(model, inputs), hf_outputs(hf, inputs), OUTPUTS)


@pytest.mark.parametrize("written_as", ["tf1", "tf2"])
def test_convert_google_classifier(tmp_path, written_as):
    transformers = pytest.importorskip("transformers")
    config = small_config(num_hidden_groups=1)
    model = built(modeling.AlbertClassifier(config, num_labels=3))
    randomize(model, seed=7)
    if written_as == "tf1":  # root output_weights tell the converter it is a classifier
        path = checkpoints.write_tf1_checkpoint(model, str(tmp_path / "model.ckpt"))
    else:  # what our training loop writes
        path = str(tmp_path / "run")
        tf.train.CheckpointManager(tf.train.Checkpoint(model=model, step=tf.Variable(4)), path, 1).save()
    config.to_json_file(str(tmp_path / "c.json"))
    assert convert.main([f"--tf_checkpoint_path={path}", f"--bert_config_file={tmp_path}/c.json",
                         f"--pytorch_dump_path={tmp_path}/hf/pytorch_model.bin"]) == "AlbertForSequenceClassification"
    hf = _hf_load(transformers.AlbertForSequenceClassification, tmp_path / "hf")
    inputs = batch()
    assert_close(run(model, inputs), hf_outputs(hf, inputs), ("sequence_output", "pooled_output", "logits"))


@pytest.mark.parametrize("task", ["pretraining", "classifier"])
def test_convert_brightmart_postln_to_hf_bert(tmp_path, task):
    transformers = pytest.importorskip("transformers")
    config = small_config(share_type="attention")
    if task == "pretraining":
        model, cls, keys = modeling.AlbertPretrainingModel(config), transformers.BertForPreTraining, OUTPUTS
    else:
        model, cls, keys = (modeling.AlbertClassifier(config, 2), transformers.BertForSequenceClassification,
                            ("sequence_output", "pooled_output", "logits"))
    randomize(built(model), seed=3)
    assert convert.write_hf_directory(model, str(tmp_path)) == cls.__name__
    inputs = batch()
    assert_close(run(model, inputs), hf_outputs(_hf_load(cls, tmp_path), inputs), keys)


@pytest.mark.parametrize("family", ["google", "brightmart"])
def test_convert_tagger_to_hf_token_classification(tmp_path, family):
    """A run_ner.py tagger (with a CRF, written by our loop) -> HF *ForTokenClassification: equal emission logits,
    the tag names as id2label, and the CRF's scores in crf.json."""
    import json
    transformers = pytest.importorskip("transformers")
    config = small_config(num_hidden_groups=1, model_family=family)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    model = built(modeling.AlbertTokenClassifier(config, len(tags), use_crf=True))
    randomize(model, seed=11)
    path = str(tmp_path / "run")
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model, step=tf.Variable(4)), path, 1).save()
    config.to_json_file(str(tmp_path / "c.json"))
    (tmp_path / "tag_list.txt").write_text("\n".join(tags) + "\n")
    cls = transformers.AlbertForTokenClassification if family == "google" else transformers.BertForTokenClassification
    assert convert.main([f"--tf_checkpoint_path={path}", f"--bert_config_file={tmp_path}/c.json",
                         f"--tag_list_file={tmp_path}/tag_list.txt",
                         f"--pytorch_dump_path={tmp_path}/hf"]) == cls.__name__
    hf = _hf_load(cls, tmp_path / "hf")
    assert hf.config.id2label[1] == "B-PER"
    inputs = batch()
    import torch
    with torch.no_grad():
        logits = hf(**{"input_ids": torch.tensor(inputs["input_ids"], dtype=torch.long),
                       "attention_mask": torch.tensor(inputs["input_mask"], dtype=torch.long),
                       "token_type_ids": torch.tensor(inputs["segment_ids"], dtype=torch.long)}).logits.numpy()
    ours = run(model, inputs)["logits"]
    mask = inputs["input_mask"].astype(bool)
    assert max_abs(ours[mask], logits[mask]) < TOL
    crf = json.loads((tmp_path / "hf" / "crf.json").read_text())
    np.testing.assert_allclose(crf["transitions"], model.crf.transitions.numpy(), rtol=1e-6)
    assert crf["labels"] == tags


def test_convert_refuses_what_hf_cannot_express(tmp_path):
    bright = built(modeling.AlbertPretrainingModel(small_config()))
    with pytest.raises(ValueError, match="cannot express the brightmart family"):
        convert.albert_state_dict(bright)
    preln = built(modeling.AlbertModel(small_config(ln_type="preln")))
    with pytest.raises(ValueError, match="ln_type: 'preln' has no HF transformers equivalent"):
        convert.write_hf_directory(preln, str(tmp_path))
    assert not os.listdir(tmp_path)


# ---------------------------------------------------------------------------------------------------------------------
# SavedModel
# ---------------------------------------------------------------------------------------------------------------------

_SERVE = textwrap.dedent("""
    import importlib.util, sys
    import numpy as np
    import tensorflow as tf
    assert importlib.util.find_spec("modeling") is None and importlib.util.find_spec("checkpoints") is None
    inputs = dict(np.load("inputs.npz"))
    for name in ("backbone", "classifier"):
        serve = tf.saved_model.load(name).signatures["serving_default"]
        out = serve(**{k: tf.constant(v) for k, v in inputs.items()})
        np.savez(name + "_out.npz", **{k: v.numpy() for k, v in out.items()})
""")


@pytest.mark.slow
def test_saved_model_serves_without_project_code(tmp_path):
    config = small_config(ln_type="preln")
    clf = built(modeling.AlbertClassifier(config, num_labels=2))
    randomize(clf, seed=12)
    prefix = checkpoints.write_tf1_checkpoint(clf, str(tmp_path / "ckpt" / "model.ckpt"))
    config.to_json_file(str(tmp_path / "c.json"))
    flags = [f"--bert_config_file={tmp_path}/c.json", f"--init_checkpoint={prefix}", "--max_seq_length=11"]
    assert export_saved_model.main(flags + [f"--export_dir={tmp_path}/classifier", "--num_labels=2"]) == [
        "pooled_output", "sequence_output", "logits", "probabilities"]
    export_saved_model.main(flags + [f"--export_dir={tmp_path}/backbone"])  # --num_labels 0: backbone only

    inputs = {k: v for k, v in batch().items() if k != "masked_lm_positions"}
    np.savez(tmp_path / "inputs.npz", **inputs)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", _SERVE], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    ref = run(clf, inputs)
    backbone = dict(np.load(tmp_path / "backbone_out.npz"))
    assert sorted(backbone) == ["pooled_output", "sequence_output"]
    assert_close(backbone, ref, ("sequence_output", "pooled_output"))
    assert_close(dict(np.load(tmp_path / "classifier_out.npz")), ref, ("logits", "probabilities", "pooled_output"))


@pytest.mark.slow  # a subprocess (CLI, converter or replicas): the full run, not the edit loop
def test_checkpoints_cli_describes_a_checkpoint(tmp_path):
    """``python checkpoints.py CKPT`` prints the format, family, heads, config sizes."""
    config = small_config(num_hidden_groups=1)
    model = built(modeling.AlbertClassifier(config, 3))
    prefix = checkpoints.write_tf1_checkpoint(model, str(tmp_path / "model.ckpt"))
    text = checkpoints.describe(prefix)
    assert "TF1 checkpoint, google family" in text and "classifier or tagger (3 labels)" in text
    assert f"vocab_size {config.vocab_size}, embedding_size {config.embedding_size}, hidden_size " \
           f"{config.hidden_size}" in text
    done = subprocess.run([sys.executable, str(checkpoints.__file__)], capture_output=True, text=True)
    assert done.returncode != 0 and "usage: python checkpoints.py CHECKPOINT" in done.stderr


def test_a_truncated_checkpoint_is_named(tmp_path):
    """a .data file cut short (an interrupted copy) is an error naming the checkpoint and the fix, not a
    bare IndexError."""
    config = small_config(num_hidden_groups=1)
    model = modeling.AlbertModel(config)
    model.build()
    prefix = checkpoints.write_tf1_checkpoint(model, str(tmp_path / "model.ckpt"))
    data = next(tmp_path.glob("model.ckpt.data-*"))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    fresh = modeling.AlbertModel(config)
    fresh.build()
    with pytest.raises(checkpoints.CheckpointError, match=rf"^{data}: truncated or corrupt checkpoint data "
                                                          rf"\({data.stat().st_size} bytes\); re-copy it$"):
        checkpoints.load_checkpoint(fresh, prefix, verbose=False)


def test_google_family_with_e_equal_h_has_no_mapping_and_converts(tmp_path):
    """13.7b: Google's TF1 code builds embedding_hidden_mapping_in only when E != H. Such a checkpoint loads (no
    mapping variable is expected), and HF, which always applies the mapping, gets the identity: same outputs."""
    transformers = pytest.importorskip("transformers")
    config = small_config(num_hidden_groups=1, embedding_size=small_config().hidden_size)
    model = built(modeling.AlbertPretrainingModel(config))
    assert model.albert.embeddings.embedding_hidden_mapping_in is None
    randomize(model, seed=11)
    prefix = checkpoints.write_tf1_checkpoint(model, str(tmp_path / "ckpt" / "model.ckpt"))
    names = [name for name, _ in tf.train.list_variables(prefix)]
    assert not [n for n in names if "embedding_hidden_mapping_in" in n]
    assert checkpoints.inspect_checkpoint(prefix).family == modeling.GOOGLE  # from its transformer/group_ names
    again = built(modeling.AlbertPretrainingModel(config))
    checkpoints.load_checkpoint(again, prefix, verbose=False)
    inputs = batch()
    assert_close(run(again, inputs), run(model, inputs), OUTPUTS)
    config.to_json_file(str(tmp_path / "albert_config.json"))
    convert.main([f"--tf_checkpoint_path={prefix}", f"--pytorch_dump_path={tmp_path}/hf",
                  f"--albert_config_file={tmp_path}/albert_config.json"])
    hf = _hf_load(transformers.AlbertForPreTraining, tmp_path / "hf")
    assert_close(run(model, inputs), hf_outputs(hf, inputs), OUTPUTS)


def test_a_grouped_ffn_checkpoint_is_refused_with_the_reason(tmp_path, google_ckpt):
    """the original's *_google_fast checkpoints store grouped dense kernels [G, in/G, out/G]: refused as
    unsupported, not with a bare shape error."""
    _, hf = google_ckpt
    arrays = tf1.google_from_hf({k: v.detach().numpy() for k, v in hf.state_dict().items()}, LAYERS, 2)
    kernel = next(n for n in arrays if n.endswith("ffn_1/intermediate/dense/kernel"))
    hidden, inner = arrays[kernel].shape
    arrays[kernel] = np.zeros([4, hidden // 4, inner // 4], np.float32)
    tf1.save_tf1(str(tmp_path / "model.ckpt"), arrays)
    model = built(modeling.AlbertPretrainingModel(small_config(num_hidden_groups=2)))
    with pytest.raises(checkpoints.CheckpointError, match=r"grouped dense layers .* not supported here"):
        checkpoints.load_checkpoint(model, str(tmp_path / "model.ckpt"), verbose=False)
