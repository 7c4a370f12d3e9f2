"""Export checks that can fail: a tagger's tags and a classifier's argmax are compared (export_model.compare), a
tagger exports to LiteRT and ONNX with the Keras model's tags, and the text-in tagger tags words, not pieces."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

import export_model
import modeling
import ner_data
from test_export import SEQ
from test_modeling import randomize, small_config

TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def outputs(tags: np.ndarray, logits: np.ndarray | None = None) -> dict[str, np.ndarray]:
    out = {"pooled_output": np.zeros([len(tags), 4], np.float32), "tags": tags}
    return out if logits is None else {**out, "logits": logits}


def test_fp32_tags_must_be_equal():
    reference = outputs(np.zeros([2, 50], np.int32))
    ours = outputs(reference["tags"].copy())
    ours["tags"][1, 3] = 2
    with pytest.raises(ValueError, match=r"model.onnx: tags equal the SavedModel's on 99.0% .* \(none: needs 100%\)"):
        export_model.compare("model.onnx", ours, reference, "none")
    mask = np.ones([2, 50], np.int32)
    mask[1, 3:] = 0  # a difference on padding is no difference
    assert export_model.compare("model.onnx", ours, reference, "none", mask)[1] == {"tags": 1.0}


def test_int8_tags_and_argmax_must_agree_on_99_percent():
    reference = outputs(np.zeros([1, 200], np.int32))
    ours = outputs(reference["tags"].copy())
    ours["tags"][0, :2] = 1  # 99 %: enough
    assert export_model.compare("model.tflite", ours, reference, "dynamic_int8")[1] == {"tags": 0.99}
    ours["tags"][0, :3] = 1
    with pytest.raises(ValueError, match=r"tags equal the SavedModel's on 98.5% .* \(dynamic_int8: needs 99%\)"):
        export_model.compare("model.tflite", ours, reference, "dynamic_int8")
    logits = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    classifier = {"logits": logits, "probabilities": logits}
    flipped = {"logits": logits[[1, 1, 2, 0]], "probabilities": logits}
    with pytest.raises(ValueError, match=r"argmax of logits equal the SavedModel's on 75.0%"):
        export_model.compare("model.onnx", flipped, classifier, "dynamic_int8")
    assert export_model.compare("model.onnx", classifier, classifier, "dynamic_int8")[1] == {"argmax": 1.0}


@pytest.fixture(scope="module")
def tagger(tmp_path_factory):
    """A CRF tagger with BIO constraints and random weights, saved as run_ner.py saves it, with its tag list."""
    d = tmp_path_factory.mktemp("tagger")
    config = small_config(num_hidden_groups=1, max_position_embeddings=32)
    model = modeling.AlbertTokenClassifier(config, len(TAGS), use_crf=True, constraints=ner_data.bio_constraints(TAGS))
    model.build()
    randomize(model, seed=5)
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(d / "run"), 1).save()
    config.to_json_file(str(d / "config.json"))
    (d / "tag_list.txt").write_text("\n".join(TAGS) + "\n", encoding="utf-8")
    return model, d


# (ONNX: tf2onnx converts tf.scan(reverse=True) as a forward scan; crf.viterbi_decode backtracks without it, and
# before it did, the ONNX tagger's tags equalled Keras' on only ~80 % of the check batch.)
@pytest.mark.slow
@pytest.mark.parametrize("fmt, quantize", [("litert", "none"), ("litert", "dynamic_int8"), ("litert", "float16"),
                                           ("onnx", "none"), ("onnx", "dynamic_int8"), ("onnx", "float16")])
def test_tagger_exports_give_the_keras_tags(tagger, tmp_path, fmt, quantize):
    model, d = tagger
    path = export_model.main([f"--bert_config_file={d / 'config.json'}", f"--init_checkpoint={d / 'run'}",
                              f"--tag_list_file={d / 'tag_list.txt'}", f"--export_dir={tmp_path / 'export'}",
                              f"--format={fmt}", f"--quantize={quantize}", f"--max_seq_length={SEQ}"])
    rng = np.random.default_rng(2)
    rows = 1 if fmt == "litert" else 3  # a LiteRT tagger takes [1, max_seq_length]
    ids = rng.integers(5, 90, size=(rows, SEQ)).astype(np.int32)
    mask = np.ones_like(ids)
    mask[-1, 15:] = 0
    feed = {"input_ids": ids * mask, "input_mask": mask, "segment_ids": np.zeros_like(ids)}
    out = (export_model.run_litert if fmt == "litert" else export_model.run_onnx)(path, feed)
    want = model(feed, training=False)["tags"].numpy()
    assert out["tags"].shape == want.shape and out["tags"].dtype == np.int32
    if quantize == "none":
        np.testing.assert_array_equal(out["tags"], want)
    else:
        assert (out["tags"] == want)[mask > 0].mean() >= 0.9
    assert (out["tags"][mask == 0] == 0).all()


def test_text_in_tagger_tags_words_not_pieces(tagger, tmp_path):
    """serving_text of a tagger: label_mask marks each word's first piece, the Viterbi path runs over those only (as
    run_ner.py decodes), and ## pieces, [CLS], [SEP] and padding get tag 0."""
    import export_saved_model
    import graph_tokenizer
    import tokenization

    model, _ = tagger
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "中", "文", "play", "##ing", "##s", "un",
                                "##able", "##ly", ","]) + "\n", encoding="utf-8")
    python = tokenization.FullTokenizer(str(vocab), do_lower_case=True, split_special_tokens=True)
    texts = ["playing 中文, unable plays", "中playing unably", "", "x 中"]
    tokenizer = graph_tokenizer.GraphTokenizer(str(vocab), True, SEQ)
    export_saved_model.export_saved_model(model, str(tmp_path / "sm"), SEQ, tokenizer=tokenizer)
    out = {k: v.numpy() for k, v in
           tf.saved_model.load(str(tmp_path / "sm")).signatures["serving_text"](text_a=tf.constant(texts)).items()}
    for i, text in enumerate(texts):
        pieces = python.tokenize(text)
        firsts = [0] + [int(not p.startswith("##")) for p in pieces] + [0]
        assert out["label_mask"][i].tolist() == firsts + [0] * (SEQ - len(firsts)), text
    assert out["label_mask"][0, :9].tolist() == [0, 1, 0, 1, 1, 1, 1, 0, 1]  # [CLS] play ##ing 中 文 , un ##able
    assert (out["tags"][out["label_mask"] == 0] == 0).all()
    features = {k: out[k] for k in ("input_ids", "input_mask", "segment_ids", "label_mask")}
    np.testing.assert_array_equal(out["tags"], model(features, training=False)["tags"].numpy())


def test_extract_features_removes_the_partial_files_of_killed_runs(tmp_path):
    """A killed run leaves .NAME.partial-PID; the next run for NAME removes it, and nothing a live run or another
    output owns."""
    import subprocess
    import sys

    import extract_features

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    names = [f".out.npy.partial-{dead.pid}", f".out.npy.partial-{os.getpid()}", f".other.npy.partial-{dead.pid}",
             f".out.npy.partial-{dead.pid}.keep", "out.npy.partial-1", ".out.npy.partial-x"]
    for name in names:
        (tmp_path / name).write_bytes(b"x")
    extract_features.OutputWriters([str(tmp_path / "out.npy")], scores=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names[1:])
