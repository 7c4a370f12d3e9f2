"""Shows, and asserts, the three changes ALBERT makes to BERT, on the real albert_config/ files.

1. Factorized embedding parameterization: V·E + E·H word-embedding parameters instead of V·H.
2. Cross-layer parameter sharing: one layer's parameters serve all L layers.
3. Sentence-order prediction (SOP): the second head classifies segment order (0 = original, 1 = swapped).

Run: python test_changes.py   (exits non-zero if any assertion fails)
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

import modeling  # noqa: E402

CONFIG_DIR = Path(__file__).resolve().parent / "albert_config"


def load(name: str, **changes) -> modeling.AlbertConfig:
    config = modeling.AlbertConfig.from_json_file(str(CONFIG_DIR / f"albert_config_{name}.json"))
    return config.replace(**changes) if changes else config


def n_params(variables) -> int:
    return sum(int(np.prod(v.shape)) for v in variables)


def built(model_cls, config):
    model = model_cls(config)
    model.build()
    return model


def parameter_counts() -> dict:
    """Trainable, unique parameter counts of the released configs (shared variables counted once)."""
    counts = {}
    for name in ("tiny", "base", "tiny_google"):
        config = load(name)
        pre = built(modeling.AlbertPretrainingModel, config)
        counts[name] = {
            "backbone": n_params(pre.albert.trainable_variables),
            "embeddings": n_params(pre.albert.embeddings.trainable_variables),
            "layer": n_params(pre.albert.encoder.trainable_variables) // len(pre.albert.encoder.attention),
            "pooler": n_params(pre.albert.pooler.trainable_variables),
            "with_heads": n_params(pre.trainable_variables),
        }
    unshared = built(modeling.AlbertModel, load("base", share_type="none"))
    counts["base_unshared_encoder"] = n_params(unshared.encoder.trainable_variables)
    return counts


def check_factorized_embeddings() -> None:
    """Change 1: the original's base config, E = 128 against BERT's E = H = 768."""
    c = load("base")
    v, e, h = c.vocab_size, c.embedding_size, c.hidden_size
    model = built(modeling.AlbertModel, c)
    emb = model.embeddings
    factorized = n_params([emb.word_embeddings, emb.word_embeddings_2])
    bert = built(modeling.AlbertModel, c.replace(embedding_size=None, num_hidden_layers=1)).embeddings
    plain = n_params([bert.word_embeddings])
    assert factorized == v * e + e * h == 2_802_688, factorized
    assert plain == v * h == 16_226_304, plain
    print(f"1. factorized embeddings (base): V·E + E·H = {v}·{e} + {e}·{h} = {factorized:,} "
          f"vs BERT's V·H = {plain:,} ({plain / factorized:.1f}x fewer)")


def check_parameter_sharing(counts: dict) -> None:
    """Change 2: all layers share one set of parameters."""
    base = counts["base"]
    assert base["embeddings"] == 3_198_976 and base["layer"] == 7_087_872 and base["pooler"] == 590_592
    assert base["backbone"] == base["embeddings"] + base["layer"] + base["pooler"] == 10_877_440
    assert base["with_heads"] == 11_492_234
    assert counts["base_unshared_encoder"] == 12 * base["layer"]
    assert counts["tiny"]["backbone"] == 4_175_152 and counts["tiny"]["with_heads"] == 4_295_186
    assert counts["tiny_google"]["with_heads"] == 4_142_594
    print(f"2. cross-layer sharing (base, 12 layers): encoder {base['layer']:,} shared vs "
          f"{counts['base_unshared_encoder']:,} unshared; backbone {base['backbone']:,}, "
          f"with MLM+SOP heads {base['with_heads']:,}")
    print(f"   tiny: backbone {counts['tiny']['backbone']:,}, with heads {counts['tiny']['with_heads']:,}; "
          f"google-style tiny with heads {counts['tiny_google']['with_heads']:,}")


def check_sentence_order_head() -> None:
    """Change 3: the SOP head is a 2-way classifier on the pooled output."""
    config = load("tiny")
    model = built(modeling.AlbertPretrainingModel, config)
    assert tuple(model.sop.output_weights.shape) == (2, config.hidden_size)
    ids = np.array([[2, 5, 7, 3, 9, 11, 3]], np.int32)
    out = model({"input_ids": ids, "segment_ids": np.array([[0, 0, 0, 0, 1, 1, 1]], np.int32),
                 "masked_lm_positions": np.array([[1, 5]], np.int32)})
    assert tuple(out["sop_logits"].shape) == (1, 2)
    assert tuple(out["mlm_logits"].shape) == (1, 2, config.vocab_size)
    import pretraining_instances

    stats = pretraining_instances.check_sop_semantics()  # asserts layout, contiguity, label meaning, balance
    assert 0.4 < stats["swapped_fraction"] < 0.6, stats
    print("3. sentence-order prediction: 2-way head on the pooled output; the data has "
          f"[CLS] A [SEP] B [SEP] from one document, label 0 = original order, 1 = swapped "
          f"({stats['swapped_fraction']:.1%} of {int(stats['instances'])} instances swapped)")


def main() -> None:
    check_factorized_embeddings()
    check_parameter_sharing(parameter_counts())
    check_sentence_order_head()
    print("all ALBERT changes checked")


if __name__ == "__main__":
    main()
