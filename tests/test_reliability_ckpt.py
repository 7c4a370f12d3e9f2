"""Checkpoint reliability: the best checkpoint survives a moved output folder and a kill at any point of its
replacement; a state file naming another folder's checkpoint is refused by every loader; a truncated checkpoint
file is named with its size; a dev set that is the test file selects nothing."""

from __future__ import annotations

import os
import re
import shutil
import types

import keras
import pytest
import tensorflow as tf

import checkpoints
import convert_albert_tf_checkpoint_to_pytorch as convert
import export_model
import export_saved_model
import finetuning
import modeling
import training
from test_modeling import small_config


def save_steps(out, steps: list[int], values: dict[int, float] | None = None):
    """Checkpoints of a one-variable ``model`` (as the fine-tuning loop writes them: ``model/...``) at ``steps``."""
    model = tf.Module()
    model.v = tf.Variable(0.0)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(out), max_to_keep=10)
    paths = {}
    for step in steps:
        model.v.assign((values or {}).get(step, float(step)))
        paths[step] = manager.save(checkpoint_number=step)
    return model, paths


def select(out, paths: dict[int, str], scores: dict[int, float]) -> finetuning.BestCheckpoint:
    best = finetuning.BestCheckpoint(str(out), None, chief=True)
    for step in sorted(scores):
        best.evaluate = lambda step=step: {"accuracy": scores[step], "loss": 1.0}
        best(paths[step], step)
    return best


# ---------------------------------------------------------------------------------------------------------------------
# 1. best_checkpoint.txt after the output folder moves
# ---------------------------------------------------------------------------------------------------------------------

def test_the_best_checkpoint_survives_moving_the_output_folder(tmp_path):
    model, paths = save_steps(tmp_path / "out", [1, 2])
    select(tmp_path / "out", paths, {1: 0.5625, 2: 0.5})  # the best is not the last
    shutil.move(tmp_path / "out", tmp_path / "out2")
    model.v.assign(-1.0)
    step = finetuning.use_best_checkpoint(model, 2, str(tmp_path / "out2"), use_best=True, warn_untrained=False)
    assert step == 1 and float(model.v.numpy()) == 1.0
    assert "checkpoint = best/ckpt-1\n" in (tmp_path / "out2" / "best_checkpoint.txt").read_text()


def test_an_absolute_record_is_read_while_it_exists_and_refused_once_moved(tmp_path, capsys):
    """best_checkpoint.txt of earlier versions holds an absolute path: still read; once the folder has moved, an
    error naming the recorded path and the output folder, not a silent fallback to the last checkpoint."""
    out = tmp_path / "out"
    model, paths = save_steps(out, [1, 2])
    select(out, paths, {1: 0.9, 2: 0.5})
    for record in (out / "best" / "best_checkpoint.txt", out / "best_checkpoint.txt"):
        record.write_text(re.sub(r"checkpoint = .*", f"checkpoint = {out}/best/ckpt-1", record.read_text()))
    assert finetuning.read_best(str(out))["checkpoint"] == str(out / "best" / "ckpt-1")
    shutil.move(out, tmp_path / "out2")
    with pytest.raises(FileNotFoundError, match=rf"best_checkpoint.txt records the best checkpoint "
                                                rf"{out}/best/ckpt-1, which output folder {tmp_path}/out2 does not "
                                                rf"hold .*--use_best_checkpoint=false"):
        finetuning.use_best_checkpoint(model, 2, str(tmp_path / "out2"), use_best=True, warn_untrained=False)
    # deleting best/ is no way to get the last checkpoint silently either
    shutil.rmtree(tmp_path / "out2" / "best")
    with pytest.raises(FileNotFoundError, match=r"records the best checkpoint"):
        finetuning.read_best(str(tmp_path / "out2"))
    assert finetuning.use_best_checkpoint(model, 2, str(tmp_path / "out2"), use_best=False,
                                          warn_untrained=False) == 2


# ---------------------------------------------------------------------------------------------------------------------
# 12. a kill at any point of replacing the best
# ---------------------------------------------------------------------------------------------------------------------

def test_a_kill_at_any_point_of_the_swap_keeps_the_newest_complete_best(tmp_path, monkeypatch):
    """Step 2 (dev 0.9) replaces step 1 (0.5); the run is killed at each file operation of the swap in turn.
    After the restart the best loads completely, best/ holds only its files, and step 2 is the best either at
    once (committed) or after the resumed run evaluates it again (not committed: no dev_history row)."""
    real = {name: getattr(tf.io.gfile, name) for name in ("copy", "rename", "remove", "rmtree")}
    kill_at, kills = 0, 0
    while True:
        out = tmp_path / f"kill_{kill_at}"
        model, paths = save_steps(out, [1, 2])
        best = select(out, paths, {1: 0.5})
        done = []

        def op(name):
            def run(*args, **kwargs):
                if len(done) == kill_at:
                    raise KeyboardInterrupt(f"killed before {name}{args}")
                done.append(name)
                return real[name](*args, **kwargs)
            return run

        for name in real:
            monkeypatch.setattr(tf.io.gfile, name, op(name))
        best.evaluate = lambda: {"accuracy": 0.9, "loss": 1.0}
        try:
            best(paths[2], 2)
            killed = False
        except KeyboardInterrupt:
            killed = True
        for name, fn in real.items():
            monkeypatch.setattr(tf.io.gfile, name, fn)
        if not killed:
            break
        kills += 1

        resumed = finetuning.BestCheckpoint(str(out), lambda: {"accuracy": 0.9, "loss": 1.0}, chief=True)
        record = finetuning.read_best(str(out))
        step = int(record["step"])
        assert step == 2 or 2 not in resumed.evaluated_steps(), (kill_at, done)
        name = f"ckpt-{step}"
        assert sorted(os.listdir(out / "best")) == ["best_checkpoint.txt", "checkpoint",
                                                    f"{name}.data-00000-of-00001", f"{name}.index"], (kill_at, done)
        assert checkpoints.resolve_checkpoint_path(str(out / "best")) == str(out / "best" / name)
        tf.train.Checkpoint(model=model).restore(record["checkpoint"]).assert_consumed()
        assert float(model.v.numpy()) == step

        resumed.evaluate_pending(paths[2], 2)  # what a resumed run does with the checkpoint it resumed from
        record = finetuning.read_best(str(out))
        assert record["step"] == "2" and float(record["accuracy"]) == 0.9, (kill_at, done)
        tf.train.Checkpoint(model=model).restore(record["checkpoint"]).assert_consumed()
        assert float(model.v.numpy()) == 2.0
        kill_at += 1
    assert kills >= 5  # two files copied, the commit, the state file, the copy in output_dir, the old files


def test_a_folder_left_by_the_earlier_rename_scheme_is_put_back(tmp_path):
    """A run of an earlier version killed between best/ -> best.old/ and best.tmp/ -> best/."""
    model, paths = save_steps(tmp_path, [1, 2])
    select(tmp_path, paths, {1: 0.5})
    os.rename(tmp_path / "best", tmp_path / "best.old")
    (tmp_path / "best.tmp").mkdir()
    resumed = finetuning.BestCheckpoint(str(tmp_path), None, chief=True)
    assert resumed.best == 0.5 and not (tmp_path / "best.tmp").exists()
    assert finetuning.read_best(str(tmp_path))["step"] == "1"


# ---------------------------------------------------------------------------------------------------------------------
# 4. a state file naming a checkpoint in another folder
# ---------------------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def classifier(tmp_path_factory):
    """A small classifier saved by the training loop's CheckpointManager, and its config file."""
    d = tmp_path_factory.mktemp("clf")
    config = small_config(num_hidden_groups=1, max_position_embeddings=32)
    model = modeling.AlbertClassifier(config, 2)
    model.build()
    tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(d / "run"), 1).save(checkpoint_number=7)
    config.to_json_file(str(d / "config.json"))
    return config, d


def test_a_state_file_naming_another_folders_checkpoint_is_refused(classifier, tmp_path):
    """DIR/checkpoint copied from (or written by) another run names its checkpoint: convert, export and
    --init_checkpoint=DIR must not load it; the prefix itself still loads."""
    config, d = classifier
    other = d / "run" / "ckpt-7"
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "checkpoint").write_text(f'model_checkpoint_path: "{other}"\n')
    message = rf"{mine}/checkpoint names {other}, outside {mine} .*pass the checkpoint prefix explicitly"
    model = modeling.AlbertClassifier(config, 2)
    model.build()
    config_file = str(d / "config.json")
    loaders = {
        "resolve": lambda: checkpoints.resolve_checkpoint_path(str(mine)),
        "--init_checkpoint": lambda: finetuning.init_from_checkpoint(str(mine))(model),
        "model_config": lambda: finetuning.model_config(config_file, model_family=None, max_seq_length=16,
                                                        init_checkpoint=str(mine), output_dir=str(tmp_path / "o")),
        "export_model": lambda: export_model.main([f"--bert_config_file={config_file}", f"--init_checkpoint={mine}",
                                                   f"--export_dir={tmp_path / 'e1'}"]),
        "export_saved_model": lambda: export_saved_model.main([f"--bert_config_file={config_file}",
                                                               f"--init_checkpoint={mine}", "--num_labels=2",
                                                               f"--export_dir={tmp_path / 'e2'}"]),
        "convert": lambda: convert.main([f"--tf_checkpoint_path={mine}", f"--albert_config_file={config_file}",
                                         f"--pytorch_dump_path={tmp_path / 'hf'}"]),
    }
    for name, load in loaders.items():
        with pytest.raises(checkpoints.CheckpointError, match=message):
            load()
    assert not any((tmp_path / p).exists() for p in ("e1", "e2", "hf"))
    assert checkpoints.load_checkpoint(model, str(other), verbose=False).path == str(other)
    # with checkpoints of its own, the message names this folder's newest
    shutil.copy(f"{other}.index", mine / "ckpt-3.index")
    shutil.copy(f"{other}.data-00000-of-00001", mine / "ckpt-3.data-00000-of-00001")
    with pytest.raises(checkpoints.CheckpointError, match=rf"this directory's own newest is {mine}/ckpt-3"):
        checkpoints.resolve_checkpoint_path(str(mine))
    # a relative entry is this folder's own
    (mine / "checkpoint").write_text('model_checkpoint_path: "ckpt-3"\n')
    assert checkpoints.resolve_checkpoint_path(str(mine)) == str(mine / "ckpt-3")


# ---------------------------------------------------------------------------------------------------------------------
# 13. a truncated checkpoint
# ---------------------------------------------------------------------------------------------------------------------

def truncate(path) -> int:
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 2])
    return len(data) // 2


@pytest.mark.parametrize("part", ["data-00000-of-00001", "index"])
def test_a_truncated_checkpoint_names_the_file_for_export(classifier, tmp_path, part):
    _, d = classifier
    run = tmp_path / "run"
    shutil.copytree(d / "run", run)
    size = truncate(run / f"ckpt-7.{part}")
    with pytest.raises(checkpoints.CheckpointError,
                       match=rf"^{run}/ckpt-7.{part}: truncated or corrupt checkpoint data \({size} bytes\); "
                             rf"re-copy it$"):
        export_model.main([f"--bert_config_file={d / 'config.json'}", f"--init_checkpoint={run}",
                           f"--export_dir={tmp_path / 'export'}"])


def tiny_trainer(out) -> training.Trainer:
    task = training.Task(build_model=lambda: keras.Sequential([keras.Input([3]), keras.layers.Dense(2)]),
                         sums=lambda f, o: {}, counts=lambda f: {}, loss_terms=())
    return training.Trainer(tf.distribute.get_strategy(), task, lambda: keras.optimizers.Adam(1e-3),
                            training.TrainConfig(output_dir=str(out), num_train_steps=1, train_batch_size=1))


def test_a_truncated_checkpoint_names_the_file_when_resuming_and_for_the_best(tmp_path):
    """run_classifier.py's two loads: the resume (or eval-only load) from output_dir, and the best checkpoint."""
    cut, out = tmp_path / "cut", tmp_path / "out"
    path = tiny_trainer(cut).save()
    shutil.copytree(cut, out)
    data = f"{path}.data-00000-of-00001"
    size = truncate(data)
    message = rf"^{data}: truncated or corrupt checkpoint data \({size} bytes\); re-copy it$"
    for model_only in (False, True):
        with pytest.raises(checkpoints.CheckpointError, match=message):
            tiny_trainer(cut).restore_or_initialize(model_only=model_only)

    trainer = tiny_trainer(out)
    select(out, {0: str(out / "ckpt-0")}, {0: 0.5})
    best = out / "best" / "ckpt-0.data-00000-of-00001"
    size = truncate(best)
    with pytest.raises(checkpoints.CheckpointError,
                       match=rf"^{best}: truncated or corrupt checkpoint data \({size} bytes\); re-copy it$"):
        finetuning.use_best_checkpoint(trainer.model, 0, str(out), use_best=True, warn_untrained=False)


# ---------------------------------------------------------------------------------------------------------------------
# 8. a dev set that is the test file
# ---------------------------------------------------------------------------------------------------------------------

class _Trainer:
    """What train_and_pick_best uses of a trainer, around a one-variable model and a scripted loop."""

    def __init__(self, model, paths: dict[int, str]):
        self.model, self.paths, self.step, self.after_save, self.chief = model, paths, 0, None, True
        self.manager = types.SimpleNamespace(latest_checkpoint=None)
        self.strategy = tf.distribute.get_strategy()

    def train(self, dataset_fn, files):
        for step, path in self.paths.items():
            self.step = step
            self.model.v.assign(float(step))
            if self.after_save is not None:
                self.after_save(path, step)


def test_a_dev_set_that_is_the_test_file_selects_no_checkpoint(tmp_path, capsys):
    """msra_ner without a dev file: selecting the best of N checkpoints on test would report a best-of-N test
    score; the last checkpoint is used, and the run says so."""
    model, paths = save_steps(tmp_path, [1, 2], {1: 1.0, 2: 2.0})
    flags = types.SimpleNamespace(do_train=True, do_eval=True, use_best_checkpoint=True, output_dir=str(tmp_path),
                                  init_checkpoint=None, seed=0)
    scores = iter([0.9, 0.5])  # step 1 would be "best" on test
    args = (flags, _Trainer(model, paths), None, {}, lambda: {"f1": next(scores), "loss": 1.0}, "f1")

    step = finetuning.train_and_pick_best(*args, dev_is_test=True)
    assert step == 2 and float(model.v.numpy()) == 2.0
    assert not (tmp_path / "best").exists() and not (tmp_path / "dev_history.tsv").exists()
    assert "no best-checkpoint selection" in capsys.readouterr().out
    step = finetuning.train_and_pick_best(*args)  # a real dev set: selected on it
    assert step == 1 and float(model.v.numpy()) == 1.0
