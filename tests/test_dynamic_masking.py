"""Dynamic masking (14.2): create_pretraining_data.py --masking=dynamic writes each instance once, unmasked, with
its words marked; input_pipeline masks it with masking.mask_batch, the static writer's rules. Checked here: the
records, the mask statistics against static masking of the same corpus (within sampling error), whole words and
specials, determinism for a seed and a stream position, fresh masks per epoch, and a resumed pipeline."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

import create_pretraining_data as cpd
import input_pipeline
import masking
import tokenization
from data import build_vocab

SEQ, PRED = 64, 16


@pytest.fixture(scope="module")
def corpus(reference_dir, tmp_path_factory):
    """The reference news corpus (one sentence a line would be ideal; its lines are short paragraphs), a vocab built
    from it, and both kinds of records made from it with whole-word 3-gram masking of 20%."""
    work = tmp_path_factory.mktemp("dynamic")
    text = (reference_dir / "data" / "news_zh_1.txt").read_text(encoding="utf-8")
    lines = [line.strip() for line in text.splitlines()]
    corpus_file = work / "corpus.txt"
    corpus_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    vocab_file = work / "vocab.txt"
    vocab_file.write_text("".join(t + "\n" for t in build_vocab.build_vocab([x for x in lines if x])),
                          encoding="utf-8")
    common = [f"--input_file={corpus_file}", f"--vocab_file={vocab_file}", f"--max_seq_length={SEQ}",
              f"--max_predictions_per_seq={PRED}", "--masked_lm_prob=0.2", "--do_whole_word_mask=true", "--ngram=3",
              "--log_examples=0"]
    assert cpd.main(common + [f"--output_file={work / 'static.tfrecord'}", "--dupe_factor=4"]) == 0
    assert cpd.main(common + [f"--output_file={work / 'dynamic.tfrecord'}", "--dupe_factor=1",
                              "--masking=dynamic"]) == 0
    special = masking.special_ids_from_vocab(tokenization.load_vocab(str(vocab_file)))
    cfg = masking.InstanceConfig(SEQ, PRED, 0.2, do_whole_word_mask=True, ngram=3)
    return work, special, cfg


def read(path, spec) -> dict[str, np.ndarray]:
    batch = next(iter(tf.data.TFRecordDataset(str(path)).batch(100_000).map(
        lambda r: tf.io.parse_example(r, spec))))
    return {k: v.numpy() for k, v in batch.items()}


def masking_statistics(original: np.ndarray, masked: np.ndarray, weights: np.ndarray, positions: np.ndarray,
                       mask_id: int, lengths: np.ndarray) -> dict[str, float]:
    chosen = weights > 0
    rows = np.repeat(np.arange(len(positions)), chosen.sum(1))
    cols = positions[chosen]
    now, before = masked[rows, cols], original[rows, cols]
    runs = []  # lengths of runs of consecutive masked positions: the n-gram spans as tokens
    for row in range(len(positions)):
        marked = np.zeros(original.shape[1], bool)
        marked[positions[row][weights[row] > 0]] = True
        edges = np.diff(np.concatenate([[0], marked.astype(int), [0]]))
        runs += (np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).tolist()
    runs = np.asarray(runs)
    return {"predicted_share": chosen.sum() / lengths.sum(), "mask": np.mean(now == mask_id),
            "kept": np.mean(now == before), "random": np.mean((now != mask_id) & (now != before)),
            "runs_1": np.mean(runs == 1), "runs_2": np.mean(runs == 2), "runs_3plus": np.mean(runs >= 3)}


def test_dynamic_records_are_unmasked_with_their_words_marked(corpus):
    work, special, _ = corpus
    assert input_pipeline.check_pretraining_data([str(work / "dynamic.tfrecord")], SEQ, PRED, 10**6) == "dynamic"
    records = read(work / "dynamic.tfrecord", input_pipeline.unmasked_pretraining_features(SEQ))
    roles, ids, mask = records["word_starts"], records["input_ids"], records["input_mask"]
    assert not (ids == special.mask_id).any()  # unmasked
    n = mask.sum(1)
    assert (roles[:, 0] == masking.SPECIAL_WORD).all()
    assert (roles[np.arange(len(n)), n - 1] == masking.SPECIAL_WORD).all()
    assert ((roles == masking.SPECIAL_WORD) == ((ids == special.cls_id) | (ids == special.sep_id))).all()
    assert (roles[mask == 0] == 0).all() and ((roles == masking.WORD_CONTINUES) & (mask == 1)).any()  # words > 1


def test_dynamic_masks_have_the_static_statistics(corpus):
    """Same corpus, same rules: the shares of predicted tokens, [MASK]/kept/random and n-gram span lengths of the
    dynamic masks equal the static records' within sampling error; masked words are whole; specials never."""
    work, special, cfg = corpus
    static = read(work / "static.tfrecord", input_pipeline.pretraining_features(SEQ, PRED))
    unmasked = read(work / "dynamic.tfrecord", input_pipeline.unmasked_pretraining_features(SEQ))
    # Static labels are the original ids at the masked positions: rebuild the originals to compare against.
    original = static["input_ids"].copy()
    rows = np.repeat(np.arange(len(original)), (static["masked_lm_weights"] > 0).sum(1))
    original[rows, static["masked_lm_positions"][static["masked_lm_weights"] > 0]] = \
        static["masked_lm_ids"][static["masked_lm_weights"] > 0]
    want = masking_statistics(original, static["input_ids"], static["masked_lm_weights"],
                              static["masked_lm_positions"], special.mask_id, static["input_mask"].sum(1))
    epochs = 4  # as many masks per instance as the static dupe factor
    count = len(unmasked["input_ids"])
    outputs = [masking.mask_batch(unmasked["input_ids"], unmasked["input_mask"], unmasked["word_starts"],
                                  np.arange(count) + epoch * count, cfg, special, seed=7) for epoch in range(epochs)]
    ids, positions, labels, weights = (np.concatenate(parts) for parts in zip(*outputs))
    tiled = {k: np.tile(v, (epochs, 1)) for k, v in unmasked.items()}
    got = masking_statistics(tiled["input_ids"], ids, weights, positions, special.mask_id, tiled["input_mask"].sum(1))
    predicted = weights.sum()
    for key, value in want.items():
        spread = 4 * np.sqrt(value * (1 - value) / predicted) + 0.01  # ~4 sigma, plus the corpora's small differences
        assert abs(got[key] - value) <= spread, (key, got[key], value)
    chosen = weights > 0
    assert (labels[chosen] == tiled["input_ids"][np.repeat(np.arange(len(ids)), chosen.sum(1)),
                                                 positions[chosen]]).all()  # labels = the input ids
    roles = tiled["word_starts"]
    for row in range(0, len(ids), 7):
        marked = np.zeros(SEQ, bool)
        marked[positions[row][chosen[row]]] = True
        assert not (marked & (roles[row] == masking.SPECIAL_WORD)).any()
        word = np.cumsum(roles[row] != masking.WORD_CONTINUES)  # word index of each token
        for w in np.unique(word[marked]):
            assert marked[(word == w) & (unmasked["input_mask"][row % count] == 1)].all(), (row, w)  # whole words
        budget = min(PRED, max(1, round(0.2 * tiled["input_mask"][row].sum())))
        assert chosen[row].sum() <= budget


def test_masks_follow_the_seed_and_the_stream_position(corpus):
    work, special, cfg = corpus
    unmasked = read(work / "dynamic.tfrecord", input_pipeline.unmasked_pretraining_features(SEQ))
    batch = [unmasked[k][:8] for k in ("input_ids", "input_mask", "word_starts")]
    first = masking.mask_batch(*batch, np.arange(8), cfg, special, seed=3)
    again = masking.mask_batch(*batch, np.arange(8), cfg, special, seed=3)
    next_epoch = masking.mask_batch(*batch, np.arange(8) + 1000, cfg, special, seed=3)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[1], next_epoch[1])  # the same instances, fresh masks


def test_a_resumed_pipeline_sees_the_same_masked_batches(corpus):
    work, special, cfg = corpus
    masker = input_pipeline.dynamic_masker(cfg, special, seed=11)
    spec = input_pipeline.unmasked_pretraining_features(SEQ)

    def batches(skip: int, count: int):
        ds = input_pipeline.make_dataset([str(work / "dynamic.tfrecord")], spec, 8, is_training=True, seed=5,
                                         skip_batches=skip, masker=masker)
        return [{k: v.numpy() for k, v in b.items()} for b in ds.take(count)]

    straight = batches(0, 6)
    resumed = batches(4, 2)
    for a, b in zip(straight[4:], resumed):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    assert set(straight[0]) == set(input_pipeline.pretraining_features(SEQ, PRED))  # the static features


@pytest.mark.slow
def test_run_pretraining_masks_dynamic_records(corpus, tmp_path):
    """run_pretraining.py recognises unmasked records by their features, masks them with --vocab_file's ids, trains
    (the loss falls) and evaluates; without --vocab_file it says what to pass."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    work, _, _ = corpus
    repo = Path(__file__).resolve().parents[1]
    vocab_size = len(tokenization.load_vocab(str(work / "vocab.txt")))
    config = {"vocab_size": vocab_size, "hidden_size": 64, "embedding_size": 32, "num_hidden_layers": 2,
              "num_attention_heads": 4, "intermediate_size": 128, "max_position_embeddings": SEQ,
              "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0, "num_hidden_groups": 1}
    (tmp_path / "config.json").write_text(json.dumps(config))
    command = [sys.executable, str(repo / "run_pretraining.py"), f"--bert_config_file={tmp_path / 'config.json'}",
               f"--input_file={work / 'dynamic.tfrecord'}", f"--output_dir={tmp_path / 'out'}", "--do_train=true",
               "--do_eval=true", f"--max_seq_length={SEQ}", f"--max_predictions_per_seq={PRED}",
               "--train_batch_size=16",
               "--num_train_steps=60", "--num_warmup_steps=6", "--optimizer=adamw", "--learning_rate=3e-3",
               "--iterations_per_loop=20", "--save_checkpoints_steps=60", "--max_eval_steps=5",
               "--masked_lm_prob=0.2", "--ngram=3"]
    done = subprocess.run(command, cwd=repo, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and "pass --vocab_file, the vocab they were made with" in done.stderr
    done = subprocess.run(command + [f"--vocab_file={work / 'vocab.txt'}"], cwd=repo, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "dynamic masking: 20% of the tokens" in done.stdout
    losses = [float(line.split("  loss ")[1].split()[0]) for line in done.stdout.splitlines() if "  loss " in line]
    assert len(losses) == 3 and losses[-1] < losses[0] - 0.25, losses
    results = (tmp_path / "out" / "eval_results.txt").read_text()
    assert "masked_lm_accuracy" in results


def test_dynamic_records_carry_their_vocab_and_masking_settings(corpus):
    """Beside each dynamic output, a hidden settings file that globs of the outputs do not match: the vocab's sha256
    and the masking flags run_pretraining.py needs; static outputs have none."""
    import json

    work, _, _ = corpus
    record = json.loads((work / ".dynamic.tfrecord.masking.json").read_text())
    assert record["vocab_sha256"] == masking.file_sha256(str(work / "vocab.txt"))
    assert (record["masked_lm_prob"], record["max_predictions_per_seq"], record["ngram"],
            record["favor_shorter_ngram"], record["do_whole_word_mask"]) == (0.2, PRED, 3, True, True)
    assert not (work / ".static.tfrecord.masking.json").exists()
    for pattern in (f"{work}/dynamic.tfrecord*", f"{work}/*", f"{work}/*.tfrecord"):
        assert not [p for p in input_pipeline.expand_files(pattern) if p.endswith(".json")], pattern
    assert input_pipeline.read_masking_records([str(work / "dynamic.tfrecord")]) == (record, [])
    static = str(work / "static.tfrecord")
    assert input_pipeline.read_masking_records([static]) == (None, [static])


def test_masking_flags_default_to_the_records_and_contradictions_are_refused():
    record = {"vocab_sha256": "a" * 64, "vocab_file": "vocab.txt", "masked_lm_prob": 0.25,
              "max_predictions_per_seq": 16, "ngram": 3, "favor_shorter_ngram": True}
    defaults = {"masked_lm_prob": 0.15, "max_predictions_per_seq": 20, "ngram": 1, "favor_shorter_ngram": True}
    values, lines = input_pipeline.masking_flags_from_record(record, defaults, set(), "a" * 64, "v.txt")
    assert values == {"masked_lm_prob": 0.25, "max_predictions_per_seq": 16, "ngram": 3, "favor_shorter_ngram": True}
    assert "--masked_lm_prob=0.25" in lines[0] and "--ngram=3" in lines[0]
    same = dict(defaults, ngram=3)  # passed and agreeing: kept
    assert input_pipeline.masking_flags_from_record(record, same, {"ngram"}, None, None)[0]["ngram"] == 3
    with pytest.raises(ValueError, match=r"--masked_lm_prob=0.15 but the records were made with --masked_lm_prob=0.25"):
        input_pipeline.masking_flags_from_record(record, defaults, {"masked_lm_prob"}, "a" * 64, "v.txt")
    with pytest.raises(ValueError, match=r"--vocab_file=other.txt \(sha256 bbbbbbbbbbbb...\) is not the vocab .*"
                                         r"\(vocab.txt, sha256 aaaaaaaaaaaa...\)"):
        input_pipeline.masking_flags_from_record(record, defaults, set(), "b" * 64, "other.txt")


def test_files_made_with_different_masking_settings_are_refused(tmp_path):
    import json

    for name, prob in (("a.tfrecord", 0.15), ("b.tfrecord", 0.25)):
        (tmp_path / name).write_bytes(b"")
        (tmp_path / f".{name}.masking.json").write_text(json.dumps({"vocab_sha256": "a", "masked_lm_prob": prob}))
    (tmp_path / "old.tfrecord").write_bytes(b"")
    files = [str(tmp_path / n) for n in ("a.tfrecord", "old.tfrecord")]
    assert input_pipeline.read_masking_records(files)[1] == [str(tmp_path / "old.tfrecord")]
    with pytest.raises(ValueError, match=r"a.tfrecord was made with masked_lm_prob=0.15 but .*b.tfrecord with "
                                         r"masked_lm_prob=0.25"):
        input_pipeline.read_masking_records([str(tmp_path / "a.tfrecord"), str(tmp_path / "b.tfrecord")])


def test_run_pretraining_takes_the_recorded_settings_and_refuses_another_vocab(corpus, tmp_path):
    """The records were made with 20% and 3-grams: run_pretraining.py uses them without the flags, refuses a vocab
    with another sha256 and a contradicting --ngram, each naming both values."""
    import json
    import subprocess
    import sys
    from pathlib import Path

    work, _, _ = corpus
    repo = Path(__file__).resolve().parents[1]
    vocab_size = len(tokenization.load_vocab(str(work / "vocab.txt")))
    config = {"vocab_size": vocab_size, "hidden_size": 16, "embedding_size": 8, "num_hidden_layers": 1,
              "num_attention_heads": 2, "intermediate_size": 16, "max_position_embeddings": SEQ}
    (tmp_path / "config.json").write_text(json.dumps(config))
    other_vocab = tmp_path / "other_vocab.txt"  # the same tokens in another order: another [MASK] id
    tokens = (work / "vocab.txt").read_text(encoding="utf-8").splitlines()
    other_vocab.write_text("\n".join(tokens[5:] + tokens[:5]) + "\n", encoding="utf-8")
    command = [sys.executable, str(repo / "run_pretraining.py"), f"--bert_config_file={tmp_path / 'config.json'}",
               f"--input_file={work / 'dynamic.tfrecord'}", f"--output_dir={tmp_path / 'out'}", "--do_eval=true",
               f"--max_seq_length={SEQ}", "--max_eval_steps=1", "--eval_batch_size=4"]

    def run(*extra):
        return subprocess.run(command + list(extra), cwd=repo, capture_output=True, text=True, timeout=300)

    done = run(f"--vocab_file={work / 'vocab.txt'}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "--masked_lm_prob=0.2 --max_predictions_per_seq=16 --ngram=3" in done.stdout
    assert "dynamic masking: 20% of the tokens (at most 16)" in done.stdout
    done = run(f"--vocab_file={other_vocab}")
    assert done.returncode == 1 and f"--vocab_file={other_vocab} (sha256" in done.stderr, done.stderr[-2000:]
    assert "is not the vocab the records were made with (vocab.txt, sha256" in done.stderr
    done = run(f"--vocab_file={work / 'vocab.txt'}", "--ngram=1")
    assert done.returncode == 1 and "--ngram=1 but the records were made with --ngram=3" in done.stderr


def test_the_docs_say_that_sop_pairs_are_fixed_at_creation(capsys):
    """Dynamic masking redraws the MLM masks only: --help and the README say so and how to get SOP variety, and the
    README compares dynamic and static records like with like."""
    from pathlib import Path

    with pytest.raises(SystemExit) as done:
        cpd.main(["--help"])
    assert done.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "The SOP pairs (A/B split, swap label) are fixed at creation in both modes: --dupe_factor > 1" in text
    readme = " ".join((Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8").split())
    assert "`--dupe_factor=1` is enough" not in readme
    assert "the SOP pairs (where a document is cut into A and B, and whether they are swapped) are drawn at " \
           "creation and fixed in both modes" in readme
    assert "at equal SOP variety (both `--dupe_factor=10`)" in readme
