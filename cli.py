"""What the CLIs share: one flag library (absl, the original albert_zh's: ``--flag=false`` and ``--noflag`` both
work), the model/tokenizer/checkpoint flags, errors at the CLI boundary and progress lines. No TensorFlow import."""

from __future__ import annotations

import re
import sys
from typing import Callable, Sequence

from absl import flags

HELP_FLAGS = ("-h", "--help", "--helpshort", "--helpfull")


def usage_error(message: str, prog: str | None = None) -> None:
    """Exits with status 2 after ``PROG: error: message`` (the same words as a flag absl refuses)."""
    prog = prog or _prog()
    print(f"{prog}: error: {message}\nTry --help.", file=sys.stderr)
    sys.exit(2)


def parse_flags(argv: Sequence[str] | None, define: Callable[[flags.FlagValues], None],
                description: str) -> flags.FlagValues:
    """Parses ``argv`` (default ``sys.argv[1:]``) into fresh absl flags, which ``define(flag_values)`` declares.

    For CLIs whose ``main(argv)`` is also called in-process (tests, notebooks): a private FlagValues per call, so
    that calls never share state and modules never clash over a flag name in absl's global registry. ``--help``
    prints ``description`` and every flag once, then exits 0; a bad or missing flag exits 2 naming it.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    flag_values = flags.FlagValues()
    define(flag_values)
    if any(arg in HELP_FLAGS for arg in argv):
        print(f"usage: {_prog()} [--flag=value ...]\n\n{description}\n")
        print(flag_values.get_help(include_special_flags=False))
        sys.exit(0)
    try:
        rest = flag_values([_prog(), *argv])[1:]
    except flags.Error as err:
        usage_error(str(err))
    if rest:
        usage_error(f"unexpected arguments {' '.join(rest)!r}: every input is a --flag=value")
    check_path_flags(flag_values)
    return flag_values


def _prog() -> str:
    import os

    return os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] not in ("", "-c") else "albert_zh"


# --------------------------------------------------------------------------- path flags

# Flags that hold paths (or comma-separated lists of them), by name: every CLI's path flags follow these patterns.
PATH_FLAG_SUFFIXES = ("_file", "_dir", "_path", "_checkpoint", "_output")
PATH_FLAG_PREFIXES = ("output_", "out_")
# A URL that lost a slash (os.path.normpath("gs://b/x") is "gs:/b/x"): every file API takes it for a local path
# and writes ./gs:/b/x. Two letters at least, so that a Windows drive (C:/data) is not one.
_ONE_SLASH_URL = re.compile(r"^([a-z][a-z0-9+.-]+):/(?=[^/])", re.IGNORECASE)


def is_path_flag(name: str) -> bool:
    return name.endswith(PATH_FLAG_SUFFIXES) or name.startswith(PATH_FLAG_PREFIXES)


def one_slash_url_fix(value: str) -> str | None:
    """``value`` with ``scheme:/`` made ``scheme://`` in each comma-separated part, or None when no part is a URL
    that lost one slash."""
    parts = value.split(",")
    fixed = [_ONE_SLASH_URL.sub(r"\1://", part.strip(), count=1) for part in parts]
    return ",".join(fixed) if fixed != [part.strip() for part in parts] else None


def check_path_flags(flag_values: flags.FlagValues) -> None:
    """Exits with a usage error when a path flag given on the command line (``is_path_flag``) holds a URL with one
    slash. cli.parse_flags calls it for its CLIs; clean_errors for those parsed by absl's app.run."""
    for name in flag_values:
        flag = flag_values[name]
        if not (flag.present and is_path_flag(name)) or flag.value is None:
            continue
        values = flag.value if isinstance(flag.value, list) else [flag.value]
        value = ",".join(str(v) for v in values)
        fix = one_slash_url_fix(value)
        if fix is not None:
            usage_error(f"--{name}={value}: looks like a URL with one slash; did you mean {fix}?")


# --------------------------------------------------------------------------- absl flags the model CLIs share

MODEL_FAMILIES = ("brightmart", "google")  # modeling.MODEL_FAMILIES (a test checks), without importing TensorFlow


def define_model_flags(init_help: str, length_help: str, tokenizer: bool = True,
                       flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """The model, tokenizer and checkpoint flags of the CLIs (the original's names), defined in one place:
    --bert_config_file (alias --albert_config_file), --init_checkpoint, --model_family, --max_seq_length and, with
    ``tokenizer``, --vocab_file, --spm_model_file, --do_lower_case."""
    fv = flag_values
    flags.DEFINE_string("bert_config_file", None, "ALBERT config JSON (the original's, Google's or BERT's).",
                        flag_values=fv)
    flags.DEFINE_alias("albert_config_file", "bert_config_file", flag_values=fv)
    flags.DEFINE_string("init_checkpoint", None, init_help, flag_values=fv)
    flags.DEFINE_enum("model_family", None, list(MODEL_FAMILIES), "Overrides the config's model family.",
                      flag_values=fv)
    flags.DEFINE_integer("max_seq_length", 128, length_help, flag_values=fv)
    if tokenizer:
        flags.DEFINE_string("vocab_file", None, "WordPiece vocab the model was pretrained with.", flag_values=fv)
        flags.DEFINE_string("spm_model_file", None, "SentencePiece model (Google ALBERT); replaces --vocab_file.",
                            flag_values=fv)
        flags.DEFINE_bool("do_lower_case", True, "Lower-case the text (True for the Chinese vocabs).",
                          flag_values=fv)


def check_head_flags(fv: flags.FlagValues) -> None:
    """The head flags of the export and convert CLIs fit together: --span_extraction (a run_mrc.py model) with
    neither --token_classification / --tag_list_file (a run_ner.py tagger) nor a --num_labels other than 2."""
    if not fv.span_extraction:
        return
    if fv.token_classification or fv.tag_list_file:
        usage_error("--span_extraction (a run_mrc.py model) and --token_classification / --tag_list_file "
                    "(a run_ner.py tagger) are two different models: pass one")
    if fv.num_labels not in (None, 2):
        usage_error(f"--span_extraction: the span head has 2 rows (start, end), not --num_labels={fv.num_labels}; "
                    f"leave --num_labels out")


def list_all_flags_in_help(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """absl's ``--help`` lists the key flags of the main module only, not those that finetuning.py, optimization.py or
    this module define for it. Makes every flag defined by a module of this repository a key flag of the main module
    (``sys.argv[0]``), so that ``--help`` lists each of the CLI's flags once; absl's own stay under ``--helpfull``.
    Call it in the ``__main__`` block, after the flags are defined."""
    import os

    repo, main = os.path.dirname(os.path.abspath(__file__)), sys.argv[0]
    for module_name, module_flags in flag_values.flags_by_module_dict().items():
        path = getattr(sys.modules.get(module_name), "__file__", None)
        if module_name != main and path and os.path.dirname(os.path.abspath(path)) == repo:
            for flag in module_flags:
                flag_values.register_key_flag_for_module(main, flag)


# --------------------------------------------------------------------------- errors at the CLI boundary

TRACEBACK_ENV = "ALBERT_ZH_TRACEBACK"
# Bad input, flags, files and disks: raised with a message that names the problem and the fix. Anything else
# (TypeError, AttributeError, ...) is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, RuntimeError, LookupError)


def _message(err: BaseException) -> str:
    """The error's own words (for TensorFlow errors without the graph-construction stack TF appends), with the fix
    for a full disk or a folder that cannot be written."""
    import errno

    text = getattr(err, "message", None) or str(err) or type(err).__name__
    lines = [line for line in text.splitlines() if line.strip() and not line.startswith(("  File", "    ", "\t"))
             and not line.startswith(("Detected at node", "Graph execution error"))]
    message = "\n".join(lines[:8]) or type(err).__name__
    code = getattr(err, "errno", None)
    if code == errno.ENOSPC or "No space left on device" in message:
        message += " -- the disk is full: free space there or write the output elsewhere"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS) or "Permission denied" in message:
        message += " -- that folder cannot be written: fix its permissions or choose another output path"
    elif code in (errno.EEXIST, errno.ENOTDIR) or _NOT_A_FOLDER.search(message):
        match = _NOT_A_FOLDER.search(message)
        in_the_way = _file_in_the_way(getattr(err, "filename", None) or (match and match.group(1)) or "")
        if in_the_way:
            message += f" -- {in_the_way} is a file, not a folder: move that file away or choose another output path"
    return message


# TensorFlow's words for a folder that is a file ("X is not a directory", "X; Not a directory").
_NOT_A_FOLDER = re.compile(r"^(.+?)(?: is not a directory|; Not a directory)$", re.MULTILINE)


def _file_in_the_way(path: str) -> str | None:
    """The first part of local ``path`` (the path itself included) that exists and is not a folder: where a folder
    was to be made or looked into."""
    import os

    if not isinstance(path, str) or not path or "://" in path:
        return None
    path = os.path.abspath(path)
    parts = [path]
    while os.path.dirname(parts[-1]) != parts[-1]:
        parts.append(os.path.dirname(parts[-1]))
    return next((p for p in reversed(parts) if os.path.lexists(p) and not os.path.isdir(p)), None)


def _user_errors() -> tuple[type[BaseException], ...]:
    errors = USER_ERRORS
    tf = sys.modules.get("tensorflow")  # only when the CLI has loaded it: this module never imports TF
    if tf is not None:
        errors += (tf.errors.OpError,)
    return errors


def clean_errors(main):
    """Wraps a CLI's main: an error of bad input (USER_ERRORS, TF's OpError) prints as ``PROG: error: message``
    and exits with status 1, without the traceback above it; ``ALBERT_ZH_TRACEBACK=1`` shows the traceback.
    Before main runs, the path flags of absl's global flags (when app.run has parsed them) are checked
    (check_path_flags), so that every app.run CLI refuses a URL with one slash."""
    import functools
    import os

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        if flags.FLAGS.is_parsed():  # app.run parsed the global flags (cli.parse_flags checks its own)
            check_path_flags(flags.FLAGS)
        try:
            return main(*args, **kwargs)
        except Exception as err:
            if os.environ.get(TRACEBACK_ENV) or not isinstance(err, _user_errors()):
                raise
            print(f"{_prog()}: error: {_message(err)}\n(set {TRACEBACK_ENV}=1 to see the traceback)", file=sys.stderr)
            sys.exit(1)

    return wrapped


# --------------------------------------------------------------------------- progress

class Progress:
    """``done/total unit (pct), rate, ETA`` lines on stdout, at most one every ``interval`` seconds."""

    def __init__(self, total: int, unit: str, interval: float = 10.0):
        import time

        self.total, self.unit, self.interval = total, unit, interval
        self.start = self.last = time.monotonic()

    def update(self, done: int, force: bool = False) -> None:
        import time

        now = time.monotonic()
        if not force and now - self.last < self.interval:
            return
        self.last = now
        rate = done / max(now - self.start, 1e-9)
        eta = time.strftime("%H:%M:%S", time.gmtime((self.total - done) / rate)) if rate > 0 else "?"
        pct = 100.0 * done / self.total if self.total else 100.0
        print(f"{done:,}/{self.total:,} {self.unit} ({pct:.0f}%), {rate:,.1f} {self.unit}/s, ETA {eta}", flush=True)
