"""Fine-tuning heads under mixed_bfloat16 against float32, with the same weights.

For each head a fine-tuning CLI trains (run_classifier.classification_task, run_ner.tagging_task without and with
CRF, run_mrc.span_task), one model is built under float32 and one under keras' ``mixed_bfloat16`` policy (as
``--mixed_precision=bf16`` does through training.set_precision), the float32 weights are copied into the bf16 one,
and on the same batch:

* the forward outputs (logits, probabilities, CRF log-likelihood, start/end logits) agree;
* the gradients of the task's loss (Σ sums / counts over ``loss_terms``, as training.Trainer forms it) with respect
  to every trainable variable agree.

Tolerances, and why. bfloat16 keeps 8 significant bits (7 stored + the implicit one): one rounding to bf16 (the cast
of a matmul operand) is off by up to 2^-8 ≈ 0.4 % relative, whatever the magnitude. A forward pass rounds the
activations and weights going into each matmul of 2 layers (embedding projection, QKV, attention scores and context,
output and FFN matmuls, pooler, head), while sums, LayerNorm, softmax and the loss stay float32; the errors add up
to a few percent of an output's scale, so:

* outputs: max |bf16 - fp32| <= FORWARD_TOL (5 %) of the largest |fp32| value of that output (test_modeling.py's
  bound for the pretraining heads);
* gradients: per variable, ||g_bf16 - g_fp32|| / ||g_fp32|| <= GRADIENT_TOL (5 %). The backward pass rounds
  again (the incoming gradient and the saved activations go into bf16 matmuls), so a gradient carries about twice
  an output's error: on this config the outputs were off by <= 1.8 % of their scale and the gradients by <= 2.2 %
  (query bias, LayerNorm beta), so 5 % leaves room for other CPUs' kernels without letting a wrong term through.
  A variable whose fp32 gradient norm is under GRADIENT_FLOOR (1e-3) of the model's largest is measured against
  that floor instead. The attention key bias is left out of the relative check: its gradient is zero in exact
  arithmetic (it adds q·b_k to every score of a softmax row, which the softmax ignores), so both precisions give
  rounding noise; both must stay under the floor.
* the direction of the whole gradient: cosine(g_bf16, g_fp32) >= COSINE_MIN (0.995).

Each bound is also checked to be non-trivial: bf16 must differ from fp32 somewhere (it really ran in bf16), and the
same measure between the fp32 gradients of two different label sets must exceed the tolerance many times over (the
test can tell a wrong gradient from rounding).

Taggers also decode (outside training) to the same tags on >= 90 % of the positions.

Last, test_bf16_fine_tuning_learns: the classifier under mixed_bfloat16, through training.Trainer with BERT's AdamW,
learns a trivially learnable synthetic task (a row's tokens all come from the upper or all from the lower half of the
vocabulary) to >= 90 % accuracy on held-out batches, where chance is 50 %.

A tagger with CRF under mixed_bfloat16 needs the CRF's variables to stay float32 when read: CRF.log_likelihood and
CRF.decode are called as methods inside AlbertTokenClassifier.call, so Keras' bf16 autocast scope of the model
applies to them and casts ``transitions`` to bfloat16 (AddV2 float32 + bfloat16 fails). crf.CRF.build must create its
three weights with ``autocast=False``; until then test_bf16_head_matches_fp32[tagger_crf] fails on that error.
"""

from __future__ import annotations

import importlib
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

import modeling
import optimization
import training
from test_modeling import V, batch, max_abs, randomize, small_config

FORWARD_TOL = 0.05  # of the output's largest |value| (see the module docstring)
GRADIENT_TOL = 0.05  # relative L2 error per variable
COSINE_MIN = 0.995  # of the concatenated gradients
GRADIENT_FLOOR = 1e-3  # of the largest per-variable gradient norm: below it, relative to this floor
ZERO_GRADIENT = "/key/bias"  # attention key bias: zero gradient in exact arithmetic (softmax shift invariance)
TAGS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
NUM_LABELS = 3
REPO_FLAG_MODULES = ("finetuning", "training", "optimization", "cli", "run_classifier", "run_ner", "run_mrc")


def cli_module(name: str):
    """Imports run_classifier / run_ner / run_mrc for their task functions.

    Each defines the fine-tuning flags on absl's global FLAGS when imported, so importing a second one raises
    DuplicateFlagError. The task functions read no flags, so the flags an earlier CLI import defined are dropped
    first and the module is imported again."""
    if name in sys.modules:
        return sys.modules[name]
    try:
        return importlib.import_module(name)
    except flags.DuplicateFlagError:
        for flag in list(flags.FLAGS):
            if flags.FLAGS.find_module_defining_flag(flag) in REPO_FLAG_MODULES:
                delattr(flags.FLAGS, flag)
        return importlib.import_module(name)


@pytest.fixture
def float32_policy():
    """Leaves the global dtype policy as it found it, whatever the test sets."""
    before = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    yield
    keras.mixed_precision.set_global_policy(before)


def head_task(head: str, config: modeling.AlbertConfig) -> training.Task:
    """The training.Task the CLI builds for ``head`` (dropout 0: the two models see the same network)."""
    if head == "classifier":
        return cli_module("run_classifier").classification_task(config, NUM_LABELS, 0.0)
    if head in ("tagger", "tagger_crf"):
        return cli_module("run_ner").tagging_task(config, TAGS, 0.0, use_crf=head == "tagger_crf",
                                                  bio_constraints=True)
    if head == "span":
        return cli_module("run_mrc").span_task(config)
    raise ValueError(head)


def head_features(head: str, seed: int = 0, labels_seed: int = 0) -> dict[str, tf.Tensor]:
    """test_modeling.batch (3 rows of 11 tokens, two padded) with the labels the head's task reads; another
    ``labels_seed`` gives other labels for the same inputs."""
    features = {k: v for k, v in batch(seed).items() if k != "masked_lm_positions"}
    b, t = features["input_ids"].shape
    rng = np.random.default_rng(100 + labels_seed)
    mask = features["input_mask"]
    if head == "classifier":
        features["label_ids"] = rng.integers(0, NUM_LABELS, b).astype(np.int32)
        features["is_real_example"] = np.ones(b, np.int32)
    elif head.startswith("tagger"):
        lengths = mask.sum(1)
        label_mask = ((np.arange(t)[None] > 0) & (np.arange(t)[None] < lengths[:, None] - 1)).astype(np.int32)
        label_mask[0, 4] = 0  # a second piece of a unit: skipped by the loss and the CRF's chain
        features["label_mask"] = label_mask
        features["label_ids"] = (rng.integers(0, len(TAGS), (b, t)) * label_mask).astype(np.int32)
    else:  # [CLS] question [SEP] context [SEP]: segment 1 from position 4 on; answers in the context or at [CLS]
        features["segment_ids"] = ((np.arange(t)[None] >= 4) * mask).astype(np.int32)
        last = mask.sum(1) - 1
        starts = np.array([rng.integers(4, max(5, last[i])) if last[i] > 4 else 0 for i in range(b)], np.int32)
        ends = np.array([rng.integers(s, max(s + 1, last[i])) if s else 0 for i, s in enumerate(starts)], np.int32)
        features["start_positions"], features["end_positions"] = starts, ends
    return {k: tf.constant(v) for k, v in features.items()}


def fp32_and_bf16(task: training.Task) -> tuple[keras.Model, keras.Model]:
    """The task's model built under float32 (random non-trivial weights) and under mixed_bfloat16 (set as the CLIs
    do, training.set_precision), holding the same weights."""
    keras.utils.set_random_seed(0)
    fp32 = task.build_model()
    fp32.build()
    randomize(fp32)
    training.set_precision("bf16")
    try:
        bf16 = task.build_model()
        bf16.build()
    finally:
        training.set_precision("none")
    bf16.set_weights(fp32.get_weights())
    assert bf16.albert.encoder.attention[0].query.compute_dtype == "bfloat16"
    assert fp32.albert.encoder.attention[0].query.compute_dtype == "float32"
    assert all(v.dtype == "float32" for v in bf16.variables)  # mixed: float32 weights, bf16 compute
    return fp32, bf16


def loss_and_gradients(model: keras.Model, task: training.Task, features: dict[str, tf.Tensor]):
    """(outputs, loss, gradients) of one training-mode forward/backward pass, the loss formed as Trainer does."""
    counts = task.counts(features)
    with tf.GradientTape() as tape:
        out = model(features, training=True)
        sums = task.sums(features, out)
        loss = tf.add_n([tf.math.divide_no_nan(sums[k], counts[k]) for k in task.loss_terms])
    grads = tape.gradient(loss, model.trainable_variables)
    return out, loss, [tf.convert_to_tensor(g).numpy().astype(np.float64) for g in grads]


def gradient_errors(ref: list[np.ndarray], other: list[np.ndarray]) -> tuple[list[float], float]:
    """(relative L2 error per variable, with the GRADIENT_FLOOR floor; cosine of the concatenated gradients)."""
    norms = [float(np.linalg.norm(g)) for g in ref]
    floor = GRADIENT_FLOOR * max(norms)
    errors = [float(np.linalg.norm(o - r)) / max(n, floor) for r, o, n in zip(ref, other, norms)]
    a, b = np.concatenate([g.ravel() for g in ref]), np.concatenate([g.ravel() for g in other])
    return errors, float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


HEADS = ["classifier", "tagger", "tagger_crf", "span"]
COMPARED_OUTPUTS = {"classifier": ("logits", "probabilities", "pooled_output"),
                    "tagger": ("logits", "probabilities"),
                    "tagger_crf": ("logits", "probabilities", "log_likelihood"),
                    "span": ("start_logits", "end_logits", "null_score")}


@pytest.mark.parametrize("head", HEADS)
def test_bf16_head_matches_fp32(head, float32_policy):
    config = small_config(num_hidden_layers=2)
    task = head_task(head, config)
    fp32, bf16 = fp32_and_bf16(task)
    features = head_features(head)

    # Forward, inference mode (what a served model computes).
    ref, out = fp32(features, training=False), bf16(features, training=False)
    for key in COMPARED_OUTPUTS[head]:
        assert out[key].dtype == tf.float32, key
        values = np.asarray(ref[key])
        if head == "span":  # the masked positions hold -10000 in both: compare the real logits
            values = values[values > modeling.AlbertSpanExtractor.MASKED_LOGIT / 2]
            got = np.asarray(out[key])[np.asarray(ref[key]) > modeling.AlbertSpanExtractor.MASKED_LOGIT / 2]
        else:
            got = np.asarray(out[key])
        scale = float(np.max(np.abs(values)))
        err = max_abs(got, values)
        assert err <= FORWARD_TOL * scale, (key, err, scale)
        assert err > 0.0, key  # bf16 really ran
    if head.startswith("tagger"):  # decoded tags: the same wherever the best path wins by more than rounding
        agree = float(np.mean(np.asarray(out["tags"]) == np.asarray(ref["tags"])))
        assert agree >= 0.9, agree

    # Training step: the task's loss and its gradients w.r.t. every trainable variable.
    _, loss32, grads32 = loss_and_gradients(fp32, task, features)
    _, loss16, grads16 = loss_and_gradients(bf16, task, features)
    assert len(grads32) == len(grads16) == len(fp32.trainable_variables) > 10
    assert abs(float(loss16) - float(loss32)) <= FORWARD_TOL * abs(float(loss32)), (float(loss16), float(loss32))
    errors, cosine = gradient_errors(grads32, grads16)
    names = [v.path for v in fp32.trainable_variables]
    largest = max(float(np.linalg.norm(g)) for g in grads32)
    zero = [i for i, n in enumerate(names) if n.endswith(ZERO_GRADIENT)]
    assert zero, names
    for i in zero:  # rounding noise in both precisions
        assert np.linalg.norm(grads32[i]) < GRADIENT_FLOOR * largest, names[i]
        assert np.linalg.norm(grads16[i]) < GRADIENT_FLOOR * largest, names[i]
    compared = [(e, n) for i, (e, n) in enumerate(zip(errors, names)) if i not in zero]
    worst = sorted(compared, reverse=True)[:3]
    assert worst[0][0] <= GRADIENT_TOL, worst
    assert worst[0][0] > 0.0  # bf16 gradients are not the fp32 ones
    assert cosine >= COSINE_MIN, cosine
    head_variables = [n for n in names if n.endswith(("/output_weights", "/output_bias")) or "/crf/" in n]
    assert len(head_variables) == (5 if head == "tagger_crf" else 2), head_variables  # the head's are compared

    # The measure can fail: other labels for the same inputs give a gradient far outside the tolerance.
    _, _, other = loss_and_gradients(fp32, task, head_features(head, labels_seed=1))
    other_errors, other_cosine = gradient_errors(grads32, other)
    assert max(other_errors) > 3 * GRADIENT_TOL, max(other_errors)
    assert other_cosine < COSINE_MIN, other_cosine


def separable_batches(n: int, batch_size: int, seq: int, seed: int) -> dict[str, np.ndarray]:
    """n batches, stacked, of a trivially learnable task: a row of label 1 draws its tokens from the upper half of the
    vocabulary, one of label 0 from the lower half (any token tells the label); random lengths, the rest padded."""
    rng = np.random.default_rng(seed)
    rows = n * batch_size
    labels = rng.integers(0, 2, rows).astype(np.int32)
    half = (V - 5) // 2
    ids = (5 + rng.integers(0, half, (rows, seq)) + labels[:, None] * half).astype(np.int32)
    ids[:, 0] = 2  # [CLS]
    lengths = rng.integers(seq // 2, seq + 1, rows)
    mask = (np.arange(seq)[None] < lengths[:, None]).astype(np.int32)
    return {"input_ids": ids * mask, "input_mask": mask, "segment_ids": np.zeros_like(ids), "label_ids": labels,
            "is_real_example": np.ones(rows, np.int32)}


def test_bf16_fine_tuning_learns(float32_policy, tmp_path):
    """The classifier's training step under mixed_bfloat16 (Trainer, AdamW as run_classifier.py builds it) learns a
    synthetic task to >= 90 % held-out accuracy (chance: 50 %) in 200 steps; the loss stays finite."""
    steps, batch_size, seq = 200, 32, 12
    config = small_config(num_hidden_layers=2)
    task = cli_module("run_classifier").classification_task(config, 2, 0.0)
    training.set_precision("bf16")
    trainer = training.Trainer(
        tf.distribute.get_strategy(), task,
        lambda: optimization.create_optimizer(1e-3, steps, steps // 10, optimizer="adamw", bias_correction=True),
        training.TrainConfig(output_dir=str(tmp_path), num_train_steps=steps, train_batch_size=batch_size,
                             steps_per_loop=50, save_checkpoints_steps=steps, seed=1))
    assert trainer.model.albert.encoder.attention[0].query.compute_dtype == "bfloat16"
    train = separable_batches(40, batch_size, seq, seed=0)
    assert 0.4 < train["label_ids"].mean() < 0.6  # balanced: chance is about 50 %

    def dataset_fn(ctx, skip):
        return tf.data.Dataset.from_tensor_slices(train).repeat().shuffle(512, seed=0).batch(batch_size).skip(skip)

    metrics = trainer.train(dataset_fn)
    assert np.isfinite(metrics["loss"]), metrics
    held_out = tf.data.Dataset.from_tensor_slices(separable_batches(8, 32, seq, seed=1)).batch(64)
    result = training.evaluate(trainer.strategy, trainer.model, task, held_out)
    assert result["accuracy"] >= 0.9, result
    assert np.isfinite(result["loss"]) and result["loss"] < 0.3, result


def test_fp32_on_a_bf16_cpu_prints_the_hint(tmp_path, capsys):
    """set_precision (what the CLIs call) reads the CPU flags: fp32 on a CPU with bf16 hardware gets a one-line
    hint, fp32 elsewhere and bf16 anywhere get none."""
    with_bf16 = tmp_path / "cpuinfo_bf16"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 amx_tile amx_bf16\n")
    without = tmp_path / "cpuinfo_plain"
    without.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_vnni\n")
    assert training.cpu_bf16_flags(str(with_bf16)) == ["avx512_bf16", "amx_bf16"]
    assert training.cpu_bf16_flags(str(without)) == [] and training.cpu_bf16_flags(str(tmp_path / "none")) == []
    try:
        training.set_precision("none", cpuinfo=str(with_bf16))
        hint = capsys.readouterr().out
        training.set_precision("none", cpuinfo=str(without))
        training.set_precision("bf16", cpuinfo=str(with_bf16))
        silent = capsys.readouterr().out
    finally:
        training.set_precision("none", cpuinfo=str(without))
    assert hint.count("\n") == 1 and "avx512_bf16, amx_bf16" in hint and "--mixed_precision=bf16" in hint
    assert silent == ""
