# coding=utf-8
"""WordPiece tokenization and classifier packing as TensorFlow ops, for a SavedModel that takes raw text.

``GraphTokenizer(vocab_file, do_lower_case, max_seq_length)`` turns a batch of UTF-8 strings (``text_a`` and
optionally ``text_b``) into ``input_ids``, ``input_mask``, ``segment_ids`` [B, max_seq_length] equal to what
``classifier_data.encode_text`` makes with ``tokenization.FullTokenizer(split_special_tokens=True)``: the same
normalisation, WordPiece, longest-first pair truncation (b on ties), ``[CLS] a [SEP] (b [SEP])`` and zero padding.
A ``text_b`` with no tokens (empty, or only spaces) gives a single-text example, as there.

Only core TensorFlow ops and lookup tables are used, so serving needs nothing but TensorFlow (TF Serving
included); ``tensorflow-text`` would add custom ops that every server must load, and its wheel depends on the full
``tensorflow`` package, a second TF next to ``tensorflow-cpu``. How it works:

1. Normalisation is per character in ``tokenization`` (``_normalise_char``: remove, space, lower-case and strip
   accents, pad punctuation and CJK with spaces), so every code point's result is computed once in Python at
   export: the two large uniform classes (removed characters, CJK ideographs) as code-point ranges, the rest
   (about 15k code points when lower-casing) as a hash table. The graph decodes the text to code points, maps each,
   joins and splits on spaces.
2. WordPiece's greedy longest match runs as a ``tf.while_loop`` over piece starts, for all words at once: each
   step looks up every candidate length (up to the longest vocab piece) and keeps the longest that is in the vocab;
   a word with no match at some start, or longer than 100 characters, becomes ``[UNK]``.

3. Before either, each text is cut (``GraphTokenizer.cut``, on code points only, no strings per character) so a long
   request costs what a short one does: after the first ``max_seq_length`` words and at a character whose
   normalised form ends in a space (whitespace, punctuation, CJK). The cut text's words are then the first words
   of the whole text, unchanged, and at least ``max_seq_length`` of them (each gives a piece) fill the sequence,
   so the features are exactly those of the whole text. Where there is no such point within the first
   ``max_seq_length * (max_input_chars_per_word + 1)`` characters (``max_text_chars``: long runs of spaces or
   words of over 100 characters) and text follows it, the call fails naming the row instead of answering from a
   guess; a text of at most ``max_text_chars`` characters is never cut. Invalid UTF-8 fails naming the row too
   (it is an error in the Python tokenizer as well; U+FFFD would be silently removed by normalisation).

Known difference: the Python tokenizer canonically reorders combining marks (NFD) over a whole word; this one
works per character. They differ only for 38 rare code points whose decomposition keeps a combining mark other
than a non-spacing one (``tokenization`` sends those through its reference path).
"""

from __future__ import annotations

import functools

import numpy as np
import tensorflow as tf

import tokenization

_MAX_CODE_POINT = 0x10FFFF
# Per code point, for the cut: its normalised text has no word character; starts with a space; ends with one.
_SILENT, _OPENS, _CLOSES = 1, 2, 4


def _ranges(code_points: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted code points -> (starts, ends) of their maximal runs, inclusive."""
    if not code_points:
        return np.zeros([0], np.int32), np.zeros([0], np.int32)
    points = np.asarray(code_points, np.int64)
    breaks = np.flatnonzero(np.diff(points) != 1)
    starts = np.concatenate([points[:1], points[breaks + 1]])
    ends = np.concatenate([points[breaks], points[-1:]])
    return starts.astype(np.int32), ends.astype(np.int32)


@functools.lru_cache(maxsize=2)
def character_map(do_lower_case: bool) -> tuple[dict[int, str], tuple[np.ndarray, np.ndarray],
                                                 tuple[np.ndarray, np.ndarray]]:
    """What each code point becomes before the split on spaces, as (table, removed ranges, CJK ranges).

    Code points in neither are kept as they are; CJK ones become " c ". A code point whose stripped form keeps a
    combining mark (the Python tokenizer's "complex" case) is mapped character by character.
    """
    table: dict[int, str] = {}
    removed: list[int] = []
    cjk: list[int] = []
    for code_point in range(_MAX_CODE_POINT + 1):
        if 0xD800 <= code_point <= 0xDFFF:  # surrogates never come out of UTF-8 decoding
            continue
        char = chr(code_point)
        text = tokenization._normalise_char(char, do_lower_case)
        if text == tokenization._COMPLEX:
            text = tokenization._spaced_punctuation(tokenization._lower_case(tokenization._strip_accents(char)))
            text = f" {text} " if tokenization.is_chinese_char(char) else text
        if text == char:
            continue
        if text == "":
            removed.append(code_point)
        elif text == f" {char} " and tokenization.is_chinese_char(char):
            cjk.append(code_point)
        else:
            table[code_point] = text
    return table, _ranges(removed), _ranges(cjk)


def _in_ranges(values: tf.Tensor, starts: tf.Tensor, ends: tf.Tensor) -> tf.Tensor:
    """values [N] int32 -> bool [N]: inside one of the sorted, disjoint ranges [starts[i], ends[i]]."""
    index = tf.searchsorted(starts, values, side="right") - 1  # the last range starting at or before the value
    inside = tf.gather(ends, tf.maximum(index, 0)) >= values
    return (index >= 0) & inside


def _row_list(rows: tf.Tensor) -> tf.Tensor:
    """bool [B] -> "i j ..." (the first 10 true indices), for an error message that reads the same eager and traced."""
    return tf.strings.reduce_join(tf.strings.as_string(tf.where(rows)[:10, 0]), separator=" ")


class GraphTokenizer(tf.Module):
    """Raw text -> classifier features, in TensorFlow ops (see the module docstring)."""

    def __init__(self, vocab_file: str, do_lower_case: bool, max_seq_length: int, name: str = "graph_tokenizer"):
        super().__init__(name=name)
        reference = tokenization.FullTokenizer(vocab_file, do_lower_case=do_lower_case, split_special_tokens=True)
        for token in ("[CLS]", "[SEP]", "[UNK]"):
            if token not in reference.vocab:
                raise ValueError(f"vocab file '{vocab_file}' has no {token} token")
        if max_seq_length < 3:
            raise ValueError(f"max_seq_length={max_seq_length} leaves no room for text")
        self.max_seq_length = max_seq_length
        self.cls_id, self.sep_id, self.unk_id = (reference.vocab[t] for t in ("[CLS]", "[SEP]", "[UNK]"))
        table, removed, cjk = character_map(do_lower_case)
        self.removed_starts, self.removed_ends = (tf.constant(bounds) for bounds in removed)
        self.cjk_starts, self.cjk_ends = (tf.constant(bounds) for bounds in cjk)
        self.char_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(list(table), tf.int64),
                                                tf.constant(list(table.values()), tf.string)),
            default_value="")  # never a mapped value: removed code points are the ranges
        tokens = list(reference.vocab)
        self.vocab_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(tokens, tf.string),
                                                tf.constant([reference.vocab[t] for t in tokens], tf.int64)),
            default_value=-1)
        self.max_piece_chars = max(len(t[2:] if t.startswith("##") else t) for t in tokens)
        self.max_chars_per_word = reference.wordpiece_tokenizer.max_input_chars_per_word
        self.max_text_chars = max_seq_length * (self.max_chars_per_word + 1)
        flags = {ord(" "): _SILENT | _OPENS | _CLOSES}  # the one whitespace character that maps to itself
        for code_point, text in table.items():
            flags[code_point] = ((_SILENT if not text.strip() else 0) | (_OPENS if text.startswith(" ") else 0)
                                 | (_CLOSES if text.endswith(" ") else 0))
        self.flag_table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(list(flags), tf.int64),
                                                tf.constant(list(flags.values()), tf.int32)),
            default_value=0)  # kept as it is: a word character

    # ------------------------------------------------------------------ text -> the part that matters
    def cut(self, texts: tf.Tensor, name: str = "text") -> tf.Tensor:
        """texts [B] UTF-8 -> each cut to a prefix with the same features (module docstring, point 3).

        Fails (InvalidArgumentError naming ``name`` and the rows) on invalid UTF-8, and on a text longer than
        max_text_chars whose first max_seq_length words cannot be shown to lie within max_text_chars characters.
        """
        code_points = tf.strings.unicode_decode(texts, "UTF-8", errors="replace")
        valid = tf.equal(code_points.row_lengths(),
                         tf.strings.unicode_decode(texts, "UTF-8", errors="ignore").row_lengths())
        check_utf8 = tf.debugging.Assert(
            tf.reduce_all(valid), [f"{name} is not valid UTF-8 in rows " + _row_list(~valid)])
        flat = code_points.flat_values
        flags = self.flag_table.lookup(tf.cast(flat, tf.int64))
        flags = tf.where(_in_ranges(flat, self.removed_starts, self.removed_ends), _SILENT, flags)
        flags = tf.where(_in_ranges(flat, self.cjk_starts, self.cjk_ends), _OPENS | _CLOSES, flags)
        rows = code_points.value_rowids()
        position = tf.range(tf.size(flat, out_type=tf.int64)) - tf.gather(code_points.row_starts(), rows)
        closes = flags & _CLOSES > 0
        after_close = tf.concat([[False], closes[:-1]], axis=0) & (position > 0)
        # A word starts at a word character that opens, follows a closing character, or starts the text (a lower
        # bound: a removed character in between is not looked through).
        starts = (flags & _SILENT == 0) & ((flags & _OPENS > 0) | after_close | (position == 0))
        started = tf.cumsum(tf.cast(starts, tf.int64))
        words = started - tf.gather(started - tf.cast(starts, tf.int64), tf.gather(code_points.row_starts(), rows))
        # The first character that ends a word with max_seq_length words begun: every word up to it is complete.
        enough = closes & (words >= self.max_seq_length)
        first = tf.reduce_min(code_points.with_flat_values(tf.where(enough, position + 1, tf.int64.max)), axis=1)
        lengths = code_points.row_lengths()
        late = tf.reduce_any(code_points.with_flat_values((flags & _SILENT == 0) & (position >= self.max_text_chars)),
                             axis=1)  # a word character past max_text_chars
        unsure = (first > self.max_text_chars) & late
        check_cut = tf.debugging.Assert(
            ~tf.reduce_any(unsure),
            [f"{name}: the first {self.max_seq_length} words are not within the first {self.max_text_chars} "
             f"characters (long runs of spaces or words over {self.max_chars_per_word} characters) in rows "
             + _row_list(unsure) + "; cut those texts before sending them"])
        keep = tf.minimum(tf.minimum(first, lengths), self.max_text_chars)
        with tf.control_dependencies([check_utf8, check_cut]):
            return tf.strings.substr(texts, tf.zeros_like(keep), keep, unit="UTF8_CHAR")

    # ------------------------------------------------------------------ text -> words
    def words(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """texts [B] UTF-8 -> ragged [B, words]: BasicTokenizer's words (invalid UTF-8 is an error, as in Python)."""
        code_points = tf.strings.unicode_decode(texts, "UTF-8", errors="strict")
        flat = code_points.flat_values
        mapped = self.char_table.lookup(tf.cast(flat, tf.int64))
        chars = tf.strings.unicode_encode(tf.expand_dims(flat, 1), "UTF-8")
        removed = _in_ranges(flat, self.removed_starts, self.removed_ends)
        cjk = _in_ranges(flat, self.cjk_starts, self.cjk_ends)
        normalised = tf.where(mapped != "", mapped,
                              tf.where(removed, "", tf.where(cjk, " " + chars + " ", chars)))
        joined = tf.strings.reduce_join(code_points.with_flat_values(normalised), axis=1)
        return tf.strings.split(joined)  # only " " is left of the whitespace

    # ------------------------------------------------------------------ words -> ids
    def wordpiece(self, words: tf.Tensor) -> tf.RaggedTensor:
        """words [N] -> ragged [N, pieces] int32 ids: greedy longest match, [UNK] for words that cannot be covered."""
        lengths = tf.strings.length(words, unit="UTF8_CHAR")
        too_long = lengths > self.max_chars_per_word
        count = tf.size(words)
        candidate_lengths = tf.range(self.max_piece_chars, 0, -1)  # [K], longest first
        grid = [count, self.max_piece_chars]

        def step(start, failed, pieces):
            active = (start < lengths) & ~failed & ~too_long
            sub = tf.strings.substr(tf.broadcast_to(words[:, None], grid), tf.broadcast_to(start[:, None], grid),
                                    tf.broadcast_to(candidate_lengths[None, :], grid), unit="UTF8_CHAR")
            piece_ids = self.vocab_table.lookup(tf.where(start[:, None] > 0, "##" + sub, sub))  # [N, K]
            hit = (start[:, None] + candidate_lengths[None, :] <= lengths[:, None]) & (piece_ids >= 0)
            longest = tf.argmax(tf.cast(hit, tf.int32), axis=1, output_type=tf.int32)  # the first hit
            found = active & tf.reduce_any(hit, axis=1)
            failed |= active & ~found
            piece = tf.where(found, tf.gather(piece_ids, longest, batch_dims=1), -1)  # -1: no piece this step
            pieces = tf.concat([pieces, piece[:, None]], axis=1)
            return start + tf.where(found, tf.gather(candidate_lengths, longest), 0), failed, pieces

        def unfinished(start, failed, pieces):
            return tf.reduce_any((start < lengths) & ~failed & ~too_long)

        _, failed, ids = tf.while_loop(
            unfinished, step,
            (tf.zeros_like(lengths), tf.zeros_like(too_long), tf.zeros([count, 0], tf.int64)),
            shape_invariants=(tf.TensorShape([None]), tf.TensorShape([None]),
                              tf.TensorShape([None, None])))
        ids = tf.concat([ids, tf.fill([count, 1], tf.constant(-1, tf.int64))], axis=1)  # at least one column
        unknown_row = tf.where(tf.range(tf.shape(ids)[1]) == 0, tf.constant(self.unk_id, tf.int64), -1)
        ids = tf.where((failed | too_long)[:, None], unknown_row[None, :], ids)
        return tf.cast(tf.ragged.boolean_mask(ids, ids >= 0), tf.int32)

    def token_ids(self, texts: tf.Tensor) -> tf.RaggedTensor:
        """texts [B] -> ragged [B, tokens] int32 vocab ids (FullTokenizer.tokenize + convert_tokens_to_ids)."""
        return self.tokens_and_firsts(texts)[0]

    def tokens_and_firsts(self, texts: tf.Tensor) -> tuple[tf.RaggedTensor, tf.RaggedTensor]:
        """texts [B] -> (ragged [B, tokens] int32 vocab ids, ragged [B, tokens] bool: the first piece of a word)."""
        words = self.words(texts)
        pieces = self.wordpiece(words.flat_values)
        firsts = pieces.with_values(tf.ragged.range(pieces.row_lengths()).flat_values == 0)
        return tuple(tf.RaggedTensor.from_row_splits(x, words.row_splits).merge_dims(1, 2) for x in (pieces, firsts))

    # ------------------------------------------------------------------ packing
    def encode(self, text_a: tf.Tensor, text_b: tf.Tensor | None = None,
               label_mask: bool = False) -> dict[str, tf.Tensor]:
        """text_a, text_b [B] -> input_ids, input_mask, segment_ids int32 [B, max_seq_length].

        label_mask: also ``label_mask`` int32 [B, max_seq_length], 1 on the first piece of each word (run_ner.py's
        labelled positions: a word is a unit), 0 on ``##`` pieces, [CLS], [SEP] and padding."""
        ids_a, firsts_a = self.tokens_and_firsts(self.cut(text_a, "text_a"))
        ids_b, firsts_b = (self.tokens_and_firsts(self.cut(text_b, "text_b")) if text_b is not None
                           else (ids_a[:, :0], firsts_a[:, :0]))
        length_a, length_b = ids_a.row_lengths(), ids_b.row_lengths()
        pair = length_b > 0
        budget = self.max_seq_length - tf.where(pair, 3, 2)
        budget = tf.cast(budget, length_a.dtype)
        # Longest-first truncation (pop from the longer, b on ties) has this closed form: the shorter text is kept
        # whole if it fits in half the budget; otherwise a keeps the rounded-up half and b the rest.
        over = length_a + length_b > budget
        keep_a = tf.where(over, tf.minimum(length_a, tf.maximum((budget + 1) // 2, budget - length_b)), length_a)
        keep_b = tf.where(over, budget - keep_a, length_b)
        kept_a, kept_b = tf.ragged.range(length_a) < keep_a[:, None], tf.ragged.range(length_b) < keep_b[:, None]
        a, b = tf.ragged.boolean_mask(ids_a, kept_a), tf.ragged.boolean_mask(ids_b, kept_b)
        batch = tf.shape(text_a)[0]
        cls = tf.fill([batch, 1], self.cls_id)
        sep = tf.fill([batch, 1], self.sep_id)
        sep_b = tf.ragged.boolean_mask(sep, pair[:, None])  # no second [SEP] for a single text
        tokens = tf.concat([cls, a, sep, b, sep_b], axis=1)
        first_segment = tf.cast(keep_a + 2, tf.int32)
        segments = tf.cast(tf.ragged.range(tokens.row_lengths()) >= tf.cast(first_segment[:, None], tf.int64),
                           tf.int32)
        shape = [None, self.max_seq_length]
        features = {"input_ids": tokens.to_tensor(0, shape=shape),
                    "input_mask": tf.ones_like(tokens).to_tensor(0, shape=shape),
                    "segment_ids": segments.to_tensor(0, shape=shape)}
        if label_mask:
            firsts = tf.concat([tf.zeros_like(cls), tf.cast(tf.ragged.boolean_mask(firsts_a, kept_a), tf.int32),
                                tf.zeros_like(sep), tf.cast(tf.ragged.boolean_mask(firsts_b, kept_b), tf.int32),
                                tf.zeros_like(sep_b)], axis=1)
            features["label_mask"] = firsts.to_tensor(0, shape=shape)
        return features
