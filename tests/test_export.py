"""export_model.py: every format of a small fine-tuned classifier, loaded in a fresh process by its own runtime only
(tf.saved_model, ai_edge_litert, onnxruntime; no project code), against the Keras model."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import export_model
import modeling
from test_modeling import randomize, small_config

SEQ = 24

_LOAD = textwrap.dedent("""
    import importlib.util, sys
    import numpy as np
    assert importlib.util.find_spec("modeling") is None and importlib.util.find_spec("export_model") is None
    inputs = dict(np.load("inputs.npz"))
    fmt, path = sys.argv[1], sys.argv[2]
    if fmt == "saved_model":
        import tensorflow as tf
        serve = tf.saved_model.load(path).signatures["serving_default"]
        out = {k: v.numpy() for k, v in serve(**{k: tf.constant(v) for k, v in inputs.items()}).items()}
    elif fmt == "litert":
        from ai_edge_litert.interpreter import Interpreter
        out = Interpreter(model_path=path).get_signature_runner("serving_default")(**inputs)
    else:
        import onnxruntime
        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        out = dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs)))
    np.savez(sys.argv[3], **out)
""")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A Google-family classifier with random weights, saved as our training loop saves, and its config file."""
    d = tmp_path_factory.mktemp("clf")
    config = small_config(num_hidden_groups=1, max_position_embeddings=32)
    model = modeling.AlbertClassifier(config, 3)
    model.build()
    randomize(model, seed=3)
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(d / "run"), 1).save()
    config.to_json_file(str(d / "config.json"))
    return model, d


def inputs() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    ids = rng.integers(5, 90, size=(3, SEQ)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[1, 10:] = 0
    ids[mask == 0] = 0
    return {"input_ids": ids, "input_mask": mask, "segment_ids": (np.arange(SEQ)[None] > 12).astype(np.int32) * mask}


def load_fresh(tmp_path, fmt: str, path: str) -> dict[str, np.ndarray]:
    np.savez(tmp_path / "inputs.npz", **inputs())
    done = subprocess.run([sys.executable, "-c", _LOAD, fmt, path, str(tmp_path / "out.npz")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return dict(np.load(tmp_path / "out.npz"))


@pytest.mark.slow
@pytest.mark.parametrize("fmt, quantize", [("saved_model", "none"), ("litert", "none"), ("litert", "dynamic_int8"),
                                           ("litert", "float16"), ("onnx", "none"), ("onnx", "dynamic_int8"),
                                           ("onnx", "float16")])
def test_every_format_round_trips(classifier, tmp_path, fmt, quantize):
    model, d = classifier
    path = export_model.main([f"--bert_config_file={d / 'config.json'}", f"--init_checkpoint={d / 'run'}",
                              f"--export_dir={tmp_path / 'export'}", f"--format={fmt}", f"--quantize={quantize}",
                              f"--max_seq_length={SEQ}"])
    out = load_fresh(tmp_path, fmt, path)
    keras_out = {k: v.numpy() for k, v in model(inputs(), training=False).items()}
    assert set(out) == {"pooled_output", "sequence_output", "logits", "probabilities"}
    for key in out:
        assert np.isfinite(out[key]).all()
    difference = np.abs(out["probabilities"] - keras_out["probabilities"]).max()
    if quantize == "none":
        assert difference <= 1e-4
        np.testing.assert_allclose(out["sequence_output"], keras_out["sequence_output"], atol=1e-4)
    elif quantize == "float16":  # float16 weights (ONNX: float16 arithmetic too): close, and stored as float16
        assert difference <= 5e-3
        np.testing.assert_allclose(out["sequence_output"], keras_out["sequence_output"], atol=5e-2)
        assert weight_dtypes(fmt, path) & {"float16"}, weight_dtypes(fmt, path)
    else:  # int8 weights: close, not equal
        assert difference <= 0.05
        assert (out["probabilities"].argmax(-1) == keras_out["probabilities"].argmax(-1)).mean() >= 2 / 3
    if fmt == "litert":
        ops = export_model.litert_ops(path)
        assert not [op for op in ops if op.startswith("Flex") or op == "CUSTOM"], ops  # built-in ops only
        assert "FULLY_CONNECTED" in ops or "BATCH_MATMUL" in ops


@pytest.mark.slow
def test_a_bf16_saved_model_computes_in_bf16_close_to_float32(classifier, tmp_path, capsys):
    model, d = classifier
    flags = [f"--bert_config_file={d / 'config.json'}", f"--init_checkpoint={d / 'run'}", f"--max_seq_length={SEQ}"]
    path = export_model.main(flags + [f"--export_dir={tmp_path / 'bf16'}", "--mixed_precision=bf16"])
    assert keras.mixed_precision.global_policy().name == "float32"  # the CLI leaves the process as it found it
    out = load_fresh(tmp_path, "saved_model", path)
    keras_out = {k: v.numpy() for k, v in model(inputs(), training=False).items()}
    for key in ("sequence_output", "logits"):
        assert out[key].dtype == np.float32, key
        difference = np.abs(out[key] - keras_out[key]).max()
        assert 0 < difference <= 0.05 * np.abs(keras_out[key]).max(), (key, difference)  # bf16 rounding, no more
    with pytest.raises(SystemExit, match="2"):  # absl usage error: LiteRT/ONNX convert the float32 graph
        export_model.main(flags + [f"--export_dir={tmp_path / 'x'}", "--format=litert", "--mixed_precision=bf16"])
    assert "--mixed_precision=bf16 needs --format=saved_model (not litert)" in capsys.readouterr().err


def weight_dtypes(fmt: str, path: str) -> set[str]:
    """The element types of the constant tensors (weights) an exported file stores."""
    if fmt == "litert":
        from ai_edge_litert.interpreter import Interpreter

        return {np.dtype(t["dtype"]).name for t in Interpreter(model_path=path).get_tensor_details()}
    import onnx

    return {onnx.helper.tensor_dtype_to_np_dtype(t.data_type).name for t in onnx.load(path).graph.initializer}


def test_clear_errors(classifier, tmp_path):
    model, d = classifier
    with pytest.raises(ValueError, match=r"--max_seq_length=64 is not in 1..max_position_embeddings \(32\)"):
        export_model.export(model, str(tmp_path / "x"), "litert", 64)
    with pytest.raises(ValueError, match="--format='tflite': expected one of saved_model, litert, onnx"):
        export_model.export(model, str(tmp_path / "x"), "tflite", SEQ)
    with pytest.raises(SystemExit):  # absl names the choices (exit status 2)
        export_model.main([f"--bert_config_file={d / 'config.json'}", f"--init_checkpoint={d / 'run'}",
                           f"--export_dir={tmp_path / 'x'}", "--format=tflite"])
    pretraining = modeling.AlbertPretrainingModel(small_config(num_hidden_groups=1, max_position_embeddings=32))
    pretraining.build()
    prefix = checkpoints.write_tf1_checkpoint(pretraining, str(tmp_path / "pre" / "model.ckpt"))
    with pytest.raises(SystemExit, match="holds a pretraining model"):
        export_model.main([f"--bert_config_file={d / 'config.json'}", f"--init_checkpoint={prefix}",
                           f"--export_dir={tmp_path / 'y'}", "--format=onnx"])
    with pytest.raises(Exception, match="has no classifier head for this model; it would be random"):
        export_model.main([f"--bert_config_file={d / 'config.json'}", f"--init_checkpoint={prefix}",
                           f"--export_dir={tmp_path / 'z'}", "--format=onnx", "--num_labels=2"])
    assert not (tmp_path / "y").exists() and not (tmp_path / "z").exists()


@pytest.mark.slow  # a subprocess (CLI, converter or replicas): the full run, not the edit loop
def test_a_nan_export_never_gets_its_final_name(classifier, tmp_path, monkeypatch):
    """An ONNX runtime that answers NaN (as broken TFLite ALBERT exports did): the export fails and leaves no file."""
    model, _ = classifier
    export_model.export(model, str(tmp_path / "sm"), "saved_model", SEQ)

    def nan_runtime(path, feed):
        reference = export_model.saved_model_outputs(str(tmp_path / "sm"), feed)
        return {k: np.full(v.shape, np.nan, v.dtype) if v.dtype.kind == "f" else v for k, v in reference.items()}

    monkeypatch.setattr(export_model, "run_onnx", nan_runtime)
    with pytest.raises(ValueError, match="holds NaN"):
        export_model.export(model, str(tmp_path / "onnx"), "onnx", SEQ)
    assert sorted(p.name for p in (tmp_path / "onnx").iterdir()) == []


@pytest.fixture(scope="module")
def text_vocab(tmp_path_factory, reference_dir):
    """The special tokens, then as many of the original vocab's other lines as the classifier's vocab has ids."""
    from test_modeling import V

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    lines = open(reference_dir / "albert_config" / "vocab.txt", encoding="utf-8").read().split("\n")
    words = [w for w in lines if w and w not in specials and not w.startswith("[unused")]
    path = tmp_path_factory.mktemp("vocab") / "vocab.txt"
    path.write_text("\n".join(specials + words[:V - len(specials)]) + "\n", encoding="utf-8")
    return str(path)


@pytest.mark.slow
def test_text_signatures_give_the_python_features_and_the_same_outputs(classifier, tmp_path, text_vocab):
    """serving_text / serving_text_pair in a fresh process (no project code): the ids run_classifier.py would feed,
    and the same probabilities as serving_default on those ids."""
    import classifier_data
    import tokenization

    model, d = classifier
    export_dir = tmp_path / "export"
    export_model.main([f"--bert_config_file={d / 'config.json'}", f"--init_checkpoint={d / 'run'}",
                       f"--export_dir={export_dir}", f"--max_seq_length={SEQ}", "--with_tokenizer",
                       f"--vocab_file={text_vocab}"])
    texts_a = ["[CLS] hello!", "", "中文 [SEP] 文本", "unused x" * 20]
    texts_b = ["", "b only", "对", "!"]
    script = textwrap.dedent("""
        import importlib.util, json, sys
        import numpy as np, tensorflow as tf
        assert importlib.util.find_spec("graph_tokenizer") is None
        loaded = tf.saved_model.load(sys.argv[1])
        a, b = json.loads(sys.argv[2]), json.loads(sys.argv[3])
        single = loaded.signatures["serving_text"](text_a=tf.constant(a))
        pair = loaded.signatures["serving_text_pair"](text_a=tf.constant(a), text_b=tf.constant(b))
        ids = loaded.signatures["serving_default"](**{k: pair[k] for k in ("input_ids", "input_mask", "segment_ids")})
        same = loaded.serving_text(tf.constant(a), tf.constant(b))  # the Python attribute: text_b optional
        np.savez(sys.argv[4], **{"single_" + k: v.numpy() for k, v in single.items()},
                 **{"pair_" + k: v.numpy() for k, v in pair.items()}, by_ids=ids["probabilities"].numpy(),
                 attribute=same["probabilities"].numpy())
    """)
    import json
    done = subprocess.run([sys.executable, "-c", script, str(export_dir), json.dumps(texts_a), json.dumps(texts_b),
                           str(tmp_path / "out.npz")], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    out = dict(np.load(tmp_path / "out.npz"))
    python = tokenization.FullTokenizer(text_vocab, do_lower_case=True, split_special_tokens=True)
    for prefix, partners in (("single_", [None] * 4), ("pair_", texts_b)):
        for i, (a, b) in enumerate(zip(texts_a, partners)):
            ids, mask, segments, _ = classifier_data.encode_text(python, a, b, SEQ)
            assert out[prefix + "input_ids"][i].tolist() == ids
            assert out[prefix + "input_mask"][i].tolist() == mask
            assert out[prefix + "segment_ids"][i].tolist() == segments
    assert out["single_input_ids"][1].tolist()[:2] == [python.vocab["[CLS]"], python.vocab["[SEP]"]]
    np.testing.assert_allclose(out["pair_probabilities"], out["by_ids"], atol=1e-6)
    np.testing.assert_allclose(out["pair_probabilities"], out["attribute"], atol=1e-6)
    keras = model({k: out["pair_" + k] for k in ("input_ids", "input_mask", "segment_ids")}, training=False)
    np.testing.assert_allclose(out["pair_probabilities"], keras["probabilities"].numpy(), atol=1e-4)


def test_tokenizer_errors(classifier, tmp_path, text_vocab):
    model, d = classifier
    base = [f"--bert_config_file={d / 'config.json'}", f"--init_checkpoint={d / 'run'}",
            f"--export_dir={tmp_path / 'x'}", "--with_tokenizer"]
    with pytest.raises(SystemExit):  # a usage error: --with_tokenizer needs --vocab_file
        export_model.main(base)
    with pytest.raises(SystemExit):  # ... and a SavedModel
        export_model.main(base + [f"--vocab_file={text_vocab}", "--format=litert"])
    with pytest.raises(ValueError, match=r"--max_seq_length=33 is not in 1..max_position_embeddings \(32\)"):
        export_model.main(base + [f"--vocab_file={text_vocab}", "--max_seq_length=33"])
    assert not (tmp_path / "x").exists()
