"""Tests for `FullTokenizer.tokenize_with_offsets` and `char_to_token_index` (tokenization.py).

Offsets are checked against HF transformers' `BertTokenizerFast` (`return_offsets_mapping=True`) on CMRC2018
contexts, hard strings, every code point and random mixtures; independently of HF, each token's span must
normalise back to the token, and the slow (reordering) path must agree with the fast one.
"""

import json
import random
import unicodedata
from pathlib import Path

import pytest

import tokenization

REPO = Path(__file__).resolve().parents[1]
CMRC = REPO.parent / "shared" / "datasets" / "cmrc2018"
DEMO_VOCAB = REPO / "pretrained" / "albert_demo_zh" / "vocab.txt"
CMRC_PARAGRAPHS = 300  # per file (dev, train)

# Each targets one normalisation step; all are compared with HF in both casings, special tokens kept and split.
HARD_STRINGS = {
    "zh_en_digits": "2008年Beijing奥运会，iPhone11Pro售价6999元",
    "full_width": "３．１４ ＡＢＣ１２３，！ａｂｃ？",
    "accents": "Café Déjà vu naïve résumé Ångström",
    "combining": "e\u0301 e\u0301x a\u0308\u0323 q\u0307\u0323b",  # decomposed accents; NFD reorders marks
    "whitespace_runs": "a\u3000\u3000b\u00a0\u00a0c\n\n\td\t \r\ne\u2028f ",
    "zero_width_and_control": "零\u200b宽\u200d字\ufeff符 joi\u200cner ab\u200bc d\u200b \x00a\ufffdb\x00 x\x07\x85y",
    "emoji": "😀👍🏽 👨\u200d👩\u200d👧 x😀y 今天😀好",
    "unassigned_and_private_use": "a\u0378b \U000e0001 c\U0010fffdd \ue000私用",
    "dotted_capital_i": "İstanbul İSTANBUL",
    "greek_sigma": "ΣΑΣ ΟΔΟΣ Σοφία",
    "hangul": "한국어 텍스트입니다 \u1100\u1161\u11a8",
    "expanding_nfd": "ǆ ǅ ǄA \u1fefa \u1fee \u0344x \u0958",
    "cjk_variants": "丽\uf900\U0002f800 𠀀𪜀𫝀𫠠𬺰",  # compatibility ideographs, extensions (HF's Ext-E gap)
    "ligatures": "ﬁ ß ẞ K\u212a ı",
    "long_word": "x" * 150 + " " + "y" * 100 + " " + "z" * 101 + "中",
    "special_tokens": "[SEP] x[MASK]y [mask] [UNK][PAD] [CLS]问题[SEP]",
    "wordpiece": "unaffable tokenization 中华人民共和国 hello123world",
    "punctuation": "「引号」《书名》……——、。“说” $100+50%=^_^ `code` a|b~@user #tag",
    "empty": "",
    "blank": " \t\n\u3000\u200b ",
}


def _case_id(value):
    return "lower" if value else "cased"


def _split_id(value):
    return "split_special" if value else "keep_special"


@pytest.fixture(scope="module")
def vocab_files(reference_dir):
    """The original albert_zh vocab (lower-case) and the shipped demo model's vocab, by name."""
    files = {"reference": reference_dir / "albert_config" / "vocab.txt"}
    if DEMO_VOCAB.is_file():
        files["demo"] = DEMO_VOCAB
    return files


@pytest.fixture(scope="module")
def make_hf(vocab_files):
    """HF BertTokenizerFast by (vocab name, do_lower_case, split_special_tokens), checked to have loaded the vocab."""
    transformers = pytest.importorskip("transformers")
    cache = {}

    def make(name="reference", lower=True, split=False):
        if (name, lower, split) not in cache:
            # transformers 5.x: vocab_file= is silently ignored (every token becomes [UNK]); vocab= loads the file.
            # strip_accents=None follows do_lower_case, as FullTokenizer does (cased: accents kept).
            hf = transformers.BertTokenizerFast(vocab=str(vocab_files[name]), do_lower_case=lower,
                                                strip_accents=None, split_special_tokens=split)
            probe = hf.tokenize("中文")
            assert probe == ["中", "文"], f"HF did not load the vocab: {probe}"
            assert hf.get_vocab() == tokenization.load_vocab(vocab_files[name])
            cache[name, lower, split] = hf
        return cache[name, lower, split]

    return make


@pytest.fixture(scope="module")
def make_ours(vocab_files):
    cache = {}

    def make(name="reference", lower=True, split=False):
        if (name, lower, split) not in cache:
            cache[name, lower, split] = tokenization.FullTokenizer(vocab_files[name], do_lower_case=lower,
                                                                   split_special_tokens=split)
        return cache[name, lower, split]

    return make


@pytest.fixture(scope="module")
def cmrc_paragraphs():
    """(context, [(answer_start, answer_text), ...]) of the first CMRC_PARAGRAPHS paragraphs of dev and of train."""
    if not CMRC.is_dir():
        pytest.skip(f"{CMRC} is absent")
    paragraphs = []
    for name in ("dev.json", "train.json"):
        data = json.loads((CMRC / name).read_text(encoding="utf-8"))["data"]
        found = [(p["context"], [(a["answer_start"], a["text"]) for q in p["qas"] for a in q["answers"]])
                 for article in data for p in article["paragraphs"]]
        paragraphs += found[:CMRC_PARAGRAPHS]
    return paragraphs


def _hf_tokens_and_offsets(hf, texts):
    """[(tokens, offsets)] of HF for each text, without [CLS]/[SEP]."""
    encoded = hf(list(texts), return_offsets_mapping=True, add_special_tokens=False)
    return [(hf.convert_ids_to_tokens(ids), [tuple(span) for span in spans])
            for ids, spans in zip(encoded["input_ids"], encoded["offset_mapping"])]


def _differences(ours, hf, texts):
    """(text, ours, HF's) for each text whose tokens or offsets differ; ours must always equal `tokenize`."""
    found = []
    for text, expected in zip(texts, _hf_tokens_and_offsets(hf, texts)):
        tokens, offsets = ours.tokenize_with_offsets(text)
        assert tokens == ours.tokenize(text), text
        assert len(offsets) == len(tokens)
        if (tokens, offsets) != expected:
            found.append((text, list(zip(tokens, offsets)), list(zip(*expected))))
    return found


def _nfd_reorders_a_kept_mark(text):
    """Whether NFD's canonical reordering permutes a run of marks in `text` that holds a mark accent stripping
    keeps (not Mn): the one case where our offsets and HF's may differ."""
    decomposed = [(char, index) for index, original in enumerate(text)
                  if not (original in "\x00\ufffd" or tokenization.is_control(original))  # removed before NFD
                  for char in unicodedata.normalize("NFD", original)]
    # NFD of the whole text is the characters' NFDs, then a stable sort of each run of marks by combining class.
    run = []
    for char, index in decomposed + [(" ", len(text))]:
        if unicodedata.combining(char):
            run.append((char, index))
            continue
        ordered = sorted(run, key=lambda entry: unicodedata.combining(entry[0]))
        if ordered != run and any(unicodedata.category(mark) != "Mn" for mark, _ in run):
            return True
        run = []
    return False


# --------------------------------------------------------------------------- parity with HF

@pytest.mark.parametrize("name, lower", [("reference", True), ("reference", False), ("demo", True)])
def test_cmrc_contexts_match_hf(name, lower, cmrc_paragraphs, vocab_files, make_ours, make_hf):
    """Every context of the first 300 dev and 300 train paragraphs: HF's tokens and offsets exactly."""
    if name not in vocab_files:
        pytest.skip(f"{DEMO_VOCAB} is absent")
    contexts = [context for context, _ in cmrc_paragraphs]
    assert len(contexts) == 2 * CMRC_PARAGRAPHS
    found = _differences(make_ours(name, lower), make_hf(name, lower), contexts)
    assert not found, f"{len(found)} of {len(contexts)} contexts differ, first: {found[0]}"


@pytest.mark.parametrize("split", [False, True], ids=_split_id)
@pytest.mark.parametrize("lower", [True, False], ids=_case_id)
def test_hard_strings_match_hf(lower, split, make_ours, make_hf):
    names = sorted(HARD_STRINGS)
    found = _differences(make_ours(lower=lower, split=split), make_hf(lower=lower, split=split),
                         [HARD_STRINGS[name] for name in names])
    assert not found, found


@pytest.mark.parametrize("lower", [True, False], ids=_case_id)
def test_every_code_point_matches_hf(lower, make_ours, make_hf):
    """Each code point below U+30000, inside a word and alone: HF's tokens and offsets.

    As in test_tokenization.py, HF's older Unicode tables may tokenize a character assigned or re-categorised
    since Unicode 3.2 differently; such a character may differ only in its tokens, never in offsets alone.
    """
    ours, hf = make_ours(lower=lower), make_hf(lower=lower)
    code_points = [cp for cp in range(0x30000) if not 0xD800 <= cp <= 0xDFFF]
    chunks = [code_points[i:i + 512] for i in range(0, len(code_points), 512)]
    chunk_of = {" ".join(f"a{chr(cp)}b {chr(cp)}" for cp in chunk): chunk for chunk in chunks}
    unexplained = []
    for text, _, _ in _differences(ours, hf, list(chunk_of)):
        for cp in chunk_of[text]:  # find the code points to blame
            char = chr(cp)
            alone = f"a{char}b {char}"
            difference = _differences(ours, hf, [alone])
            if not difference:
                continue
            tokens_differ = [token for token, _ in difference[0][1]] != [token for token, _ in difference[0][2]]
            if not tokens_differ or unicodedata.ucd_3_2_0.category(char) == unicodedata.category(char):
                unexplained.append(difference[0])
    assert not unexplained, unexplained[:10]


# Characters that exercise every rule, as in test_tokenization.py's mixtures, with marks that accent stripping
# keeps (U+1D165, U+1D16D, U+1D16E, U+302E: spacing marks with a combining class) and ones it drops.
_MIXING_CHARS = list("aZé\u0301\u0316\u0345\u05b0\u0f71\u0f72\u0903\u093c\u3099\u309a"
                     "한글\u1100\u1161\u11a8ΣσςΟΔİıßﬁ\u212aＡｚ１，！中丽\uf900\U0002f800\U0002b820"
                     ".,;!?-_$^`@#\x00\ufffd\x07\x85\u200b\u200d\ufeff \t\n\u3000\u00a0\ue000\u0378"
                     "\U0001d165\U0001d16d\U0001d16e\u302e\u0344\u0f73\u1fee\u1fef\u0958") + ["[SEP]", "[MASK]"]


@pytest.mark.parametrize("lower", [True, False], ids=_case_id)
def test_random_mixtures_match_hf_but_where_nfd_reorders_a_kept_mark(lower, make_ours, make_hf):
    """Random mixtures: HF's tokens always, and HF's offsets unless NFD's canonical reordering permutes a run of
    marks holding one that accent stripping keeps (only U+1D165, U+1D16D, U+1D16E, U+302E here). HF's
    NormalizedString gives the characters of such a run alignments by position (as if each replaced the
    character written there), not by the character each came from, so its span can miss the token's own
    character; ours follows each character (test_slow_path_follows_reordered_marks)."""
    rng = random.Random(20261202)
    texts = ["".join(rng.choices(_MIXING_CHARS, k=rng.randint(1, 24))) for _ in range(4000)]
    ours, found = make_ours(lower=lower), []
    for text, tokens_and_offsets, expected in _differences(ours, make_hf(lower=lower), texts):
        assert [token for token, _ in tokens_and_offsets] == [token for token, _ in expected], text
        if not (lower and _nfd_reorders_a_kept_mark(text)):
            found.append((text, tokens_and_offsets, expected))
    assert not found, found[:5]


def test_nfd_reordering_difference_from_hf_is_pinned(make_ours, make_hf):
    """U+1D16E (a spacing mark, combining class 216) then U+0F71 (Mn, 129): NFD swaps them and accent stripping
    drops U+0F71. HF spans the remaining token (1, 2), the stripped mark; we span U+1D16E, (0, 1)."""
    text = "\U0001d16e\u0f71 x"
    assert make_ours().tokenize_with_offsets(text) == (["[UNK]", "x"], [(0, 1), (3, 4)])
    assert _hf_tokens_and_offsets(make_hf(), [text]) == [(["[UNK]", "x"], [(1, 2), (3, 4)])]


# --------------------------------------------------------------------------- independent of HF

def test_pinned_offsets(make_ours):
    """Hand-checked offsets for each normalisation step (reference vocab, lower-case)."""
    ours = make_ours()
    cases = {
        "2008年Beijing奥运会": [("2008", 0, 4), ("年", 4, 5), ("be", 5, 7), ("##i", 7, 8), ("##jing", 8, 12),
                              ("奥", 12, 13), ("运", 13, 14), ("会", 14, 15)],
        "a\u3000b\u00a0\nc": [("a", 0, 1), ("b", 2, 3), ("c", 5, 6)],
        "\x00ab\u200bc\ufffd": [("abc", 1, 5)],  # removed inside a word: inside its span; at its edges: outside
        "Café e\u0301": [("cafe", 0, 4), ("e", 5, 6)],
        "e\u0301x": [("ex", 0, 3)],
        "İs": [("is", 0, 2)],
        "한": [("ᄒ", 0, 1), ("##ᅡ", 0, 1), ("##ᆫ", 0, 1)],  # one syllable, three jamo pieces
        "x" * 150 + "中": [("[UNK]", 0, 150), ("中", 150, 151)],
        "问[SEP]答": [("问", 0, 1), ("[SEP]", 1, 6), ("答", 6, 7)],
        "，。": [("，", 0, 1), ("。", 1, 2)],
    }
    for text, expected in cases.items():
        tokens, offsets = ours.tokenize_with_offsets(text)
        assert list(zip(tokens, *zip(*offsets))) == expected, text
    tokens, offsets = make_ours(split=True).tokenize_with_offsets("问[SEP]答")
    assert list(zip(tokens, offsets)) == [("问", (0, 1)), ("[", (1, 2)), ("sep", (2, 5)), ("]", (5, 6)),
                                          ("答", (6, 7))]
    tokens, offsets = make_ours(lower=False).tokenize_with_offsets("Café İs")
    assert tokens == ["[UNK]", "[UNK]"] and offsets == [(0, 4), (5, 7)]


def _spans_not_reproducing_tokens(tokenizer, text):
    """(token or word, its span's text) for each token, and each word, that its span does not reproduce when
    normalised step by step (BasicTokenizer's reference path, not the memo tokenize_with_offsets uses).

    A span must normalise to one word that holds the token (minus "##"), and to exactly the token unless one of
    its characters becomes several (a Hangul syllable gives 2-3 jamo, which pieces may share); the pieces of a
    word together must give exactly its span's normalisation. [UNK] and kept special tokens only span whole words.
    """
    basic = tokenization.BasicTokenizer(do_lower_case=tokenizer.do_lower_case)
    normalise = basic._tokenize_segment_reference
    tokens, offsets = tokenizer.tokenize_with_offsets(text)
    wrong = []
    words = []  # [pieces, start, end] of each word
    for token, (start, end) in zip(tokens, offsets):
        piece = token.removeprefix("##")
        if token.startswith("##"):
            words[-1][0].append(piece)
            words[-1][2] = end
        else:
            words.append([[piece], start, end])
        if token == tokenization.UNK_TOKEN or token in tokenization.SPECIAL_TOKENS and text[start:end] == token:
            continue
        normalised = normalise(text[start:end])
        expanding = any(len("".join(normalise(char))) > 1 for char in text[start:end])
        if len(normalised) != 1 or not (normalised[0] == piece or expanding and piece in normalised[0]):
            wrong.append((token, text[start:end]))
    for pieces, start, end in words:
        if pieces != [tokenization.UNK_TOKEN] and not (len(pieces) == 1 and pieces[0] in tokenization.SPECIAL_TOKENS):
            if normalise(text[start:end]) != ["".join(pieces)]:
                wrong.append((pieces, text[start:end]))
    return wrong


@pytest.mark.parametrize("lower", [True, False], ids=_case_id)
def test_cmrc_token_spans_normalise_back_to_the_tokens(lower, cmrc_paragraphs, make_ours):
    ours = make_ours(lower=lower)
    for context, _ in cmrc_paragraphs:
        assert not _spans_not_reproducing_tokens(ours, context)


@pytest.mark.parametrize("split", [False, True], ids=_split_id)
@pytest.mark.parametrize("lower", [True, False], ids=_case_id)
def test_hard_string_spans_normalise_back_to_the_tokens(lower, split, make_ours):
    ours = make_ours(lower=lower, split=split)
    found = {name: _spans_not_reproducing_tokens(ours, text) for name, text in HARD_STRINGS.items()}
    assert not any(found.values()), found


def test_slow_path_equals_fast_path(cmrc_paragraphs):
    """Where the fast path applies (no complex character), the slow path's normalised text and spans equal it."""
    np = pytest.importorskip("numpy")
    rng = random.Random(7)
    plain = [c for c in _MIXING_CHARS if len(c) == 1 and c not in "\U0001d165\U0001d16d\U0001d16e\u302e"]
    texts = [context for context, _ in cmrc_paragraphs[:100]] + list(HARD_STRINGS.values())
    texts += ["".join(rng.choices(plain, k=rng.randint(1, 24))) for _ in range(2000)]
    for lower in (True, False):
        for text in texts:
            fast = text.translate(tokenization._CHAR_MEMOS[lower])
            assert tokenization._COMPLEX not in fast
            starts = np.repeat(np.arange(len(text)), tokenization._normalised_lengths(text, lower)).tolist()
            assert tokenization._normalise_with_spans(text, lower) == (fast, starts, [s + 1 for s in starts]), text


def test_slow_path_follows_reordered_marks():
    """The slow path's spans follow each kept mark through NFD's reordering, merge those of kept marks that swap,
    and stay non-decreasing."""
    def spans(text):
        normalised, starts, ends = tokenization._normalise_with_spans(text, True)
        assert normalised.split() == tokenization.BasicTokenizer()._tokenize_segment_reference(text)
        assert starts == sorted(starts) and ends == sorted(ends)
        return [(char, start, end) for char, start, end in zip(normalised, starts, ends) if char != " "]

    # U+1D16E (class 216) moves behind U+0F71 (129, stripped): it keeps its own span.
    assert spans("a\U0001d16e\u0f71b") == [("a", 0, 1), ("\U0001d16e", 1, 2), ("b", 3, 4)]
    # U+302E (224) moves before U+0301 (230, stripped); U+0316 (220) moves first: U+302E is still (2, 3).
    assert spans("x\u0301\u302e\u0316") == [("x", 0, 1), ("\u302e", 2, 3)]
    # Two kept marks swap (U+302E 224, U+1D165 216): both span both.
    assert spans("a\u302e\U0001d165b") == [("a", 0, 1), ("\U0001d165", 1, 3), ("\u302e", 1, 3), ("b", 3, 4)]
    # A removed character inside the run does not end it (it is removed before NFD).
    assert spans("a\U0001d16e\x07\u0f71") == [("a", 0, 1), ("\U0001d16e", 1, 2)]


def test_memo_values_hold_no_whitespace_but_spaces():
    """tokenize_with_offsets finds words as runs of characters other than " " in the normalised text: no
    character may normalise to another whitespace character (str.split would split there)."""
    for lower in (True, False):
        memo = tokenization._CHAR_MEMOS[lower]
        odd = [cp for cp in range(0x30000) if any(c.isspace() and c != " " for c in memo[cp])]
        assert not odd, odd[:10]
        assert max(len(memo[cp]) for cp in range(0x30000)) < tokenization._UNKNOWN_LENGTH


def test_tokens_share_tokenize_memo_and_bound(reference_dir, monkeypatch):
    vocab = reference_dir / "albert_config" / "vocab.txt"
    tokenizer = tokenization.FullTokenizer(vocab)
    text = "北京hello unaffable hello"
    tokens, _ = tokenizer.tokenize_with_offsets(text)
    assert set(tokenizer._pieces) == {"北", "京", "hello", "unaffable"}
    assert tokens == tokenization.FullTokenizer(vocab).tokenize(text)
    monkeypatch.setattr(tokenization, "_WORDPIECE_MEMO_SIZE", 2)  # cleared while tokenizing: still right
    for words in ("unaffable tokenization 中华 xyz", "abc tokenization 中"):
        assert tokenizer.tokenize_with_offsets(words)[0] == tokenization.FullTokenizer(vocab).tokenize(words)
    assert len(tokenizer._pieces) <= 2


def test_empty_and_blank_texts(make_ours):
    for text in ("", " ", "\u3000\t\n", "\x00\u200b\ufffd"):
        assert make_ours().tokenize_with_offsets(text) == ([], [])


def test_bytes_rejected(make_ours):
    with pytest.raises(TypeError, match="offsets index characters"):
        make_ours().tokenize_with_offsets("中文".encode())


def test_sentencepiece_is_not_supported(tmp_path):
    spm = pytest.importorskip("sentencepiece")
    (tmp_path / "corpus.txt").write_text("hello world\n中文 文本\n" * 50, encoding="utf-8")
    spm.SentencePieceTrainer.train(input=str(tmp_path / "corpus.txt"), model_prefix=str(tmp_path / "m"),
                                   vocab_size=20, hard_vocab_limit=False, minloglevel=2, num_threads=1)
    tokenizer = tokenization.FullTokenizer(None, spm_model_file=tmp_path / "m.model")
    with pytest.raises(NotImplementedError, match="WordPiece"):
        tokenizer.tokenize_with_offsets("hello")


# --------------------------------------------------------------------------- char_to_token_index

def test_char_to_token_index_examples():
    offsets = [(0, 2), (2, 5), (6, 7)]
    assert tokenization.char_to_token_index(offsets, 1, 3) == (0, 1)
    assert tokenization.char_to_token_index(offsets, 0, 7) == (0, 2)
    assert tokenization.char_to_token_index(offsets, 3, 7) == (1, 2)
    assert tokenization.char_to_token_index(offsets, 2, 5) == (1, 1)
    assert tokenization.char_to_token_index(offsets, 5, 6) is None  # only the gap (whitespace)
    assert tokenization.char_to_token_index(offsets, 3, 3) is None  # empty
    assert tokenization.char_to_token_index(offsets, 7, 9) is None  # past the end
    assert tokenization.char_to_token_index([], 0, 1) is None
    assert tokenization.char_to_token_index([(0, 1), (0, 1), (0, 1)], 0, 1) == (0, 2)  # pieces of one character
    with pytest.raises(ValueError, match="before"):
        tokenization.char_to_token_index(offsets, 3, 2)


def test_char_to_token_index_equals_brute_force(make_ours):
    text = HARD_STRINGS["zh_en_digits"] + " " + HARD_STRINGS["zero_width_and_control"] + " " + HARD_STRINGS["hangul"]
    _, offsets = make_ours().tokenize_with_offsets(text)
    for start in range(len(text) + 1):
        for end in range(start, len(text) + 2):
            overlapping = [i for i, (s, e) in enumerate(offsets) if s < end and e > start and start < end]
            expected = (overlapping[0], overlapping[-1]) if overlapping else None
            assert tokenization.char_to_token_index(offsets, start, end) == expected, (start, end)


def test_cmrc_answers_map_to_tokens_covering_them(cmrc_paragraphs, make_ours):
    """Each answer whose answer_start is right maps to tokens whose spans cover it, and nearly all answers begin
    and end on token boundaries."""
    ours = make_ours()
    answers = inside = 0
    for context, qas in cmrc_paragraphs:
        _, offsets = ours.tokenize_with_offsets(context)
        for answer_start, answer in qas:
            answer_end = answer_start + len(answer)
            if answer_start < 0 or context[answer_start:answer_end] != answer or not answer.strip():
                continue  # CMRC's known bad answer_start values
            first, last = tokenization.char_to_token_index(offsets, answer_start, answer_end)
            token_start, token_end = offsets[first][0], offsets[last][1]
            # The tokens cover the answer but for whitespace (or removed characters) at its edges.
            assert ours.tokenize(context[answer_start:token_start]) == []
            assert ours.tokenize(context[token_end:answer_end]) == []
            answers += 1
            inside += token_start < answer_start or token_end > answer_end
    assert answers > 1000 and inside / answers < 0.02, (answers, inside)
