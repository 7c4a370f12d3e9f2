"""Checkpoints ↔ model variables: TF1 names of both families, our own TF2 checkpoints, and a load report.

Every script's ``--init_checkpoint`` goes through ``load_checkpoint``. The name map is an explicit table
(``_entries``): it walks our model objects and yields one ``Entry`` (TF1 name, variable, what each axis is, which
part of the model) per variable, with a shape assert against the config, instead of rewriting names with a chain of
string replacements (which silently breaks on names nobody thought of).

TF1 names, brightmart (albert_zh; also plain BERT checkpoints, which are ``share_type: none`` without
``word_embeddings_2``)::

    bert/embeddings/{word_embeddings [V,E], word_embeddings_2 [E,H], token_type_embeddings [T,H],
                     position_embeddings [P,H], LayerNorm}
    bert/encoder/<layer scope>/attention/self/{query,key,value}, attention/output/{dense,LayerNorm},
                               intermediate/dense, output/{dense,LayerNorm}
        <layer scope>: layer_shared (share_type all), layer_%d (none); share_type attention keeps
        layer_shared/attention but has layer_shared/intermediate_%d and output_%d; share_type ffn has
        layer_shared/attention_%d and a shared layer_shared/intermediate, output.
    bert/pooler/dense, cls/predictions/{transform/dense (H->H), transform/LayerNorm, output_bias},
    cls/seq_relationship/{output_weights [2,H], output_bias}; fine-tuned: output_weights [C,H], output_bias [C],
    loss/LayerNorm (pre-LN only).

TF1 names, Google (google-research/albert)::

    bert/embeddings/{word_embeddings, token_type_embeddings, position_embeddings, LayerNorm} (all E wide)
    bert/encoder/embedding_hidden_mapping_in (E->H)
    bert/encoder/transformer/group_%d/inner_group_0/{attention_1/self/{query,key,value}, attention_1/output/dense,
        LayerNorm, ffn_1/intermediate/dense, ffn_1/intermediate/output/dense, LayerNorm_1}
    bert/pooler/dense, cls/predictions/{transform/dense (H->E), transform/LayerNorm (E), output_bias},
    cls/seq_relationship/...; fine-tuned: output_weights, output_bias.

TF1 Dense kernels are [in, out] like Keras', and ``output_weights`` are [classes, H] in both, so every value is
copied as it is. ``ln_type`` (post-/pre-LN) is not visible in names: the config decides.

Our TF2 checkpoints (``tf.train.Checkpoint(model=..., optimizer=..., step=...)``) are matched through their object
graph: each of our variables is found by its attribute path under ``model`` (with the backbone under ``albert/``),
so a pretraining model's backbone loads into a classifier and back.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
from typing import Any, Iterable, Iterator

import keras
import numpy as np
import tensorflow as tf

import modeling

# Parts of a model. A missing backbone variable is an error; a missing or unused head is expected in fine-tuning.
BACKBONE, MLM, SOP, CLASSIFIER = "backbone", "MLM head", "SOP head", "classifier head"
TF1, TF2 = "tf1", "tf2"
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"  # present in (and only in) object-based TF2 checkpoints

# Optimizer state and counters a checkpoint may hold beside the weights: recognised and skipped, never "unknown".
_SLOT_SUFFIXES = ("/adam_m", "/adam_v", "/lamb_m", "/lamb_v", "/Adam", "/Adam_1", "/Momentum",
                  "/ExponentialMovingAverage")
_COUNTER_NAMES = {"global_step", "good_steps", "loss_scale", "current_loss_scale", "beta1_power", "beta2_power"}


class CheckpointError(ValueError):
    """A checkpoint that does not fit the model; the message says what differs and which config key to change."""


@dataclasses.dataclass(frozen=True)
class Entry:
    """One row of the name table.

    ``dims`` names the config key behind each axis (e.g. ("vocab_size", "embedding_size")): the shape assert
    checks the variable against the config, and a mismatch with the checkpoint names the key that differs.
    """
    name: str
    variable: Any  # keras.Variable
    dims: tuple[str, ...]
    part: str


@dataclasses.dataclass
class CheckpointInfo:
    """What a checkpoint holds, read from its variable list (no values).

    ``shapes`` is keyed by TF1 name (TF1) or by attribute path under ``model`` with the backbone under ``albert/``
    (TF2); ``keys`` maps those to the stored keys; ``skipped`` are optimizer slots and counters.
    """
    path: str
    format: str
    shapes: dict[str, list[int]]
    keys: dict[str, str]
    skipped: list[str]
    family: str | None
    num_labels: int | None  # the classifier head's label count, None without one
    has_pretraining_heads: bool
    has_crf: bool = False  # a tagger's CRF (crf/transitions)


@dataclasses.dataclass
class LoadReport:
    """What ``load_checkpoint`` did. Names are TF1 names for our variables and stored names for the checkpoint's."""
    path: str
    format: str
    family: str | None
    matched: list[str]
    missing: list[str]  # our variables the checkpoint lacks (left as initialised)
    unused: list[str]  # checkpoint variables no model variable took
    skipped: list[str]  # optimizer slots, step counters
    notes: list[str]  # why the missing/unused ones are (or are not) expected

    def __str__(self) -> str:
        head = (f"Loaded {self.format.upper()} checkpoint {self.path} ({self.family or 'unknown'} family): "
                f"{len(self.matched)} matched, {len(self.missing)} missing in checkpoint, {len(self.unused)} unused, "
                f"{len(self.skipped)} optimizer slots / counters skipped")
        return "\n".join([head] + ["  " + note for note in self.notes])


# ---------------------------------------------------------------------------------------------------------------------
# The name table
# ---------------------------------------------------------------------------------------------------------------------

def split_model(model: keras.Model) -> tuple[modeling.AlbertModel, dict[str, Any]]:
    """Splits a model into its backbone and its heads ({"mlm": ..., "sop": ..., "classifier": model})."""
    if isinstance(model, modeling.AlbertPretrainingModel):
        return model.albert, {"mlm": model.mlm, "sop": model.sop}
    if isinstance(model, (modeling.AlbertClassifier, modeling.AlbertTokenClassifier, modeling.AlbertSpanExtractor)):
        return model.albert, {"classifier": model}
    if isinstance(model, modeling.AlbertModel):
        return model, {}
    raise TypeError(f"expected an AlbertModel, AlbertPretrainingModel, AlbertClassifier, AlbertTokenClassifier or "
                    f"AlbertSpanExtractor, got {type(model).__name__}")


def _dim(config: modeling.AlbertConfig, key: str, num_labels: int | None) -> int:
    if key == "num_labels":
        return int(num_labels)
    if key == "sop_labels":
        return 2
    if key == "embedding_size":
        return config.embedding_size or config.hidden_size
    return int(getattr(config, key))


class _Table:
    """Collects the rows of the name table, checking each variable's shape against the config as it goes."""

    def __init__(self, config: modeling.AlbertConfig, num_labels: int | None):
        self.config, self.num_labels = config, num_labels
        self.entries: list[Entry] = []

    def add(self, name: str, variable, dims: tuple[str, ...], part: str = BACKBONE) -> None:
        expected = tuple(_dim(self.config, d, self.num_labels) for d in dims)
        if tuple(variable.shape) != expected:  # the table and the model disagree: a bug here, not the user's
            raise AssertionError(f"{name}: model variable {variable.path} has shape {tuple(variable.shape)}, "
                                 f"the config says {expected} {dims}")
        self.entries.append(Entry(name, variable, dims, part))

    def dense(self, scope: str, layer, d_in: str, d_out: str, part: str = BACKBONE) -> None:
        self.add(scope + "/kernel", layer.kernel, (d_in, d_out), part)  # [in, out] in TF1 and Keras alike
        self.add(scope + "/bias", layer.bias, (d_out,), part)

    def norm(self, scope: str, layer, width: str, part: str = BACKBONE) -> None:
        self.add(scope + "/gamma", layer.gamma, (width,), part)
        self.add(scope + "/beta", layer.beta, (width,), part)

    def attention(self, self_scope: str, output_scope: str, norm_scope: str, block) -> None:
        for sub, layer in (("query", block.query), ("key", block.key), ("value", block.value)):
            self.dense(f"{self_scope}/{sub}", layer, "hidden_size", "hidden_size")
        self.dense(output_scope, block.output_dense, "hidden_size", "hidden_size")
        self.norm(norm_scope, block.layer_norm, "hidden_size")

    def ffn(self, inter_scope: str, output_scope: str, norm_scope: str, block) -> None:
        self.dense(inter_scope, block.intermediate, "hidden_size", "intermediate_size")
        self.dense(output_scope, block.output_dense, "intermediate_size", "hidden_size")
        self.norm(norm_scope, block.layer_norm, "hidden_size")


def _entries(model: keras.Model) -> list[Entry]:
    """The explicit table: every variable of ``model`` with its TF1 name (in ``model.config.model_family``)."""
    if not model.built:
        model.build()
    albert, heads = split_model(model)
    config = albert.config
    google = config.model_family == modeling.GOOGLE
    head = heads.get("classifier")
    t = _Table(config, getattr(head, "num_labels", getattr(head, "num_tags", None)))
    # Width of the word embeddings: E when factorized, else H (plain BERT). Google's type/position tables and its
    # embedding LayerNorm are E wide too; brightmart's are H wide.
    word = "embedding_size" if config.factorized else "hidden_size"
    emb_sum = word if google else "hidden_size"

    emb = albert.embeddings
    t.add("bert/embeddings/word_embeddings", emb.word_embeddings, ("vocab_size", word))
    if emb.word_embeddings_2 is not None:
        t.add("bert/embeddings/word_embeddings_2", emb.word_embeddings_2, ("embedding_size", "hidden_size"))
    t.add("bert/embeddings/token_type_embeddings", emb.token_type_embeddings, ("type_vocab_size", emb_sum))
    t.add("bert/embeddings/position_embeddings", emb.position_embeddings, ("max_position_embeddings", emb_sum))
    t.norm("bert/embeddings/LayerNorm", emb.layer_norm, emb_sum)
    if emb.embedding_hidden_mapping_in is not None:
        t.dense("bert/encoder/embedding_hidden_mapping_in", emb.embedding_hidden_mapping_in, word, "hidden_size")

    enc = albert.encoder
    if google:
        if config.share_type != "all":
            raise CheckpointError(f"share_type: Google-family checkpoints share whole layers within a group "
                                  f"(share_type 'all'), the config says {config.share_type!r}")
        for g in enc.attention:  # the groups some layer uses, by Google's group id
            scope = f"bert/encoder/transformer/group_{g}/inner_group_0"
            t.attention(scope + "/attention_1/self", scope + "/attention_1/output/dense", scope + "/LayerNorm",
                        enc.attention[g])
            t.ffn(scope + "/ffn_1/intermediate/dense", scope + "/ffn_1/intermediate/output/dense",
                  scope + "/LayerNorm_1", enc.ffn[g])
    else:
        if config.num_hidden_groups != 1:
            raise CheckpointError(f"num_hidden_groups: brightmart-family checkpoints have no layer groups "
                                  f"(num_hidden_groups 1), the config says {config.num_hidden_groups}")
        share, enc_scope = config.share_type, "bert/encoder"
        for a, block in enc.attention.items():  # a: 0 when shared, else the layer
            if share == "none":
                scope = f"{enc_scope}/layer_{a}/attention"
            elif share == "ffn":
                scope = f"{enc_scope}/layer_shared/attention_{a}"
            else:
                scope = f"{enc_scope}/layer_shared/attention"
            t.attention(scope + "/self", scope + "/output/dense", scope + "/output/LayerNorm", block)
        for f, block in enc.ffn.items():  # f: 0 when shared, else the layer
            if share == "none":
                inter, out = f"{enc_scope}/layer_{f}/intermediate", f"{enc_scope}/layer_{f}/output"
            elif share == "attention":
                inter, out = f"{enc_scope}/layer_shared/intermediate_{f}", f"{enc_scope}/layer_shared/output_{f}"
            else:
                inter, out = f"{enc_scope}/layer_shared/intermediate", f"{enc_scope}/layer_shared/output"
            t.ffn(inter + "/dense", out + "/dense", out + "/LayerNorm", block)
    t.dense("bert/pooler/dense", albert.pooler, "hidden_size", "hidden_size")

    if "mlm" in heads:
        mlm, width = heads["mlm"], (word if google else "hidden_size")  # Google's head maps back to E
        t.dense("cls/predictions/transform/dense", mlm.dense, "hidden_size", width, MLM)
        t.norm("cls/predictions/transform/LayerNorm", mlm.layer_norm, width, MLM)
        t.add("cls/predictions/output_bias", mlm.output_bias, ("vocab_size",), MLM)
    if "sop" in heads:
        t.add("cls/seq_relationship/output_weights", heads["sop"].output_weights, ("sop_labels", "hidden_size"), SOP)
        t.add("cls/seq_relationship/output_bias", heads["sop"].output_bias, ("sop_labels",), SOP)
    if "classifier" in heads:
        clf = heads["classifier"]
        t.add("output_weights", clf.output_weights, ("num_labels", "hidden_size"), CLASSIFIER)
        t.add("output_bias", clf.output_bias, ("num_labels",), CLASSIFIER)
        if clf.layer_norm is not None:  # pre-LN: the original normalises the pooled output before the classifier
            t.norm("loss/LayerNorm", clf.layer_norm, "hidden_size", CLASSIFIER)
        if getattr(clf, "crf", None) is not None:  # the tagger's CRF (our names; TF1 scripts had none to match)
            t.add("crf/transitions", clf.crf.transitions, ("num_labels", "num_labels"), CLASSIFIER)
            t.add("crf/start_transitions", clf.crf.start_transitions, ("num_labels",), CLASSIFIER)
            t.add("crf/end_transitions", clf.crf.end_transitions, ("num_labels",), CLASSIFIER)
    return t.entries


def tf1_name_map(model: keras.Model) -> dict[str, Any]:
    """TF1 name -> our variable, for ``model.config.model_family``'s names. Builds the model if needed."""
    return {e.name: e.variable for e in _entries(model)}


# ---------------------------------------------------------------------------------------------------------------------
# Reading checkpoints
# ---------------------------------------------------------------------------------------------------------------------

def is_optimizer_variable(name: str) -> bool:
    """True for optimizer slots (adam_m, lamb_v, Adam_1, Momentum, EMA …) and counters (global_step, loss scale)."""
    return name.endswith(_SLOT_SUFFIXES) or name.rsplit("/", 1)[-1] in _COUNTER_NAMES


def _step_of(prefix: str) -> int:
    match = re.search(r"-(\d+)$", prefix)
    return int(match.group(1)) if match else -1


def resolve_checkpoint_path(path: str) -> str:
    """A checkpoint file prefix (``dir/model.ckpt-1000``) from a prefix, one of its files, or a directory.

    For a directory, the ``checkpoint`` state file is followed when the files it names exist; the released
    albert_zh zips name absolute paths on their authors' machines, so otherwise the ``*.index`` files present are
    used (the highest step). Raises FileNotFoundError saying what was looked for, and CheckpointError when the
    state file names an existing checkpoint outside the directory (another run's: its prefix must be passed).
    """
    if not path:
        raise FileNotFoundError("no checkpoint path given (--init_checkpoint / --tf_checkpoint_path)")
    prefix = re.sub(r"(\.index|\.meta|\.data-\d{5}-of-\d{5})$", "", os.fspath(path))
    if tf.io.gfile.isdir(prefix):
        try:
            import training  # lazily; the training loop applies the same rules to its own output_dir

            state = training.checkpoint_state(prefix)
        except Exception:  # an unreadable state file: the *.index files below still tell
            state = None
        named = state.model_checkpoint_path if state else None
        found = sorted((p[: -len(".index")] for p in tf.io.gfile.glob(os.path.join(prefix, "*.index"))),
                       key=lambda p: (_step_of(p), p))
        if named and tf.io.gfile.exists(named + ".index"):
            if training.outside_directory(named, prefix):
                own = f"; this directory's own newest is {found[-1]}" if found else ""
                raise CheckpointError(f"{os.path.join(prefix, 'checkpoint')} names {named}, outside {prefix} "
                                      f"(another run's checkpoint): pass the checkpoint prefix explicitly (e.g. "
                                      f"{named}) if that is the one you want{own}")
            return named
        if not found:
            raise FileNotFoundError(f"{path}: the directory holds no checkpoint (no *.index file)")
        if named:
            print(f"checkpoint: {prefix}/checkpoint names {named}, which does not exist; using {found[-1]} "
                  f"(the highest step of the *.index files present)")
        return found[-1]
    if tf.io.gfile.exists(prefix + ".index"):
        return prefix
    raise FileNotFoundError(f"{path}: no checkpoint there (looked for {prefix}.index, or a directory holding "
                            f"*.index files)")


@contextlib.contextmanager
def reading(prefix: str) -> Iterator[None]:
    """Reads of checkpoint ``prefix`` (our loader's, or a ``tf.train.Checkpoint.restore``) that fail because its
    files are cut short or damaged (an interrupted copy or download) raise CheckpointError naming the file, instead
    of TF's bare "Read less bytes than requested" or "not an sstable"."""
    try:
        yield
    except (IndexError, tf.errors.OpError) as err:
        text = str(err).lower()
        if not (isinstance(err, tf.errors.DataLossError) or "read less bytes" in text
                or any(word in text for word in ("sstable", "checksum", "corrupt", "truncat"))):
            raise
        try:  # opening a reader reads the .index only: if that works, the .data shards are what is damaged
            tf.train.load_checkpoint(prefix)
            files = sorted(tf.io.gfile.glob(prefix + ".data-*")) or [prefix + ".index"]
        except tf.errors.OpError:
            files = [prefix + ".index"]
        sizes = ", ".join(str(tf.io.gfile.stat(f).length) for f in files)
        raise CheckpointError(f"{', '.join(files)}: truncated or corrupt checkpoint data ({sizes} bytes); "
                              f"re-copy {'it' if len(files) == 1 else 'them'}") from None


def detect_family(names: Iterable[str]) -> str | None:
    """'google', 'brightmart' or None from a checkpoint's variable names (TF1 names or our TF2 attribute paths).

    Google's checkpoints (and our Google-family models) have ``embedding_hidden_mapping_in`` / transformer groups;
    brightmart's and plain BERT's have ``bert/encoder/layer_…`` or ``word_embeddings_2``.
    """
    names = list(names)
    if any("embedding_hidden_mapping_in" in n or "/transformer/group_" in n for n in names):
        return modeling.GOOGLE
    if any(n.startswith(("bert/", "albert/")) for n in names):
        return modeling.BRIGHTMART
    return None


def _read_object_graph(reader) -> tuple[dict[str, str], list[str]]:
    """TF2 checkpoint -> ({attribute path under ``model``: stored key}, [keys outside ``model``])."""
    from tensorflow.core.protobuf import trackable_object_graph_pb2

    graph = trackable_object_graph_pb2.TrackableObjectGraph.FromString(reader.get_tensor(OBJECT_GRAPH_KEY))
    root = {c.local_name: c.node_id for c in graph.nodes[0].children}
    if "model" not in root:
        raise CheckpointError(f"a TF2 checkpoint without a 'model' object (its root holds {sorted(root)}); "
                              f"expected one written by tf.train.Checkpoint(model=...)")
    paths: dict[str, str] = {}

    def walk(node: int, path: str, seen: frozenset) -> None:
        for attr in graph.nodes[node].attributes:
            if attr.name == "VARIABLE_VALUE":
                paths.setdefault(path, attr.checkpoint_key)
        for child in graph.nodes[node].children:
            if child.node_id not in seen:  # the graph may share objects; never loop
                walk(child.node_id, f"{path}/{child.local_name}" if path else child.local_name,
                     seen | {child.node_id})

    walk(root["model"], "", frozenset([root["model"]]))
    paths = _backbone_under_albert(paths)
    inside = set(paths.values())
    outside = [k for k in reader.get_variable_to_shape_map() if k not in inside and k != OBJECT_GRAPH_KEY]
    return paths, sorted(outside)


def _backbone_under_albert(paths: dict[str, Any]) -> dict[str, Any]:
    """A bare AlbertModel's paths start at embeddings/encoder/pooler; put them under albert/ as in the other models."""
    if any(p.startswith("albert/") for p in paths):
        return paths
    return {"albert/" + p: v for p, v in paths.items()}


def inspect_checkpoint(path: str) -> CheckpointInfo:
    """Reads a checkpoint's variable list (TF1 or our TF2, told apart by the object graph entry)."""
    prefix = resolve_checkpoint_path(path)
    with reading(prefix):  # a TF2 checkpoint's object graph is a tensor in its .data file
        reader = tf.train.load_checkpoint(prefix)
        all_shapes = reader.get_variable_to_shape_map()
        if OBJECT_GRAPH_KEY in all_shapes:
            keys, skipped = _read_object_graph(reader)
            fmt, pretraining = TF2, ("mlm/", "sop/")
        else:
            skipped = sorted(n for n in all_shapes if is_optimizer_variable(n))
            keys = {n: n for n in all_shapes if n not in skipped}
            fmt, pretraining = TF1, ("cls/",)
    shapes = {name: list(all_shapes[key]) for name, key in keys.items()}
    # The classifier head is root-level output_weights [C,H] in TF1 (both families) and in ours alike.
    return CheckpointInfo(
        path=prefix, format=fmt, shapes=shapes, keys=keys, skipped=skipped, family=detect_family(shapes),
        num_labels=shapes["output_weights"][0] if "output_weights" in shapes else None,
        has_pretraining_heads=any(n.startswith(pretraining) for n in shapes),
        has_crf=any(n.startswith("crf/") for n in shapes))


# ---------------------------------------------------------------------------------------------------------------------
# Checks that turn a mismatch into a message naming the config key
# ---------------------------------------------------------------------------------------------------------------------

def _family_message(info: CheckpointInfo, config_family: str, built: bool) -> str:
    example = next((n for n in sorted(info.shapes) if "mapping_in" in n or "/encoder/" in n), "")
    where = "the model was built" if built else "the config says"
    return (f"{info.path} is a {info.family}-family checkpoint (e.g. {example}) but {where} with "
            f"model_family={config_family!r}: set \"model_family\": \"{info.family}\" in the config file "
            f"(or pass --model_family={info.family})")


def family_was_given(config: modeling.AlbertConfig) -> bool:
    """True when ``model_family`` came from the JSON or an override (``AlbertConfig.from_json_file(...,
    model_family=flag)``) rather than being derived. Only meaningful for configs straight from a file: a
    ``config.replace(...)`` copy lists every key as given."""
    return "model_family" in getattr(config, "_given", ())


def config_for_checkpoint(config: modeling.AlbertConfig, path: str,
                          family_given: bool | None = None) -> modeling.AlbertConfig:
    """The config to build the model with before loading ``path``.

    When the checkpoint's family differs from the config's: if the config (or a flag) chose the family, raise
    CheckpointError saying what to change; if the family was only derived (``family_given`` False; None means
    ``family_was_given(config)``), use the checkpoint's family and say so.
    """
    info = inspect_checkpoint(path)
    if info.family is None or info.family == config.model_family:
        return config
    if family_given is None:
        family_given = family_was_given(config)
    if family_given:
        raise CheckpointError(_family_message(info, config.model_family, built=False))
    print(f"model_family: the config does not set it and {info.path} is a {info.family}-family checkpoint: "
          f"using {info.family!r}")
    return config.replace(model_family=info.family)


def _block_ids(names: Iterable[str]) -> tuple[str | None, set[int], set[int], str | None]:
    """TF1 encoder names -> (share_type, attention block ids, FFN block ids, example name) as our encoder counts
    them (layer ids for per-layer blocks, group ids for Google, 0 for a shared block)."""
    att: set[int] = set()
    ffn: set[int] = set()
    shared_att = shared_ffn = per_layer = False
    example = None
    for n in names:
        m = re.match(r"bert/encoder/(layer_shared|layer_(\d+)|transformer/group_(\d+))/"
                     r"(attention(?:_(\d+))?|intermediate(?:_(\d+))?|output(?:_(\d+))?|inner_group_0)/", n)
        if not m:
            continue
        example = example or n
        _, layer, group, sub, att_id, inter_id, out_id = m.groups()
        if group is not None:
            att.add(int(group))
            ffn.add(int(group))
            shared_att = shared_ffn = True
        elif layer is not None:
            per_layer = True
            (att if sub == "attention" else ffn).add(int(layer))
        elif sub.startswith("attention"):
            att.add(int(att_id) if att_id else 0)
            shared_att |= att_id is None
        else:
            ids = inter_id or out_id
            ffn.add(int(ids) if ids else 0)
            shared_ffn |= ids is None
    if not (att or ffn):
        return None, att, ffn, None
    share = "none" if per_layer else {(True, True): "all", (True, False): "attention", (False, True): "ffn",
                                      (False, False): "none"}[(shared_att, shared_ffn)]
    return share, att, ffn, example


def _check_structure(info: CheckpointInfo, config: modeling.AlbertConfig) -> None:
    """share_type / num_hidden_groups / num_hidden_layers against a TF1 checkpoint's encoder names."""
    share, att, ffn, example = _block_ids(info.shapes)
    if share is None:
        return
    blocks = modeling.layer_blocks(config)
    want_att, want_ffn = {a for a, _ in blocks}, {f for _, f in blocks}
    if config.model_family == modeling.GOOGLE:
        if att != want_att:
            layers = config.num_hidden_layers
            fits = [g for g in range(1, 4 * (max(att) + 1) + layers)  # several G can give the same groups
                    if {i * g // layers for i in range(layers)} == att]
            hint = (f"set \"num_hidden_groups\": {fits[0]}" if fits else
                    "no num_hidden_groups gives these groups with this num_hidden_layers: check num_hidden_layers")
            raise CheckpointError(
                f"num_hidden_groups: {info.path} has transformer groups {sorted(att)} (e.g. {example}) but the config "
                f"(num_hidden_groups={config.num_hidden_groups}, num_hidden_layers={layers}) uses groups "
                f"{sorted(want_att)}: {hint}")
        return
    if share != config.share_type:
        raise CheckpointError(
            f"share_type: {info.path} is laid out for share_type {share!r} (e.g. {example}) but the config says "
            f"share_type={config.share_type!r}: set \"share_type\": \"{share}\" in the config file")
    if (att, ffn) != (want_att, want_ffn):
        have = max(att | ffn) + 1
        raise CheckpointError(
            f"num_hidden_layers: {info.path} has per-layer blocks for {have} layers (e.g. {example}) but the config "
            f"says num_hidden_layers={config.num_hidden_layers}: set \"num_hidden_layers\": {have}")


_HINTS = {"num_labels": "pass the task's label count (--num_labels) or the checkpoint of this task",
          "vocab_size": "a vocab/config of another model?"}


def _shape_error(entry: Entry, ours: tuple[int, ...], theirs: list[int]) -> str:
    """One line per mismatch, naming the config key of the first axis that differs."""
    line = f"{entry.name}: checkpoint shape {list(theirs)}, model shape {list(ours)}"
    if len(ours) != len(theirs):
        return line
    for key, a, b in zip(entry.dims, ours, theirs):
        if a != b:
            label = "embedding_size (or hidden_size when it is absent)" if key == "embedding_size" else key
            return (f"{line} — {label} is {a} in the config but {b} in the checkpoint: "
                    f"{_HINTS.get(key, 'wrong config file?')}")
    return line


def _unused_part(name: str) -> str | None:
    """Which head an unused checkpoint variable belongs to (TF1 names or TF2 paths), None when it is no head."""
    if name.startswith(("cls/predictions/", "mlm/")):
        return MLM
    if name.startswith(("cls/seq_relationship/", "sop/")):
        return SOP
    if name in ("output_weights", "output_bias") or name.startswith(("loss/", "layer_norm/", "crf/")):
        return CLASSIFIER
    return None


def _tf2_paths_of(model: keras.Model, entries: list[Entry]) -> dict[int, list[str]]:
    """id(entry) -> its attribute paths (as ``_read_object_graph`` writes them), found the way tf.train.Checkpoint
    walks the model. A variable can have several (the MLM head reaches the word embeddings through its own
    ``embeddings`` attribute), and which one a checkpoint names depends on the model that wrote it."""
    wanted = {id(e.variable): e for e in entries}
    view = tf.train.TrackableView(model)
    found: dict[str, Entry] = {}

    def walk(obj, path: str, seen: frozenset) -> None:
        for name, child in view.children(obj).items():
            child_path = f"{path}/{name}" if path else name
            if id(child) in wanted:
                found[child_path] = wanted[id(child)]
            elif id(child) not in seen:
                walk(child, child_path, seen | {id(child)})

    walk(model, "", frozenset([id(model)]))
    paths: dict[int, list[str]] = {}
    for path, entry in sorted(_backbone_under_albert(found).items(), key=lambda item: len(item[0])):
        paths.setdefault(id(entry), []).append(path)
    untracked = [e.variable.path for e in entries if id(e) not in paths]
    if untracked:
        raise CheckpointError(
            f"{len(untracked)} model variables are not reachable by tf.train.Checkpoint (e.g. {untracked[0]}), so "
            f"no TF2 checkpoint can hold them: modeling.py must track every layer as an attribute TF sees")
    return paths


# ---------------------------------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------------------------------

def load_checkpoint(model: keras.Model, path: str, *, family_given: bool = True, allow_missing_backbone: bool = False,
                    require_heads: bool = False, verbose: bool = True) -> LoadReport:
    """Loads a TF1 (either family) or our TF2 checkpoint into ``model`` (built if needed) and reports.

    path: a file prefix, one of its files, or a directory (see ``resolve_checkpoint_path``).
    Raises CheckpointError, before assigning anything, when the checkpoint's family, sharing, groups or any
    shape differ from the model's config (naming the config key), when backbone variables are missing (unless
    ``allow_missing_backbone``), or when the model's heads are missing and ``require_heads`` (export, convert).
    Missing heads otherwise stay as initialised: expected when fine-tuning from a pretraining checkpoint.
    family_given: whether the config chose ``model_family`` (only changes the advice when the families differ: a
    built model cannot change family, so build it from ``config_for_checkpoint``, which follows the checkpoint).
    """
    info = inspect_checkpoint(path)
    grouped = sorted(n for n, shape in info.shapes.items() if n.endswith("/kernel") and len(shape) == 3)
    if grouped:  # modeling_google_fast.py's dense_layer_2d with num_groups > 1: kernel [G, in/G, out/G]
        raise CheckpointError(f"{info.path} holds grouped dense layers ({grouped[0]} {info.shapes[grouped[0]]}, "
                              f"{len(grouped)} in all): the original's *_google_fast models with num_groups. Grouped "
                              f"FFN layers are not supported here; the _fast configs in albert_config/ build "
                              f"ordinary (ungrouped) layers and cannot load this checkpoint")
    entries = _entries(model)
    config = split_model(model)[0].config
    if info.family is not None and info.family != config.model_family:
        message = _family_message(info, config.model_family, built=True)
        if not family_given:
            message += " — or build the model from checkpoints.config_for_checkpoint(config, path), which takes it"
        raise CheckpointError(message)
    if info.format == TF1:
        _check_structure(info, config)
        stored_name = {id(e): e.name for e in entries}  # entry -> its name in this checkpoint
    else:
        candidates = _tf2_paths_of(model, entries)
        stored_name = {id(e): next((p for p in candidates[id(e)] if p in info.shapes), candidates[id(e)][0])
                       for e in entries}

    matched = [e for e in entries if stored_name.get(id(e)) in info.shapes]
    missing = [e for e in entries if stored_name.get(id(e)) not in info.shapes]
    theirs = {id(e): info.shapes[stored_name[id(e)]] for e in matched}
    errors = [_shape_error(e, tuple(e.variable.shape), theirs[id(e)]) for e in matched
              if list(e.variable.shape) != theirs[id(e)]]
    if errors:
        raise CheckpointError(f"{info.path}: {len(errors)} variables differ in shape from the model:\n  "
                              + "\n  ".join(errors))
    missing_backbone = [e.name for e in missing if e.part == BACKBONE]
    if missing_backbone and not allow_missing_backbone:
        raise CheckpointError(f"{info.path} lacks {len(missing_backbone)} backbone variables of this model, e.g. "
                              f"{missing_backbone[:3]}: a checkpoint of another model, or a config that does not "
                              f"describe it?")
    missing_heads = sorted({e.part for e in missing if e.part != BACKBONE})
    if missing_heads and require_heads:
        raise CheckpointError(f"{info.path} has no {', '.join(missing_heads)} for this model; it would be random")

    with reading(info.path):
        reader = tf.train.load_checkpoint(info.path)
        for e in matched:
            e.variable.assign(np.asarray(reader.get_tensor(info.keys[stored_name[id(e)]]), e.variable.dtype))

    # Unused: stored values nobody took, each once under its shortest name (a TF2 object graph reaches some
    # variables by several paths, e.g. albert/embeddings/... and mlm/embeddings/...).
    taken = {info.keys[stored_name[id(e)]] for e in matched}
    shortest: dict[str, str] = {}
    for name in sorted(info.shapes, key=lambda n: (len(n), n)):
        shortest.setdefault(info.keys[name], name)
    unused = sorted(name for key, name in shortest.items() if key not in taken)
    report = LoadReport(path=info.path, format=info.format, family=info.family, matched=[e.name for e in matched],
                        missing=[e.name for e in missing], unused=unused, skipped=info.skipped,
                        notes=_notes(missing, unused, missing_backbone))
    if verbose:
        print(report)
    return report


def _notes(missing: list[Entry], unused: list[str], missing_backbone: list[str]) -> list[str]:
    notes = []
    if missing_backbone:
        notes.append(f"WARNING backbone: {len(missing_backbone)} variables not in checkpoint, left as initialised: "
                     f"{', '.join(missing_backbone)}")
    for part in (MLM, SOP, CLASSIFIER):
        names = [e.name for e in missing if e.part == part]
        if names:
            why = ("fine-tuning from a pretraining checkpoint" if part == CLASSIFIER
                   else "the checkpoint is a fine-tuned classifier or a bare backbone")
            notes.append(f"{part} ({', '.join(names)}): not in checkpoint "
                         f"(expected when {why}; initialised randomly)")
    for part in (MLM, SOP, CLASSIFIER):
        names = [n for n in unused if _unused_part(n) == part]
        if names:
            notes.append(f"{part} in checkpoint ({len(names)} variables, e.g. {names[0]}): unused, this model has "
                         f"no such head (expected)")
    unknown = [n for n in unused if _unused_part(n) is None]
    if unknown:
        notes.append(f"WARNING {len(unknown)} checkpoint variables match nothing in this model: {', '.join(unknown)}")
    return notes


# ---------------------------------------------------------------------------------------------------------------------
# Writing TF1 checkpoints and building models from checkpoints
# ---------------------------------------------------------------------------------------------------------------------

def write_tf1_checkpoint(model: keras.Model, prefix: str, global_step: int | None = None) -> str:
    """Writes ``model``'s variables under their TF1 names (its family's) with a TF1 ``Saver``; returns the prefix.

    Readable by TF1 tools (``tf.compat.v1.train.init_from_checkpoint`` in the original's scripts) and by
    ``load_checkpoint``. Values go in through placeholders so large models do not become graph constants.
    """
    values = {e.name: e.variable.numpy() for e in _entries(model)}
    directory = os.path.dirname(prefix)
    if directory:
        tf.io.gfile.makedirs(directory)
    with tf.Graph().as_default():
        variables, feeds, assigns = {}, {}, []
        for name, value in values.items():
            var = tf.compat.v1.get_variable(name, shape=value.shape, dtype=tf.as_dtype(value.dtype),
                                            initializer=tf.compat.v1.zeros_initializer())
            placeholder = tf.compat.v1.placeholder(var.dtype.base_dtype, value.shape)
            assigns.append(var.assign(placeholder))
            variables[name], feeds[placeholder] = var, value
        if global_step is not None:
            variables["global_step"] = tf.compat.v1.Variable(global_step, dtype=tf.int64, name="global_step")
        saver = tf.compat.v1.train.Saver(variables)
        with tf.compat.v1.Session() as sess:
            sess.run(tf.compat.v1.global_variables_initializer())
            sess.run(assigns, feed_dict=feeds)
            return saver.save(sess, prefix, global_step=global_step)


def model_from_checkpoint(config_file: str, path: str, *, model_family: str | None = None,
                          num_labels: int | None = None, require_heads: bool = True, verbose: bool = True,
                          classifier_pooling: str = "cls", tagger: bool = False,
                          constraints: tuple[Any, Any] | None = None,
                          span_extraction: bool = False) -> tuple[keras.Model, LoadReport]:
    """Config file + checkpoint -> the model the checkpoint holds, loaded (the glue the export/convert CLIs share).

    num_labels: None = what the checkpoint holds (a classifier when it has root ``output_weights``, else a
    pretraining model when it has MLM/SOP heads, else the bare backbone); 0 = the backbone only; C > 0 = an
    AlbertClassifier with C labels. model_family: a flag's override of the config's (None: keep it, and when the
    config does not set it either, take the checkpoint's). classifier_pooling: what a classifier reads (the
    AlbertClassifier argument; the checkpoint does not record it). tagger: an AlbertTokenClassifier (run_ner.py's
    model; with a CRF when the checkpoint has one) with C = num_labels tags, decoding under ``constraints``.
    span_extraction: an AlbertSpanExtractor (run_mrc.py's model). Its head is stored as a 2-label classifier's
    (root ``output_weights`` [2,H]: start, end), so the checkpoint cannot tell the two apart and the caller says
    which; a checkpoint with another head (or, with ``require_heads``, none) is a CheckpointError.
    """
    path = resolve_checkpoint_path(path)  # once: a directory's notes are printed once
    config = modeling.AlbertConfig.from_json_file(config_file, model_family=model_family)
    config = config_for_checkpoint(config, path, family_given=family_was_given(config))
    info = inspect_checkpoint(path)
    if span_extraction:
        if tagger or num_labels not in (None, 2):
            raise ValueError(f"span_extraction: a span extractor has a 2-row head (start, end) and is no tagger; "
                             f"got tagger={tagger}, num_labels={num_labels}")
        need = "a span extractor (run_mrc.py) needs root output_weights [2, hidden_size] (start, end), output_bias [2]"
        if info.has_crf:
            raise CheckpointError(f"{info.path} holds a CRF (crf/transitions): a run_ner.py tagger, not a span "
                                  f"extractor; {need}")
        if info.num_labels is not None and info.num_labels != 2:
            raise CheckpointError(f"{info.path} holds a head of {info.num_labels} rows (output_weights "
                                  f"{info.shapes['output_weights']}): a classifier or tagger, not a span extractor; "
                                  f"{need}")
        if info.num_labels is None and require_heads:
            held = "MLM and SOP heads (a pretraining checkpoint)" if info.has_pretraining_heads else "no head"
            raise CheckpointError(f"{info.path} holds {held}, no span head: {need} (the checkpoint run_mrc.py "
                                  f"wrote: its output_dir or output_dir/best)")
        model = modeling.AlbertSpanExtractor(config)
        model.build()
        return model, load_checkpoint(model, path, require_heads=require_heads, verbose=verbose)
    if num_labels is None:
        num_labels = info.num_labels if info.num_labels is not None else (None if info.has_pretraining_heads else 0)
    if num_labels is None:
        model = modeling.AlbertPretrainingModel(config)
    elif num_labels == 0:
        model = modeling.AlbertModel(config)
    elif tagger:
        model = modeling.AlbertTokenClassifier(config, num_labels, use_crf=info.has_crf, constraints=constraints)
    else:
        model = modeling.AlbertClassifier(config, num_labels, pooling=classifier_pooling)
    model.build()
    return model, load_checkpoint(model, path, require_heads=require_heads, verbose=verbose)


def describe(path: str) -> str:
    """What a checkpoint holds, in words: format, family, heads, and the sizes a config must match."""
    info = inspect_checkpoint(path)
    shapes = info.shapes

    def find(suffix: str) -> list[int] | None:
        return next((shape for name, shape in sorted(shapes.items()) if name.endswith(suffix)), None)

    words, words_2 = find("embeddings/word_embeddings"), find("word_embeddings_2")
    mapping = find("embedding_hidden_mapping_in/kernel")
    positions = find("position_embeddings")
    lines = [f"{info.path}: {info.format.upper()} checkpoint, {info.family or 'unknown'} family, {len(shapes)} "
             f"variables (+{len(info.skipped)} optimizer slots / counters)"]
    if words:
        hidden = (words_2 or mapping or [None, words[1]])[1]
        lines.append(f"  config needs: vocab_size {words[0]}, embedding_size {words[1]}, hidden_size {hidden}"
                     + (f", max_position_embeddings {positions[0]}" if positions else ""))
    head = f"classifier or tagger ({info.num_labels} labels)"
    if info.num_labels == 2:  # the same variables as a span head: only the flag tells them apart
        head += " or span extractor (run_mrc.py: start, end; --span_extraction)"
    heads = [name for name, on in (("MLM + SOP (pretraining)", info.has_pretraining_heads),
                                   (head, info.num_labels is not None),
                                   ("CRF (run_ner.py tagger)", info.has_crf)) if on]
    lines.append("  heads: " + (", ".join(heads) if heads else "none (a bare backbone)"))
    lines += [f"  {name} {shape}" for name, shape in sorted(shapes.items())]
    return "\n".join(lines)


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2 or sys.argv[1].startswith("-"):
        raise SystemExit("usage: python checkpoints.py CHECKPOINT (a prefix or a directory): prints its format, "
                         "family, heads, the sizes a config must match and every variable's shape")
    import cli

    print(cli.clean_errors(describe)(sys.argv[1]))
