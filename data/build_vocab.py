# coding=utf-8
"""Builds a BERT-layout WordPiece vocab from a corpus, for users without Google's Chinese vocab.

Layout (ids as in Google's BERT vocabs): [PAD]=0, [unused1..99]=1..99, [UNK]=100,
[CLS]=101, [SEP]=102, [MASK]=103, <S>=104, <T>=105, then:
  1. single characters (CJK characters, punctuation, and the first character of
     every other word), most frequent first;
  2. `##c` pieces for every character that occurs inside a non-CJK word, so that any
     such word can be spelled as c + ##c + ... and nothing in the corpus is [UNK];
  3. whole non-CJK words (numbers, Latin words) seen at least --min_count times, most
     frequent first, so that common ones are one token; --max_size drops the rarest
     of these first.
Words are the project tokenizer's (tokenization.BasicTokenizer: CJK characters
split, punctuation split, optional lower-casing), so the vocab matches what
tokenization.FullTokenizer will look up. `##字` pieces for CJK characters are not
needed (create_pretraining_data.py labels Chinese words with plain character ids);
--cjk_subword_pieces adds them for --seed_wwm_labels.
"""

from __future__ import annotations

import collections
import glob
import sys
from pathlib import Path
from typing import Iterable

from absl import flags

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cli  # noqa: E402  (bad input prints one clean line, see cli.clean_errors)
import tokenization  # noqa: E402

SPECIAL_TOKENS = (["[PAD]"] + [f"[unused{i}]" for i in range(1, 100)] +
                  ["[UNK]", "[CLS]", "[SEP]", "[MASK]", "<S>", "<T>"])


def build_vocab(lines: Iterable[str], do_lower_case: bool = True, min_count: int = 1,
                max_size: int | None = None, cjk_subword_pieces: bool = False) -> list[str]:
    """Returns the vocab tokens in id order (see the module docstring)."""
    basic = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
    words: collections.Counter[str] = collections.Counter()
    for line in lines:
        words.update(basic.tokenize(line))
    chars: collections.Counter[str] = collections.Counter()
    pieces: collections.Counter[str] = collections.Counter()
    for word, count in words.items():
        chars[word[0]] += count
        for char in word[1:]:
            pieces["##" + char] += count

    def frequent(counter: collections.Counter[str]) -> list[str]:
        return [t for t, c in sorted(counter.items(), key=lambda tc: (-tc[1], tc[0])) if c >= min_count]

    vocab = list(SPECIAL_TOKENS)
    vocab += [c for c in frequent(chars) if c not in SPECIAL_TOKENS]
    vocab += frequent(pieces)
    if cjk_subword_pieces:
        vocab += ["##" + c for c in frequent(chars) if tokenization.is_chinese_char(c)]
    vocab = list(dict.fromkeys(vocab))
    whole = [w for w in frequent(words) if len(w) > 1 and w not in SPECIAL_TOKENS]
    if max_size is not None:
        whole = whole[:max(0, max_size - len(vocab))]
    return vocab + whole


def _read_lines(patterns: str) -> Iterable[str]:
    for pattern in patterns.split(","):
        for path in sorted(glob.glob(pattern.strip())):
            with open(path, encoding="utf-8") as f:
                yield from f


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("input_file", None, "Corpus file(s): comma-separated globs.", flag_values=fv)
    flags.DEFINE_string("output_file", None, "vocab.txt to write.", flag_values=fv)
    flags.DEFINE_bool("do_lower_case", True, "Lower-case as the tokenizer will.", flag_values=fv)
    flags.DEFINE_integer("min_count", 1, "Drop tokens seen fewer times.", flag_values=fv)
    flags.DEFINE_integer("max_size", None, "Cap (drops the rarest whole words).", flag_values=fv)
    flags.DEFINE_bool("cjk_subword_pieces", False, "Also add ##字 pieces.", flag_values=fv)
    flags.mark_flags_as_required(["input_file", "output_file"], flag_values=fv)


def parse_flags(argv: list[str] | None = None) -> flags.FlagValues:
    return cli.parse_flags(argv, define_flags, __doc__)


def main(argv: list[str] | None = None) -> int:
    args = parse_flags(argv)
    vocab = build_vocab(_read_lines(args.input_file), args.do_lower_case, args.min_count,
                        args.max_size, args.cjk_subword_pieces)
    Path(args.output_file).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output_file).write_text("".join(t + "\n" for t in vocab), encoding="utf-8")
    print(f"{args.output_file}: {len(vocab)} tokens", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(cli.clean_errors(main)())
