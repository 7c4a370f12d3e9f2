"""Every CLI on absl flags (cli.parse_flags), at the parse level only (nothing is built or read): --help lists each
flag once and exits 0, bad and missing flags exit 2 naming the flag, the old names (aliases) still parse, booleans
take the original's forms (--flag, --flag=true/false, --noflag) and values come as --name=value or --name value."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from absl import flags

import convert_albert_tf_checkpoint_to_pytorch as convert
import create_pretraining_data
import export_model
import export_saved_model

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
import build_vocab  # noqa: E402
import demo_report  # noqa: E402
import make_demo_tasks  # noqa: E402
import make_mrc_data  # noqa: E402
import make_ner_data  # noqa: E402
import prepare_demo_corpus  # noqa: E402

MODEL = ["bert_config_file", "albert_config_file", "init_checkpoint", "model_family", "max_seq_length"]
# module, every flag name users type (aliases included), a minimal valid argv, a boolean flag (None: it has none)
CLIS = {
    "export_model": (export_model, MODEL + [
        "vocab_file", "spm_model_file", "do_lower_case", "export_dir", "format", "quantize", "mixed_precision",
        "num_labels", "classifier_pooling", "token_classification", "tag_list_file", "with_tokenizer",
        "span_extraction"],
        ["--bert_config_file=c.json", "--init_checkpoint=ckpt", "--export_dir=e"], "token_classification"),
    "export_saved_model": (export_saved_model,
                           MODEL + ["export_dir", "num_labels", "classifier_pooling", "span_extraction"],
                           ["--bert_config_file=c.json", "--init_checkpoint=ckpt", "--export_dir=e"],
                           "span_extraction"),
    "convert": (convert, ["tf_checkpoint_path", "albert_config_file", "bert_config_file", "pytorch_dump_path",
                          "num_labels", "model_family", "token_classification", "tag_list_file", "span_extraction"],
                ["--tf_checkpoint_path=ckpt", "--albert_config_file=c.json", "--pytorch_dump_path=hf"],
                "token_classification"),
    "build_vocab": (build_vocab, ["input_file", "output_file", "do_lower_case", "min_count", "max_size",
                                  "cjk_subword_pieces"], ["--input_file=corpus.txt", "--output_file=vocab.txt"],
                    "do_lower_case"),
    "demo_report": (demo_report, ["demo_output", "shipped_dir", "entropy"], ["--demo_output=out"], None),
    "make_demo_tasks": (make_demo_tasks, ["demo_dir", "output_dir", "seed", "max_examples", "pair_examples"], [],
                        None),
    "make_ner_data": (make_ner_data, ["output_dir", "cache_dir", "sdist", "seed", "max_sentences"],
                      ["--output_dir=ner"], None),
    "make_mrc_data": (make_mrc_data, ["output_dir", "cache_dir", "sdist", "input_file", "seed", "max_questions",
                                      "questions_per_document", "max_answer_share", "max_document_chars",
                                      "keep_query_sentence", "answer_tags"], ["--output_dir=mrc"],
                      "keep_query_sentence"),
    "prepare_demo_corpus": (prepare_demo_corpus, ["cache_dir", "output_dir", "sdist"], [], None),
    # its booleans: tests/test_create_pretraining_data.py
    "create_pretraining_data": (create_pretraining_data, [
        "input_file", "output_file", "vocab_file", "spm_model_file", "do_lower_case", "do_whole_word_mask",
        "max_seq_length", "max_predictions_per_seq", "random_seed", "dupe_factor", "masked_lm_prob", "short_seq_prob",
        "non_chinese", "segmenter", "ngram", "favor_shorter_ngram", "wwm_subword_labels", "seed_wwm_labels", "masking",
        "num_workers", "work_unit_mb", "interleave_units", "decode_errors", "log_examples"],
        ["--input_file=corpus.txt", "--output_file=out.tfrecord", "--vocab_file=vocab.txt"], None),
}
BOOLEAN_CLIS = sorted(name for name, spec in CLIS.items() if spec[3])


def exits(capsys, parse, argv: list[str], code: int = 2) -> str:
    """Runs ``parse(argv)``, which must exit with ``code``; returns what it printed (stdout + stderr)."""
    with pytest.raises(SystemExit) as info:
        parse(argv)
    assert info.value.code == code
    out = capsys.readouterr()
    return out.out + out.err


@pytest.mark.parametrize("name", sorted(CLIS))
def test_help_lists_every_flag_once(name, capsys):
    module, names, _, _ = CLIS[name]
    fv = flags.FlagValues()
    module.define_flags(fv)
    assert sorted(fv) == sorted(names)  # no flag users type went missing, none slipped in
    text = exits(capsys, module.main, ["--help"], code=0)  # main parses first: nothing is built or read
    for flag in names:
        assert len(re.findall(rf"^\s*--(\[no\])?{flag}:", text, re.M)) == 1, (flag, text)


@pytest.mark.parametrize("name", sorted(CLIS))
def test_missing_required_and_stray_arguments_exit_2(name, capsys):
    module, _, base, _ = CLIS[name]
    module.parse_flags(base)  # the minimal command line parses
    for i, arg in enumerate(base):  # every flag in it is required
        flag = arg[2:].split("=")[0]
        assert f"--{flag}" in exits(capsys, module.parse_flags, base[:i] + base[i + 1:])
    assert "unexpected arguments 'stray'" in exits(capsys, module.parse_flags, base + ["stray"])
    assert "Unknown command line flag 'no_such_flag'" in exits(capsys, module.parse_flags, base + ["--no_such_flag=1"])


@pytest.mark.parametrize("name", BOOLEAN_CLIS)
def test_boolean_forms(name, capsys):
    module, _, base, flag = CLIS[name]
    default = module.parse_flags(base)[flag].default
    assert module.parse_flags(base)[flag].value is default
    for forms, value in (([f"--{flag}"], True), ([f"--{flag}=true"], True), ([f"--{flag}=True"], True),
                         ([f"--{flag}=1"], True), ([f"--{flag}=false"], False), ([f"--{flag}=False"], False),
                         ([f"--no{flag}"], False), ([f"--{flag}", f"--no{flag}"], False)):
        assert getattr(module.parse_flags(base + forms), flag) is value, forms
    assert f"--{flag}=maybe" in exits(capsys, module.parse_flags, base + [f"--{flag}=maybe"])


@pytest.mark.parametrize("name, argv, flag", [
    ("export_model", ["--format=tflite"], "--format"), ("export_model", ["--quantize=int4"], "--quantize"),
    ("export_saved_model", ["--max_seq_length=long"], "--max_seq_length"),
    ("export_saved_model", ["--classifier_pooling=max"], "--classifier_pooling"),
    ("convert", ["--model_family=bert"], "--model_family"), ("build_vocab", ["--min_count=x"], "--min_count"),
    ("make_demo_tasks", ["--seed=x"], "--seed"), ("make_ner_data", ["--seed", "x"], "--seed"),
])
def test_bad_values_exit_2_naming_the_flag(name, argv, flag, capsys):
    module, _, base, _ = CLIS[name]
    assert f"{flag}=" in exits(capsys, module.parse_flags, base + argv)


@pytest.mark.parametrize("name, primary, alias", [("export_model", "bert_config_file", "albert_config_file"),
                                                  ("export_saved_model", "bert_config_file", "albert_config_file"),
                                                  ("convert", "albert_config_file", "bert_config_file")])
def test_the_config_flag_takes_both_names(name, primary, alias):
    module, _, base, _ = CLIS[name]
    rest = [arg for arg in base if not arg.startswith(f"--{primary}=")]
    for flag in (primary, alias):
        for argv in ([f"--{flag}=x.json"], [f"--{flag}", "x.json"]):
            args = module.parse_flags(rest + argv)
            assert getattr(args, primary) == "x.json" and getattr(args, alias) == "x.json"


def test_export_model_flags_that_do_not_fit_together(capsys):
    base = CLIS["export_model"][2] + ["--with_tokenizer"]
    assert "--with_tokenizer needs --vocab_file" in exits(capsys, export_model.parse_flags, base)
    assert "--with_tokenizer needs --format=saved_model" in exits(
        capsys, export_model.parse_flags, base + ["--vocab_file=v.txt", "--format=litert"])
    assert "SentencePiece" in exits(capsys, export_model.parse_flags, base + ["--spm_model_file=m.model"])
    args = export_model.parse_flags(base + ["--vocab_file", "v.txt", "--nodo_lower_case", "--max_seq_length", "64"])
    assert (args.vocab_file, args.do_lower_case, args.max_seq_length, args.format) == ("v.txt", False, 64,
                                                                                        "saved_model")
    assert export_model.parse_flags(CLIS["export_model"][2] + ["--spm_model_file=m.model"])  # unused without it


def test_demo_report_entropy_is_name_equals_glob(capsys):
    args = demo_report.parse_flags(["--demo_output", "out", "--entropy=reviews=out/a*.tfrecord",
                                    "--entropy", "news=b=c.tfrecord"])
    assert list(map(demo_report._entropy_pair, args.entropy)) == [("reviews", "out/a*.tfrecord"),
                                                                  ("news", "b=c.tfrecord")]
    assert demo_report.parse_flags(["--demo_output=out"]).entropy is None
    for bad in (["--entropy", "reviews", "out/a.tfrecord"], ["--entropy=reviews"], ["--entropy==x"]):
        assert "NAME=TFRECORD_GLOB" in exits(capsys, demo_report.parse_flags, ["--demo_output=out"] + bad)


def test_demo_sh_command_lines_parse():
    """The data scripts' command lines in demo.sh and create_pretrain_data.sh (--name value, empty values too)."""
    args = make_demo_tasks.parse_flags(["--demo_dir", ".cache/demo", "--output_dir", "output/demo/tasks",
                                        "--max_examples", "4000,1000,1000", "--pair_examples", "8000,500,500"])
    assert (args.demo_dir, args.output_dir, args.max_examples, args.pair_examples, args.seed) == (
        ".cache/demo", "output/demo/tasks", "4000,1000,1000", "8000,500,500", 12345)
    assert make_demo_tasks.parse_flags(["--max_examples", "", "--pair_examples", ""]).max_examples == ""
    args = prepare_demo_corpus.parse_flags(["--cache_dir", ".cache", "--output_dir", ".cache/demo"])
    assert (args.cache_dir, args.output_dir, args.sdist) == (".cache", ".cache/demo", None)
    args = build_vocab.parse_flags(["--input_file", "c.txt", "--output_file", "v.txt"])
    assert (args.input_file, args.output_file, args.do_lower_case, args.min_count, args.max_size,
            args.cjk_subword_pieces) == ("c.txt", "v.txt", True, 1, None, False)
    args = make_ner_data.parse_flags(["--output_dir", "output/ner8k", "--max_sentences", "8000,1000,100000"])
    assert (args.output_dir, args.max_sentences, args.cache_dir) == ("output/ner8k", "8000,1000,100000", ".cache")
    args = demo_report.parse_flags(["--demo_output", "output/demo", "--shipped_dir", "pretrained/albert_demo_zh"])
    assert (args.demo_output, args.shipped_dir) == ("output/demo", "pretrained/albert_demo_zh")


def test_each_parse_is_independent():
    """Fresh flags per call: a value from one call never leaks into the next."""
    assert export_model.parse_flags(CLIS["export_model"][2] + ["--format=onnx", "--num_labels=3"]).format == "onnx"
    args = export_model.parse_flags(CLIS["export_model"][2])
    assert (args.format, args.num_labels) == ("saved_model", None)


# The absl.app CLIs (global FLAGS): a few flags each defines in its own module and a few from the modules it shares.
ABSL_CLIS = {
    "run_classifier": ["task_name", "data_dir", "bert_config_file", "albert_config_file", "vocab_file",
                       "do_lower_case", "learning_rate", "train_batch_size", "classifier_dropout", "optimizer"],
    "run_ner": ["task_name", "data_dir", "bert_config_file", "doc_stride", "learning_rate", "use_crf"],
    "run_pretraining": ["input_file", "bert_config_file", "init_checkpoint", "learning_rate", "optimizer",
                        "masked_lm_prob", "distribution_strategy"],
    "extract_features": ["input_file", "output_file", "bert_config_file", "vocab_file", "pooling", "pair_score"],
    "run_mrc": ["task_name", "data_dir", "bert_config_file", "train_file", "predict_file", "doc_stride",
                "max_query_length", "max_answer_length", "n_best_size", "version_2_with_negative",
                "null_score_diff_threshold", "learning_rate", "question", "evaluate"],
}


@pytest.mark.slow  # a subprocess each (TensorFlow import)
@pytest.mark.parametrize("name", sorted(ABSL_CLIS))
def test_absl_app_help_lists_every_flag_once(name):
    """absl's --help shows the main module's key flags only; cli.list_all_flags_in_help makes the flags of the shared
    modules (finetuning, optimization, cli) key flags too, and absl's own stay under --helpfull."""
    import subprocess

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(root / f"{name}.py"), "--help"], capture_output=True, text=True,
                          cwd=root)
    listed = re.findall(r"^\s+--(?:\[no\])?(\w+):", done.stdout, re.M)
    assert listed and len(listed) == len(set(listed)), sorted(f for f in listed if listed.count(f) > 1)
    assert set(ABSL_CLIS[name]) <= set(listed), set(ABSL_CLIS[name]) - set(listed)
    assert not {"verbosity", "logtostderr", "alsologtostderr"} & set(listed)
