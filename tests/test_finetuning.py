"""finetuning.BestCheckpoint: dev evaluation of what a killed run saved but never evaluated (a kill during the
replacement of the best: tests/test_reliability_ckpt.py); training.own_checkpoint_state: another run's checkpoints
are left alone."""

from __future__ import annotations

import os

import pytest
import tensorflow as tf

import finetuning


def save_steps(out: str, steps: list[int]):
    variable = tf.Variable(0.0)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=variable), out, max_to_keep=10)
    paths = {}
    for step in steps:
        variable.assign(float(step))
        paths[step] = manager.save(checkpoint_number=step)
    return variable, paths


def test_the_record_inside_best_wins_over_a_stale_copy(tmp_path):
    out = str(tmp_path)
    _, paths = save_steps(out, [1, 2])
    scores = iter([0.5, 0.9])
    best = finetuning.BestCheckpoint(out, lambda: {"accuracy": next(scores), "loss": 1.0}, chief=True)
    best(paths[1], 1)
    stale = (tmp_path / "best_checkpoint.txt").read_text()
    best(paths[2], 2)
    (tmp_path / "best_checkpoint.txt").write_text(stale)  # a kill before the copy in output_dir was updated
    assert finetuning.read_best(out)["step"] == "2"
    assert sorted(os.listdir(tmp_path / "best")) == ["best_checkpoint.txt", "checkpoint", "ckpt-2.data-00000-of-00001",
                                                     "ckpt-2.index"]


def test_a_checkpoint_saved_before_a_kill_is_evaluated_on_resume(tmp_path):
    out = str(tmp_path)
    _, paths = save_steps(out, [1, 2])
    evaluated = []

    def evaluate():
        evaluated.append(1)
        return {"accuracy": 0.7 if len(evaluated) == 1 else 0.8, "loss": 1.0}

    best = finetuning.BestCheckpoint(out, evaluate, chief=True)
    best(paths[1], 1)  # step 2 was saved, then the run was killed before its dev evaluation
    resumed = finetuning.BestCheckpoint(out, evaluate, chief=True)
    resumed.evaluate_pending(paths[2], 2)
    assert len(evaluated) == 2 and finetuning.read_best(out)["step"] == "2"
    resumed.evaluate_pending(paths[2], 2)  # already evaluated: nothing to do
    assert len(evaluated) == 2


def test_another_runs_checkpoints_are_neither_resumed_nor_deleted(tmp_path, capsys):
    """output_dir/checkpoint copied from another run (or left by a TF1 job) names absolute paths into that run:
    the loop must neither resume it nor let rotation delete its files."""
    import training

    other, mine = tmp_path / "other", tmp_path / "mine"
    _, paths = save_steps(str(other), [1, 2, 3])
    mine.mkdir()
    (mine / "checkpoint").write_text(f'model_checkpoint_path: "{paths[3]}"\n'
                                     + "".join(f'all_model_checkpoint_paths: "{paths[s]}"\n' for s in (1, 2, 3)))
    training.own_checkpoint_state(str(mine))
    assert "outside" in capsys.readouterr().out and not (mine / "checkpoint").exists()
    variable = tf.Variable(0.0)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=variable), str(mine), max_to_keep=1)
    assert manager.latest_checkpoint is None  # nothing of this run to resume
    for step in (1, 2):
        manager.save(checkpoint_number=step)
    assert sorted(p.name for p in other.iterdir() if p.suffix == ".index") == ["ckpt-1.index", "ckpt-2.index",
                                                                               "ckpt-3.index"]
    # with checkpoints of its own next to the foreign entries: those are what it resumes from
    (mine / "checkpoint").write_text(f'model_checkpoint_path: "{paths[3]}"\nall_model_checkpoint_paths: '
                                     f'"{paths[3]}"\nall_model_checkpoint_paths: "ckpt-2"\n')
    training.own_checkpoint_state(str(mine))
    assert tf.train.latest_checkpoint(str(mine)) == str(mine / "ckpt-2")


def tiny_trainer(out: str):
    import keras

    import training

    def build():
        return keras.Sequential([keras.Input([3]), keras.layers.Dense(2)])

    task = training.Task(build_model=build, sums=lambda f, o: {}, counts=lambda f: {}, loss_terms=())
    return training.Trainer(tf.distribute.get_strategy(), task, lambda: keras.optimizers.Adam(1e-3),
                            training.TrainConfig(output_dir=out, num_train_steps=1, train_batch_size=1))


def test_interrupted_saves_are_cleaned_and_a_full_disk_is_named(tmp_path, monkeypatch):
    """ckpt-N_temp/ folders that a kill or a full disk left are removed when a run starts (a foreign
    folder is not); a save that finds no space names the folder and the size a checkpoint needs."""
    import training

    stale = tmp_path / "ckpt-40_temp"
    stale.mkdir()
    (stale / "part-00000-of-00001.data-00000-of-00001").write_bytes(b"x" * 1000)
    (tmp_path / "mine_temp").mkdir()
    trainer = tiny_trainer(str(tmp_path))
    assert not stale.exists() and (tmp_path / "mine_temp").exists()
    first = trainer.save()

    def full_disk(*args, **kwargs):
        os.makedirs(tmp_path / "ckpt-0_temp", exist_ok=True)  # what a failed save leaves
        raise tf.errors.ResourceExhaustedError(None, None, "No space left on device")

    monkeypatch.setattr(trainer.manager, "save", full_disk)
    with pytest.raises(training.CheckpointSaveError,
                       match=rf"no space left to save the step-0 checkpoint in {tmp_path} \(a checkpoint takes "
                             rf"about 0 MB.*rerunning resumes from {first}"):
        trainer.save()
    assert not (tmp_path / "ckpt-0_temp").exists()


def test_a_relative_directory_holds_its_own_checkpoints(tmp_path, monkeypatch, capsys):
    """--output_dir / --init_checkpoint given relative to the working directory (output/run, output/run/best): the
    state file's relative entries are this directory's, neither foreign nor missing (TF's get_checkpoint_state joins
    them with the directory as given: joined once more, they looked like another run's)."""
    import checkpoints
    import training

    monkeypatch.chdir(tmp_path)
    os.makedirs("output/run")
    save_steps("output/run", [1, 2])
    state_before = (tmp_path / "output/run/checkpoint").read_text()
    assert 'model_checkpoint_path: "ckpt-2"' in state_before  # relative entries, as CheckpointManager writes them
    training.own_checkpoint_state("output/run")
    assert capsys.readouterr().out == "" and (tmp_path / "output/run/checkpoint").read_text() == state_before
    assert os.path.realpath(checkpoints.resolve_checkpoint_path("output/run")) == str(tmp_path / "output/run/ckpt-2")
