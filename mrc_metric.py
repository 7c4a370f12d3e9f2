"""Reading-comprehension scores: the CMRC2018 metric (also DRCD's), SQuAD v1.1 and SQuAD v2.0, built in.

    python mrc_metric.py GOLD.json PREDICTIONS.json [--metric=auto] [--null_odds_file=NULL_ODDS.json] \\
        [--na_prob_thresh=1.0] [--out_file=SCORES.json]

GOLD.json is SQuAD-style JSON (SQuAD, CMRC2018 and DRCD as distributed for BERT-style models) or the original
CMRC2018 format (a list of ``{"context_id", "context_text", "qas": [{"query_id", "query_text", "answers": [...]}]}``,
or that list under ``"data"``); PREDICTIONS.json is ``{question id: answer text}``; NULL_ODDS.json (SQuAD v2 only)
is ``{question id: no-answer probability or score}``. The scores print as one JSON object (percentages).
``--gold_file`` / ``--predictions_file`` may stand for the two positional arguments.

What is defined here:

* ``cmrc2018_scores``, ``cmrc_f1``, ``cmrc_em``: the metric of ymcui/cmrc2018's ``cmrc2018_evaluate.py``. Text is
  lower-cased and stripped; the characters of its 33-string punctuation list (``CMRC_PUNCTUATION``) are dropped;
  every character in U+4E00..U+9FA5 is a segment of its own; each run of other characters is split by NLTK's word
  tokenizer. F1 comes from the longest common *contiguous* run of segments, EM from string equality after dropping
  the punctuation; both take the best gold answer; questions without a prediction score 0 (counted in ``skipped``);
  ``average`` = (EM + F1) / 2. Quirks kept from that script: the punctuation test is per character, so the
  list's two-character '……' never matches and stays (its '…' characters join a non-CJK run); a dropped
  punctuation character does not end a non-CJK run ("ω-force" is one segment "ωforce"); ASCII ',' '.' '?' '!'
  '(' ')' are not on the list; CJK characters past U+9FA5 and in extension A are not CJK to it.
* ``squad_scores``: SQuAD v1.1's and v2.0's official scripts (lower-case, drop ASCII punctuation, drop the articles
  a/an/the, collapse whitespace; token-bag F1 and EM, best gold answer). v2: a question without gold answers is
  answered by the empty string; ``HasAns_*`` / ``NoAns_*`` breakdowns; with no-answer probabilities, predictions
  whose probability exceeds ``threshold`` become "no answer", and ``best_exact`` / ``best_f1`` with their
  thresholds are searched as the official v2 script does.
* ``gold_answers``, ``questions``: question id -> gold answer texts / question text, from either gold format,
  read by ``mrc_data.iter_questions`` (the reader run_mrc.py trains on) with ``mrc_data.read_json``; a gold
  question must have an id, a question text, a context and an "answers" list.
* ``question_type``: a keyword table for Chinese questions (who/when/where/...); ``cmrc2018_scores`` breaks the
  scores down by it when given the question texts.
* ``evaluate_files``: the above on files (what run_mrc.py and this CLI call).

Where the results can differ from the official scripts:

* CMRC2018 tokenizes each non-CJK run with ``nltk.word_tokenize(run, preserve_line=True)``; the official script
  calls ``nltk.word_tokenize(run)``, which first splits the run into sentences with the Punkt model (a data
  download). NLTK's word tokenizer only splits a period off the end of its input, so the results differ exactly
  when a run holds a word-final '.' followed by whitespace and more text *and* Punkt calls that a sentence end:
  ours keeps "went." as one segment where the official script has "went", ".". In CMRC2018 dev the only such
  runs are name initials ("henry a. walsh"), which Punkt's rule for initials should keep before a lower-case word
  (not verifiable here: it needs the Punkt data). With ``preserve_line=True`` patched in, the official script and
  this module score every dev question alike. The official script's NLTK was a 2018 release; NLTK's tokenizer
  rules have changed in details since (we pin the version).
* A question whose gold answer list is empty scores 0 under the CMRC2018 and SQuAD v1.1 metrics (the official
  scripts fail on it). Question ids are not stripped (v5 of the CMRC script strips them, v6 does not).
* SQuAD v2: a question without a prediction scores 0 and stays in every total (the official v2 script leaves it
  out of the totals, and fails on the HasAns/NoAns breakdown); the best-threshold search counts it as wrong.
  Gold answers of a question marked ``"is_impossible": true`` are ignored (some conversions keep the plausible
  answers there); the official script looks at the answer list only.
"""

from __future__ import annotations

import collections
import json
import re
import string
import sys
from typing import Any, Iterator, Mapping

import cli
import mrc_data  # the gold-file reader (no TensorFlow at import)

METRICS = ("auto", "cmrc2018", "squad", "squad_v2")

# The official CMRC2018 script's punctuation list, in its order: 33 strings, tested one character at a time (so
# the two-character '……' never matches anything).
CMRC_PUNCTUATION = (
    "-", ":", "_", "*", "^", "/", "\\", "~", "`", "+", "=",
    "，", "。", "：", "？", "！", "“", "”", "；", "’", "《", "》", "……", "·", "、",
    "「", "」", "（", "）", "－", "～", "『", "』",
)
_PUNCTUATION_CHARS = frozenset(p for p in CMRC_PUNCTUATION if len(p) == 1)

NLTK_REQUIREMENT = "nltk==3.10.4"


# --------------------------------------------------------------------------- CMRC2018


def _is_cmrc_cjk(char: str) -> bool:
    return "\u4e00" <= char <= "\u9fa5"  # the official script's range, not all of CJK


def _word_tokenize(text: str) -> list[str]:
    try:  # imported on first use: NLTK takes ~2 s to import and only this metric needs it
        from nltk.tokenize import word_tokenize
    except ModuleNotFoundError as err:
        raise RuntimeError(f"the CMRC2018 metric needs NLTK's word tokenizer: pip install {NLTK_REQUIREMENT}") from err
    # preserve_line=True: no Punkt sentence split, so no data download (see the module docstring)
    return word_tokenize(text, preserve_line=True)


def cmrc_segments(text: str) -> list[str]:
    """``text`` as the official script's ``mixed_segmentation(text, rm_punc=True)`` segments it."""
    segments: list[str] = []
    run: list[str] = []
    for char in text.lower().strip():
        if char in _PUNCTUATION_CHARS:
            continue  # dropped without ending the run, as in the official script
        if _is_cmrc_cjk(char):
            if run:
                segments.extend(_word_tokenize("".join(run)))
                run = []
            segments.append(char)
        else:
            run.append(char)
    if run:
        segments.extend(_word_tokenize("".join(run)))
    return segments


def _cmrc_em_text(text: str) -> str:
    return "".join(c for c in text.lower().strip() if c not in _PUNCTUATION_CHARS)


def _longest_common_run(a: list[str], b: list[str]) -> int:
    """Length of the longest contiguous run of segments that ``a`` and ``b`` share."""
    best = 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b):
            if x == y:
                current[j + 1] = previous[j] + 1
                best = max(best, current[j + 1])
        previous = current
    return best


def _cmrc_f1_segments(gold: list[str], prediction: list[str]) -> float:
    common = _longest_common_run(gold, prediction)
    if common == 0:
        return 0.0
    precision, recall = common / len(prediction), common / len(gold)
    return 2 * precision * recall / (precision + recall)


def cmrc_f1(answers: list[str], prediction: str) -> float:
    """The CMRC2018 F1 of one prediction (0..1): the best over the gold ``answers``; 0 when there are none."""
    predicted = cmrc_segments(prediction)
    return max((_cmrc_f1_segments(cmrc_segments(a), predicted) for a in answers), default=0.0)


def cmrc_em(answers: list[str], prediction: str) -> int:
    """The CMRC2018 exact match of one prediction: 1 when it equals a gold answer after lower-casing, stripping and
    dropping CMRC_PUNCTUATION, else 0."""
    predicted = _cmrc_em_text(prediction)
    return int(any(_cmrc_em_text(a) == predicted for a in answers))


# Checked in this order: the first row with a keyword in the question wins, so the specific rows ("为什么",
# "什么时候", "哪里", "几月") come before the generic ones ("什么", "哪", "几") that their keywords contain.
QUESTION_TYPES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("why", ("为什么", "为何", "什么原因")),
    ("when", ("什么时候", "什么时间", "何时", "哪一年", "哪年", "几月", "几号", "哪天", "哪一天", "哪个朝代")),
    ("who", ("谁", "哪个人", "哪位", "什么人")),
    ("where", ("哪里", "哪儿", "什么地方", "何地", "何处", "哪个国家", "哪个城市", "在哪")),
    ("how_many", ("多少", "几", "多大", "多长", "多高", "多久", "多远", "多重")),
    ("how", ("怎么", "如何", "怎样")),
    ("what", ("什么", "哪", "啥")),
)


def question_type(question: str) -> str:
    """The type of a Chinese question by QUESTION_TYPES (the first row with a keyword in it), else "other"."""
    for name, keywords in QUESTION_TYPES:
        if any(k in question for k in keywords):
            return name
    return "other"


def cmrc2018_scores(gold_answers: Mapping[str, list[str]], predictions: Mapping[str, str],
                    question_texts: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The CMRC2018 scores of ``predictions`` ({qid: text}) against ``gold_answers`` ({qid: [texts]}).

    Returns ``f1``, ``em``, ``average`` (percentages over every gold question), ``total`` and ``skipped`` (gold
    questions without a prediction: they score 0); with ``question_texts`` also ``by_type``: {type: {f1, em,
    count}} by ``question_type``, in QUESTION_TYPES' order then "other". Predictions of other ids are ignored.
    """
    per_question: dict[str, tuple[float, int]] = {}
    skipped = 0
    for qid, answers in gold_answers.items():
        if qid not in predictions:
            skipped += 1
            per_question[qid] = (0.0, 0)
        else:
            per_question[qid] = (cmrc_f1(answers, predictions[qid]), cmrc_em(answers, predictions[qid]))
    f1, em = _percent(per_question, list(per_question))
    result: dict[str, Any] = {"f1": f1, "em": em, "average": (f1 + em) / 2, "total": len(per_question),
                              "skipped": skipped}
    if question_texts is not None:
        groups: dict[str, list[str]] = collections.defaultdict(list)
        for qid in per_question:
            groups[question_type(question_texts.get(qid, ""))].append(qid)
        order = [name for name, _ in QUESTION_TYPES] + ["other"]
        result["by_type"] = {}
        for name in (n for n in order if n in groups):
            type_f1, type_em = _percent(per_question, groups[name])
            result["by_type"][name] = {"f1": type_f1, "em": type_em, "count": len(groups[name])}
    return result


def _percent(scores: Mapping[str, tuple[float, int]], qids: list[str]) -> tuple[float, float]:
    if not qids:
        return 0.0, 0.0
    return (100.0 * sum(scores[q][0] for q in qids) / len(qids), 100.0 * sum(scores[q][1] for q in qids) / len(qids))


# --------------------------------------------------------------------------- SQuAD v1.1 and v2.0

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_ASCII_PUNCTUATION = frozenset(string.punctuation)


def squad_normalize(text: str) -> str:
    """The SQuAD scripts' normalization: lower-case, drop ASCII punctuation, drop a/an/the, collapse whitespace."""
    text = "".join(c for c in text.lower() if c not in _ASCII_PUNCTUATION)
    return " ".join(_ARTICLES.sub(" ", text).split())


def _token_f1(gold_tokens: list[str], predicted_tokens: list[str]) -> float:
    common = sum((collections.Counter(gold_tokens) & collections.Counter(predicted_tokens)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(predicted_tokens), common / len(gold_tokens)
    return 2 * precision * recall / (precision + recall)


def squad_f1(answers: list[str], prediction: str, version: int = 1) -> float:
    """SQuAD token F1 (0..1), the best over ``answers``. v2: an empty gold or prediction scores 1 when both are
    empty (after normalization), else 0; gold answers that normalize to nothing are dropped, and no answer left
    means the gold answer is the empty string."""
    predicted = squad_normalize(prediction).split()
    if version == 1:
        return max((_token_f1(squad_normalize(a).split(), predicted) for a in answers), default=0.0)
    best = 0.0
    for gold in [g for g in (squad_normalize(a).split() for a in answers) if g] or [[]]:
        best = max(best, float(gold == predicted) if not gold or not predicted else _token_f1(gold, predicted))
    return best


def squad_em(answers: list[str], prediction: str, version: int = 1) -> int:
    """SQuAD exact match after normalization, the best over ``answers`` (v2: no answer left = the empty string)."""
    predicted = squad_normalize(prediction)
    golds = [squad_normalize(a) for a in answers]
    if version == 2:
        golds = [g for g in golds if g] or [""]
    return int(predicted in golds)


def squad_scores(gold_answers: Mapping[str, list[str]], predictions: Mapping[str, str],
                 null_probs: Mapping[str, float] | None = None, threshold: float = 1.0,
                 version: int | None = None) -> dict[str, Any]:
    """The SQuAD scores of ``predictions`` ({qid: text}) against ``gold_answers`` ({qid: [texts]}; [] = no answer).

    ``version`` 1 gives SQuAD v1.1's ``exact_match`` and ``f1``; 2 gives v2.0's ``exact``, ``f1``, ``total``,
    ``HasAns_exact/f1/total``, ``NoAns_exact/f1/total`` (each breakdown when it has questions) and, with
    ``null_probs`` ({qid: no-answer probability}), ``best_exact``, ``best_exact_thresh``, ``best_f1``,
    ``best_f1_thresh``. A prediction whose null probability exceeds ``threshold`` counts as "no answer". None
    (default): 2 when a question has no gold answer or ``null_probs`` is given, else 1. All scores are percentages
    over every gold question; ``skipped`` counts questions without a prediction (they score 0).
    """
    if version is None:
        version = 2 if null_probs is not None or any(not a for a in gold_answers.values()) else 1
    if version not in (1, 2):
        raise ValueError(f"SQuAD version {version!r}: 1 or 2")
    answered = [q for q in gold_answers if q in predictions]
    skipped = len(gold_answers) - len(answered)
    if version == 1:
        raw = {q: (0.0, 0) for q in gold_answers}
        raw.update({q: (squad_f1(gold_answers[q], predictions[q]), squad_em(gold_answers[q], predictions[q]))
                    for q in answered})
        f1, em = _percent(raw, list(raw))
        return {"exact_match": em, "f1": f1, "total": len(raw), "skipped": skipped}

    if null_probs is not None:
        missing = [q for q in answered if q not in null_probs]
        if missing:
            raise ValueError(f"no null probability for question {missing[0]!r} ({len(missing)} questions lack one)")
    has_answer = {q: bool(a) for q, a in gold_answers.items()}
    exact_raw = {q: 0 for q in gold_answers}
    f1_raw = {q: 0.0 for q in gold_answers}
    for q in answered:
        exact_raw[q] = squad_em(gold_answers[q], predictions[q], version=2)
        f1_raw[q] = squad_f1(gold_answers[q], predictions[q], version=2)
    scores: dict[str, tuple[float, int]] = {}
    for q in gold_answers:
        if q in predictions and null_probs is not None and null_probs[q] > threshold:
            scores[q] = (float(not has_answer[q]), int(not has_answer[q]))  # predicted "no answer"
        else:
            scores[q] = (f1_raw[q], exact_raw[q])
    f1, exact = _percent(scores, list(scores))
    result: dict[str, Any] = {"exact": exact, "f1": f1, "total": len(scores)}
    for prefix, qids in (("HasAns", [q for q in scores if has_answer[q]]),
                         ("NoAns", [q for q in scores if not has_answer[q]])):
        if qids:
            part_f1, part_exact = _percent(scores, qids)
            result.update({f"{prefix}_exact": part_exact, f"{prefix}_f1": part_f1, f"{prefix}_total": len(qids)})
    if null_probs is not None:
        for name, raw_scores in (("exact", exact_raw), ("f1", f1_raw)):
            best, best_threshold = _best_threshold(raw_scores, predictions, null_probs, has_answer, set(answered))
            result[f"best_{name}"], result[f"best_{name}_thresh"] = best, best_threshold
    result["skipped"] = skipped
    return result


def _best_threshold(raw_scores: Mapping[str, float], predictions: Mapping[str, str],
                    null_probs: Mapping[str, float], has_answer: Mapping[str, bool],
                    answered: set[str]) -> tuple[float, float]:
    """The official v2 search: start from "every question predicted unanswerable" (the no-answer questions right),
    then admit questions in increasing null probability, each adding its score (answerable) or -1 for a non-empty
    prediction (unanswerable); the best running total and the probability where it was reached. Ties in the
    probability are taken one question at a time, in ``null_probs``' order, as the official script does."""
    score = best = sum(1 for q in answered if not has_answer[q])  # unanswered questions are never right
    best_threshold = 0.0
    for q in sorted(null_probs, key=lambda k: null_probs[k]):
        if q not in answered:
            continue
        score += raw_scores[q] if has_answer[q] else (-1 if predictions[q] else 0)
        if score > best:
            best, best_threshold = score, float(null_probs[q])
    return 100.0 * best / max(len(raw_scores), 1), best_threshold


# --------------------------------------------------------------------------- gold files

GOLD = "gold file"  # what the messages call a gold file given without its path


def _gold_questions(dataset: Any, path: str) -> Iterator[tuple[str, str, list[str], str]]:
    """(qid, question, gold answer texts, context) of each question, read by ``mrc_data.iter_questions`` (every
    question needs an "answers" list); a question marked ``is_impossible`` has no gold answers."""
    for qid, question, context, answers, impossible in mrc_data.iter_questions(dataset, path, require_answers=True):
        yield qid, question, [] if impossible else [text for text, _ in answers], context


def gold_answers(dataset: Any, path: str = GOLD) -> dict[str, list[str]]:
    """{question id: gold answer texts} of a parsed gold file (SQuAD-style or CMRC2018's original format, as
    ``mrc_data.iter_questions`` reads them); ids are strings; [] for a question without an answer.
    ``mrc_data.DataFormatError`` (a ValueError) names ``path`` and the question when one is malformed or an id
    repeats."""
    return {qid: answers for qid, _, answers, _ in _gold_questions(dataset, path)}


def questions(dataset: Any, path: str = GOLD) -> dict[str, str]:
    """{question id: question text} of a parsed gold file."""
    return {qid: question for qid, question, _, _ in _gold_questions(dataset, path)}


_CJK = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


def detect_metric(dataset: Any, path: str = GOLD) -> str:
    """"squad_v2" when a gold question has no answer, else "cmrc2018" when a context or gold answer holds a CJK
    character, else "squad"."""
    found = list(_gold_questions(dataset, path))
    if any(not answers for _, _, answers, _ in found):
        return "squad_v2"
    if any(_CJK.search(context) or any(_CJK.search(a) for a in answers) for _, _, answers, context in found):
        return "cmrc2018"
    return "squad"


# --------------------------------------------------------------------------- files


def _write_text(path: str, text: str) -> None:
    if "://" in path:
        import tensorflow as tf

        with tf.io.gfile.GFile(path, "w") as f:
            f.write(text)
    else:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)


def read_predictions(path: str) -> dict[str, str]:
    """A predictions file: a JSON object {question id: answer text}."""
    predictions = mrc_data.read_json(path, "predictions file")
    if not isinstance(predictions, dict):
        raise ValueError(f"{path}: predictions must be a JSON object {{question id: answer text}}, "
                         f"not a {type(predictions).__name__}")
    for qid, text in predictions.items():
        if not isinstance(text, str):
            raise ValueError(f"{path}: the prediction for question {qid!r} is not a string: {text!r:.60}")
    return predictions


def read_null_odds(path: str) -> dict[str, float]:
    """A no-answer file: a JSON object {question id: number} (probability or score; larger = rather no answer)."""
    odds = mrc_data.read_json(path, "null odds file")
    if not isinstance(odds, dict):
        raise ValueError(f"{path}: null odds must be a JSON object {{question id: number}}")
    for qid, value in odds.items():
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"{path}: the null odds of question {qid!r} is not a number: {value!r:.60}")
    return odds


def evaluate_files(gold_path: str, predictions_path: str, metric: str = "auto", null_odds_path: str | None = None,
                   threshold: float = 1.0) -> dict[str, Any]:
    """Scores a predictions file against a gold file with ``metric`` (METRICS; "auto": ``detect_metric``).

    Returns ``{"metric": name, **scores}``: ``cmrc2018_scores`` with the question-type breakdown, or
    ``squad_scores`` (v1.1 for "squad", v2.0 for "squad_v2"; ``null_odds_path`` and ``threshold`` apply to v2).
    Bad input raises ValueError naming the file (``mrc_data.DataFormatError`` for a file that is not JSON or a gold
    file that is not one, naming the question too).
    """
    if metric not in METRICS:
        raise ValueError(f"metric {metric!r}: one of {', '.join(METRICS)}")
    dataset = mrc_data.read_json(gold_path, "gold file")
    gold = gold_answers(dataset, gold_path)
    chosen = detect_metric(dataset, gold_path) if metric == "auto" else metric
    texts = questions(dataset, gold_path)
    if not gold:
        raise ValueError(f"{gold_path}: no questions in the gold file")
    predictions = read_predictions(predictions_path)
    if null_odds_path and chosen != "squad_v2":
        raise ValueError(f"{null_odds_path}: null odds apply to the squad_v2 metric only, not {chosen}")
    if chosen == "cmrc2018":
        scores = cmrc2018_scores(gold, predictions, texts)
    elif chosen == "squad":
        scores = squad_scores(gold, predictions, version=1)
    else:
        null_probs = read_null_odds(null_odds_path) if null_odds_path else None
        try:
            scores = squad_scores(gold, predictions, null_probs, threshold, version=2)
        except ValueError as err:
            raise ValueError(f"{null_odds_path}: {err}") from None
    return {"metric": chosen, **scores}


# --------------------------------------------------------------------------- CLI


def define_flags(fv) -> None:
    from absl import flags

    flags.DEFINE_string("gold_file", None, "Gold JSON (SQuAD-style or CMRC2018's original format); or the first "
                        "positional argument.", flag_values=fv)
    flags.DEFINE_string("predictions_file", None, "Predictions JSON {question id: answer text}; or the second "
                        "positional argument.", flag_values=fv)
    flags.DEFINE_enum("metric", "auto", list(METRICS), "auto: squad_v2 when a question has no gold answer, else "
                      "cmrc2018 when the text is Chinese, else squad (v1.1).", flag_values=fv)
    flags.DEFINE_string("null_odds_file", None, "squad_v2: JSON {question id: no-answer probability}; adds the "
                        "best thresholds.", flag_values=fv)
    flags.DEFINE_float("na_prob_thresh", 1.0, "squad_v2: a prediction whose null odds exceed this counts as "
                       "'no answer' (the official script's --na-prob-thresh).", flag_values=fv)
    flags.DEFINE_string("out_file", None, "Also write the scores (JSON) here.", flag_values=fv)


def _split_positionals(argv: list[str]) -> tuple[list[str], list[str]]:
    """(flag arguments, positional arguments): cli.parse_flags refuses positionals, and the two files may come as
    such. An argument is positional unless it starts with '-' or is the value of a preceding ``--flag value``."""
    from absl import flags

    fv = flags.FlagValues()
    define_flags(fv)
    flag_args: list[str] = []
    positionals: list[str] = []
    takes_value = False
    for i, arg in enumerate(argv):
        if takes_value:
            flag_args.append(arg)
            takes_value = False
        elif arg == "--":
            positionals.extend(argv[i + 1:])
            break
        elif arg.startswith("-") and arg != "-":
            flag_args.append(arg)
            name = arg.lstrip("-")
            takes_value = "=" not in name and name in fv and not isinstance(fv[name], flags.BooleanFlag)
        else:
            positionals.append(arg)
    return flag_args, positionals


def parse_flags(argv: list[str] | None = None):
    argv = list(sys.argv[1:] if argv is None else argv)
    flag_args, positionals = _split_positionals(argv)
    if len(positionals) > 2:
        cli.usage_error(f"unexpected arguments {' '.join(positionals[2:])!r}: give GOLD.json PREDICTIONS.json")
    names = ("gold_file", "predictions_file")
    extra = [f"--{name}={value}" for name, value in zip(names, positionals)]
    given = [name for name in names[:len(positionals)] if any(a.lstrip("-").split("=")[0] == name for a in flag_args)]
    if given:
        cli.usage_error(f"--{given[0]} and a positional argument both give that file")
    args = cli.parse_flags(flag_args + extra, define_flags, __doc__.split("\nWhat is defined here")[0].rstrip())
    for name in names:
        if not args[name].value:
            cli.usage_error(f"no {name.replace('_', ' ')}: python mrc_metric.py GOLD.json PREDICTIONS.json")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_flags(argv)
    result = evaluate_files(args.gold_file, args.predictions_file, args.metric, args.null_odds_file,
                            args.na_prob_thresh)
    if result.get("skipped"):
        print(f"{result['skipped']} of {result['total']} questions have no prediction: they score 0", file=sys.stderr)
    text = json.dumps(result, ensure_ascii=False, indent=2)
    if args.out_file:
        _write_text(args.out_file, text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(cli.clean_errors(main)())
