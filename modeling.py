"""ALBERT ("A Lite BERT", Lan et al. 2019) for TensorFlow 2 / Keras 3.

Two checkpoint families are supported; they are different networks, not just different names:

* ``brightmart`` (albert_zh): word ids -> ``word_embeddings`` [V,E] -> ``word_embeddings_2`` [E,H], then add
  token-type and position embeddings (H wide) and LayerNorm over H. The MLM head maps H -> H, LayerNorm(H),
  then back through ``word_embeddings_2``ᵀ and ``word_embeddings``ᵀ. Post-LN or pre-LN (``ln_type``).
* ``google`` (google-research/albert): word, type and position embeddings are all E wide, LayerNorm over E, then
  ``embedding_hidden_mapping_in`` (E -> H, with bias). The MLM head maps H -> E, LayerNorm(E), × ``word_embeddings``ᵀ.
  Layers are grouped: layer i uses group ``int(i / L * G)`` (``num_hidden_groups`` = G).

The three ALBERT changes are three places in this file:

1. Factorized embedding parameterization: ``AlbertEmbeddings`` (and its inverse, ``AlbertEmbeddings.logits``).
2. Cross-layer parameter sharing: ``layer_blocks`` decides which attention / FFN block each layer runs.
3. Sentence-order prediction: ``SentenceOrderHead`` (label 0 = original order, 1 = swapped).

Shapes: B batch, T sequence length, P masked positions, V vocab, E embedding size, H hidden size,
I intermediate size, N heads, D = H / N head size.

Mixed precision: matmuls run in the layer's compute dtype (e.g. bfloat16 under ``mixed_bfloat16``); the residual
stream, LayerNorm, softmax and every model output stay float32.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
from typing import Any, Callable

import keras
import tensorflow as tf

BRIGHTMART = "brightmart"
GOOGLE = "google"
MODEL_FAMILIES = (BRIGHTMART, GOOGLE)
SHARE_TYPES = ("all", "attention", "ffn", "none")
LN_TYPES = ("postln", "preln")

# hidden_act as the TF1 configs name it. "gelu" in the original's and Google's configs is the tanh approximation
# (HF transformers calls that "gelu_new"); the exact erf form is "gelu_exact" here (HF's "gelu").
_GELU_TANH_NAMES = ("gelu", "gelu_new", "gelu_tanh", "gelu_pytorch_tanh")
_ACTIVATIONS = {
    **{name: lambda x: tf.nn.gelu(x, approximate=True) for name in _GELU_TANH_NAMES},
    "gelu_exact": lambda x: tf.nn.gelu(x, approximate=False),
    "gelu_erf": lambda x: tf.nn.gelu(x, approximate=False),
    "relu": tf.nn.relu,
    "tanh": tf.tanh,
    "linear": None,
}


_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_A = 0.044715


@tf.custom_gradient
def _gelu_tanh_and_slope(x: tf.Tensor):
    """GELU, tanh form: 0.5 x (1 + tanh(c (x + a x³))), and its derivative written out, computed in float32.

    Autodiff through tf.nn.gelu keeps ~10 element-wise ops per direction on [B*T, I], each its own pass over
    memory (and slower in bfloat16 than in float32 on CPUs, which convert every element); written out, the backward
    pass reuses tanh and x² from the forward one.
    """
    xf = tf.cast(x, tf.float32)
    x2 = xf * xf
    t = tf.tanh(xf * (_GELU_C + (_GELU_C * _GELU_A) * x2))

    def grad(dy: tf.Tensor) -> tf.Tensor:
        slope = 0.5 * (1.0 + t) + (0.5 * xf) * (1.0 - t * t) * (_GELU_C + (3.0 * _GELU_C * _GELU_A) * x2)
        return tf.cast(tf.cast(dy, tf.float32) * slope, x.dtype)

    return tf.cast(0.5 * xf * (1.0 + t), x.dtype), grad


# XLA fuses the few element-wise ops of each direction into one loop (whole-step XLA is slower on CPU,
# bench/README.md). Used for mixed-precision training only: inference keeps tf.nn.gelu, which exporters and
# grappler's MatMul+BiasAdd+GELU fusion know, and float32 training gains nothing measurable from it.
fused_gelu_tanh = tf.function(_gelu_tanh_and_slope, jit_compile=True, autograph=False)

# The same functions as _ACTIVATIONS, for a training step: the same values, a faster gradient.
_TRAINING_ACTIVATIONS = {name: fused_gelu_tanh for name in _GELU_TANH_NAMES}


def get_training_activation(name: str | None):
    """The function a training step applies for ``hidden_act`` (get_activation's, or a fused equal of it)."""
    return _TRAINING_ACTIVATIONS.get((name or "").lower(), get_activation(name))


def get_activation(name: str | None):
    """Maps a config's ``hidden_act`` to a function (None for linear)."""
    if not name:
        return None
    key = name.lower()
    if key not in _ACTIVATIONS:
        raise ValueError(f"hidden_act: unsupported activation {name!r}; choose one of {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[key]


# ---------------------------------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------------------------------

# Keys the original used under another name.
_ALIASES = {"shared_type": "share_type"}


@dataclasses.dataclass(init=False, eq=False, repr=False)
class AlbertConfig:
    """Configuration of an ALBERT model, read from the original's, Google's or a plain BERT JSON config.

    The fields below are the known keys (with BERT's defaults); unknown keys (``directionality``, ``pooler_*`` …)
    are kept in ``extra`` and written back by ``to_dict``. ``model_family`` is taken from the JSON when present,
    else ``google`` when ``num_hidden_groups`` is present, else ``brightmart`` (the original's and BERT's configs).
    """

    vocab_size: int | None = None
    hidden_size: int = 768  # H
    num_hidden_layers: int = 12  # L
    num_attention_heads: int = 12
    intermediate_size: int = 3072  # the feed-forward width
    hidden_act: str = "gelu"  # gelu = the tanh approximation, as in the TF1 code
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    embedding_size: int | None = None  # E (ALBERT change 1); None: a plain BERT config, word embeddings H wide
    model_family: str | None = None  # brightmart | google; derived in __init__ when absent
    ln_type: str = "postln"  # brightmart: postln | preln
    share_type: str = "all"  # what a layer group shares: all | attention | ffn | none (ALBERT change 2)
    # Google ALBERT keys. Only the defaults are supported except for num_hidden_groups.
    num_hidden_groups: int = 1
    inner_group_num: int = 1
    net_structure_type: int = 0
    gap_size: int = 0
    num_memory_blocks: int = 0
    down_scale_factor: int = 1

    def __init__(self, vocab_size: int | None = None, **kwargs: Any):
        kwargs["vocab_size"] = vocab_size
        for old, new in _ALIASES.items():
            if old in kwargs:
                kwargs.setdefault(new, kwargs.pop(old))
        self._given = set(kwargs)
        self.extra: dict[str, Any] = {k: v for k, v in kwargs.items() if k not in _DEFAULTS}
        for key, default in _DEFAULTS.items():
            setattr(self, key, kwargs.get(key, default))
        if self.model_family is None:
            self.model_family = GOOGLE if "num_hidden_groups" in kwargs else BRIGHTMART
        if self.model_family == GOOGLE and self.embedding_size is None:
            self.embedding_size = self.hidden_size  # Google's configs always name E (E == H: no mapping)
        self.validate()

    # -- validation -----------------------------------------------------------------------------------------------
    def validate(self) -> None:
        """Raises ValueError naming the key and the numbers when the config is inconsistent or unsupported."""
        if self.vocab_size is None:
            raise ValueError("vocab_size: missing from the config")
        positive = ["vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                    "max_position_embeddings", "type_vocab_size", "num_hidden_groups"]
        if self.embedding_size is not None:
            positive.append("embedding_size")
        for key in positive:
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"{key}: must be a positive integer, got {value!r}")
        if self.hidden_size % self.num_attention_heads:
            raise ValueError(f"hidden_size ({self.hidden_size}) is not a multiple of num_attention_heads "
                             f"({self.num_attention_heads})")
        for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
            if not 0.0 <= float(getattr(self, key)) < 1.0:
                raise ValueError(f"{key}: must be in [0, 1), got {getattr(self, key)!r}")
        choices = {"model_family": MODEL_FAMILIES, "ln_type": LN_TYPES, "share_type": SHARE_TYPES}
        for key, allowed in choices.items():
            if getattr(self, key) not in allowed:
                raise ValueError(f"{key}: {getattr(self, key)!r} is not one of {allowed}")
        unsupported = {"inner_group_num": 1, "net_structure_type": 0, "gap_size": 0, "num_memory_blocks": 0,
                       "down_scale_factor": 1}
        for key, supported in unsupported.items():
            if getattr(self, key) != supported:
                raise ValueError(f"{key}: only {supported} is supported (as in every released ALBERT), "
                                 f"got {getattr(self, key)}")
        get_activation(self.hidden_act)

    def check_sequence_length(self, max_seq_length: int, source: str = "the config") -> None:
        """ValueError unless 1 <= max_seq_length <= max_position_embeddings (the flag and the numbers named)."""
        if not 0 < max_seq_length <= self.max_position_embeddings:
            raise ValueError(f"--max_seq_length={max_seq_length} is not in 1..max_position_embeddings "
                             f"({self.max_position_embeddings}) of {source}")

    # -- derived ------------------------------------------------------------------------------------------------
    @property
    def factorized(self) -> bool:
        """True when the word embeddings are E wide and projected to H (ALBERT change 1)."""
        return self.embedding_size is not None

    @property
    def head_size(self) -> int:
        return self.hidden_size // self.num_attention_heads

    # -- serialisation --------------------------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, json_object: dict[str, Any]) -> "AlbertConfig":
        values = dict(json_object)
        return cls(values.pop("vocab_size", None), **values)

    @classmethod
    def from_json_file(cls, json_file: str, **overrides: Any) -> "AlbertConfig":
        """Reads a JSON config; ``overrides`` (e.g. ``model_family=...``) replace keys, None values are ignored."""
        if not tf.io.gfile.exists(json_file):
            raise FileNotFoundError(f"config file not found: {json_file}")
        with tf.io.gfile.GFile(json_file, "r") as reader:  # local paths and gs:// alike
            try:
                values = json.loads(reader.read())
            except json.JSONDecodeError as err:
                raise ValueError(f"{json_file}: not valid JSON ({err})") from err
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.from_dict(values)
        except ValueError as err:
            raise ValueError(f"{json_file}: {err}") from err

    def to_dict(self) -> dict[str, Any]:
        out = {key: getattr(self, key) for key in _DEFAULTS}
        out.update(copy.deepcopy(self.extra))
        return out

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    def to_json_file(self, path: str) -> None:
        with open(path, "w", encoding="utf-8") as writer:
            writer.write(self.to_json_string())

    def replace(self, **changes: Any) -> "AlbertConfig":
        """A copy with some keys changed (e.g. dropout for fine-tuning)."""
        values = self.to_dict()
        values.update(changes)
        return AlbertConfig.from_dict(values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, AlbertConfig) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return f"AlbertConfig({self.to_json_string()})"


# The known keys and their defaults, from the fields above.
_DEFAULTS: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(AlbertConfig)}


# ---------------------------------------------------------------------------------------------------------------------
# Building blocks
# ---------------------------------------------------------------------------------------------------------------------

def _initializer(config: AlbertConfig) -> keras.initializers.Initializer:
    return keras.initializers.TruncatedNormal(stddev=config.initializer_range)


def _dense(config: AlbertConfig, units: int, name: str, activation=None) -> keras.layers.Dense:
    return keras.layers.Dense(units, activation=activation, kernel_initializer=_initializer(config), name=name)


def _layer_norm(config: AlbertConfig, name: str = "layer_norm") -> keras.layers.LayerNormalization:
    # float32 whatever the global policy: LayerNorm in bf16 loses too much.
    return keras.layers.LayerNormalization(epsilon=config.layer_norm_eps, dtype="float32", name=name)


def _dropout(rate: float) -> keras.layers.Dropout:
    # float32 like the residual stream it acts on: under a mixed policy Keras would cast its input to bf16.
    return keras.layers.Dropout(rate, dtype="float32")


def _float32(x: tf.Tensor) -> tf.Tensor:
    """Back to float32: the residual stream, LayerNorm, softmax and every output stay float32 under mixed precision."""
    return tf.cast(x, tf.float32)


def _compute(x: tf.Tensor | tf.Variable, dtype: tf.DType) -> tf.Tensor:
    """Into the compute dtype (bfloat16/float16 under mixed precision) for a matmul."""
    return tf.cast(x, dtype)


def _linear(dense: keras.layers.Dense, x: tf.Tensor, activation: Callable | None = None) -> tf.Tensor:
    """``dense`` applied to a 2-D x [M,K] -> [M,units] in the layer's compute dtype, from its own variables;
    ``activation`` replaces the layer's own (the same function in another implementation).

    Speed: Keras' Dense on [B,T,H] goes through tensordot (a Reshape between MatMul and the bias add) and adds
    the bias with AddV2, so TF's grappler cannot fuse them; a 2-D MatMul followed by BiasAdd (and the
    activation) is the pattern it fuses into one _FusedMatMul (oneDNN or Eigen).
    """
    dtype = dense.compute_dtype
    y = tf.nn.bias_add(tf.matmul(_compute(x, dtype), _compute(dense.kernel, dtype)), _compute(dense.bias, dtype))
    return (activation or dense.activation)(y)


def attention_bias(input_mask: tf.Tensor) -> tf.Tensor:
    """input_mask [B,T] (1 = token, 0 = padding) -> additive bias [B,1,1,T] (0 or -10000, as the TF1 code)."""
    mask = tf.cast(input_mask, tf.float32)
    # expand_dims, not [:, None, None, :]: LiteRT's builtin strided slice takes no new axes
    return tf.expand_dims(tf.expand_dims(1.0 - mask, 1), 1) * -10000.0


def gather_positions(sequence: tf.Tensor, positions: tf.Tensor) -> tf.Tensor:
    """sequence [B,T,W], positions [B,P] -> [B,P,W]."""
    return tf.gather(sequence, tf.cast(positions, tf.int32), batch_dims=1)


class AlbertEmbeddings(keras.layers.Layer):
    """ALBERT change 1: factorized embedding parameterization, in either family's placement.

    brightmart: ids -> word_embeddings [V,E] -> word_embeddings_2 [E,H]; + type [T,H] + position [P,H]; LN(H).
    google:     ids -> word_embeddings [V,E]; + type [T,E] + position [P,E]; LN(E); embedding_hidden_mapping_in E->H.
    BERT (no embedding_size): word_embeddings [V,H]; + type + position; LN(H).

    Runs in float32 (gathers are cheap; the sum and LayerNorm need the precision), except the Google E->H
    mapping, a matmul in the compute dtype.
    """

    def __init__(self, config: AlbertConfig, **kwargs):
        super().__init__(dtype="float32", **kwargs)
        self.config = config
        self.google = config.model_family == GOOGLE
        e = config.embedding_size or config.hidden_size
        self.word_width = e
        self.sum_width = e if self.google else config.hidden_size
        self.layer_norm = _layer_norm(config)
        self.dropout = _dropout(config.hidden_dropout_prob)
        # Google's TF1 code builds the E -> H mapping only when E != H (HF always has one; its converter writes I).
        self.embedding_hidden_mapping_in = (
            _dense(config, config.hidden_size, "embedding_hidden_mapping_in")
            if self.google and e != config.hidden_size else None)

    def build(self, input_shape=None):
        c, init = self.config, _initializer(self.config)
        self.word_embeddings = self.add_weight(name="word_embeddings", shape=(c.vocab_size, self.word_width),
                                               initializer=init)
        self.word_embeddings_2 = None
        if c.factorized and not self.google:
            self.word_embeddings_2 = self.add_weight(name="word_embeddings_2", shape=(self.word_width, c.hidden_size),
                                                     initializer=init)
        self.token_type_embeddings = self.add_weight(name="token_type_embeddings",
                                                     shape=(c.type_vocab_size, self.sum_width), initializer=init)
        self.position_embeddings = self.add_weight(name="position_embeddings",
                                                   shape=(c.max_position_embeddings, self.sum_width), initializer=init)
        self.layer_norm.build((None, None, self.sum_width))
        if self.embedding_hidden_mapping_in is not None:
            self.embedding_hidden_mapping_in.build((None, None, self.sum_width))
        super().build(input_shape)

    def call(self, input_ids: tf.Tensor, segment_ids: tf.Tensor, training: bool = False) -> tf.Tensor:
        """input_ids, segment_ids [B,T] -> [B,T,H] float32."""
        seq_len = tf.shape(input_ids)[1]
        x = tf.gather(self.word_embeddings, input_ids)  # [B,T,E]
        if self.word_embeddings_2 is not None:
            x = tf.matmul(x, self.word_embeddings_2)  # [B,T,H]
        x += tf.gather(self.token_type_embeddings, segment_ids)
        x += tf.slice(self.position_embeddings, [0, 0], [seq_len, -1])  # [T,W], broadcast over B (LiteRT-safe)
        x = self.dropout(self.layer_norm(x), training=training)
        if self.embedding_hidden_mapping_in is not None:
            x = _float32(self.embedding_hidden_mapping_in(x))  # [B,T,H]
        return x

    def logits(self, x: tf.Tensor) -> tf.Tensor:
        """The tied output projection (transpose of the factorized lookup): [..., W] -> [..., V].

        W is H for brightmart (x × word_embeddings_2ᵀ × word_embeddingsᵀ) and E for Google (x × word_embeddingsᵀ).
        """
        dtype, shape = x.dtype, tf.shape(x)
        # Speed: 2-D matmuls on [B*P,W]; a [B,P,W] x [V,W]^T matmul is a broadcasting BatchMatMul (B small GEMMs).
        x = tf.reshape(x, [-1, shape[-1]])
        if self.word_embeddings_2 is not None:
            x = tf.matmul(x, _compute(self.word_embeddings_2, dtype), transpose_b=True)
        x = tf.matmul(x, _compute(self.word_embeddings, dtype), transpose_b=True)
        return tf.reshape(x, tf.concat([shape[:-1], [self.config.vocab_size]], 0))


class ResidualSublayer(keras.layers.Layer):
    """A sublayer F with its residual connection and LayerNorm (docs/equations.md, 2d and 2e):

        post-LN (Google, the original's default):  y = LN(x + F(x))
        pre-LN  (the original's preln):            y = x + F(LN(x))

    The residual stream stays float32; F casts to the compute dtype itself.
    """

    def __init__(self, config: AlbertConfig, **kwargs):
        super().__init__(autocast=False, **kwargs)  # keep the float32 residual; the Dense layers cast for themselves
        self.pre_ln = config.ln_type == "preln"
        self.layer_norm = _layer_norm(config)

    def residual(self, x: tf.Tensor, sublayer: Callable[[tf.Tensor], tf.Tensor]) -> tf.Tensor:
        if self.pre_ln:
            return x + sublayer(self.layer_norm(x))
        return self.layer_norm(x + sublayer(x))


class AttentionBlock(ResidualSublayer):
    """Self-attention sublayer with its residual and LayerNorm: x [B,T,H] float32, bias [B,1,1,T] -> [B,T,H]."""

    def __init__(self, config: AlbertConfig, **kwargs):
        super().__init__(config, **kwargs)
        self.num_heads, self.head_size = config.num_attention_heads, config.head_size
        h = config.hidden_size
        self.query = _dense(config, h, "query")
        self.key = _dense(config, h, "key")
        self.value = _dense(config, h, "value")
        self.output_dense = _dense(config, h, "output")
        self.probs_dropout = _dropout(config.attention_probs_dropout_prob)
        self.output_dropout = _dropout(config.hidden_dropout_prob)

    def build(self, input_shape=None):
        width = (None, None, self.query.units)
        for dense in (self.query, self.key, self.value, self.output_dense):
            dense.build(width)
        self.layer_norm.build(width)
        super().build(input_shape)

    def _query_key_value(self, h2: tf.Tensor, b: tf.Tensor, t: tf.Tensor) -> list[tf.Tensor]:
        """h2 [B*T,H] -> q / sqrt(D), k, v [B,N,T,D] in the compute dtype, from one [B*T,H] x [H,3H] matmul on the
        three kernels side by side (the variables stay separate, as in the checkpoints). Speed: one wide GEMM and one
        transpose instead of three of each; the scores' 1/sqrt(D) is folded into the query's [H,H] kernel and bias
        rather than applied to the [B,N,T,T] scores, and the kernels are joined in float32 and cast once (the
        gradient's Slice of a joined bfloat16 kernel is slow on CPUs)."""
        n, d = self.num_heads, self.head_size
        dtype = self.query.compute_dtype
        scale = 1.0 / math.sqrt(d)
        kernel = tf.concat([self.query.kernel * scale, self.key.kernel, self.value.kernel], axis=1)  # [H,3H]
        bias = tf.concat([self.query.bias * scale, self.key.bias, self.value.bias], axis=0)  # [3H]
        qkv = tf.nn.bias_add(tf.matmul(_compute(h2, dtype), _compute(kernel, dtype)), _compute(bias, dtype))
        return tf.unstack(tf.transpose(tf.reshape(qkv, [b, t, 3, n, d]), [2, 0, 3, 1, 4]))  # 3 x [B,N,T,D]

    def call(self, x: tf.Tensor, bias: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.residual(x, lambda h: self._attention(h, bias, training))

    def _attention(self, h: tf.Tensor, bias: tf.Tensor, training: bool) -> tf.Tensor:
        """Attn(h): h [B,T,H] float32 -> [B,T,H] float32."""
        shape = tf.shape(h)
        b, t, n, d = shape[0], shape[1], self.num_heads, self.head_size
        # Speed: [B*T,H] 2-D projections (see _linear), then [B,N,T,D] heads and batched matmuls: einsum on
        # [B,T,N,D] transposes its operands on every call, forward and backward (attention fwd+bwd 1.4x faster).
        dtype = self.query.compute_dtype
        q, k, v = self._query_key_value(tf.reshape(h, [-1, n * d]), b, t)
        scores = _float32(tf.matmul(q, k, transpose_b=True)) + bias  # q k^T / sqrt(D) + mask: [B,N,T,T]
        probs = self.probs_dropout(tf.nn.softmax(scores, axis=-1), training=training)
        context = tf.matmul(_compute(probs, dtype), v)  # [B,N,T,D]
        context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]), [-1, n * d])  # [B*T,H]
        out = _float32(self.output_dropout(_linear(self.output_dense, context), training=training))
        return tf.reshape(out, shape)


class FeedForwardBlock(ResidualSublayer):
    """Position-wise FFN sublayer (H -> I -> H) with its residual and LayerNorm: x [B,T,H] float32 -> [B,T,H]."""

    def __init__(self, config: AlbertConfig, **kwargs):
        super().__init__(config, **kwargs)
        self.intermediate = _dense(config, config.intermediate_size, "intermediate",
                                   activation=get_activation(config.hidden_act))
        self.training_activation = get_training_activation(config.hidden_act)
        self.output_dense = _dense(config, config.hidden_size, "output")
        self.dropout = _dropout(config.hidden_dropout_prob)

    def build(self, input_shape=None):
        width = (None, None, self.output_dense.units)
        self.intermediate.build(width)
        self.output_dense.build((None, None, self.intermediate.units))
        self.layer_norm.build(width)
        super().build(input_shape)

    def call(self, x: tf.Tensor, training: bool = False) -> tf.Tensor:
        return self.residual(x, lambda h: self._feed_forward(h, training))

    def _feed_forward(self, h: tf.Tensor, training: bool) -> tf.Tensor:
        """FFN(h) = W2 act(W1 h + b1) + b2: h [B,T,H] float32 -> [B,T,H] float32."""
        flat = tf.reshape(h, [-1, self.output_dense.units])  # [B*T,H]: see _linear
        # The fused GELU pays where element-wise ops are slow: bf16/fp16 on CPUs (bench/README.md, profile_step).
        fused = training and self.intermediate.compute_dtype != "float32"
        hidden = _linear(self.intermediate, flat, self.training_activation if fused else None)  # [B*T,I]
        out = self.dropout(_linear(self.output_dense, hidden), training=training)
        return tf.reshape(_float32(out), tf.shape(h))


def layer_blocks(config: AlbertConfig) -> list[tuple[int, int]]:
    """ALBERT change 2: cross-layer parameter sharing. Returns (attention block, FFN block) for each layer.

    Layers fall into ``num_hidden_groups`` groups, layer i in group ``int(i / L * G)`` (Google's rule, in float:
    ``i * G // L`` differs for e.g. (L, G) = (22, 22), so a Google checkpoint would map wrongly; G = 1 for the
    seed's configs). ``share_type`` says what a group shares: ``all`` both sublayers, ``attention`` only the
    attention (each layer has its own FFN), ``ffn`` only the FFN, ``none`` nothing. Block ids are group ids for
    what is shared and layer ids otherwise, so ``all`` with G = L is BERT's one-block-per-layer.
    """
    L, G = config.num_hidden_layers, config.num_hidden_groups
    shares_attention = config.share_type in ("all", "attention")
    shares_ffn = config.share_type in ("all", "ffn")
    blocks = []
    for i in range(L):
        group = int(i / L * G)  # Google's expression exactly (float), not i * G // L
        blocks.append((group if shares_attention else i, group if shares_ffn else i))
    return blocks


class AlbertEncoder(keras.layers.Layer):
    """L transformer layers built from the (possibly shared) blocks ``layer_blocks`` names. [B,T,H] -> [B,T,H]."""

    def __init__(self, config: AlbertConfig, **kwargs):
        super().__init__(autocast=False, **kwargs)  # as AttentionBlock
        self.blocks = tuple(layer_blocks(config))
        # Block ids are sparse (Google's G > L configs use only some groups; only those get variables).
        self.attention_ids = tuple(sorted({a for a, _ in self.blocks}))
        self.ffn_ids = tuple(sorted({f for _, f in self.blocks}))
        # Each block is a plain attribute: TF checkpoints and SavedModels see neither layers held in lists or dicts
        # (Keras 3 tracks those only for itself) nor int-keyed dicts.
        for a in self.attention_ids:
            setattr(self, f"attention_{a}", AttentionBlock(config, name=f"attention_{a}"))
        for f in self.ffn_ids:
            setattr(self, f"ffn_{f}", FeedForwardBlock(config, name=f"ffn_{f}"))

    @property
    def attention(self) -> dict[int, AttentionBlock]:
        """Attention blocks by block id."""
        return {a: getattr(self, f"attention_{a}") for a in self.attention_ids}

    @property
    def ffn(self) -> dict[int, FeedForwardBlock]:
        """FFN blocks by block id."""
        return {f: getattr(self, f"ffn_{f}") for f in self.ffn_ids}

    def build(self, input_shape=None):
        for block in list(self.attention.values()) + list(self.ffn.values()):
            block.build()
        super().build(input_shape)

    def call(self, x: tf.Tensor, bias: tf.Tensor, training: bool = False) -> tf.Tensor:
        attention, ffn = self.attention, self.ffn
        for a, f in self.blocks:
            x = attention[a](x, bias, training=training)
            x = ffn[f](x, training=training)
        return x


# ---------------------------------------------------------------------------------------------------------------------
# Models and heads
# ---------------------------------------------------------------------------------------------------------------------

class AlbertModel(keras.Model):
    """The ALBERT backbone.

    ``model({"input_ids": [B,T], "input_mask": [B,T], "segment_ids": [B,T]}, training=False)`` returns
    ``{"sequence_output": [B,T,H], "pooled_output": [B,H]}``, both float32. ``input_mask`` and ``segment_ids``
    default to all-ones and all-zeros.
    """

    def __init__(self, config: AlbertConfig, **kwargs):
        kwargs.setdefault("name", "albert")
        super().__init__(**kwargs)
        self.config = config
        self.embeddings = AlbertEmbeddings(config, name="embeddings")
        self.encoder = AlbertEncoder(config, name="encoder")
        self.pooler = _dense(config, config.hidden_size, "pooler", activation="tanh")

    def build(self, input_shape=None):
        self.embeddings.build()
        self.encoder.build()
        self.pooler.build((None, self.config.hidden_size))
        super().build(input_shape)

    def call(self, inputs: dict[str, tf.Tensor], training: bool = False) -> dict[str, tf.Tensor]:
        input_ids = tf.cast(inputs["input_ids"], tf.int32)
        input_mask = inputs.get("input_mask")
        input_mask = tf.ones_like(input_ids) if input_mask is None else input_mask
        segment_ids = inputs.get("segment_ids")
        segment_ids = tf.zeros_like(input_ids) if segment_ids is None else tf.cast(segment_ids, tf.int32)
        x = self.embeddings(input_ids, segment_ids, training=training)
        sequence_output = self.encoder(x, attention_bias(input_mask), training=training)
        pooled_output = _float32(self.pooler(sequence_output[:, 0, :]))
        return {"sequence_output": sequence_output, "pooled_output": pooled_output}


class MaskedLMHead(keras.layers.Layer):
    """MLM head on gathered positions only (the V-way decoder never runs on unmasked tokens).

    sequence [B,T,H], positions [B,P] -> logits [B,P,V] float32.
    brightmart: dense H->H, LN(H), × word_embeddings_2ᵀ × word_embeddingsᵀ + output_bias.
    google:     dense H->E, LN(E), × word_embeddingsᵀ + output_bias.
    """

    def __init__(self, config: AlbertConfig, embeddings: AlbertEmbeddings, **kwargs):
        super().__init__(**kwargs)
        self.embeddings = embeddings
        width = embeddings.word_width if config.model_family == GOOGLE else config.hidden_size
        self.dense = _dense(config, width, "dense", activation=get_activation(config.hidden_act))
        self.layer_norm = _layer_norm(config)
        self.vocab_size = config.vocab_size
        self.hidden_size, self.width = config.hidden_size, width

    def build(self, input_shape=None):
        self.dense.build((None, None, self.hidden_size))
        self.layer_norm.build((None, None, self.width))
        self.output_bias = self.add_weight(name="output_bias", shape=(self.vocab_size,), initializer="zeros")
        super().build(input_shape)

    def call(self, sequence: tf.Tensor, positions: tf.Tensor) -> tf.Tensor:
        x = self.layer_norm(self.dense(gather_positions(sequence, positions)))  # [B,P,W] float32
        logits = self.embeddings.logits(_compute(x, self.compute_dtype))
        return _float32(logits) + _float32(self.output_bias)


class SentenceOrderHead(keras.layers.Layer):
    """ALBERT change 3: sentence-order prediction. pooled [B,H] -> logits [B,2]; label 0 = original, 1 = swapped.

    The kernel is stored [2,H] like the TF1 ``cls/seq_relationship/output_weights``.
    """

    def __init__(self, config: AlbertConfig, **kwargs):
        super().__init__(**kwargs)
        self.config = config

    def build(self, input_shape=None):
        self.output_weights = self.add_weight(name="output_weights", shape=(2, self.config.hidden_size),
                                              initializer=_initializer(self.config))
        self.output_bias = self.add_weight(name="output_bias", shape=(2,), initializer="zeros")
        super().build(input_shape)

    def call(self, pooled: tf.Tensor) -> tf.Tensor:
        logits = tf.matmul(_compute(pooled, self.compute_dtype), self.output_weights, transpose_b=True)
        return _float32(logits) + _float32(self.output_bias)


class AlbertPretrainingModel(keras.Model):
    """Backbone + MLM head + SOP head.

    Inputs: the backbone's plus ``masked_lm_positions`` [B,P]. Outputs: the backbone's plus ``mlm_logits`` [B,P,V]
    and ``sop_logits`` [B,2], float32.
    """

    def __init__(self, config: AlbertConfig, **kwargs):
        kwargs.setdefault("name", "albert_pretraining")
        super().__init__(**kwargs)
        self.config = config
        self.albert = AlbertModel(config, name="albert")
        self.mlm = MaskedLMHead(config, self.albert.embeddings, name="mlm")
        self.sop = SentenceOrderHead(config, name="sop")

    def build(self, input_shape=None):
        self.albert.build()
        self.mlm.build()
        self.sop.build()
        super().build(input_shape)

    def call(self, inputs: dict[str, tf.Tensor], training: bool = False) -> dict[str, tf.Tensor]:
        out = dict(self.albert(inputs, training=training))
        out["mlm_logits"] = self.mlm(out["sequence_output"], inputs["masked_lm_positions"])
        out["sop_logits"] = self.sop(out["pooled_output"])
        return out


CLASSIFIER_POOLINGS = ("cls", "mean")


class AlbertClassifier(keras.Model):
    """Backbone + the original's fine-tuning head on the pooled output.

    pooled [B,H] -> (pre-LN configs only: LayerNorm, the original's ``loss/LayerNorm``) -> dropout -> logits [B,C]
    with ``output_weights`` [C,H] (TF1 layout) and ``output_bias`` [C]. Returns the backbone's outputs plus
    ``logits`` and ``probabilities`` [B,C], float32.

    pooling: ``cls`` (the original's: the pooler's tanh(W·h_[CLS])) or ``mean`` (the mean of the sequence output over
    the real tokens, the pooler unused). ``mean`` suits checkpoints whose [CLS] was never trained, i.e. whose
    sentence-order accuracy stayed at chance: their [CLS] vector barely varies between inputs. The weights are the
    same either way.
    """

    def __init__(self, config: AlbertConfig, num_labels: int, classifier_dropout: float = 0.1,
                 pooling: str = "cls", **kwargs):
        kwargs.setdefault("name", "albert_classifier")
        super().__init__(**kwargs)
        if pooling not in CLASSIFIER_POOLINGS:
            raise ValueError(f"classifier pooling {pooling!r}: expected one of {', '.join(CLASSIFIER_POOLINGS)}")
        self.config, self.num_labels, self.pooling = config, num_labels, pooling
        self.albert = AlbertModel(config, name="albert")
        self.layer_norm = _layer_norm(config, "loss_layer_norm") if config.ln_type == "preln" else None
        self.dropout = _dropout(classifier_dropout)

    def build(self, input_shape=None):
        self.albert.build()
        if self.pooling == "mean":
            self.albert.pooler.trainable = False  # unused: kept (checkpoints keep their layout), never updated
        h = self.config.hidden_size
        if self.layer_norm is not None:
            self.layer_norm.build((None, h))
        self.output_weights = self.add_weight(name="output_weights", shape=(self.num_labels, h),
                                              initializer=_initializer(self.config))
        self.output_bias = self.add_weight(name="output_bias", shape=(self.num_labels,), initializer="zeros")
        super().build(input_shape)

    def call(self, inputs: dict[str, tf.Tensor], training: bool = False) -> dict[str, tf.Tensor]:
        out = dict(self.albert(inputs, training=training))
        if self.pooling == "mean":
            mask = tf.cast(inputs["input_mask"], tf.float32)[:, :, None]  # [B,T,1]
            x = tf.reduce_sum(out["sequence_output"] * mask, 1) / tf.maximum(tf.reduce_sum(mask, 1), 1.0)  # [B,H]
        else:
            x = out["pooled_output"]
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        x = self.dropout(x, training=training)
        logits = tf.matmul(_compute(x, self.compute_dtype), self.output_weights, transpose_b=True)
        out["logits"] = _float32(logits) + _float32(self.output_bias)
        out["probabilities"] = tf.nn.softmax(out["logits"], axis=-1)
        return out


class AlbertTokenClassifier(keras.Model):
    """Backbone + a tagging head: sequence output [B,T,H] -> (pre-LN configs only: LayerNorm) -> dropout -> tag
    logits [B,T,K] with ``output_weights`` [K,H] and ``output_bias`` [K] (the classifier's names and layout), and
    optionally a linear-chain CRF (``crf.CRF``: ``transitions`` [K,K], ``start_transitions``, ``end_transitions``).

    Inputs: the backbone's, plus ``label_mask`` [B,T] (1 on the first piece of each labelled unit; default: every
    real token but [CLS] and the last one, [SEP]) and, for the CRF's log-likelihood, ``label_ids`` [B,T].
    Outputs: the backbone's, ``logits`` and ``probabilities`` [B,T,K] (float32), ``log_likelihood`` [B] (CRF, with
    label_ids), and outside training ``tags`` [B,T] int32 (0 where the label mask is 0): Viterbi over the CRF's
    scores, or without a CRF over the log-probabilities. ``constraints`` (allowed [K,K] from→to, allowed_start
    [K], e.g. ``ner_data.bio_constraints``) forbid transitions when decoding; without constraints and CRF the tags
    are the per-token argmax.
    """

    def __init__(self, config: AlbertConfig, num_tags: int, dropout: float = 0.1, use_crf: bool = False,
                 constraints: tuple[Any, Any] | None = None, **kwargs):
        import crf  # one concept per file; the CRF needs nothing from here

        kwargs.setdefault("name", "albert_token_classifier")
        super().__init__(**kwargs)
        self.config, self.num_tags, self.use_crf = config, num_tags, use_crf
        self.albert = AlbertModel(config, name="albert")
        self.layer_norm = _layer_norm(config, "loss_layer_norm") if config.ln_type == "preln" else None
        self.dropout = _dropout(dropout)
        self.crf = crf.CRF(num_tags, name="crf") if use_crf else None
        self.constraints = None if constraints is None else tuple(tf.constant(c, tf.bool) for c in constraints)

    def build(self, input_shape=None):
        self.albert.build()
        self.albert.pooler.trainable = False  # unused by tagging: kept (checkpoints keep their layout), never updated
        h = self.config.hidden_size
        if self.layer_norm is not None:
            self.layer_norm.build((None, None, h))
        self.output_weights = self.add_weight(name="output_weights", shape=(self.num_tags, h),
                                              initializer=_initializer(self.config))
        self.output_bias = self.add_weight(name="output_bias", shape=(self.num_tags,), initializer="zeros")
        if self.crf is not None:
            self.crf.build()
        super().build(input_shape)

    @staticmethod
    def label_mask(inputs: dict[str, tf.Tensor]) -> tf.Tensor:
        """[B,T] bool: ``label_mask`` when given, else the real tokens without [CLS] and the last ([SEP])."""
        if "label_mask" in inputs:
            return tf.cast(inputs["label_mask"], tf.bool)
        mask = tf.cast(inputs["input_mask"], tf.int32)
        positions = tf.range(tf.shape(mask)[1])[None]
        last = tf.reduce_sum(mask, axis=1, keepdims=True) - 1
        return (mask > 0) & (positions > 0) & (positions < last)

    def decode(self, logits: tf.Tensor, mask: tf.Tensor) -> tf.Tensor:
        """Best tags [B,T] (see the class docstring)."""
        import crf

        allowed, allowed_start = self.constraints or (None, None)
        if self.crf is not None:
            return self.crf.decode(logits, mask, allowed, allowed_start)
        if self.constraints is None:
            return tf.where(mask, tf.argmax(logits, axis=-1, output_type=tf.int32), 0)
        zeros = tf.zeros([self.num_tags, self.num_tags])
        transitions, start = crf.constrain(zeros, zeros[0], allowed, allowed_start)
        return crf.viterbi_decode(tf.nn.log_softmax(logits), mask, transitions, start, zeros[0])[0]

    def call(self, inputs: dict[str, tf.Tensor], training: bool = False) -> dict[str, tf.Tensor]:
        out = dict(self.albert(inputs, training=training))
        x = out["sequence_output"]
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        x = self.dropout(x, training=training)
        logits = tf.einsum("bth,kh->btk", _compute(x, self.compute_dtype), self.output_weights)
        out["logits"] = _float32(logits) + _float32(self.output_bias)  # [B,T,K]
        out["probabilities"] = tf.nn.softmax(out["logits"], axis=-1)
        mask = self.label_mask(inputs)
        if self.crf is not None and "label_ids" in inputs:
            out["log_likelihood"] = self.crf.log_likelihood(out["logits"], inputs["label_ids"], mask)  # [B]
        if not training:
            out["tags"] = self.decode(out["logits"], mask)  # [B,T]
        return out


class AlbertSpanExtractor(keras.Model):
    """Backbone + the span head of extractive reading comprehension (BERT's SQuAD head): sequence output [B,T,H] ->
    (pre-LN configs only: LayerNorm) -> [B,T,2] with ``output_weights`` [2,H] and ``output_bias`` [2] (the
    classifier's names and layout) -> ``start_logits``, ``end_logits`` [B,T] float32.

    The logits are masked (set to ``MASKED_LOGIT``) outside the positions an answer may take: the context pieces and
    [CLS] (position 0, "no answer" in SQuAD v2 and the label of windows that do not hold the answer). The context
    is read from the inputs' layout, ``[CLS] question [SEP] context [SEP]`` with segment id 1 from the context on:
    real tokens with segment id 1 except the last one ([SEP]). So a served model needs only the three usual inputs.
    ``null_score`` [B] = start_logits[:, 0] + end_logits[:, 0] (SQuAD v2's no-answer score).
    """

    MASKED_LOGIT = -10000.0
    num_labels = 2  # the checkpoint loader's view of the head: two rows of output_weights

    def __init__(self, config: AlbertConfig, **kwargs):
        kwargs.setdefault("name", "albert_span_extractor")
        super().__init__(**kwargs)
        self.config = config
        self.albert = AlbertModel(config, name="albert")
        self.layer_norm = _layer_norm(config, "loss_layer_norm") if config.ln_type == "preln" else None

    def build(self, input_shape=None):
        self.albert.build()
        self.albert.pooler.trainable = False  # unused by span extraction: kept for the checkpoint layout
        h = self.config.hidden_size
        if self.layer_norm is not None:
            self.layer_norm.build((None, None, h))
        self.output_weights = self.add_weight(name="output_weights", shape=(2, h),
                                              initializer=_initializer(self.config))
        self.output_bias = self.add_weight(name="output_bias", shape=(2,), initializer="zeros")
        super().build(input_shape)

    @staticmethod
    def answer_mask(inputs: dict[str, tf.Tensor]) -> tf.Tensor:
        """[B,T] bool: [CLS] and the context pieces (see the class docstring)."""
        mask = tf.cast(inputs["input_mask"], tf.int32)
        positions = tf.range(tf.shape(mask)[1])[None]
        last = tf.reduce_sum(mask, axis=1, keepdims=True) - 1
        context = (mask > 0) & (tf.cast(inputs["segment_ids"], tf.int32) == 1) & (positions < last)
        return context | (positions == 0)

    def call(self, inputs: dict[str, tf.Tensor], training: bool = False) -> dict[str, tf.Tensor]:
        out = dict(self.albert(inputs, training=training))
        x = out["sequence_output"]
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        logits = tf.einsum("bth,kh->btk", _compute(x, self.compute_dtype), self.output_weights)
        logits = _float32(logits) + _float32(self.output_bias)  # [B,T,2]
        mask = self.answer_mask(inputs)
        out["start_logits"] = tf.where(mask, logits[:, :, 0], self.MASKED_LOGIT)  # [B,T]
        out["end_logits"] = tf.where(mask, logits[:, :, 1], self.MASKED_LOGIT)  # [B,T]
        out["null_score"] = out["start_logits"][:, 0] + out["end_logits"][:, 0]  # [B]
        return out
