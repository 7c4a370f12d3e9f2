"""every CLI reports bad input as one clean line (``PROG: error: ...``, exit status 1), not under a traceback;
ALBERT_ZH_TRACEBACK=1 brings the traceback back. cli.clean_errors keeps the traceback of what is a bug."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import cli

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "pretrained" / "albert_demo_zh"
CONFIG = f"--bert_config_file={SHIPPED / 'albert_config.json'}"
VOCAB = f"--vocab_file={SHIPPED / 'vocab.txt'}"


def run(args: list[str], tmp_path, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable] + args, cwd=REPO, capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


CASES = {
    "run_classifier": (["run_classifier.py", "--task_name=lcqmc_pair", "--data_dir={tmp}/none", CONFIG, VOCAB,
                        "--output_dir={tmp}/out", "--do_train=true"], "no train file in {tmp}/none"),
    "run_pretraining": (["run_pretraining.py", CONFIG, "--input_file={tmp}/none/*.tfrecord", "--output_dir={tmp}/o",
                         "--do_train=true"], "no input file matches '{tmp}/none/\\*.tfrecord'"),
    "export_model": (["export_model.py", CONFIG, "--init_checkpoint={tmp}/none", "--export_dir={tmp}/e"],
                     "{tmp}/none: no checkpoint there"),
    "create_pretraining_data": (["create_pretraining_data.py", "--input_file={tmp}/none.txt",
                                 "--output_file={tmp}/o.tfrecord", VOCAB], "no file matches"),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_is_one_clean_line(name, tmp_path):
    args, expected = CASES[name]
    args = [a.replace("{tmp}", str(tmp_path)) for a in args]
    done = run(args, tmp_path)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    import re
    assert re.search(rf"{name}\.py: error: .*{expected.replace('{tmp}', re.escape(str(tmp_path)))}",
                     done.stderr), done.stderr[-2000:]


@pytest.mark.slow
def test_the_traceback_comes_back_on_request(tmp_path):
    args, _ = CASES["export_model"]
    done = run([a.replace("{tmp}", str(tmp_path)) for a in args], tmp_path, **{cli.TRACEBACK_ENV: "1"})
    assert done.returncode == 1 and "Traceback (most recent call last)" in done.stderr


def test_clean_errors_keeps_bugs_loud(capsys):
    def bad_input():
        raise FileNotFoundError("data/x.tsv: no such file; pass --data_dir")

    def bug():
        raise TypeError("unsupported operand")

    with pytest.raises(SystemExit) as exit_info:
        cli.clean_errors(bad_input)()
    assert exit_info.value.code == 1
    assert "error: data/x.tsv: no such file; pass --data_dir" in capsys.readouterr().err
    with pytest.raises(TypeError):
        cli.clean_errors(bug)()


def test_tensorflow_errors_lose_the_graph_stack():
    message = ("Graph execution error:\n\nDetected at node X defined at (most recent call last):\n"
               "  File \"a.py\", line 1, in <module>\n\n    code\n\nrecord 3 of data.tfrecord is corrupted\n"
               "\t [[{{node IteratorGetNext}}]]")
    assert cli._message(RuntimeError(message)) == "record 3 of data.tfrecord is corrupted"


def test_full_disks_and_unwritable_folders_get_the_fix():
    import errno

    full = OSError(errno.ENOSPC, "No space left on device", "/data/out.tfrecord")
    assert cli._message(full).endswith("the disk is full: free space there or write the output elsewhere")
    assert "/data/out.tfrecord" in cli._message(full)
    denied = PermissionError(errno.EACCES, "Permission denied", "/readonly/out")
    assert "/readonly/out" in cli._message(denied) and "cannot be written" in cli._message(denied)


def test_the_shared_model_flags_name_the_model_families():
    import modeling

    assert cli.MODEL_FAMILIES == tuple(modeling.MODEL_FAMILIES)
