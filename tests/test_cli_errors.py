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


# --------------------------------------------------------------------------- paths

CORPUS = "今天天气很好。\n我们去公园散步吧！\n明天下雨。\n\n第二篇文章。\n第二句话在这里。\n"


def test_a_url_that_lost_a_slash_is_refused_where_flags_are_parsed():
    """os.path.normpath("gs://b/x") is "gs:/b/x", which every file API takes for a local path: cli.parse_flags
    refuses it in any path flag (names ending in _file, _dir, _path, _checkpoint, ...; lists too) before the CLI
    runs, and leaves Windows drives, real URLs and flags that are not paths alone."""
    from absl import flags

    def define(fv):
        flags.DEFINE_string("output_file", None, "", flag_values=fv)
        flags.DEFINE_list("input_dir", None, "", flag_values=fv)
        flags.DEFINE_string("init_checkpoint", None, "", flag_values=fv)
        flags.DEFINE_string("question", None, "", flag_values=fv)

    for argv, flag, fix in [(["--output_file=gs:/bucket/x"], "--output_file=gs:/bucket/x", "gs://bucket/x"),
                            (["--input_dir=a,hdfs:/n/d"], "--input_dir=a,hdfs:/n/d", "a,hdfs://n/d"),
                            (["--init_checkpoint=s3:/b/model.ckpt"], "--init_checkpoint=s3:/b/model.ckpt",
                             "s3://b/model.ckpt")]:
        with pytest.raises(SystemExit) as exit_info:
            cli.parse_flags(argv, define, "")
        assert exit_info.value.code == 2
    assert cli.one_slash_url_fix("gs:/bucket/x") == "gs://bucket/x"
    for fine in ("gs://bucket/x", "C:/data/x", "./gs:/x", "data/x.tfrecord", "ram://x"):
        assert cli.one_slash_url_fix(fine) is None, fine
    args = cli.parse_flags(["--output_file=C:/out", "--question=http:/not-a-path"], define, "")
    assert args.output_file == "C:/out"


@pytest.mark.slow
@pytest.mark.parametrize("script, flag", [("create_pretraining_data.py", "--output_file"),
                                          ("run_ner.py", "--output_dir"), ("export_model.py", "--export_dir")])
def test_every_cli_refuses_a_url_with_one_slash(tmp_path, script, flag):
    """the same refusal through each flag parser: cli.parse_flags (create_pretraining_data.py, export_model.py) and
    absl's app.run (run_ner.py, via cli.clean_errors); nothing is written to ./gs:/..."""
    (tmp_path / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    common = {"create_pretraining_data.py": [f"--input_file={tmp_path / 'corpus.txt'}", VOCAB, "--dupe_factor=1"],
              "run_ner.py": ["--task_name=peoples_daily_ner", f"--data_dir={tmp_path}", CONFIG, VOCAB,
                             "--do_train=true"],
              "export_model.py": [CONFIG, f"--init_checkpoint={SHIPPED}"]}[script]
    done = subprocess.run([sys.executable, str(REPO / script), *common, f"{flag}=gs:/bucket/x"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stdout[-2000:] + done.stderr[-2000:]
    assert (f"{script}: error: {flag}=gs:/bucket/x: looks like a URL with one slash; did you mean gs://bucket/x?"
            in done.stderr), done.stderr[-2000:]
    assert not (tmp_path / "gs:").exists()


def test_a_file_where_a_folder_should_be_is_named_with_the_fix(tmp_path):
    """an output path under a file ([Errno 17] File exists, [Errno 20] Not a directory, TensorFlow's "is not a
    directory"): the message names the file in the way and the fix."""
    import errno

    blocker = tmp_path / "out"
    blocker.write_text("a file")
    fix = f"-- {blocker} is a file, not a folder: move that file away or choose another output path"
    cases = [NotADirectoryError(errno.ENOTDIR, "Not a directory", str(blocker / "a" / "b")),
             FileExistsError(errno.EEXIST, "File exists", str(blocker)),
             RuntimeError(f"{blocker} is not a directory"), RuntimeError(f"{blocker}/x.txt; Not a directory")]
    for err in cases:
        assert cli._message(err).endswith(fix), cli._message(err)
    # an existing folder is not "a file in the way"
    assert "is a file" not in cli._message(FileExistsError(errno.EEXIST, "File exists", str(tmp_path)))


def test_an_output_under_a_file_is_one_clean_line(tmp_path, capsys):
    """through a CLI: create_pretraining_data.py --output_file=<a file>/sub/out.tfrecord."""
    import create_pretraining_data

    (tmp_path / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    (tmp_path / "out").write_text("a file")
    with pytest.raises(SystemExit) as exit_info:
        cli.clean_errors(create_pretraining_data.main)(
            [f"--input_file={tmp_path / 'corpus.txt'}", VOCAB, f"--output_file={tmp_path / 'out' / 'sub' / 'o.rec'}",
             "--dupe_factor=1"])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert f"{tmp_path / 'out'} is a file, not a folder: move that file away or choose another output path" in err
    assert "Traceback" not in err
