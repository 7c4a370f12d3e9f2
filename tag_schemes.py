"""Tag schemes of NER files: BIO, BIOES (BILOU's L-/U- read as E-/S-) and BMES; detected, read as BIO, written back.

A tag is ``O`` or ``<letter>-<type>``; the type is any run of non-space characters (``PER.NAM``, ``PER.NOM`` are
two types). The schemes differ in their letters:

=======  ============================  ==========================================================
scheme   letters                       an entity of one unit / of several units
=======  ============================  ==========================================================
BIO      B I O                         ``B-x`` / ``B-x I-x ... I-x``
BIOES    B I E S O                     ``S-x`` / ``B-x I-x ... E-x``
BILOU    B I L U O                     ``U-x`` / ``B-x I-x ... L-x``
BMES     B M E S O                     ``S-x`` / ``B-x M-x ... E-x``
=======  ============================  ==========================================================

The model works in BIO: B->B, I/M->I, E/L->I, S/U->B (tag by tag, so a tag out of sequence keeps the meaning
conlleval gives its BIO form). Written back, BIO tags go through unchanged in BIO and entity by entity (conlleval's
chunks, see chunks) in the other schemes, so a well-formed file read and written back is the same file.

detect picks the scheme that reads a file's tags with the fewest problems: tags whose letter the scheme lacks, plus
tags out of its sequence rules (an ``E-x`` that closes nothing, a ``B-x`` of BIOES that nothing continues or ends,
...); ties go to a preferred scheme (the training file's, a ``.bmes`` file name), else BIO, BIOES, BMES, BILOU.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Iterable, Sequence

OUTSIDE = "O"
TAG_PATTERN = re.compile(r"^([BIMESLU])-(\S+)$")
SUPPORTED = ("BIO (B-/I-/O), BIOES (B-/I-/E-/S-/O; BILOU's L-/U- as E-/S-) and BMES (B-/M-/E-/S-/O) tags, any "
             "type after the dash")


@dataclasses.dataclass(frozen=True)
class Scheme:
    """The letters of one scheme: ``end`` and ``single`` are None in BIO (entities end on an inside tag, a
    one-unit entity is a lone ``B-``)."""
    name: str
    begin: str
    inside: str
    end: str | None
    single: str | None

    @functools.cached_property  # consulted per sentence
    def letters(self) -> frozenset[str]:
        return frozenset(x for x in (self.begin, self.inside, self.end, self.single) if x)

    @property
    def title(self) -> str:
        return self.name.upper()


SCHEMES: dict[str, Scheme] = {s.name: s for s in (
    Scheme("bio", "B", "I", None, None), Scheme("bioes", "B", "I", "E", "S"), Scheme("bmes", "B", "M", "E", "S"),
    Scheme("bilou", "B", "I", "L", "U"))}
ORDER = ("bio", "bioes", "bmes", "bilou")  # ties without a preference
_TO_BIO = {"B": "B", "I": "I", "M": "I", "E": "I", "L": "I", "S": "B", "U": "B"}


def split_tag(tag: str) -> tuple[str, str] | None:
    """(letter, type) of a tag, None for ``O``; raises ValueError for anything else."""
    if tag == OUTSIDE:
        return None
    match = TAG_PATTERN.match(tag)
    if not match:
        raise ValueError(f"tag {tag!r} is not BIO, BIOES or BMES: expected O or a prefix B-, I-, E-, S-, M- (L-, U-) "
                         f"and a type")
    return match.group(1), match.group(2)


def to_bio(tags: Sequence[str]) -> list[str]:
    """Each tag in BIO (see the module docstring); the letters are not checked against a scheme (see invalid)."""
    return [t if t == OUTSIDE or t[0] in "BI" else _TO_BIO[t[0]] + t[1:] for t in tags]


def chunks(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, first, last) of each entity of BIO tags, conlleval's rules: an entity starts at ``B-x``, or at ``I-x``
    after a tag of another type or ``O``, and ends before ``O``, ``B-`` or another type."""
    found = []
    kind, begin = None, 0
    for i, tag in enumerate(list(tags) + [OUTSIDE]):
        this = None if tag == OUTSIDE else tag[2:]
        starts = tag.startswith("B-") or (tag.startswith("I-") and this != kind)
        if kind is not None and (tag == OUTSIDE or starts):
            found.append((kind, begin, i - 1))
            kind = None
        if starts:
            kind, begin = this, i
    return found


def from_bio(tags: Sequence[str], scheme: Scheme | str) -> list[str]:
    """BIO tags of one sentence in ``scheme``: unchanged for BIO, else written entity by entity (chunks)."""
    scheme = SCHEMES[scheme] if isinstance(scheme, str) else scheme
    if scheme.name == "bio":
        return list(tags)
    out = [OUTSIDE] * len(tags)
    for kind, first, last in chunks(tags):
        if first == last:
            out[first] = f"{scheme.single}-{kind}"
        else:
            out[first] = f"{scheme.begin}-{kind}"
            out[first + 1:last] = [f"{scheme.inside}-{kind}"] * (last - first - 1)
            out[last] = f"{scheme.end}-{kind}"
    return out


def invalid(tags: Sequence[str], scheme: Scheme) -> list[int]:
    """Indices of the tags whose letter ``scheme`` does not have (``tags`` must pass split_tag)."""
    letters = scheme.letters
    return [i for i, t in enumerate(tags) if t != OUTSIDE and t[0] not in letters]


def sequence_problems(tags: Sequence[str], scheme: Scheme, limit: int | None = None) -> list[tuple[int, str]]:
    """(index, what is wrong) of each tag out of ``scheme``'s sequence rules, tags with other letters ignored; at
    most ``limit``. BIO: an ``I-x`` that follows no ``B-x``/``I-x`` ("I-x after O"); the others also an entity
    that its end tag does not close ("B-x before O")."""
    problems: list[tuple[int, str]] = []
    opened = {scheme.begin, scheme.inside}
    closing = {scheme.inside, scheme.end} if scheme.end else {scheme.inside}
    n = len(tags)
    for i, tag in enumerate(tags):
        if tag == OUTSIDE:
            continue
        letter, kind = tag[0], tag[2:]
        before = tags[i - 1] if i else None
        if letter in (scheme.inside, scheme.end) and not (before and before[0] in opened and before[2:] == kind):
            problems.append((i, f"{tag} after {before or 'the sentence start'}"))
        elif scheme.end and letter in opened:
            after = tags[i + 1] if i + 1 < n else None
            if not (after and after[0] in closing and after[2:] == kind):
                problems.append((i, f"{tag} before {after or 'the sentence end'}"))
        if limit is not None and len(problems) >= limit:
            break
    return problems


def detect(sentences: Iterable[Sequence[str]], prefer: Sequence[str] = ()) -> tuple[Scheme, list[str]]:
    """(the scheme that reads ``sentences``' tags with the fewest problems, the names of every scheme that ties
    with it). Problems: tags whose letter a scheme lacks plus tags out of its sequence rules; ``prefer`` (names,
    first first) breaks ties, then ORDER. Tags must pass split_tag."""
    sentences = [s for s in sentences if any(t != OUTSIDE for t in s)]
    letters: dict[str, int] = {}
    for tags in sentences:
        for t in tags:
            if t != OUTSIDE:
                letters[t[0]] = letters.get(t[0], 0) + 1
    order = [p for p in prefer if p in SCHEMES] + [p for p in ORDER if p not in prefer]
    costs: dict[str, int] = {}
    best = None
    for name in order:  # cheapest letter counts first would find the best sooner; 4 schemes do not need it
        scheme = SCHEMES[name]
        cost = sum(c for letter, c in letters.items() if letter not in scheme.letters)
        if best is not None and cost > best:
            continue
        for tags in sentences:
            if best is not None and cost > best:
                break
            cost += len(sequence_problems(tags, scheme, None if best is None else best - cost + 1))
        costs[name] = cost
        best = cost if best is None else min(best, cost)
    ties = [name for name in order if costs.get(name) == best]
    return SCHEMES[ties[0]], ties
