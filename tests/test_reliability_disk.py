"""A full disk while create_pretraining_data.py writes records and while export_model.py writes model.tflite or
model.onnx: one line naming the path, what was written (or was to be) and the fix, and no partial or temporary file
left behind. The disk fills by monkeypatching the write to raise ENOSPC partway."""

from __future__ import annotations

import builtins
import errno
import re
import types
from pathlib import Path

import numpy as np
import pytest

import cli
import create_pretraining_data as cpd
import work_units
from data import build_vocab
from test_create_pretraining_data import CORPUS_DOCUMENTS, base_args, write_corpus


class _FillingFile:
    """A file whose writes fail with ENOSPC once ``room`` bytes have been written."""

    def __init__(self, f, room: int):
        self._f, self._room = f, room

    def write(self, data) -> int:
        if len(data) > self._room:
            self._f.write(bytes(data[:self._room]))
            self._room = 0
            raise OSError(errno.ENOSPC, "No space left on device")
        self._room -= len(data)
        return self._f.write(data)

    def __getattr__(self, name):
        return getattr(self._f, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._f.close()


def fill_disk(monkeypatch, module, suffix: str, room: int) -> None:
    """``module``'s open gives files whose name ends in ``suffix`` ``room`` bytes of disk when writing."""
    def filling_open(name, mode="r", *args, **kwargs):
        f = builtins.open(name, mode, *args, **kwargs)
        return _FillingFile(f, room) if "w" in mode and str(name).endswith(suffix) else f

    monkeypatch.setattr(module, "open", filling_open, raising=False)


def one_line_error(capsys, run) -> str:
    """The error line cli.clean_errors prints for ``run()`` (exit status 1, no traceback)."""
    with pytest.raises(SystemExit) as exit_info:
        run()
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    line = next(x for x in err.splitlines() if ": error: " in x)
    assert err.split(line, 1)[1].strip().splitlines() == [f"(set {cli.TRACEBACK_ENV}=1 to see the traceback)"]
    return line


# --------------------------------------------------------------------------- create_pretraining_data.py

@pytest.fixture
def corpus(tmp_path) -> tuple[Path, Path]:
    lines = [s for doc in CORPUS_DOCUMENTS for s in doc]
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("".join(t + "\n" for t in build_vocab.build_vocab(lines, cjk_subword_pieces=True)),
                     encoding="utf-8")
    return write_corpus(tmp_path / "corpus.txt"), vocab


@pytest.mark.parametrize("suffix, written", [(".partial", r"[1-9][\d,]* records \(0\.\d MB\)"),
                                             (".rec", r"0\.\d MB of temporary records")])
def test_a_full_disk_while_writing_records_names_the_output_and_leaves_no_temporaries(
        corpus, tmp_path, monkeypatch, capsys, suffix, written):
    """.partial: the output files (write_tfrecords, record by record over two outputs, so that some are written
    first); .rec: a unit's temporary records (process_unit)."""
    fill_disk(monkeypatch, work_units, suffix, room=3000)
    out = tmp_path / "out"
    outputs = [out / "a.tfrecord", out / "b.tfrecord"]
    line = one_line_error(capsys, lambda: cli.clean_errors(cpd.main)(
        base_args(*corpus, ",".join(map(str, outputs)), num_workers=1)))
    assert re.search(rf"no space left to write ({outputs[0]}|{outputs[1]}): {written} had been written", line), line
    assert f"free space in {out} or point --output_file elsewhere" in line
    assert "the disk is full" not in line  # the fix once, not cli's generic one as well
    assert sorted(p.name for p in out.iterdir()) == []  # neither the output nor the hidden temporary folder


# --------------------------------------------------------------------------- export_model.py

@pytest.fixture
def export_module(monkeypatch):
    """export_model with the SavedModel, its outputs and the converter stubbed: only the writing is real."""
    import export_model

    monkeypatch.setattr(export_model.export_saved_model, "export_saved_model", lambda *a, **k: None)
    monkeypatch.setattr(export_model, "saved_model_outputs", lambda *a: {})
    monkeypatch.setattr(export_model.checkpoints, "split_model",
                        lambda model: (types.SimpleNamespace(config=types.SimpleNamespace(vocab_size=100)), None))
    monkeypatch.setattr(export_model, "to_litert", lambda *a: b"\0" * (8 << 20))
    return export_model


MODEL = types.SimpleNamespace(variables=[types.SimpleNamespace(numpy=lambda: np.zeros(500_000, np.float32))])


def test_a_full_disk_while_writing_model_tflite_names_it_and_its_size(export_module, tmp_path, monkeypatch, capsys):
    fill_disk(monkeypatch, export_module, ".partial", room=4 << 20)
    line = one_line_error(capsys, lambda: cli.clean_errors(export_module.export)(MODEL, str(tmp_path), "litert", 8))
    assert f"no space left to write {tmp_path / 'model.tflite'} (8.4 MB)" in line
    assert "or use another --export_dir" in line and "the disk is full" not in line
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no model.tflite.partial, no staging SavedModel


def test_a_full_disk_while_writing_model_onnx_removes_its_partial_files(export_module, tmp_path, monkeypatch,
                                                                         capsys):
    def to_onnx(saved_model_dir, path, quantize):
        Path(path).write_bytes(b"\0" * 1000)
        Path(path + export_module.QUANTIZED_SUFFIX).write_bytes(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device", path + export_module.QUANTIZED_SUFFIX)

    monkeypatch.setattr(export_module, "to_onnx", to_onnx)
    line = one_line_error(capsys, lambda: cli.clean_errors(export_module.export)(
        MODEL, str(tmp_path), "onnx", 8, "dynamic_int8"))
    assert f"no space left to write {tmp_path / 'model.onnx'} (2.0 MB)" in line  # about the float weights
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_any_export_failure_removes_the_partial_file(export_module, tmp_path, monkeypatch):
    def broken_runtime(path, inputs):
        assert Path(path).name == "model.tflite.partial" and Path(path).stat().st_size == 8 << 20
        raise RuntimeError("the interpreter cannot load it")

    monkeypatch.setattr(export_module, "run_litert", broken_runtime)
    with pytest.raises(RuntimeError, match="the interpreter cannot load it"):
        export_module.export(MODEL, str(tmp_path), "litert", 8)
    assert sorted(p.name for p in tmp_path.iterdir()) == []
