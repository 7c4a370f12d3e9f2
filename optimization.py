"""Learning-rate schedule, BERT-style AdamW and the optimizer factory (TF1 BERT/ALBERT semantics, Keras 3).

Schedule (``WarmupPolynomialDecay``), as TF1 ``polynomial_decay`` + BERT's warmup override::

    decayed(step) = init_lr * (1 - min(step, num_train_steps) / num_train_steps) ** poly_power
    warm(step)    = init_lr * (step - start_warmup_step) / num_warmup_steps
    lr(step)      = warm(step) if step - start_warmup_step < num_warmup_steps else decayed(step)

The decay counts from step 0 whatever ``start_warmup_step`` is (as Google's ALBERT does). One deviation:
Google's warmup gives a negative rate for steps before ``start_warmup_step``; here it is clamped to 0.
``step`` is the optimizer's ``iterations``, 0 for the first update (TF1's ``global_step`` before increment).

``AdamWeightDecay`` is BERT's ``AdamWeightDecayOptimizer``: the LAMB update of `lamb_optimizer` without the
trust ratio (no bias correction, ``u = m / (sqrt(v) + eps) + wd * w``, ``w -= lr * u``), slots ``adam_m`` /
``adam_v``. Exclusion patterns are regexes searched in Keras variable paths (see `lamb_optimizer`).
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
import tensorflow as tf
from absl import flags

from lamb_optimizer import DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY, LAMB, DecoupledMomentsOptimizer

__all__ = ["DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY", "LAMB", "AdamWeightDecay", "WarmupPolynomialDecay", "create_optimizer",
           "define_flags", "flag_kwargs"]


@keras.saving.register_keras_serializable(package="albert_zh")
class WarmupPolynomialDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Polynomial decay from ``init_lr`` to 0 over ``num_train_steps`` with a linear warmup overriding it."""

    def __init__(self, init_lr: float, num_train_steps: int, num_warmup_steps: int = 0, poly_power: float = 1.0,
                 start_warmup_step: int = 0):
        if num_train_steps <= 0:
            raise ValueError(f"num_train_steps must be positive, got {num_train_steps}")
        if num_warmup_steps < 0:
            raise ValueError(f"num_warmup_steps must be >= 0, got {num_warmup_steps}")
        self.init_lr = float(init_lr)
        self.num_train_steps = int(num_train_steps)
        self.num_warmup_steps = int(num_warmup_steps)
        self.poly_power = float(poly_power)
        self.start_warmup_step = int(start_warmup_step)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        done = tf.minimum(step, float(self.num_train_steps)) / float(self.num_train_steps)
        lr = self.init_lr * tf.pow(1.0 - done, self.poly_power)
        if self.num_warmup_steps:
            warm_step = step - float(self.start_warmup_step)
            warm_lr = tf.maximum(self.init_lr * warm_step / float(self.num_warmup_steps), 0.0)
            lr = tf.where(warm_step < float(self.num_warmup_steps), warm_lr, lr)
        return lr

    def get_config(self):
        return dict(init_lr=self.init_lr, num_train_steps=self.num_train_steps,
                    num_warmup_steps=self.num_warmup_steps, poly_power=self.poly_power,
                    start_warmup_step=self.start_warmup_step)


@keras.saving.register_keras_serializable(package="albert_zh")
class AdamWeightDecay(DecoupledMomentsOptimizer):
    """BERT's AdamW (see the module docstring). Args as `lamb_optimizer.LAMB`, without layer adaptation."""

    slot_names = ("adam_m", "adam_v")
    use_trust_ratio = False


def create_optimizer(
    init_lr: float,
    num_train_steps: int,
    num_warmup_steps: int,
    optimizer: str = "lamb",
    weight_decay_rate: float = 0.01,
    beta_1: float = 0.9,
    beta_2: float = 0.999,
    epsilon: float = 1e-6,
    clip_norm: float | None = 1.0,
    bias_correction: bool = False,
    poly_power: float = 1.0,
    start_warmup_step: int = 0,
    weight_decay_exclusions: Sequence[str] | None = DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY,
    layer_adaptation_exclusions: Sequence[str] | None = None,
    name: str | None = None,
) -> DecoupledMomentsOptimizer:
    """The optimizer the TF1 scripts built, on a `WarmupPolynomialDecay` schedule.

    optimizer: ``"lamb"`` (the original's pretraining optimizer) or ``"adamw"`` (BERT's fine-tuning one).
    layer_adaptation_exclusions: LAMB only; ``None`` keeps the original's trust ratio on every variable, pass
      ``weight_decay_exclusions`` to reproduce Google's ALBERT default.
    clip_norm: global-norm clip of the gradient list before the update (1.0 in TF1 BERT); ``None``: off.
    bias_correction: Adam's bias correction of the moments (off in TF1 BERT/ALBERT; see `lamb_optimizer`).
    """
    schedule = WarmupPolynomialDecay(init_lr, num_train_steps, num_warmup_steps, poly_power, start_warmup_step)
    common = dict(learning_rate=schedule, weight_decay_rate=weight_decay_rate, beta_1=beta_1, beta_2=beta_2,
                  epsilon=epsilon, exclude_from_weight_decay=weight_decay_exclusions, clip_norm=clip_norm,
                  bias_correction=bias_correction, name=name)
    if optimizer == "lamb":
        return LAMB(exclude_from_layer_adaptation=layer_adaptation_exclusions, **common)
    if optimizer == "adamw":
        if layer_adaptation_exclusions:
            raise ValueError("layer_adaptation_exclusions only applies to optimizer='lamb'")
        return AdamWeightDecay(**common)
    raise ValueError(f"optimizer must be 'lamb' or 'adamw', got {optimizer!r}")


def define_flags(default_optimizer: str, flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """The optimizer flags run_pretraining.py (LAMB by default) and run_classifier.py (AdamW) share."""
    flags.DEFINE_enum("optimizer", default_optimizer, ["lamb", "adamw"], "LAMB (the original's for pretraining) or "
                      "BERT's AdamW (the original's for fine-tuning).", flag_values=flag_values)
    flags.DEFINE_float("weight_decay_rate", 0.01, "Decoupled weight decay (not on LayerNorm and bias).",
                       flag_values=flag_values)
    flags.DEFINE_float("adam_epsilon", 1e-6, "epsilon of the moments' update m / (sqrt(v) + epsilon) (the original's "
                       "1e-6; torch/HF use 1e-8, which lets parameters with tiny gradients still move).",
                       flag_values=flag_values)
    flags.DEFINE_enum("lamb_layer_adaptation", "auto", list(LAYER_ADAPTATION_CHOICES),
                      "Which variables LAMB's trust ratio applies to: 'all' (the original albert_zh's LAMB), "
                      "'google' (Google ALBERT's: not LayerNorm and bias variables, its exclude_from_layer_adaptation "
                      "default), 'auto' (the model family's own: brightmart -> all, google -> google).",
                      flag_values=flag_values)
    flags.DEFINE_bool("bias_correction", False, "Adam's bias correction of the moments (torch AdamW / HF style). "
                      "Off in the original; without it the first updates are several times the LR, which small "
                      "models fine-tuned at 1e-4 and up from a weak start do not survive.", flag_values=flag_values)


LAYER_ADAPTATION_CHOICES = ("auto", "all", "google")


def layer_adaptation_exclusions(choice: str, model_family: str | None) -> tuple[str, ...] | None:
    """``--lamb_layer_adaptation`` -> LAMB's ``exclude_from_layer_adaptation`` (None: the trust ratio everywhere)."""
    if choice not in LAYER_ADAPTATION_CHOICES:
        raise ValueError(f"--lamb_layer_adaptation={choice!r}: expected one of {', '.join(LAYER_ADAPTATION_CHOICES)}")
    if choice == "auto":
        choice = "google" if model_family == "google" else "all"
    return tuple(DEFAULT_EXCLUDE_FROM_WEIGHT_DECAY) if choice == "google" else None


def flag_kwargs(flag_values: flags.FlagValues, model_family: str | None = None) -> dict:
    """`create_optimizer` keyword arguments from the flags `define_flags` defined; ``model_family`` decides
    ``--lamb_layer_adaptation=auto``."""
    kwargs = dict(optimizer=flag_values.optimizer, weight_decay_rate=flag_values.weight_decay_rate,
                  bias_correction=flag_values.bias_correction, epsilon=flag_values.adam_epsilon)
    if flag_values.optimizer == "lamb":
        kwargs["layer_adaptation_exclusions"] = layer_adaptation_exclusions(flag_values.lamb_layer_adaptation,
                                                                            model_family)
    return kwargs
