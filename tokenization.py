# coding=utf-8
"""Tokenization for albert_zh: BERT WordPiece (CJK characters split) and ALBERT SentencePiece.

The public names are those of google-research/bert and google-research/albert
(`FullTokenizer`, `BasicTokenizer`, `WordpieceTokenizer`, `load_vocab`,
`convert_to_unicode`, `printable_text`, `preprocess_text`, `encode_pieces`, ...),
so scripts written for them import this module unchanged.

The WordPiece path gives the same tokens and ids as HF transformers'
`BertTokenizer` (the `tokenizers`-backed one), which differs from Google's
original code (and in places from HF's legacy pure-Python tokenizer) in a few
corners; each is noted where it is handled:
  * exact occurrences of the special tokens ([PAD] [UNK] [CLS] [SEP] [MASK])
    in the text are kept whole instead of being split into "[", "mask", "]";
  * private-use characters are removed like Cc/Cf; unassigned ones are kept;
  * lower-casing is done character by character, so a word-final "Σ" becomes
    "σ" (Google's and HF's legacy tokenizer give "ς");
  * U+2B820-U+2B91F (start of CJK Extension E) are not split off as CJK;
  * words longer than 100 characters become [UNK] (Google: 200).
Known residual difference: HF's tokenizers classifies punctuation, accents and
format characters with older Unicode tables than Python's `unicodedata`, so
about 500 rare characters assigned or re-categorised since (e.g. U+061D,
U+2E55-U+2E5D) can tokenize differently. None is CJK or common punctuation.

`FullTokenizer.tokenize_with_offsets` also gives each token's character span in the original text (HF's
offsets mapping; WordPiece only), for extractive reading comprehension; `char_to_token_index` maps an answer's
character span to tokens.

This module must not import TensorFlow; NumPy is imported only by `tokenize_with_offsets`, and
`sentencepiece` only when an `spm_model_file` is used.
"""

from __future__ import annotations

import collections
import functools
import itertools
import logging
import re
import sys
import unicodedata
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

logger = logging.getLogger(__name__)

UNK_TOKEN = "[UNK]"
# The tokens HF's BertTokenizer never splits; only those present in the vocab are kept whole.
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
# HF's WordPiece default; Google's BERT uses 200, which would give other ids for
# words of 101-200 characters.
MAX_INPUT_CHARS_PER_WORD = 100
SPIECE_UNDERLINE = "\u2581"
# Words whose WordPiece pieces FullTokenizer keeps (then it starts again from empty).
_WORDPIECE_MEMO_SIZE = 200_000

# Google's released BERT checkpoints, by directory name, and the casing they were trained with.
_LOWER_CASED_MODELS = frozenset({
    "uncased_L-24_H-1024_A-16", "uncased_L-12_H-768_A-12",
    "multilingual_L-12_H-768_A-12", "chinese_L-12_H-768_A-12",
})
_CASED_MODELS = frozenset({
    "cased_L-12_H-768_A-12", "cased_L-24_H-1024_A-16", "multi_cased_L-12_H-768_A-12",
})

# CJK Unified Ideographs blocks (and compatibility ideographs) that BERT splits into
# single characters. Hangul, kana and later extensions (F, G, ...) are not included.
# Extension E starts at U+2B820, but HF's tokenizers starts it at U+2B920 (so
# U+2B820-U+2B91F stay inside words there); we follow HF so that ids match.
_CJK_RANGES = (
    (0x4E00, 0x9FFF), (0x3400, 0x4DBF), (0x20000, 0x2A6DF), (0x2A700, 0x2B73F),
    (0x2B740, 0x2B81F), (0x2B920, 0x2CEAF), (0xF900, 0xFAFF), (0x2F800, 0x2FA1F),
)


# --------------------------------------------------------------------------- text types

def convert_to_unicode(text: str | bytes) -> str:
    """Returns `text` as `str`, decoding bytes as UTF-8.

    Unlike Google's version (which silently drops undecodable bytes), invalid
    UTF-8 raises: silently losing characters would corrupt training data.

    Raises:
      ValueError: `text` is bytes that are not valid UTF-8.
      TypeError: `text` is neither `str` nor `bytes`.
    """
    if isinstance(text, str):
        return text
    if isinstance(text, bytes):
        try:
            return text.decode("utf-8")
        except UnicodeDecodeError as err:
            bad = text[err.start:err.end]
            raise ValueError(
                f"text is not valid UTF-8: byte(s) {bad!r} at offset {err.start} ({err.reason}); "
                f"decode it with the right encoding first") from err
    raise TypeError(f"Unsupported string type: {type(text).__name__} (expected str or bytes)")


def printable_text(text: str | bytes) -> str:
    """Returns `text` as `str` for printing or logging.

    Invalid UTF-8 bytes become U+FFFD instead of raising, so that logging a bad
    example never fails.

    Raises:
      TypeError: `text` is neither `str` nor `bytes`.
    """
    if isinstance(text, bytes):
        return text.decode("utf-8", errors="replace")
    if isinstance(text, str):
        return text
    raise TypeError(f"Unsupported string type: {type(text).__name__} (expected str or bytes)")


# --------------------------------------------------------------------------- vocab

def read_text_file(path: str | Path) -> str:
    """A UTF-8 text file's contents; a URL (gs://, any TensorFlow file system) through tf.io.gfile, imported only
    then, so that local use never loads TensorFlow."""
    if "://" in str(path):
        import tensorflow as tf

        if not tf.io.gfile.exists(str(path)):
            raise FileNotFoundError(f"not found (or not reachable): '{path}'")
        with tf.io.gfile.GFile(str(path), "rb") as f:
            return f.read().decode("utf-8")
    with open(path, encoding="utf-8") as f:
        return f.read()


def _read_vocab_tokens(vocab_file: str | Path) -> list[str]:
    """Returns the vocab file's tokens, one a line, in line order (line number = id)."""
    path = vocab_file if "://" in str(vocab_file) else Path(vocab_file)
    if not isinstance(path, str) and not path.is_file():
        raise FileNotFoundError(f"vocab file not found: '{path}' (expected a text file, one token a line)")
    # Trailing whitespace goes, as in HF's tokenizers and Google's BERT: the albert_zh
    # vocab has lines "\u2028" and "##\u2028", which so become "" and "##". Lines end at \n only.
    text = read_text_file(path)
    tokens = [line.rstrip() for line in (text[:-1] if text.endswith("\n") else text).split("\n")] if text else []
    if not tokens:
        raise ValueError(f"vocab file is empty: '{path}'")
    return tokens


def _vocab_from_tokens(tokens: Sequence[str], vocab_file: str | Path) -> collections.OrderedDict[str, int]:
    """Maps each token to its line number; a repeated token keeps its last line, as HF does."""
    vocab: collections.OrderedDict[str, int] = collections.OrderedDict()
    for index, token in enumerate(tokens):
        vocab[token] = index
    if len(vocab) < len(tokens):
        repeated = [t for t, n in collections.Counter(tokens).items() if n > 1]
        logger.warning("vocab file '%s' repeats %d token(s) (%s); each maps to its last line",
                       vocab_file, len(repeated), ", ".join(repeated[:10]))
    return vocab


def load_vocab(vocab_file: str | Path) -> collections.OrderedDict[str, int]:
    """Loads a BERT vocab file into an OrderedDict token -> id (id = 0-based line number).

    Ids are line numbers even when a token repeats, so they index the embedding
    rows of a checkpoint trained with the file; the repeated token maps to its
    last line (HF's behaviour) and a warning names it.

    Raises:
      FileNotFoundError: the file does not exist (the message names the path).
      ValueError: the file is empty.
    """
    return _vocab_from_tokens(_read_vocab_tokens(vocab_file), vocab_file)


def convert_by_vocab(vocab: Mapping[Any, Any], items: Iterable[Any]) -> list[Any]:
    """Looks every item up in `vocab` (token -> id or id -> token); a missing item raises KeyError."""
    output = []
    for item in items:
        if item not in vocab:
            raise KeyError(f"{item!r} is not in the vocabulary ({len(vocab)} entries)")
        output.append(vocab[item])
    return output


def convert_tokens_to_ids(vocab: Mapping[str, int], tokens: Iterable[str]) -> list[int]:
    """Maps tokens to ids; a token missing from `vocab` gets the id of [UNK].

    Raises:
      ValueError: a token is missing and the vocab has no [UNK].
    """
    unk_id = vocab.get(UNK_TOKEN)
    if unk_id is not None:  # the usual case: no token can be missing
        return [vocab.get(token, unk_id) for token in tokens]
    ids = []
    for token in tokens:
        token_id = vocab.get(token, unk_id)
        if token_id is None:
            raise ValueError(f"token {token!r} is not in the vocabulary, which has no {UNK_TOKEN} to fall back on")
        ids.append(token_id)
    return ids


def convert_ids_to_tokens(inv_vocab: Mapping[int, str], ids: Iterable[int]) -> list[str]:
    """Maps ids to tokens; an unknown id raises KeyError."""
    return convert_by_vocab(inv_vocab, ids)


# --------------------------------------------------------------------------- character classes

def is_whitespace(char: str) -> bool:
    """Whether `char` separates words: space, tab, line breaks, Zs, U+2028/U+2029.

    Python's `isspace` also holds for some control characters (\\x0b, \\x1c...),
    but those are removed before this is asked, as in HF.
    """
    return char.isspace()


def is_control(char: str) -> bool:
    """Whether `char` is removed from the text: categories Cc, Cf, Co, Cs except \\t \\n \\r.

    Google's BERT removes only Cc/Cf; HF also removes private-use characters (Co)
    but keeps unassigned ones (Cn), which then end up in [UNK].
    """
    if char in "\t\n\r":
        return False
    category = unicodedata.category(char)
    return category.startswith("C") and category != "Cn"


def is_punctuation(char: str) -> bool:
    """Whether `char` is split off as its own token: Unicode "P*" or any non-alphanumeric ASCII symbol.

    ASCII symbols such as ^ $ ` + are not Unicode punctuation, but BERT treats them as such.
    """
    cp = ord(char)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def is_chinese_char(char: str | int) -> bool:
    """Whether `char` (a character or its code point) is a CJK ideograph that BERT splits alone."""
    cp = char if isinstance(char, int) else ord(char)
    return any(low <= cp <= high for low, high in _CJK_RANGES)


# The underscored names of google-research/bert, for code that imports them.
_is_whitespace = is_whitespace
_is_control = is_control
_is_punctuation = is_punctuation
_is_chinese_char = is_chinese_char


# --------------------------------------------------------------------------- text normalisation

def _clean_text(text: str) -> str:
    """Removes NUL, U+FFFD and control characters; turns every whitespace character into a space."""
    output = []
    for char in text:
        if char in "\x00\ufffd" or is_control(char):
            continue
        output.append(" " if is_whitespace(char) else char)
    return "".join(output)


def _tokenize_chinese_chars(text: str) -> str:
    """Puts spaces around each CJK ideograph so that each becomes a token."""
    return "".join(f" {char} " if is_chinese_char(char) else char for char in text)


def _strip_accents(text: str) -> str:
    """Decomposes (NFD) and drops the non-spacing marks: "Café" -> "Cafe"."""
    return "".join(c for c in unicodedata.normalize("NFD", text) if unicodedata.category(c) != "Mn")


def _lower_case(text: str) -> str:
    """Lower-cases character by character, as HF's tokenizers does.

    `str.lower` turns a word-final capital sigma into "ς"; the per-character
    mapping always gives "σ". Final sigma is the only context rule `str.lower` applies.
    """
    return text.replace("\u03a3", "\u03c3").lower()


def _split_on_punctuation(word: str) -> list[str]:
    """Splits a word into runs of non-punctuation and single punctuation characters."""
    pieces: list[str] = []
    run: list[str] = []
    for char in word:
        if is_punctuation(char):
            if run:
                pieces.append("".join(run))
                run = []
            pieces.append(char)
        else:
            run.append(char)
    if run:
        pieces.append("".join(run))
    return pieces


def whitespace_tokenize(text: str) -> list[str]:
    """Splits `text` on whitespace, dropping empty strings."""
    return text.split()


@functools.lru_cache(maxsize=64)
def _tokens_pattern(tokens: tuple[str, ...]) -> re.Pattern[str]:
    """A regex matching any of `tokens`, longest first (compiled once, not per text)."""
    return re.compile("|".join(re.escape(t) for t in sorted(tokens, key=len, reverse=True)))


def _split_on_tokens(text: str, tokens: Sequence[str]) -> Iterator[tuple[str, bool]]:
    """Yields (segment, is_one_of_tokens), cutting out exact occurrences of `tokens`, longest first."""
    if not tokens:
        yield text, False
        return
    pattern = _tokens_pattern(tuple(tokens))
    start = 0
    for match in pattern.finditer(text):
        yield text[start:match.start()], False
        yield match.group(), True
        start = match.end()
    yield text[start:], False


# --------------------------------------------------------------------------- fast path: one memo lookup a character
# The reference path above classifies every character in Python (about 7 us a token).
# Every step but the NFD of accent stripping is character by character, so each
# character can be mapped once to the text it finally becomes, and `str.translate`
# then does the per-character work in C. NFD of a whole text differs from the
# concatenated NFD of its characters only by canonical reordering, which moves only
# characters of non-zero combining class; accent stripping removes the Mn ones, so
# where none other survives the two are equal. A character whose stripped form keeps
# one is "complex": a text holding one takes the reference path.

_COMPLEX = "\x00"  # never otherwise in the output: NUL itself maps to ""


def _spaced_punctuation(text: str) -> str:
    """Puts spaces around each punctuation character, so that `str.split` splits them off."""
    return "".join(f" {char} " if is_punctuation(char) else char for char in text)


def _normalise_char(char: str, do_lower_case: bool) -> str:
    """The text `char` becomes before BasicTokenizer splits on whitespace.

    "" for removed characters, " " for whitespace, the character (lower-cased and
    accent-stripped if `do_lower_case`) with spaces around its punctuation, and spaces
    around the whole for CJK ideographs; `_COMPLEX` for a character that needs the
    reference path (see above).
    """
    if char in "\x00\ufffd" or is_control(char):
        return ""
    if is_whitespace(char):
        return " "
    text = char
    if do_lower_case:
        stripped = _strip_accents(char)
        if any(unicodedata.combining(c) for c in stripped):
            return _COMPLEX
        text = _lower_case(stripped)
    text = _spaced_punctuation(text)
    # CJK is judged on the character as written (as in _tokenize_chinese_chars, which runs
    # before lower-casing), punctuation on what lower-casing made of it.
    return f" {text} " if is_chinese_char(char) else text


class Memo(dict):
    """key -> ``function(key)``, computed on first use. Lookups stay in C where the caller's loop is in C:
    ``str.translate`` (keys are code points) and ``map(memo.__getitem__, ...)`` call ``__missing__`` only for
    keys not seen before."""

    def __init__(self, function: Callable[[Any], Any]):
        super().__init__()
        self.function = function

    def __missing__(self, key: Any) -> Any:
        value = self[key] = self.function(key)
        return value


_CHAR_MEMOS = {lower: Memo(lambda code_point, lower=lower: _normalise_char(chr(code_point), lower))
               for lower in (False, True)}


# --------------------------------------------------------------------------- character offsets
# tokenize_with_offsets runs the same normalisation as tokenize, but also keeps, for every character of the
# normalised text, the span of the original text it came from; a token's offsets then run from the start of its
# first normalised character to the end of its last. HF's tokenizers does the same (NormalizedString alignments),
# so the offsets equal BertTokenizerFast's `return_offsets_mapping` (but for NFD's reordering, see
# _normalise_with_spans).

# By do_lower_case: a NumPy array, by code point, of how many normalised characters the character becomes (the
# length of its `_CHAR_MEMOS` value; _UNKNOWN_LENGTH until first seen). NumPy is imported on first use only.
_LENGTH_TABLES: dict[bool, Any] = {}
_UNKNOWN_LENGTH = 255  # no character becomes that many (at most 4 from NFD, plus spaces)


def _normalised_lengths(text: str, do_lower_case: bool) -> Any:
    """A NumPy uint8 array: for each character of `text`, the length of its `_CHAR_MEMOS` value."""
    import numpy as np  # pylint: disable=import-outside-toplevel

    table = _LENGTH_TABLES.get(do_lower_case)
    if table is None:
        table = _LENGTH_TABLES[do_lower_case] = np.full(sys.maxunicode + 1, _UNKNOWN_LENGTH, np.uint8)
    # surrogatepass: a lone surrogate (removed as Cs) is still one code point.
    code_points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32)
    lengths = table[code_points]
    if (lengths == _UNKNOWN_LENGTH).any():
        memo = _CHAR_MEMOS[do_lower_case]
        for code_point in np.unique(code_points[lengths == _UNKNOWN_LENGTH]).tolist():
            table[code_point] = len(memo[code_point])
        lengths = table[code_points]
    return lengths


def _normalise_with_spans(text: str, do_lower_case: bool) -> tuple[str, list[int], list[int]]:
    """`text` normalised as by the reference path (`BasicTokenizer._tokenize_segment_reference`), one character at
    a time, with the original span [starts[k], ends[k]) of each normalised character k.

    The slow path, for texts with a complex character: NFD's canonical reordering can move a mark that accent
    stripping keeps past other marks. Each normalised character keeps the span of the character it came from,
    wherever the reordering moved it; where two kept marks swapped, their spans are merged, so that starts and
    ends stay non-decreasing. HF instead aligns the k-th character of a reordered run with the k-th character
    written there, so its span can miss the token's own character (e.g. "\\U0001d16e\\u0f71": NFD swaps them and
    stripping drops U+0F71; HF spans the token (1, 2), the stripped mark; here (0, 1)).
    """
    # Cleaning and CJK padding, character by character (padding spaces never reach a token).
    chars: list[tuple[str, int]] = []
    for index, char in enumerate(text):
        if char in "\x00\ufffd" or is_control(char):
            continue
        if is_whitespace(char):
            chars.append((" ", index))
        elif is_chinese_char(char):
            chars += ((" ", index), (char, index), (" ", index))
        else:
            chars.append((char, index))
    spans = [(char, index, index + 1) for char, index in chars]
    if do_lower_case:
        # NFD of the whole text = each character's NFD, then a stable sort of every run of non-zero combining
        # class by that class; then accent stripping drops Mn and lower-casing maps each character on its own.
        decomposed = [(part, start, end) for char, start, end in spans for part in unicodedata.normalize("NFD", char)]
        spans = []
        run: list[tuple[str, int, int]] = []
        for item in decomposed + [(" ", len(text), len(text))]:  # a final starter closes the last run
            if unicodedata.combining(item[0]):
                run.append(item)
                continue
            spans += sorted(run, key=lambda entry: unicodedata.combining(entry[0]))
            spans.append(item)
            run = []
        spans.pop()
        spans = [(lower, start, end) for char, start, end in spans if unicodedata.category(char) != "Mn"
                 for lower in _lower_case(char)]
    normalised: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for char, start, end in spans:
        part = _spaced_punctuation(char)
        normalised.append(part)
        starts += [start] * len(part)
        ends += [end] * len(part)
    # Merge the spans of kept marks that reordering swapped (a start above a later one, an end below an earlier
    # one): the runs of marks follow one starter, so this never reaches past it.
    starts = list(itertools.accumulate(reversed(starts), min))[::-1]
    return "".join(normalised), starts, list(itertools.accumulate(ends, max))


def char_to_token_index(offsets: Sequence[tuple[int, int]], char_start: int, char_end: int) -> tuple[int, int] | None:
    """The (first, last) indices of the tokens whose offsets overlap the characters [char_start, char_end).

    `offsets` are `FullTokenizer.tokenize_with_offsets`'s: (start, end) character spans in token order. A token
    overlaps the span when it shares at least one character with it, so a span that starts or ends inside a
    token (an answer boundary inside a WordPiece word) takes the whole token. Returns None when no token
    overlaps: the span is empty, or holds only whitespace or removed characters, or lies outside the text.
    For example, with offsets [(0, 2), (2, 5), (6, 7)]: (1, 3) -> (0, 1); (5, 6) -> None; (3, 7) -> (1, 2).

    Raises:
      ValueError: char_end < char_start.
    """
    if char_end < char_start:
        raise ValueError(f"char_end {char_end} is before char_start {char_start}")
    if char_end == char_start:  # an empty span shares no character with any token
        return None
    first = last = None
    for token_index, (start, end) in enumerate(offsets):
        if start < char_end and end > char_start:
            if first is None:
                first = token_index
            last = token_index
        elif first is not None and start >= char_end:
            break  # offsets are in text order: no later token can overlap
    return None if first is None else (first, last)


# --------------------------------------------------------------------------- tokenizers

class BasicTokenizer:
    """Cleans text and splits it on whitespace, punctuation and CJK characters (lower-casing if asked)."""

    def __init__(self, do_lower_case: bool = True, never_split: Iterable[str] = ()):
        """Constructs a BasicTokenizer.

        Args:
          do_lower_case: lower-case and strip accents (HF's `strip_accents=None` default).
          never_split: strings kept as one token where they occur verbatim in the text
            (FullTokenizer passes the special tokens, as HF does).
        """
        self.do_lower_case = do_lower_case
        self.never_split = tuple(t for t in never_split if t)

    def tokenize(self, text: str | bytes) -> list[str]:
        """Tokenizes a piece of text into words and punctuation."""
        text = convert_to_unicode(text)
        if not self.never_split or _tokens_pattern(tuple(self.never_split)).search(text) is None:
            return self._tokenize_segment(text)
        tokens: list[str] = []
        for segment, keep_whole in _split_on_tokens(text, self.never_split):
            if keep_whole:
                tokens.append(segment)
            else:
                tokens.extend(self._tokenize_segment(segment))
        return tokens

    def _tokenize_segment(self, text: str) -> list[str]:
        normalised = text.translate(_CHAR_MEMOS[bool(self.do_lower_case)])
        if _COMPLEX in normalised:  # rare: combining marks the per-character path cannot order
            return self._tokenize_segment_reference(text)
        return normalised.split()

    def _tokenize_segment_reference(self, text: str) -> list[str]:
        """The reference path, one step at a time; `_tokenize_segment` gives the same tokens faster."""
        # Same order as HF's BertNormalizer + BertPreTokenizer: clean, pad CJK,
        # strip accents, lower-case, then split on whitespace and punctuation.
        text = _tokenize_chinese_chars(_clean_text(text))
        if self.do_lower_case:
            text = _lower_case(_strip_accents(text))
        tokens: list[str] = []
        for word in whitespace_tokenize(text):
            tokens.extend(_split_on_punctuation(word))
        return tokens


class WordpieceTokenizer:
    """Splits words into WordPiece sub-words by greedy longest match against the vocab."""

    def __init__(self, vocab: Mapping[str, int], unk_token: str = UNK_TOKEN,
                 max_input_chars_per_word: int = MAX_INPUT_CHARS_PER_WORD):
        self.vocab = vocab
        self.unk_token = unk_token
        self.max_input_chars_per_word = max_input_chars_per_word

    def tokenize(self, text: str | bytes) -> list[str]:
        """Tokenizes whitespace-separated words (output of BasicTokenizer) into word pieces.

        For example "unaffable" -> ["un", "##aff", "##able"]. A word that is too long
        or cannot be covered by vocab pieces becomes a single `unk_token`.
        """
        output: list[str] = []
        for word in whitespace_tokenize(convert_to_unicode(text)):
            output.extend(self._tokenize_word(word))
        return output

    def _tokenize_word(self, word: str) -> list[str]:
        if len(word) > self.max_input_chars_per_word:
            return [self.unk_token]
        pieces = []
        start = 0
        while start < len(word):
            end = self._longest_match_end(word, start)
            if end is None:
                return [self.unk_token]
            pieces.append(self._piece(word, start, end))
            start = end
        return pieces

    @staticmethod
    def _piece(word: str, start: int, end: int) -> str:
        """The sub-word word[start:end], "##"-prefixed unless it starts the word."""
        return ("##" if start > 0 else "") + word[start:end]

    def _longest_match_end(self, word: str, start: int) -> int | None:
        """End of the longest vocab piece that starts at `start`, or None if there is none."""
        for end in range(len(word), start, -1):
            if self._piece(word, start, end) in self.vocab:
                return end
        return None


class FullTokenizer:
    """Runs end-to-end tokenization: BasicTokenizer + WordpieceTokenizer, or SentencePiece."""

    def __init__(self, vocab_file: str | Path | None, do_lower_case: bool = True,
                 spm_model_file: str | Path | None = None, split_special_tokens: bool = False):
        """Constructs a FullTokenizer.

        Args:
          vocab_file: BERT vocab file (one token a line); ignored when `spm_model_file` is given.
          do_lower_case: lower-case (and strip accents) before splitting.
          spm_model_file: SentencePiece model; when given, tokens and ids come from it
            (Google ALBERT's path) and `vocab` is built from its pieces.
          split_special_tokens: a literal "[SEP]", "[MASK]", "[CLS]" … in the text is split like any other text
            ("[", "sep", "]"), as the original's tokenizer did, instead of becoming the special token (HF's
            default, and this class's). The data converters set it: raw text must never make special ids.

        Raises:
          ValueError: the vocab has no [UNK] token.
        """
        self.do_lower_case = do_lower_case
        self.sp_model = None
        self.basic_tokenizer = None
        self.wordpiece_tokenizer = None
        if spm_model_file:
            self.sp_model = _load_sp_model(spm_model_file)
            pieces = [self.sp_model.id_to_piece(i) for i in range(self.sp_model.get_piece_size())]
            self.vocab = {piece: i for i, piece in enumerate(pieces)}
            self.inv_vocab = dict(enumerate(pieces))
            return
        if vocab_file is None:
            raise ValueError("FullTokenizer needs a vocab_file or an spm_model_file")
        tokens = _read_vocab_tokens(vocab_file)
        self.vocab = _vocab_from_tokens(tokens, vocab_file)
        # From the lines, not from `vocab`, so that every id has a token even if a token repeats.
        self.inv_vocab = dict(enumerate(tokens))
        if UNK_TOKEN not in self.vocab:
            raise ValueError(f"vocab file '{vocab_file}' has no {UNK_TOKEN} token; "
                             f"out-of-vocabulary words would have no id")
        never_split = [] if split_special_tokens else [t for t in SPECIAL_TOKENS if t in self.vocab]
        self.basic_tokenizer = BasicTokenizer(do_lower_case=do_lower_case, never_split=never_split)
        self.wordpiece_tokenizer = WordpieceTokenizer(vocab=self.vocab)
        # WordPiece pieces by word: words recur all the time, and the greedy match is
        # Python loops with a dict probe per candidate piece.
        self._pieces: dict[str, list[str]] = {}

    @classmethod
    def from_scratch(cls, vocab_file: str | Path | None, do_lower_case: bool,
                     spm_model_file: str | Path | None) -> "FullTokenizer":
        """Google ALBERT's constructor name."""
        return cls(vocab_file, do_lower_case, spm_model_file)

    def tokenize(self, text: str | bytes) -> list[str]:
        """Splits `text` into tokens of the vocab (or [UNK])."""
        text = convert_to_unicode(text)
        if self.sp_model is not None:
            return encode_pieces(self.sp_model, preprocess_text(text, lower=self.do_lower_case))
        memo = self._pieces
        tokens: list[str] = []
        for word in self.basic_tokenizer.tokenize(text):
            pieces = memo.get(word)
            if pieces is None:
                if len(memo) >= _WORDPIECE_MEMO_SIZE:  # bounded: a corpus can have millions of words
                    memo.clear()
                pieces = memo[word] = self.wordpiece_tokenizer.tokenize(word)
            tokens += pieces
        return tokens

    def tokenize_with_offsets(self, text: str) -> tuple[list[str], list[tuple[int, int]]]:
        """`tokenize(text)` and, for each token, the (start, end) character span of `text` it came from.

        The tokens are exactly `tokenize(text)`'s; `text[start:end]` (end exclusive) holds the original
        characters a token came from, through every normalisation step:
          * removed characters (NUL, U+FFFD, control, format, private-use) belong to no token; a token spans from
            its first to its last kept character, so one removed inside a word lies inside the word's span
            ("ab\\u200bc" -> "abc" (0, 4)), one at its edge outside it;
          * whitespace (U+3000, U+00A0, tabs, line breaks ...) separates words and belongs to no token;
          * a CJK ideograph or a punctuation character is a token of its own, spanning that character;
          * lower-casing and accent stripping map each character on its own: "É" -> "e" spans the "É"; a
            combining mark written as a character of its own is stripped, so it is covered only inside a word
            ("e\\u0301" -> "e" (0, 1), "e\\u0301x" -> "ex" (0, 3)); a character that becomes several ("ǆ" -> "dz",
            a Hangul syllable -> 2-3 jamo) gives each of them its span, so WordPiece pieces can share one
            character ("한" -> "ᄒ", "##ᅡ", "##ᆫ", each (0, 1));
          * where NFD's canonical reordering moves a mark that accent stripping keeps (a spacing mark with a
            combining class, e.g. U+1D165, U+302E: never in Chinese text), the mark still spans its own character
            (two such marks that swap share the span of both);
          * WordPiece: a word's first piece spans its characters, a "##" piece only its own (the "##" is not in
            the text); [UNK] (a word the vocab cannot cover, or longer than 100 characters) spans the whole word;
          * a special token kept whole ("[SEP]" in the text, unless `split_special_tokens`) spans its characters.
        Starts and ends are non-decreasing. They equal HF's `BertTokenizerFast(..., return_offsets_mapping=True)`
        without added special tokens, except where canonical reordering permutes marks around a kept one: HF
        aligns them by position, so its span can miss the token's character (see `_normalise_with_spans`).
        `char_to_token_index` maps a character span to tokens.

        Raises:
          NotImplementedError: a SentencePiece tokenizer (offsets are for WordPiece vocabs, which the Chinese
            ALBERT checkpoints use).
          TypeError: `text` is not `str` (offsets index characters; decode bytes first).
        """
        if self.sp_model is not None:
            raise NotImplementedError("tokenize_with_offsets supports WordPiece vocabs (vocab_file) only, not "
                                      "SentencePiece models (spm_model_file); the Chinese ALBERT checkpoints "
                                      "use WordPiece")
        if not isinstance(text, str):
            raise TypeError(f"text must be str, not {type(text).__name__}: offsets index characters")
        tokens: list[str] = []
        offsets: list[tuple[int, int]] = []
        never_split = self.basic_tokenizer.never_split
        if not never_split or _tokens_pattern(tuple(never_split)).search(text) is None:
            self._add_segment_with_offsets(text, 0, tokens, offsets)
            return tokens, offsets
        position = 0
        for segment, keep_whole in _split_on_tokens(text, never_split):
            if keep_whole:  # WordPiece keeps a special token whole: the vocab holds it
                pieces = self.wordpiece_tokenizer.tokenize(segment)
                tokens += pieces
                offsets += [(position, position + len(segment))] * len(pieces)
            else:
                self._add_segment_with_offsets(segment, position, tokens, offsets)
            position += len(segment)
        return tokens, offsets

    def _add_segment_with_offsets(self, text: str, base: int, tokens: list[str],
                                  offsets: list[tuple[int, int]]) -> None:
        """Appends the tokens of `text` (holding no kept special token) and their offsets plus `base`.

        Vectorised with NumPy (imported only here): a Python loop per word or character would cost several
        times `tokenize`.
        """
        import numpy as np  # pylint: disable=import-outside-toplevel

        lower = bool(self.basic_tokenizer.do_lower_case)  # as tokenize: the basic tokenizer decides
        normalised = text.translate(_CHAR_MEMOS[lower])
        if _COMPLEX in normalised:  # rare: a combining mark NFD may reorder (see _normalise_char)
            normalised, start_list, end_list = _normalise_with_spans(text, lower)
            starts, ends = np.array(start_list, np.int64), np.array(end_list, np.int64)
        else:  # normalised character k comes from original character starts[k]
            starts = np.repeat(np.arange(len(text), dtype=np.int64), _normalised_lengths(text, lower))
            ends = starts + 1
        words = normalised.split()
        if not words:
            return
        pieces = list(map(self._pieces.get, words))
        if None in pieces:  # as in tokenize: the same memo and bound
            for index, word in enumerate(words):
                if pieces[index] is None:
                    if len(self._pieces) >= _WORDPIECE_MEMO_SIZE:
                        self._pieces.clear()
                    pieces[index] = self._pieces[word] = self.wordpiece_tokenizer.tokenize(word)
        new_tokens = list(itertools.chain.from_iterable(pieces))
        tokens += new_tokens
        # Words are the runs of non-spaces (the only whitespace left is " "): edges alternate start, stop.
        in_word = np.frombuffer(normalised.encode("utf-32-le"), np.uint32) != 32
        edges = np.flatnonzero(np.diff(in_word, prepend=False, append=False))
        token_first, token_stop = edges[0::2], edges[1::2]  # one piece a word ([UNK] too) covers the word
        if len(new_tokens) > len(words):  # some words have several pieces: each covers its own characters
            counts = np.fromiter(map(len, pieces), np.int64, len(words))
            token_first, token_stop = np.repeat(token_first, counts), np.repeat(token_stop, counts)
            first_tokens = (np.cumsum(counts) - counts).tolist()
            for word_index in np.flatnonzero(counts > 1).tolist():
                token_index = first_tokens[word_index]
                position = int(token_first[token_index])
                for piece in pieces[word_index]:
                    token_first[token_index] = position
                    # The "##" of every piece but the first is not in the text.
                    position += len(piece) - (2 if token_index > first_tokens[word_index] else 0)
                    token_stop[token_index] = position
                    token_index += 1
        offsets += zip((starts[token_first] + base).tolist(), (ends[token_stop - 1] + base).tolist())

    def convert_tokens_to_ids(self, tokens: Iterable[str]) -> list[int]:
        """Maps tokens to ids; unknown tokens get the [UNK] (SentencePiece: <unk>) id."""
        if self.sp_model is not None:
            return [self.sp_model.piece_to_id(token) for token in tokens]
        return convert_tokens_to_ids(self.vocab, tokens)

    def convert_ids_to_tokens(self, ids: Iterable[int]) -> list[str]:
        """Maps ids to tokens; an id outside the vocab raises KeyError."""
        return convert_ids_to_tokens(self.inv_vocab, ids)


# --------------------------------------------------------------------------- SentencePiece (ALBERT)

def _load_sp_model(spm_model_file: str | Path) -> Any:
    """Loads a SentencePiece model, importing sentencepiece only now."""
    try:
        import sentencepiece  # pylint: disable=import-outside-toplevel
    except ImportError as err:
        raise ImportError("spm_model_file needs the sentencepiece package: pip install sentencepiece") from err
    path = Path(spm_model_file)
    if not path.is_file():
        raise FileNotFoundError(f"SentencePiece model file not found: '{path}'")
    return sentencepiece.SentencePieceProcessor(model_file=str(path))


def preprocess_text(inputs: str, remove_space: bool = True, lower: bool = False) -> str:
    """ALBERT's text normalisation before SentencePiece.

    Collapses whitespace runs (if `remove_space`), applies NFKD and drops combining
    marks (full-width "ＡＢＣ" -> "ABC", "é" -> "e"), then lower-cases if `lower`.
    """
    outputs = " ".join(inputs.strip().split()) if remove_space else inputs
    outputs = unicodedata.normalize("NFKD", outputs)
    outputs = "".join(c for c in outputs if not unicodedata.combining(c))
    return outputs.lower() if lower else outputs


def _split_digit_comma(sp_model: Any, piece: str) -> list[str]:
    """Splits a piece such as "▁2019," into "▁2019" + ",", as ALBERT does.

    The digits are re-encoded on their own so that numbers followed by a comma
    get the same pieces as numbers elsewhere.
    """
    sub_pieces = sp_model.encode_as_pieces(piece[:-1].replace(SPIECE_UNDERLINE, ""))
    # Re-encoding adds a word-start marker the original piece did not have.
    if not piece.startswith(SPIECE_UNDERLINE) and sub_pieces and sub_pieces[0].startswith(SPIECE_UNDERLINE):
        head = sub_pieces[0][len(SPIECE_UNDERLINE):]
        sub_pieces = ([head] if head else []) + sub_pieces[1:]
    return sub_pieces + [piece[-1]]


def encode_pieces(sp_model: Any, text: str, return_unicode: bool = True, sample: bool = False) -> list[str]:
    """Splits already-preprocessed `text` into SentencePiece pieces (ALBERT's `encode_pieces`).

    Args:
      sp_model: a loaded `sentencepiece.SentencePieceProcessor`.
      text: text, normally the output of `preprocess_text`.
      return_unicode: kept for ALBERT's signature (a Python 2 option); pieces are always `str`.
      sample: sample a segmentation (subword regularisation) instead of the best one.
    """
    del return_unicode
    if sample:
        pieces = sp_model.sample_encode_as_pieces(text, 64, 0.1)
    else:
        pieces = sp_model.encode_as_pieces(text)
    output: list[str] = []
    for piece in pieces:
        if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
            output.extend(_split_digit_comma(sp_model, piece))
        else:
            output.append(piece)
    return output


def encode_ids(sp_model: Any, text: str, sample: bool = False) -> list[int]:
    """Ids of `encode_pieces` (ALBERT's `encode_ids`)."""
    return [sp_model.piece_to_id(piece) for piece in encode_pieces(sp_model, text, sample=sample)]


# --------------------------------------------------------------------------- checkpoints

def validate_case_matches_checkpoint(do_lower_case: bool, init_checkpoint: str | None) -> None:
    """Checks `do_lower_case` against the casing of a Google BERT checkpoint, known by its directory name.

    Only Google's released BERT directories (e.g. "uncased_L-12_H-768_A-12",
    "chinese_L-12_H-768_A-12") are known; any other checkpoint (albert_zh,
    Google ALBERT, your own) passes without a check.

    Raises:
      ValueError: the flag contradicts the known casing of the checkpoint.
    """
    if not init_checkpoint:
        return
    model_name = PurePosixPath(str(init_checkpoint).replace("\\", "/")).parent.name
    if model_name in _LOWER_CASED_MODELS and not do_lower_case:
        expected = True
    elif model_name in _CASED_MODELS and do_lower_case:
        expected = False
    else:
        return
    raise ValueError(
        f"--do_lower_case={do_lower_case} does not match --init_checkpoint={init_checkpoint}: "
        f"'{model_name}' was pre-trained with do_lower_case={expected}; pass --do_lower_case={expected}")
