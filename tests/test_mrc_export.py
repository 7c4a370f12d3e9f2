"""run_mrc.py's model (modeling.AlbertSpanExtractor) after training: its checkpoints (ours and TF1, both families)
load back through ``checkpoints.model_from_checkpoint(span_extraction=True)``, every export_model.py format gives
its start/end logits (loaded in a fresh process by its own runtime), and the HF converter writes
``*ForQuestionAnswering`` models with the same logits.

The span logits are -10000 outside [CLS] and the context pieces (modeling.AlbertSpanExtractor.MASKED_LOGIT); an export
must keep that constant exactly, and the other positions are compared with the Keras model.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

import checkpoints
import convert_albert_tf_checkpoint_to_pytorch as convert
import export_model
import export_saved_model
import modeling
import test_export
from test_checkpoints import _hf_load, built, run
from test_cli_flags import CLIS, exits
from test_export import SEQ, load_fresh
from test_modeling import max_abs, randomize, small_config

MASKED = modeling.AlbertSpanExtractor.MASKED_LOGIT
SPAN_OUTPUTS = ("start_logits", "end_logits")
# brightmart with the default share_type ("all"), its pre-LN form (loss_layer_norm), and the Google family
CONFIGS = {"brightmart": {}, "brightmart_preln": {"ln_type": "preln"}, "google": {"num_hidden_groups": 1}}


def span_model(kind: str, seed: int = 3) -> modeling.AlbertSpanExtractor:
    model = built(modeling.AlbertSpanExtractor(small_config(**CONFIGS[kind])))
    randomize(model, seed=seed)
    return model


def save(model, directory, written_as: str) -> str:
    """TF1 names (checkpoints.write_tf1_checkpoint) or our object-based checkpoint, as the training loop writes it."""
    if written_as == "tf1":
        return checkpoints.write_tf1_checkpoint(model, str(directory / "model.ckpt"), global_step=5)
    step = tf.Variable(5, dtype=tf.int64)
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model, step=step), str(directory / "run"), 1).save()
    return str(directory / "run")


def span_inputs() -> dict[str, np.ndarray]:
    """[CLS] question [SEP] context [SEP] rows of SEQ pieces: one full, two padded (context at 13..22, 6..16,
    4..7), so every row has masked positions of all three kinds (question, final [SEP], padding)."""
    rng = np.random.default_rng(7)
    lengths, context_starts = np.array([SEQ, 18, 9]), np.array([13, 6, 4])
    positions = np.arange(SEQ)[None]
    mask = (positions < lengths[:, None]).astype(np.int32)
    ids = rng.integers(5, 90, size=(3, SEQ)).astype(np.int32) * mask
    ids[:, 0] = 2
    segments = (positions >= context_starts[:, None]).astype(np.int32) * mask
    return {"input_ids": ids, "input_mask": mask, "segment_ids": segments}


def answer_mask(inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Where the span logits are not the masked constant: [CLS] and the context pieces (not the final [SEP])."""
    return modeling.AlbertSpanExtractor.answer_mask({k: tf.constant(v) for k, v in inputs.items()}).numpy()


# ---------------------------------------------------------------------------------------------------------------------
# (a) checkpoints: ours and TF1, both families
# ---------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("written_as", ["tf1", "tf2"])
@pytest.mark.parametrize("kind", sorted(CONFIGS))
def test_span_extractor_loads_back_from_its_checkpoints(tmp_path, kind, written_as):
    model = span_model(kind)
    path = save(model, tmp_path, written_as)
    model.config.to_json_file(str(tmp_path / "config.json"))
    loaded, report = checkpoints.model_from_checkpoint(str(tmp_path / "config.json"), path, span_extraction=True,
                                                       verbose=False)
    assert type(loaded) is modeling.AlbertSpanExtractor and loaded.config.model_family == model.config.model_family
    assert report.missing == [] and report.unused == [] and len(report.matched) == len(model.variables)
    assert ("loss/LayerNorm/gamma" in report.matched) == (kind == "brightmart_preln")
    inputs = span_inputs()
    ours, again = run(model, inputs), run(loaded, inputs)
    for key in SPAN_OUTPUTS + ("null_score",):
        assert max_abs(again[key], ours[key]) == 0.0, key
    mask = answer_mask(inputs)
    assert (ours["start_logits"][~mask] == MASKED).all() and np.std(ours["start_logits"][mask]) > 0.05
    assert "or span extractor (run_mrc.py" in checkpoints.describe(path)  # 2 rows: the flag tells


def test_span_extraction_needs_a_two_row_head(tmp_path):
    config = small_config(num_hidden_groups=1)
    config.to_json_file(str(tmp_path / "config.json"))
    config_file = str(tmp_path / "config.json")
    classifier = checkpoints.write_tf1_checkpoint(built(modeling.AlbertClassifier(config, 3)),
                                                  str(tmp_path / "clf" / "model.ckpt"))
    with pytest.raises(checkpoints.CheckpointError, match=r"holds a head of 3 rows \(output_weights \[3, 32\]\).*"
                                                          r"needs root output_weights \[2, hidden_size\]"):
        checkpoints.model_from_checkpoint(config_file, classifier, span_extraction=True)
    pretraining = checkpoints.write_tf1_checkpoint(built(modeling.AlbertPretrainingModel(config)),
                                                   str(tmp_path / "pre" / "model.ckpt"))
    with pytest.raises(checkpoints.CheckpointError, match=r"holds MLM and SOP heads \(a pretraining checkpoint\), "
                                                          r"no span head"):
        checkpoints.model_from_checkpoint(config_file, pretraining, span_extraction=True)
    model, report = checkpoints.model_from_checkpoint(config_file, pretraining, span_extraction=True,
                                                      require_heads=False, verbose=False)  # fine-tuning starts so
    assert isinstance(model, modeling.AlbertSpanExtractor) and sorted(report.missing) == ["output_bias",
                                                                                         "output_weights"]
    tagger = checkpoints.write_tf1_checkpoint(built(modeling.AlbertTokenClassifier(config, 2, use_crf=True)),
                                              str(tmp_path / "ner" / "model.ckpt"))
    with pytest.raises(checkpoints.CheckpointError, match="holds a CRF .* a run_ner.py tagger, not a span extractor"):
        checkpoints.model_from_checkpoint(config_file, tagger, span_extraction=True)
    for kwargs in ({"tagger": True}, {"num_labels": 3}):
        with pytest.raises(ValueError, match="span_extraction: a span extractor has a 2-row head"):
            checkpoints.model_from_checkpoint(config_file, classifier, span_extraction=True, **kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# (b) export formats
# ---------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def span_checkpoint(tmp_path_factory):
    """A brightmart span extractor with random weights, saved as our training loop saves, and its config file."""
    d = tmp_path_factory.mktemp("mrc")
    model = span_model("brightmart", seed=5)
    path = save(model, d, "tf2")
    model.config.to_json_file(str(d / "config.json"))
    return model, str(d / "config.json"), path


# The largest |int8 - Keras| span logit allowed, as a share of the Keras logits' range over the unmasked positions
# (about 1.4-2 here). Measured: LiteRT 0.035 (2.5% of the range), ONNX 0.093 (6.5%); best start/end equal on 3/3 rows.
INT8_SHARE = 0.15


@pytest.mark.slow
@pytest.mark.parametrize("fmt, quantize", [("saved_model", "none"), ("litert", "none"), ("litert", "dynamic_int8"),
                                           ("onnx", "none"), ("onnx", "dynamic_int8")])
def test_every_format_gives_the_span_logits(span_checkpoint, tmp_path, monkeypatch, fmt, quantize):
    """Each format, loaded by its own runtime in a fresh process: the masked constant exactly where Keras has it,
    Keras' logits elsewhere (fp32 within 1e-4; int8 within INT8_SHARE of their range and the same best start/end
    on most rows)."""
    model, config_file, path = span_checkpoint
    written = export_model.main([f"--bert_config_file={config_file}", f"--init_checkpoint={path}", "--span_extraction",
                                 f"--export_dir={tmp_path / 'export'}", f"--format={fmt}", f"--quantize={quantize}",
                                 f"--max_seq_length={SEQ}"])
    monkeypatch.setattr(test_export, "inputs", span_inputs)  # load_fresh feeds test_export.inputs()
    out = load_fresh(tmp_path, fmt, written)
    assert set(out) == {"pooled_output", "sequence_output", "start_logits", "end_logits"}
    keras_out = run(model, span_inputs())
    mask = answer_mask(span_inputs())
    worst = {}
    for key in SPAN_OUTPUTS:
        assert np.isfinite(out[key]).all() and out[key].dtype == np.float32
        assert (out[key][~mask] == MASKED).all(), key  # exactly, int8 too: a select, not arithmetic
        worst[key] = max_abs(out[key][mask], keras_out[key][mask])
        best, keras_best = out[key].argmax(-1), keras_out[key].argmax(-1)
        if quantize == "none":
            assert worst[key] <= 1e-4, (key, worst[key])
            assert (best == keras_best).all()
        else:
            assert worst[key] <= INT8_SHARE * np.ptp(keras_out[key][mask]), (key, worst[key])
            assert (best == keras_best).mean() >= 2 / 3, (key, best, keras_best)
    agree = {k: float((out[k].argmax(-1) == keras_out[k].argmax(-1)).mean()) for k in SPAN_OUTPUTS}
    print(f"{fmt} {quantize}: largest |difference| from Keras at the unmasked positions {worst}, argmax agreement "
          f"{agree}, logit range {[float(np.ptp(keras_out[k][mask])) for k in SPAN_OUTPUTS]}")


def test_export_saved_model_cli_takes_the_flag(span_checkpoint, tmp_path):
    model, config_file, path = span_checkpoint
    export_dir = tmp_path / "export"
    outputs = export_saved_model.main([f"--bert_config_file={config_file}", f"--init_checkpoint={path}",
                                       "--span_extraction", f"--export_dir={export_dir}", f"--max_seq_length={SEQ}"])
    assert outputs == ["pooled_output", "sequence_output", "start_logits", "end_logits"]
    served = tf.saved_model.load(str(export_dir)).signatures["serving_default"](
        **{k: tf.constant(v) for k, v in span_inputs().items()})
    keras_out = run(model, span_inputs())
    for key in SPAN_OUTPUTS:
        np.testing.assert_allclose(served[key].numpy(), keras_out[key], atol=1e-5)


def test_the_check_batch_of_a_span_extractor_has_a_context():
    """export_model's after-export check feeds two segments to a span extractor: else only [CLS] would be compared."""
    inputs = export_model.check_inputs(SEQ, 97, pair=True)
    mask = answer_mask(inputs)
    assert mask[:, 1:].sum(axis=1).min() >= 4  # context pieces in every row, the padded one included
    assert (export_model.check_inputs(SEQ, 97)["segment_ids"] == 0).all()  # other heads: as before


VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "capital", "of", "is", "what", "where", "##s", "?", ",",
         "."] + list("北京是中国的首都哪里上海一座城市在东部谁写了这本书作者鲁迅")


@pytest.mark.slow
def test_serving_text_pair_packs_question_and_context_as_run_mrc(span_checkpoint, tmp_path):
    """--with_tokenizer: serving_text_pair(text_a=question, text_b=context) gives run_mrc.py's first window
    (mrc_data.MrcEncoder) when the question is short, and the span logits of those ids."""
    import mrc_data
    import tokenization

    model, config_file, path = span_checkpoint
    (tmp_path / "vocab.txt").write_text("\n".join(VOCAB) + "\n", encoding="utf-8")
    export_dir = export_model.main([f"--bert_config_file={config_file}", f"--init_checkpoint={path}",
                                    "--span_extraction", f"--export_dir={tmp_path / 'export'}",
                                    f"--max_seq_length={SEQ}", "--with_tokenizer",
                                    f"--vocab_file={tmp_path / 'vocab.txt'}"])
    questions = ["中国的首都是哪里？", "What is the capital?", "谁写了这本书", "where"]
    contexts = ["北京是中国的首都，上海是一座在东部的城市。", "Beijing is the capital of China.", "作者是鲁迅。",
                "上海" * 30]  # the last one is cut: one window, no striding
    served = tf.saved_model.load(export_dir).signatures["serving_text_pair"](
        text_a=tf.constant(questions), text_b=tf.constant(contexts))
    python = tokenization.FullTokenizer(str(tmp_path / "vocab.txt"), do_lower_case=True, split_special_tokens=True)
    encoder = mrc_data.MrcEncoder(python, SEQ, doc_stride=8, max_query_length=10)
    for i, (question, context) in enumerate(zip(questions, contexts)):
        example = mrc_data.MrcExample(str(i), question, context, answers=[], spans=[])
        _, features = next(encoder.encode([example]))  # the first window
        for key in ("input_ids", "input_mask", "segment_ids"):
            assert served[key][i].numpy().tolist() == features[key].tolist(), (question, key)
    keras_out = run(model, {k: served[k].numpy() for k in ("input_ids", "input_mask", "segment_ids")})
    for key in SPAN_OUTPUTS:
        np.testing.assert_allclose(served[key].numpy(), keras_out[key], atol=1e-4)


# ---------------------------------------------------------------------------------------------------------------------
# (c) HF transformers: *ForQuestionAnswering
# ---------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind, architecture", [("google", "AlbertForQuestionAnswering"),
                                                ("brightmart", "BertForQuestionAnswering")])
def test_convert_span_extractor_to_hf_question_answering(tmp_path, kind, architecture):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    model = span_model(kind, seed=9)
    path = save(model, tmp_path, "tf2")
    model.config.to_json_file(str(tmp_path / "c.json"))
    assert convert.main([f"--tf_checkpoint_path={path}", f"--bert_config_file={tmp_path}/c.json",
                         "--span_extraction", f"--pytorch_dump_path={tmp_path}/hf"]) == architecture
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["id2label"] == {"0": "start", "1": "end"} and "classifier_dropout" not in config
    hf = _hf_load(getattr(transformers, architecture), tmp_path / "hf")  # no missing/unused keys: no pooler
    assert hf.num_labels == 2 and getattr(hf, hf.base_model_prefix).pooler is None
    inputs = span_inputs()
    with torch.no_grad():
        hf_out = hf(input_ids=torch.tensor(inputs["input_ids"], dtype=torch.long),
                    attention_mask=torch.tensor(inputs["input_mask"], dtype=torch.long),
                    token_type_ids=torch.tensor(inputs["segment_ids"], dtype=torch.long))
    ours, mask = run(model, inputs), answer_mask(inputs)
    for key in SPAN_OUTPUTS:
        theirs = getattr(hf_out, key).numpy()
        assert max_abs(ours[key][mask], theirs[mask]) <= 1e-4, key
        assert np.std(theirs[mask]) > 0.05, key  # not near-constant logits


def test_convert_refuses_a_pre_ln_span_extractor(tmp_path):
    """HF's QA head is a bare Linear (no loss_layer_norm) and HF's models are post-LN: refused, nothing written."""
    with pytest.raises(ValueError, match="ln_type: 'preln' has no HF transformers equivalent"):
        convert.write_hf_directory(span_model("brightmart_preln"), str(tmp_path / "hf"))
    assert not (tmp_path / "hf").exists()


# ---------------------------------------------------------------------------------------------------------------------
# (d) the flag
# ---------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["export_model", "export_saved_model", "convert"])
def test_span_extraction_flag(name, capsys):
    module, _, base, _ = CLIS[name]
    assert module.parse_flags(base).span_extraction is False
    for forms, value in ((["--span_extraction"], True), (["--span_extraction=true"], True),
                         (["--span_extraction=false"], False), (["--nospan_extraction"], False)):
        assert module.parse_flags(base + forms).span_extraction is value, forms
    assert module.parse_flags(base + ["--span_extraction", "--num_labels=2"]).num_labels == 2
    assert "the span head has 2 rows (start, end), not --num_labels=3" in exits(
        capsys, module.parse_flags, base + ["--span_extraction", "--num_labels=3"])
    if name != "export_saved_model":
        for tagger in (["--token_classification"], ["--tag_list_file=tags.txt"]):
            text = exits(capsys, module.parse_flags, base + ["--span_extraction"] + tagger)
            assert "are two different models" in text
