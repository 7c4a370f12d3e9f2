"""optimization.py and lamb_optimizer.py against NumPy re-derivations of the TF1 BERT / seed LAMB equations."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

import optimization
from lamb_optimizer import LAMB

REPO = Path(__file__).resolve().parents[1]
RTOL, ATOL = 2e-6, 1e-7
KERNEL, BIAS = "albert/dense/kernel", "albert/dense/bias"
LN_G, LN_B = "albert/layer_norm/gamma", "albert/layer_norm/beta"
LN2_G, LN2_B = "albert/ln/gamma", "albert/ln/beta"  # a LayerNormalization whose name matches no pattern
ZERO = "albert/zero_proj/kernel"  # zero-initialised: trust ratio must be 1 on the first step
PATHS = [KERNEL, BIAS, LN_G, LN_B, LN2_G, LN2_B, ZERO]
KERNELS = {KERNEL, ZERO}


class Tiny(keras.Model):
    """Variables with real Keras 3 paths (``albert/<layer>/<weight>``)."""

    def __init__(self):
        super().__init__(name="albert")
        self.dense = keras.layers.Dense(4, name="dense")
        self.layer_norm = keras.layers.LayerNormalization(name="layer_norm")
        self.ln = keras.layers.LayerNormalization(name="ln")
        self.zero_proj = keras.layers.Dense(2, use_bias=False, kernel_initializer="zeros", name="zero_proj")

    def call(self, x):
        return self.zero_proj(self.ln(self.layer_norm(self.dense(x))))


def tiny_model(seed: int = 0) -> tuple[Tiny, list]:
    """The model and its variables in PATHS order; non-zero random values except ZERO and LN2_B (zeros)."""
    model = Tiny()
    model(tf.zeros((1, 3)))
    by_path = {v.path: v for v in model.trainable_variables}
    assert sorted(by_path) == sorted(PATHS)
    rng = np.random.RandomState(seed)
    for path, var in by_path.items():
        if path not in (ZERO, LN2_B):
            var.assign(rng.randn(*var.shape).astype("float32") * 0.5 + (1.0 if path.endswith("gamma") else 0.0))
    return model, [by_path[p] for p in PATHS]


def gradient_steps(seed: int = 1) -> list[list[np.ndarray]]:
    """Three steps of gradients with global norms 3.0 (clipped), 0.4 (not clipped), 2.0 (clipped).
    LN2_B gets a zero gradient on step 0, so with its zero value both norms of the trust ratio are 0."""
    rng = np.random.RandomState(seed)
    shapes = {KERNEL: (3, 4), BIAS: (4,), LN_G: (4,), LN_B: (4,), LN2_G: (4,), LN2_B: (4,), ZERO: (4, 2)}
    steps = []
    for k, norm in enumerate([3.0, 0.4, 2.0]):
        grads = [rng.randn(*shapes[p]) for p in PATHS]
        if k == 0:
            grads[PATHS.index(LN2_B)][:] = 0.0
        total = np.sqrt(sum(np.sum(g ** 2) for g in grads))
        steps.append([(g * norm / total).astype("float32") for g in grads])
    return steps


def numpy_reference(weights, grad_steps, lrs, decayed, adapted, wd=0.01, b1=0.9, b2=0.999, eps=1e-3, clip=1.0,
                    bias_correction=False):
    """The original's update written out (float64): clip by global norm, m/v without bias correction (with it
    when asked: Adam's m / (1 - b1^t), v / (1 - b2^t)), decay inside the update, whole-tensor trust ratio
    (1 when a norm is 0), w -= lr * r * u."""
    w = [np.asarray(x, np.float64) for x in weights]
    m = [np.zeros_like(x) for x in w]
    v = [np.zeros_like(x) for x in w]
    for t, (grads, lr) in enumerate(zip(grad_steps, lrs), start=1):
        g = [np.asarray(x, np.float64) for x in grads]
        if clip is not None:
            norm = np.sqrt(sum(np.sum(x ** 2) for x in g))
            g = [x * clip / max(norm, clip) for x in g]
        for i, path in enumerate(PATHS):
            m[i] = b1 * m[i] + (1 - b1) * g[i]
            v[i] = b2 * v[i] + (1 - b2) * g[i] ** 2
            m_hat, v_hat = (m[i] / (1 - b1 ** t), v[i] / (1 - b2 ** t)) if bias_correction else (m[i], v[i])
            u = m_hat / (np.sqrt(v_hat) + eps)
            if path in decayed:
                u = u + wd * w[i]
            ratio = 1.0
            if path in adapted:
                wn, un = np.linalg.norm(w[i]), np.linalg.norm(u)
                ratio = wn / un if wn > 0 and un > 0 else 1.0
            w[i] = w[i] - lr * ratio * u
    return w


INIT_LR, TRAIN_STEPS = 0.1, 10
LRS = [INIT_LR * (1 - k / TRAIN_STEPS) for k in range(3)]  # no warmup: linear decay from step 0

CASES = {
    # name: (optimizer kwargs, decayed paths, trust-ratio paths)
    "lamb_seed": (dict(optimizer="lamb"), KERNELS, set(PATHS)),
    "lamb_google_layer_adaptation": (
        dict(optimizer="lamb", layer_adaptation_exclusions=optimization.DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY),
        KERNELS, KERNELS),
    # "albert/dense/" is in the paths only (Keras 3 names are "kernel", "bias"): proves path matching.
    "lamb_path_pattern": (dict(optimizer="lamb", weight_decay_exclusions=[r"^albert/dense/"]),
                          set(PATHS) - {KERNEL, BIAS}, set(PATHS)),
    "adamw": (dict(optimizer="adamw"), KERNELS, set()),
    "adamw_bias_correction": (dict(optimizer="adamw", bias_correction=True), KERNELS, set()),
    "lamb_bias_correction": (dict(optimizer="lamb", bias_correction=True), KERNELS, set(PATHS)),
}


def make_optimizer(case: str, **overrides):
    kwargs = dict(CASES[case][0], epsilon=1e-3)
    kwargs.update(overrides)
    return optimization.create_optimizer(INIT_LR, TRAIN_STEPS, 0, **kwargs)


@pytest.mark.parametrize("case", sorted(CASES))
def test_update_equals_numpy_reference(case):
    kwargs, decayed, adapted = CASES[case]
    corrected = kwargs.get("bias_correction", False)
    model, variables = tiny_model()
    initial = [v.numpy() for v in variables]
    opt = make_optimizer(case)
    steps = gradient_steps()
    for grads in steps:
        opt.apply_gradients(zip([tf.constant(g) for g in grads], variables))
    expected = numpy_reference(initial, steps, LRS, decayed, adapted, bias_correction=corrected)
    for path, var, want in zip(PATHS, variables, expected):
        np.testing.assert_allclose(var.numpy(), want, rtol=RTOL, atol=ATOL, err_msg=path)
    # The reference itself must be sensitive to clipping, to bias correction and to the decay/trust-ratio
    # choices being tested.
    for changed in (dict(clip=None), dict(bias_correction=not corrected)):
        other = numpy_reference(initial, steps, LRS, decayed, adapted, **{"bias_correction": corrected, **changed})
        assert max(np.abs(a - b).max() for a, b in zip(expected, other)) > 1e-3, changed


@pytest.mark.parametrize(
    "config, expected",
    [
        (dict(num_warmup_steps=10), {0: 0.0, 5: 0.25, 9: 0.45, 10: 0.45, 55: 0.225, 100: 0.0, 150: 0.0}),
        (dict(num_warmup_steps=10, poly_power=0.5),
         {5: 0.25, 10: 0.5 * np.sqrt(0.9), 55: 0.5 * np.sqrt(0.45), 64: 0.3, 100: 0.0}),
        # Warmup counted from step 20; the decay still counts from 0. Before step 20 Google's formula is
        # negative (-1.0 at step 0); it is clamped to 0.
        (dict(num_warmup_steps=10, start_warmup_step=20), {0: 0.0, 20: 0.0, 25: 0.25, 29: 0.45, 30: 0.35, 55: 0.225}),
        (dict(num_warmup_steps=0), {0: 0.5, 10: 0.45, 100: 0.0}),
    ],
    ids=["linear", "power_0.5", "start_warmup_step", "no_warmup"],
)
def test_schedule_values(config, expected):
    schedule = optimization.WarmupPolynomialDecay(0.5, 100, **config)
    got = {step: float(schedule(step)) for step in expected}
    np.testing.assert_allclose(list(got.values()), list(expected.values()), rtol=1e-6, atol=1e-8, err_msg=str(got))
    again = optimization.WarmupPolynomialDecay.from_config(schedule.get_config())
    assert [float(again(s)) for s in expected] == list(got.values())


def test_optimizer_follows_schedule_and_round_trips_config():
    opt = optimization.create_optimizer(0.5, 100, 10, optimizer="lamb", layer_adaptation_exclusions=["bias"])
    _, variables = tiny_model()
    for _ in range(5):
        opt.apply_gradients(zip([tf.ones_like(v) for v in variables], variables))
    assert float(opt.learning_rate) == pytest.approx(0.25, rel=1e-6)  # iterations == 5, mid-warmup
    clone = keras.optimizers.deserialize(keras.optimizers.serialize(opt))
    assert type(clone) is LAMB and clone.get_config() == opt.get_config()
    assert clone.get_config()["exclude_from_layer_adaptation"] == ["bias"]
    adamw = optimization.create_optimizer(1e-3, 10, 1, optimizer="adamw", clip_norm=None, bias_correction=True)
    adamw_clone = keras.optimizers.deserialize(keras.optimizers.serialize(adamw))
    assert type(adamw_clone) is optimization.AdamWeightDecay and adamw_clone.bias_correction
    with pytest.raises(ValueError):
        optimization.create_optimizer(1e-3, 10, 1, optimizer="sgd")
    with pytest.raises(ValueError):
        LAMB(weight_decay=0.1)


@pytest.mark.parametrize("argv, kind, corrected, eps", [
    ([], optimization.AdamWeightDecay, False, 1e-6),
    (["--optimizer=lamb", "--bias_correction", "--adam_epsilon=1e-8", "--weight_decay_rate=0.1"], LAMB, True, 1e-8),
])
def test_cli_flags_reach_the_optimizer(argv, kind, corrected, eps):
    from absl import flags
    flag_values = flags.FlagValues()
    optimization.define_flags("adamw", flag_values)
    flag_values(["prog", *argv])
    opt = optimization.create_optimizer(1e-3, 10, 1, **optimization.flag_kwargs(flag_values))
    assert type(opt) is kind and opt.bias_correction is corrected and opt.epsilon == pytest.approx(eps)
    assert opt.weight_decay_rate == pytest.approx(0.1 if argv else 0.01)


@pytest.mark.parametrize("case, slots", [("lamb_seed", ("lamb_m", "lamb_v")), ("adamw", ("adam_m", "adam_v"))])
def test_checkpoint_lists_named_slots_and_restores(case, slots, tmp_path):
    steps = gradient_steps()
    model, variables = tiny_model()
    opt = make_optimizer(case)
    opt.apply_gradients(zip([tf.constant(g) for g in steps[0]], variables))
    path = tf.train.Checkpoint(model=model, optimizer=opt).save(str(tmp_path / "ckpt"))
    keys = [name for name, _ in tf.train.list_variables(path)]
    for var_path in PATHS:
        for slot in slots:
            key = f"optimizer/{var_path.replace('/', '_')}_{slot}/.ATTRIBUTES/VARIABLE_VALUE"
            assert key in keys, (key, keys)

    # Restore before the optimizer is built (deferred), then take the same next step on both.
    model2, variables2 = tiny_model(seed=5)
    opt2 = make_optimizer(case)
    tf.train.Checkpoint(model=model2, optimizer=opt2).restore(path).assert_existing_objects_matched()
    opt2.build(variables2)
    assert int(opt2.iterations) == 1
    for o, v in ((opt, variables), (opt2, variables2)):
        o.apply_gradients(zip([tf.constant(g) for g in steps[1]], v))
    for a, b in zip(variables, variables2):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=1e-7, atol=0)


@pytest.mark.parametrize("case", ["lamb_seed", "adamw"])
def test_jit_compiled_step_equals_eager(case):
    steps = [[tf.constant(g) for g in grads] for grads in gradient_steps()]
    _, eager_vars = tiny_model()
    _, xla_vars = tiny_model()
    eager_opt, xla_opt = make_optimizer(case), make_optimizer(case)
    xla_opt.build(xla_vars)

    @tf.function(jit_compile=True)
    def xla_step(grads):
        xla_opt.apply_gradients(zip(grads, xla_vars))

    for grads in steps:
        eager_opt.apply_gradients(zip(grads, eager_vars))
        xla_step(grads)
    assert int(xla_opt.iterations) == 3
    for path, a, b in zip(PATHS, eager_vars, xla_vars):
        np.testing.assert_allclose(b.numpy(), a.numpy(), rtol=RTOL, atol=ATOL, err_msg=path)
    assert not np.allclose(xla_vars[PATHS.index(ZERO)].numpy(), 0.0)


def test_update_math_is_float32_under_mixed_bfloat16():
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        _, variables = tiny_model()
        opt = make_optimizer("lamb_seed")
        assert all(v.dtype == "float32" for v in variables)
        steps = [[g.astype(tf.bfloat16.as_numpy_dtype).astype("float32") for g in grads] for grads in gradient_steps()]
        initial = [v.numpy() for v in variables]
        for grads in steps:  # bfloat16 gradients for float32 variables
            opt.apply_gradients(zip([tf.constant(g, tf.bfloat16) for g in grads], variables))
        assert all(slot.dtype == "float32" for slot in opt.variables[1:])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    expected = numpy_reference(initial, steps, LRS, KERNELS, set(PATHS))
    for path, var, want in zip(PATHS, variables, expected):
        np.testing.assert_allclose(var.numpy(), want, rtol=RTOL, atol=ATOL, err_msg=path)


MIRRORED_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import numpy as np, tensorflow as tf, keras
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import optimization

    x = np.random.RandomState(0).randn(4, 3).astype("float32") * 10.0   # large: the clip is active

    def train(optimizer, strategy):
        with strategy.scope():
            dense = keras.layers.Dense(2, kernel_initializer="ones", name="dense")
            dense.build((None, 3))
            opt = optimization.create_optimizer(0.1, 10, 0, optimizer=optimizer, epsilon=0.1)
            opt.build(dense.trainable_variables)

        def replica_step(xb):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(dense(xb) ** 2) / 4.0   # divided by the global batch
            grads = tape.gradient(loss, dense.trainable_variables)
            opt.apply_gradients(zip(grads, dense.trainable_variables))

        @tf.function
        def step(xb):
            strategy.run(replica_step, args=(xb,))

        data = strategy.experimental_distribute_dataset(tf.data.Dataset.from_tensor_slices(x).batch(4).repeat(2))
        for xb in data:
            step(xb)
        return [v.numpy().tolist() for v in dense.trainable_variables]

    mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert mirrored.num_replicas_in_sync == 2
    one = tf.distribute.OneDeviceStrategy("/cpu:0")
    print(json.dumps({name: [train(name, one), train(name, mirrored)] for name in ("lamb", "adamw")}))
    """
)


@pytest.mark.slow  # a subprocess (CLI, converter or replicas): the full run, not the edit loop
def test_mirrored_two_replicas_equal_one_device():
    """The clip applies to the cross-replica sum, so 2 replicas of 2 examples == 1 device of 4 examples."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONPATH=str(REPO), CUDA_VISIBLE_DEVICES="")
    proc = subprocess.run([sys.executable, "-c", MIRRORED_SCRIPT], capture_output=True, text=True, env=env,
                          cwd=REPO, timeout=240)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout.strip().splitlines()[-1])
    for name, (single, mirrored) in results.items():
        for a, b in zip(single, mirrored):
            np.testing.assert_allclose(b, a, rtol=RTOL, atol=ATOL, err_msg=name)
        assert not np.allclose(single[0], 1.0), name  # the kernel moved


def test_lamb_layer_adaptation_flag_follows_the_model_family():
    """--lamb_layer_adaptation=auto gives each family its own LAMB: the original albert_zh's trust ratio on every
    variable (brightmart), Google's exclusion of LayerNorm and bias variables (google); 'all' / 'google' force one.
    The NumPy re-derivations of both are the lamb_* cases above."""
    from absl import flags

    values = flags.FlagValues()
    optimization.define_flags("lamb", values)
    values(["prog"])
    assert values.lamb_layer_adaptation == "auto"
    brightmart = optimization.create_optimizer(1e-3, 10, 1, **optimization.flag_kwargs(values, "brightmart"))
    google = optimization.create_optimizer(1e-3, 10, 1, **optimization.flag_kwargs(values, "google"))
    assert brightmart.layer_adaptation_exclusions == ()
    assert google.layer_adaptation_exclusions == tuple(optimization.DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY)
    _, variables = tiny_model()
    adapted = {v.path: (brightmart.uses_layer_adaptation(v), google.uses_layer_adaptation(v)) for v in variables}
    assert any(b and not g for b, g in adapted.values()), adapted  # a bias or LayerNorm variable differs
    assert any(b and g for b, g in adapted.values()), adapted  # a kernel has the trust ratio in both
    values.lamb_layer_adaptation = "all"
    assert optimization.flag_kwargs(values, "google")["layer_adaptation_exclusions"] is None
    values.optimizer = "adamw"
    assert "layer_adaptation_exclusions" not in optimization.flag_kwargs(values, "google")
