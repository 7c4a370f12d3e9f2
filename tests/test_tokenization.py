"""Tests for tokenization.py.

The WordPiece path is checked id for id against HF transformers' `BertTokenizer`
on the reference corpus, on hand-picked hard cases and on every code point below
U+30000; the SentencePiece path against a model trained here on the fly.
"""

import logging
import re
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

import tokenization

REPO = Path(__file__).resolve().parents[1]

# Hard cases: each targets one rule of the basic tokenizer or of WordPiece.
MIXED_TEXTS = {
    "zh_en_digits": "我爱北京天安门 I love Beijing, 2008年奥运会 iPhone13Pro价格是6999元",
    "emoji": "今天天气很好😀👍🏽 👨‍👩‍👧 family",
    "full_width": "ＡＢＣ１２３，！ａｂｃ？",
    "accents": "Café naïve résumé Ångström e\u0301",
    "control_chars": "a\x00b\x01c\x7fd\ufffde\x0bf\x85g",
    "tabs_newlines": "第一行\t第二行\n第三行\r\n第四行",
    "zero_width": "零\u200b宽\u200d字\ufeff符 joi\u200cner",
    "odd_spaces": "a\u00a0b\u3000c\u2028d\u2029e\u202ff",
    "long_word_101": "x" * 101,
    "long_word_100": "x" * 100,
    "empty": "",
    "only_spaces": " \t\n \u3000 ",
    "url": "https://www.example.com/path/页面?q=中文&x=1#frag mail@example.org",
    "mixed_case": "Hello WORLD hELLo World",
    "japanese": "日本語のテキストです。カタカナとひらがな",
    "korean": "한국어 텍스트입니다",
    "cjk_extensions": "𠀀𪜀𫝀𫠠𬺰𰀀丽",  # Ext B, C, D, E (HF's gap), F, G, compatibility
    "cjk_punctuation": "「引号」『双引号』《书名》〈篇名〉……——、。“说”‘话’",
    "ascii_symbols": "$100 + 50% = ^_^ `code` a|b ~ @user #tag",
    "numbers": "3.14159 1,000,000 50% -7 1e-9 ①②③ ²½",
    "greek_final_sigma": "ΟΔΟΣ Σοφία ΣΑΣ",
    "special_tokens": "[CLS] 你好 [SEP][MASK][MASK] [mask] [unused1] x[SEP]y [UNK][PAD]",
    "dotted_i_ligatures": "İstanbul ß ẞ ﬁﬀ ǅ Kelvin\u212a",
    "unassigned_private_use": "a\u0378b \ue000私用 c\U0010fffdd",
    "greek_varia": "a\u1fefb",  # NFD gives a backtick, which is then punctuation
    "wordpiece_split": "unaffable tokenization 中华人民共和国 hello123world",
}


def _case_id(do_lower_case):
    return "lower" if do_lower_case else "cased"


@pytest.fixture(scope="module")
def vocab_file(reference_dir):
    return reference_dir / "albert_config" / "vocab.txt"


@pytest.fixture(scope="module")
def corpus_lines(reference_dir):
    """Every line of the sample corpus, blank ones included."""
    return (reference_dir / "data" / "news_zh_1.txt").read_text(encoding="utf-8").splitlines()


@pytest.fixture(scope="module")
def hf_tokenizers(vocab_file):
    """HF BertTokenizer (the tokenizers-backed one) by do_lower_case, checked to have loaded the vocab."""
    transformers = pytest.importorskip("transformers")
    tokenizers = {}
    for lower in (True, False):
        # transformers 5.x: vocab_file= is silently ignored (everything becomes [UNK]); vocab= loads it.
        hf = transformers.BertTokenizer(vocab=str(vocab_file), do_lower_case=lower)
        probe = hf.tokenize("中文 hello world")
        assert probe == ["中", "文", "hello", "world"], f"reference tokenizer did not load the vocab: {probe}"
        tokenizers[lower] = hf
    return tokenizers


@pytest.fixture(scope="module")
def our_tokenizers(vocab_file):
    return {lower: tokenization.FullTokenizer(vocab_file, do_lower_case=lower) for lower in (True, False)}


def _mismatches(ours, hf, texts):
    """(text, our tokens, HF tokens) for every text whose ids differ from HF's."""
    expected = hf(list(texts), add_special_tokens=False)["input_ids"]
    found = []
    for text, ids in zip(texts, expected):
        tokens = ours.tokenize(text)
        if ours.convert_tokens_to_ids(tokens) != ids:
            found.append((text, tokens, hf.convert_ids_to_tokens(ids)))
    return found


def _write_vocab(path, tokens):
    path.write_text("".join(f"{t}\n" for t in tokens), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- identical ids to HF

def test_every_corpus_line_matches_hf(corpus_lines, our_tokenizers, hf_tokenizers):
    assert len(corpus_lines) >= 200
    found = _mismatches(our_tokenizers[True], hf_tokenizers[True], corpus_lines)
    assert not found, f"{len(found)} of {len(corpus_lines)} lines differ, first: {found[0]}"


@pytest.mark.parametrize("do_lower_case", [True, False], ids=_case_id)
@pytest.mark.parametrize("name", sorted(MIXED_TEXTS))
def test_mixed_text_matches_hf(name, do_lower_case, our_tokenizers, hf_tokenizers):
    found = _mismatches(our_tokenizers[do_lower_case], hf_tokenizers[do_lower_case], [MIXED_TEXTS[name]])
    assert not found, found


@pytest.mark.parametrize("do_lower_case", [True, False], ids=_case_id)
def test_every_code_point_matches_hf(do_lower_case, our_tokenizers, hf_tokenizers):
    """Each code point below U+30000, between two letters, gives HF's ids.

    HF's tokenizers classifies punctuation, marks and format characters with older
    Unicode tables than Python's, so characters assigned or re-categorised since
    may differ; such a difference is allowed only where the category in Python's
    Unicode 3.2 table differs from the current one.
    """
    ours, hf = our_tokenizers[do_lower_case], hf_tokenizers[do_lower_case]
    code_points = [cp for cp in range(0x30000) if not 0xD800 <= cp <= 0xDFFF]
    chunks = [code_points[i:i + 512] for i in range(0, len(code_points), 512)]
    chunk_of = {" ".join(f"a{chr(cp)}b" for cp in chunk): chunk for chunk in chunks}
    unexplained = []
    for text, _, _ in _mismatches(ours, hf, list(chunk_of)):
        for cp in chunk_of[text]:  # find the code points to blame
            char = chr(cp)
            changed = unicodedata.ucd_3_2_0.category(char) != unicodedata.category(char)
            if not changed and _mismatches(ours, hf, [f"a{char}b"]):
                unexplained.append(f"U+{cp:04X} {unicodedata.category(char)}")
    assert not unexplained, unexplained[:20]


def test_known_hf_differences_from_google_bert(our_tokenizers):
    """The corners where HF (and so we) differ from google-research/bert, pinned so a change is noticed."""
    ours = our_tokenizers[True]
    assert ours.tokenize("ΟΔΟΣ") == ["ο", "##δ", "##ο", "##σ"]  # Google: final "ς"
    assert ours.tokenize("[MASK]") == ["[MASK]"]  # Google: "[", "mask", "]"
    assert ours.tokenize("a\U0002b820b") == ["[UNK]"]  # Google splits this Ext-E character off
    assert ours.tokenize("a\ue000b") == ["ab"]  # Google keeps private-use characters
    assert ours.tokenize("a" * 101) == ["[UNK]"]  # Google allows 200 characters



# --------------------------------------------------------------------------- fast path = reference path
# BasicTokenizer maps each character through a memo and splits once (`_tokenize_segment`);
# the step-by-step functions (`_tokenize_segment_reference`) are the definition it must match.

def _fast_and_reference(do_lower_case, texts):
    """(text, fast tokens, reference tokens) for every text where the two paths differ."""
    basic = tokenization.BasicTokenizer(do_lower_case=do_lower_case)
    found = []
    for text in texts:
        fast, reference = basic._tokenize_segment(text), basic._tokenize_segment_reference(text)
        if fast != reference:
            found.append((text, fast, reference))
    return found


@pytest.mark.parametrize("do_lower_case", [True, False], ids=_case_id)
def test_fast_path_equals_reference_on_every_code_point(do_lower_case):
    """Each code point below U+30000 (surrogates included) alone, inside a word next to a
    CJK character, and next to combining marks (which NFD may reorder)."""
    found = []
    for cp in range(0x30000):
        c = chr(cp)
        found += _fast_and_reference(do_lower_case, [c, f"a{c}b中{c}", f"{c}\u0301{c}e\u0316 x\u0345{c}"])
    assert not found, found[:10]


# Characters that exercise every rule: combining marks of different classes (NFD reorders
# them), Hangul, final sigma, dotted capital I, full-width forms, CJK and its compatibility
# ideographs, punctuation, controls, whitespace, private use, unassigned, Ext-E's gap.
_MIXING_CHARS = list("aZé\u0301\u0316\u0345\u05b0\u0f71\u0f72\u1d165\u0903\u093c\u3099\u309a"
                     "한글\u1100\u1161\u11a8ΣσςΟΔİıßﬁ\u212aＡｚ１，！中丽\uf900\U0002f800\U0002b820"
                     ".,;!?-_$^`@#\x00\ufffd\x07\x85\u200b\u200d\ufeff \t\n\u3000\u00a0\ue000\u0378"
                     "\U0001d165\U0001d16d\U0001d16e\u0344\u0f73\u1fee\u1fef\u0958")


@pytest.mark.parametrize("do_lower_case", [True, False], ids=_case_id)
def test_fast_path_equals_reference_on_random_mixtures(do_lower_case):
    import random
    rng = random.Random(1234)
    texts = ["e\u0301\u0316", "e\u0316\u0301", "ΟΔΟΣ ΣΑΣ", "İSTANBUL", "ＡＢＣ１２３，！", "한국어",
             "\u1e0b\u0323", "q\u0307\u0323", "a\U0001d165\u0301b", "\u0958\u093c"]
    texts += ["".join(rng.choices(_MIXING_CHARS, k=rng.randint(1, 24))) for _ in range(20000)]
    found = _fast_and_reference(do_lower_case, texts)
    assert not found, found[:10]


def test_fast_path_is_what_tokenize_uses():
    """Texts the fast path cannot order (a non-Mn mark with a combining class next to others)
    still come out as the reference path gives them, through the public method."""
    basic = tokenization.BasicTokenizer(do_lower_case=True)
    text = "a\U0001d165\u0316\u0301b 中文, [MASK]"
    assert basic.tokenize(text) == basic._tokenize_segment_reference(text)
    assert tokenization.BasicTokenizer(never_split=["[MASK]"]).tokenize("x[MASK]中") == ["x", "[MASK]", "中"]

# --------------------------------------------------------------------------- vocab and ids

def test_reference_vocab_loads_like_hf(vocab_file, hf_tokenizers):
    vocab = tokenization.load_vocab(vocab_file)
    assert len(vocab) == 21128
    assert list(vocab.values()) == list(range(len(vocab)))
    assert dict(vocab) == hf_tokenizers[True].get_vocab()


def test_ids_round_trip_to_tokens(corpus_lines, our_tokenizers):
    ours = our_tokenizers[True]
    tokens = ours.tokenize(corpus_lines[1])
    ids = ours.convert_tokens_to_ids(tokens)
    assert len(tokens) > 20 and ours.vocab["[UNK]"] not in ids
    assert ours.convert_ids_to_tokens(ids) == tokens
    assert tokenization.convert_ids_to_tokens(ours.inv_vocab, ids) == tokens


@pytest.fixture
def tiny_tokenizer(tmp_path):
    vocab = _write_vocab(tmp_path / "vocab.txt",
                         ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "中", "##国", "un", "##aff", "##able"])
    return tokenization.FullTokenizer(vocab)


def test_out_of_vocabulary_tokens_get_unk_id(tiny_tokenizer):
    assert tiny_tokenizer.convert_tokens_to_ids(["中", "nowhere", "##国"]) == [5, 1, 6]
    assert tokenization.convert_tokens_to_ids(tiny_tokenizer.vocab, ["zzz"]) == [1]
    assert tiny_tokenizer.tokenize("中国 unaffable Unaffablex") == ["中", "[UNK]", "un", "##aff", "##able", "[UNK]"]


def test_unknown_id_raises_key_error(tiny_tokenizer):
    with pytest.raises(KeyError, match="10"):
        tiny_tokenizer.convert_ids_to_tokens([0, 10])


def test_vocab_without_unk_is_rejected(tmp_path):
    vocab = _write_vocab(tmp_path / "no_unk.txt", ["[PAD]", "a", "b"])
    with pytest.raises(ValueError, match=re.escape(str(vocab))):
        tokenization.FullTokenizer(vocab)
    with pytest.raises(ValueError, match="no \\[UNK\\]"):
        tokenization.convert_tokens_to_ids({"a": 0}, ["a", "c"])


def test_missing_vocab_file_names_the_path(tmp_path):
    missing = tmp_path / "nowhere" / "vocab.txt"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        tokenization.load_vocab(missing)


def test_repeated_vocab_token_keeps_last_line_and_every_id(tmp_path, caplog):
    vocab_file = _write_vocab(tmp_path / "dup.txt", ["[UNK]", "a", "b", "a"])
    with caplog.at_level(logging.WARNING, logger="tokenization"):
        vocab = tokenization.load_vocab(vocab_file)
    assert dict(vocab) == {"[UNK]": 0, "a": 3, "b": 2}
    assert "repeats 1 token" in caplog.text
    tokenizer = tokenization.FullTokenizer(vocab_file)
    assert tokenizer.convert_ids_to_tokens([1, 3]) == ["a", "a"]
    assert tokenizer.convert_tokens_to_ids(["a"]) == [3]


def test_convert_by_vocab_is_strict():
    assert tokenization.convert_by_vocab({"a": 0, "b": 1}, ["b", "a"]) == [1, 0]
    with pytest.raises(KeyError, match="'c'"):
        tokenization.convert_by_vocab({"a": 0}, ["c"])


# --------------------------------------------------------------------------- pieces

def test_wordpiece_greedy_longest_match_and_length_limit():
    vocab = {"[UNK]": 0, "un": 1, "##aff": 2, "##able": 3, "unaff": 4, "##a": 5}
    wordpiece = tokenization.WordpieceTokenizer(vocab)
    assert wordpiece.tokenize("unaffable un") == ["unaff", "##able", "un"]
    assert wordpiece.tokenize("unx") == ["[UNK]"]
    assert wordpiece.max_input_chars_per_word == 100
    assert wordpiece.tokenize("un" + "a" * 98) == ["un"] + ["##a"] * 98
    assert wordpiece.tokenize("un" + "a" * 99) == ["[UNK]"]


def test_basic_tokenizer_case_and_never_split():
    assert tokenization.BasicTokenizer().tokenize("Héllo,世界!") == ["hello", ",", "世", "界", "!"]
    assert tokenization.BasicTokenizer(do_lower_case=False).tokenize("Héllo,世界") == ["Héllo", ",", "世", "界"]
    assert tokenization.BasicTokenizer(never_split=["[MASK]"]).tokenize("a[MASK]b [SEP]") == \
        ["a", "[MASK]", "b", "[", "sep", "]"]


def test_character_classes():
    assert tokenization.is_whitespace("\u3000") and tokenization.is_whitespace("\t")
    assert tokenization.is_whitespace("\u2028")  # as in HF; Google's BERT counts only Zs
    assert not tokenization.is_whitespace("\u200b")
    assert tokenization.is_control("\u200b") and tokenization.is_control("\x07")
    assert not tokenization.is_control("\n") and not tokenization.is_control("\u0378")
    assert tokenization.is_punctuation("$") and tokenization.is_punctuation("，")
    assert not tokenization.is_punctuation("a") and not tokenization.is_punctuation("中")
    assert tokenization.is_chinese_char("中") and tokenization.is_chinese_char(0x4E2D)
    assert not tokenization.is_chinese_char("あ") and not tokenization.is_chinese_char("한")
    # google-research/bert's private names stay importable.
    assert tokenization._is_punctuation is tokenization.is_punctuation
    assert tokenization.whitespace_tokenize("  a \n b  ") == ["a", "b"]


# --------------------------------------------------------------------------- text types and checks

def test_convert_to_unicode_and_printable_text():
    assert tokenization.convert_to_unicode("中文".encode("utf-8")) == "中文"
    assert tokenization.convert_to_unicode("中文") == "中文"
    assert tokenization.printable_text("中文".encode("utf-8")) == "中文"
    assert tokenization.printable_text(b"ok\xff") == "ok\ufffd"
    with pytest.raises(ValueError, match="not valid UTF-8.*offset 2"):
        tokenization.convert_to_unicode(b"ok\xff\xfe")
    for function in (tokenization.convert_to_unicode, tokenization.printable_text):
        with pytest.raises(TypeError, match="int"):
            function(3)


def test_tokenize_accepts_utf8_bytes(tiny_tokenizer):
    assert tiny_tokenizer.tokenize("中 unaffable".encode("utf-8")) == ["中", "un", "##aff", "##able"]


@pytest.mark.parametrize("do_lower_case, checkpoint, raises", [
    (False, "gs://b/chinese_L-12_H-768_A-12/bert_model.ckpt", True),
    (True, "gs://b/chinese_L-12_H-768_A-12/bert_model.ckpt", False),
    (True, "/m/cased_L-12_H-768_A-12/bert_model.ckpt-1000", True),
    (False, "/m/cased_L-12_H-768_A-12/bert_model.ckpt-1000", False),
    (False, "albert_tiny_zh/albert_model.ckpt", False),
    (True, None, False),
])
def test_validate_case_matches_checkpoint(do_lower_case, checkpoint, raises):
    if raises:
        with pytest.raises(ValueError, match=f"do_lower_case={not do_lower_case}"):
            tokenization.validate_case_matches_checkpoint(do_lower_case, checkpoint)
    else:
        tokenization.validate_case_matches_checkpoint(do_lower_case, checkpoint)


def test_import_needs_neither_tensorflow_nor_sentencepiece():
    code = "import sys, tokenization; print(sorted({'tensorflow', 'sentencepiece'} & set(sys.modules)))"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


# --------------------------------------------------------------------------- SentencePiece

@pytest.fixture(scope="module")
def spm_model(corpus_lines, tmp_path_factory):
    """A small unigram model trained on the sample corpus plus English lines with numbers."""
    spm = pytest.importorskip("sentencepiece")
    corpus = [line for line in corpus_lines if line.strip()]
    corpus += [f"In {1990 + i}, the team of {i} players scored {i * 7},{i * 3:03d} points." for i in range(60)]
    corpus += ["The quick brown fox jumps over the lazy dog: Hello World!"] * 20
    directory = tmp_path_factory.mktemp("spm")
    (directory / "corpus.txt").write_text("\n".join(corpus) + "\n", encoding="utf-8")
    # The corpus has ~1,300 distinct characters: full coverage needs a vocab above that.
    spm.SentencePieceTrainer.train(
        input=str(directory / "corpus.txt"), model_prefix=str(directory / "m"), vocab_size=2000,
        model_type="unigram", character_coverage=1.0, hard_vocab_limit=False,
        user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"], pad_id=0, unk_id=1, bos_id=-1, eos_id=-1,
        num_threads=1, minloglevel=2)
    return directory / "m.model", corpus


def test_sentencepiece_round_trip(spm_model):
    model_file, corpus = spm_model
    tokenizer = tokenization.FullTokenizer(None, do_lower_case=True, spm_model_file=model_file)
    assert len(tokenizer.vocab) == tokenizer.sp_model.get_piece_size() and tokenizer.vocab["[MASK]"] == 4
    unk_id = tokenizer.sp_model.unk_id()
    for text in corpus[:40] + corpus[-5:] + ["Hello WORLD ＡＢＣ１２３，！"]:
        tokens = tokenizer.tokenize(text)
        ids = tokenizer.convert_tokens_to_ids(tokens)
        assert unk_id not in ids, text
        assert tokenizer.convert_ids_to_tokens(ids) == tokens
        assert tokenizer.sp_model.decode_pieces(tokens) == tokenization.preprocess_text(text, lower=True)


def test_sentencepiece_splits_digit_comma_pieces(spm_model):
    model_file, _ = spm_model
    tokenizer = tokenization.FullTokenizer(None, spm_model_file=model_file)
    text = "in 2019, the team scored 7,003 points."
    raw = tokenizer.sp_model.encode_as_pieces(text)
    assert any(re.search(r"\d,$", piece) for piece in raw), f"model has no digit-comma piece: {raw}"
    tokens = tokenizer.tokenize(text)
    assert not any(re.search(r"\d,$", piece) for piece in tokens), tokens
    assert tokenizer.sp_model.decode_pieces(tokens) == text
    assert tokenization.encode_ids(tokenizer.sp_model, text) == tokenizer.convert_tokens_to_ids(tokens)


def test_sentencepiece_lower_cases_only_when_asked(spm_model):
    model_file, _ = spm_model
    lower = tokenization.FullTokenizer(None, do_lower_case=True, spm_model_file=model_file)
    cased = tokenization.FullTokenizer(None, do_lower_case=False, spm_model_file=model_file)
    assert lower.tokenize("THE TEAM") == lower.tokenize("the team")
    assert cased.tokenize("THE TEAM") != cased.tokenize("the team")


def test_preprocess_text_normalises_like_albert():
    assert tokenization.preprocess_text("  Ａ  b\t\tÉ ") == "A b E"
    assert tokenization.preprocess_text("  Ａ  b\t\tÉ ", lower=True) == "a b e"
    assert tokenization.preprocess_text(" a  b ", remove_space=False) == " a  b "


def test_missing_spm_model_names_the_path(tmp_path):
    pytest.importorskip("sentencepiece")
    missing = tmp_path / "none.model"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        tokenization.FullTokenizer(None, spm_model_file=missing)
