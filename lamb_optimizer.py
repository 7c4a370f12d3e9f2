"""LAMB with the original's semantics, as a Keras 3 optimizer, and the machinery the BERT-style AdamW shares.

For every variable ``w`` with gradient ``g`` (the whole gradient list is first summed over replicas, then
clipped to global norm ``clip_norm``, as TF1 ``tf.clip_by_global_norm`` did)::

    m = beta_1 * m + (1 - beta_1) * g
    v = beta_2 * v + (1 - beta_2) * g**2
    u = m / (sqrt(v) + epsilon)                # the original: no bias correction (see `bias_correction`)
    u = u + weight_decay_rate * w              # only if w is not excluded from weight decay
    r = ||w|| / ||u||                          # whole-tensor L2 norms; 1 if either norm is 0 (LAMB only)
    w = w - learning_rate * r * u

``keras.optimizers.Lamb`` is a different algorithm (bias correction, decay outside the trust ratio); this one
keeps the numbers of brightmart's ``LAMBOptimizer``. Google's ALBERT adds ``exclude_from_layer_adaptation``
(r = 1 for matching variables; when not given, Google falls back to the weight-decay exclusions). Here
``None`` means no exclusion, the original's trust ratio on every variable; pass the weight-decay list to get
Google's behaviour.

``bias_correction=True`` (off in the original, in BERT and in Google's ALBERT) divides ``m`` by ``1 - beta_1**t`` and
``v`` by ``1 - beta_2**t`` at step ``t`` (1 for the first update) as Adam, ``torch.optim.AdamW`` and HF
fine-tuning do. Without it the first updates are several times ``learning_rate``: after one step
``|m / sqrt(v)|`` is ``(1 - beta_1) / sqrt(1 - beta_2) ~ 3.2`` per coordinate, and it stays above 1 for tens of
steps. LAMB's trust ratio or a long warmup absorbs that; a small model fine-tuned at 1e-4 from a weak start is
pushed onto the class prior by it.

Which variables are excluded: each pattern is a regular expression searched (``re.search``) in the variable's
Keras 3 *path*, e.g. ``albert/encoder/attention/layer_norm/gamma``. Keras 3's ``variable.name`` is only the
last component (``gamma``, ``kernel``, ``bias``), so matching it against ``LayerNorm``/``layer_norm`` would
miss every LayerNorm weight. A plain ``tf.Variable`` (no path) is matched on its name without ``:0``. The
default list adds ``(^|/)(gamma|beta)$`` to TF1 BERT's three patterns so that the scale and offset of any
``LayerNormalization`` are excluded whatever the layer is called.

Slot variables are named ``<path with / as _>_lamb_m`` / ``_lamb_v`` (``_adam_m`` / ``_adam_v`` for AdamW)
and are also tracked under those names, so a ``tf.train.Checkpoint(optimizer=...)`` lists them as
``optimizer/<path>_lamb_m/.ATTRIBUTES/VARIABLE_VALUE`` instead of Keras 3's anonymous ``_variables/N``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence

import keras
import tensorflow as tf

DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias", r"(^|/)(gamma|beta)$")


def variable_path(variable) -> str:
    """The string the exclusion patterns are searched in: Keras path, else the TF name without ``:N``."""
    path = getattr(variable, "path", None)
    if path:
        return path
    return re.sub(r":\d+$", "", variable.name)


def matches_any(variable, patterns: Iterable[str]) -> bool:
    path = variable_path(variable)
    return any(re.search(p, path) is not None for p in patterns)


def trust_ratio(w: tf.Tensor, u: tf.Tensor) -> tf.Tensor:
    """||w|| / ||u|| over the whole tensors, 1.0 where either norm is zero."""
    w_norm = tf.norm(w)
    u_norm = tf.norm(u)
    both_positive = tf.logical_and(w_norm > 0.0, u_norm > 0.0)
    return tf.where(both_positive, tf.math.divide_no_nan(w_norm, u_norm), 1.0)


def one_minus_power(beta: float, t: tf.Tensor) -> tf.Tensor:
    """1 - beta**t, as -expm1(t log beta): float32 ``1 - pow`` loses ~4 digits for beta = 0.999."""
    if beta <= 0.0:
        return tf.ones_like(t)
    return -tf.math.expm1(t * math.log(beta))


class DecoupledMomentsOptimizer(keras.optimizers.Optimizer):
    """Shared base of `LAMB` and `optimization.AdamWeightDecay`: m/v slots, exclusions, clipping, update.

    Subclasses set ``slot_names`` and ``use_trust_ratio``. Gradients are cast to float32 before the
    cross-replica sum and the clip, and the update is computed in float32 whatever the variable dtype
    (mixed precision keeps float32 variables; other dtypes get the result cast on assignment).

    Relies on the TensorFlow backend's optimizer internals (``_all_reduce_sum_gradients``,
    ``_distributed_tf_update_step``), as checked with Keras 3.15 / TF 2.21.
    """

    slot_names: tuple[str, str] = ("lamb_m", "lamb_v")
    use_trust_ratio: bool = True

    def __init__(
        self,
        learning_rate=1e-3,
        weight_decay_rate: float = 0.01,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-6,
        exclude_from_weight_decay: Sequence[str] | None = DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY,
        clip_norm: float | None = None,
        bias_correction: bool = False,
        name: str | None = None,
        **kwargs,
    ):
        if kwargs.pop("weight_decay", None) is not None:
            raise ValueError("use weight_decay_rate (decay inside the update, BERT style), not Keras' weight_decay")
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.weight_decay_rate = float(weight_decay_rate)
        self.beta_1 = float(beta_1)
        self.beta_2 = float(beta_2)
        self.epsilon = float(epsilon)
        self.clip_norm = float(clip_norm) if clip_norm else None
        self.bias_correction = bool(bias_correction)
        # Not `self.exclude_from_weight_decay`: that is a method of the Keras base class.
        self.weight_decay_exclusions = tuple(exclude_from_weight_decay or ())
        self.layer_adaptation_exclusions: tuple[str, ...] = ()

    def uses_weight_decay(self, variable) -> bool:
        return bool(self.weight_decay_rate) and not matches_any(variable, self.weight_decay_exclusions)

    def uses_layer_adaptation(self, variable) -> bool:
        return self.use_trust_ratio and not matches_any(variable, self.layer_adaptation_exclusions)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        # Decided here, on the Keras variables: update_step only sees the backing tf.Variable (no path).
        self._decay_flags = tuple(self.uses_weight_decay(v) for v in var_list)
        self._adapt_flags = tuple(self.uses_layer_adaptation(v) for v in var_list)
        self._m_slots, self._v_slots = self.add_optimizer_variables(var_list, list(self.slot_names))
        for slot in self._m_slots + self._v_slots:
            if slot is not None:
                # Named checkpoint dependency, so the slot is listed as optimizer/<slot name>/...
                self._track_trackable(slot, name=slot.name, overwrite=True)

    def _backend_update_step(self, grads, trainable_variables, learning_rate):
        # Keras' own `global_clipnorm` clips each replica's gradients before the cross-replica sum; here the
        # summed gradients are clipped, so N replicas give the same update as one device on the same batch.
        # Dense (embedding gradients arrive as IndexedSlices) and float32 before the sum and the clip.
        grads = [tf.cast(tf.convert_to_tensor(g), tf.float32) for g in grads]
        variables = [v.value if isinstance(v, keras.Variable) else v for v in trainable_variables]
        grads = [g for g, _ in self._all_reduce_sum_gradients(list(zip(grads, variables)))]
        if self.clip_norm:
            grads, _ = tf.clip_by_global_norm(grads, self.clip_norm)
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._distributed_tf_update_step, self._distribution_strategy, list(zip(grads, variables)), learning_rate
        )

    def update_step(self, gradient, variable, learning_rate):
        i = self._get_variable_index(variable)
        m, v = self._m_slots[i], self._v_slots[i]
        g = tf.cast(gradient, tf.float32)
        w = tf.cast(variable, tf.float32)
        next_m = self.beta_1 * tf.cast(m, tf.float32) + (1.0 - self.beta_1) * g
        next_v = self.beta_2 * tf.cast(v, tf.float32) + (1.0 - self.beta_2) * tf.square(g)
        m_hat, v_hat = next_m, next_v
        if self.bias_correction:
            t = tf.cast(self.iterations + 1, tf.float32)
            m_hat = next_m / one_minus_power(self.beta_1, t)
            v_hat = next_v / one_minus_power(self.beta_2, t)
        update = m_hat / (tf.sqrt(v_hat) + self.epsilon)
        if self._decay_flags[i]:
            update += self.weight_decay_rate * w
        step = tf.cast(learning_rate, tf.float32) * update
        if self._adapt_flags[i]:
            step *= trust_ratio(w, update)
        self.assign(m, next_m)
        self.assign(v, next_v)
        self.assign_sub(variable, step)

    def get_config(self):
        config = super().get_config()
        config.pop("weight_decay", None)
        config.update(
            weight_decay_rate=self.weight_decay_rate,
            beta_1=self.beta_1,
            beta_2=self.beta_2,
            epsilon=self.epsilon,
            exclude_from_weight_decay=list(self.weight_decay_exclusions),
            clip_norm=self.clip_norm,
            bias_correction=self.bias_correction,
        )
        return config


@keras.saving.register_keras_serializable(package="albert_zh")
class LAMB(DecoupledMomentsOptimizer):
    """LAMB as in the original (see the module docstring); slots ``lamb_m`` / ``lamb_v``.

    Args:
      learning_rate: float, or a schedule such as `optimization.WarmupPolynomialDecay`.
      weight_decay_rate: decoupled decay added to the update inside the trust ratio.
      exclude_from_weight_decay: regexes searched in variable paths; matching variables get no decay.
      exclude_from_layer_adaptation: regexes; matching variables get trust ratio 1 (Google's option).
        ``None`` (the original's behaviour): the trust ratio applies to every variable.
      clip_norm: clip the (cross-replica summed) gradient list to this global norm first; ``None``: no clip.
    """

    def __init__(self, learning_rate=1e-3, exclude_from_layer_adaptation: Sequence[str] | None = None, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.layer_adaptation_exclusions = tuple(exclude_from_layer_adaptation or ())

    def get_config(self):
        config = super().get_config()
        config["exclude_from_layer_adaptation"] = list(self.layer_adaptation_exclusions)
        return config
