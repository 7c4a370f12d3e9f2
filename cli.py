"""What the argparse CLIs share: absl-style boolean flags (``--flag``, ``--flag=false``, ``--noflag``), so that
command lines written for the original albert_zh's absl scripts keep working. No TensorFlow import here."""

from __future__ import annotations

import argparse


def str2bool(value: str | bool) -> bool:
    """Parses absl-style booleans: true/false, True/False, 1/0, yes/no (bare flag = True)."""
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in ("true", "t", "1", "yes", "y"):
        return True
    if lowered in ("false", "f", "0", "no", "n"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false), got {value!r}")


def add_bool_flag(parser: argparse.ArgumentParser, name: str, default: bool, help_text: str,
                  aliases: tuple[str, ...] = ()) -> None:
    """Adds --name, --name=true/false and absl's --noname (and the same for each old name in ``aliases``)."""
    parser.add_argument(f"--{name}", *(f"--{a}" for a in aliases), dest=name, type=str2bool, nargs="?", const=True,
                        default=default, metavar="BOOL", help=help_text)
    for flag in (name, *aliases):
        parser.add_argument(f"--no{flag}", dest=name, action="store_false", help=argparse.SUPPRESS)


# --------------------------------------------------------------------------- absl flags the model CLIs share

MODEL_FAMILIES = ("brightmart", "google")  # modeling.MODEL_FAMILIES (a test checks), without importing TensorFlow


def define_model_flags(init_help: str, length_help: str, tokenizer: bool = True) -> None:
    """The model, tokenizer and checkpoint flags of the absl CLIs (the original's names), defined in one place:
    --bert_config_file, --init_checkpoint, --model_family, --max_seq_length and, with ``tokenizer``,
    --vocab_file, --spm_model_file, --do_lower_case."""
    from absl import flags

    flags.DEFINE_string("bert_config_file", None, "ALBERT config JSON (the original's, Google's or BERT's).")
    flags.DEFINE_string("init_checkpoint", None, init_help)
    flags.DEFINE_enum("model_family", None, list(MODEL_FAMILIES), "Overrides the config's model family.")
    flags.DEFINE_integer("max_seq_length", 128, length_help)
    if tokenizer:
        flags.DEFINE_string("vocab_file", None, "WordPiece vocab the model was pretrained with.")
        flags.DEFINE_string("spm_model_file", None, "SentencePiece model (Google ALBERT); replaces --vocab_file.")
        flags.DEFINE_bool("do_lower_case", True, "Lower-case the text (True for the Chinese vocabs).")


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
    return message


def _user_errors() -> tuple[type[BaseException], ...]:
    import sys

    errors = USER_ERRORS
    tf = sys.modules.get("tensorflow")  # only when the CLI has loaded it: this module never imports TF
    if tf is not None:
        errors += (tf.errors.OpError,)
    return errors


def clean_errors(main):
    """Wraps a CLI's main: an error of bad input (USER_ERRORS, TF's OpError) prints as ``PROG: error: message``
    and exits with status 1, without the traceback above it; ``ALBERT_ZH_TRACEBACK=1`` shows the traceback."""
    import functools
    import os
    import sys

    @functools.wraps(main)
    def wrapped(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except Exception as err:
            if os.environ.get(TRACEBACK_ENV) or not isinstance(err, _user_errors()):
                raise
            prog = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] not in ("", "-c") else "albert_zh"
            print(f"{prog}: error: {_message(err)}\n(set {TRACEBACK_ENV}=1 to see the traceback)", file=sys.stderr)
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
