"""Query and document normalisation: NFKC, lowercase, diacritics-insensitive tokens, glossary expansion.

Tokens keep exact identifiers (``ord-1042``, ``welcome10``, error codes such as ``insufficientfunds``)
because lexical matching must find order ids, promo codes and error codes verbatim.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping

_TOKEN = re.compile(r"[a-z0-9]+(?:[-_][a-z0-9]+)*")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")

_STOPWORD_TEXT = (
    "a an and are as at be by can do does for from has have how i if in is it its me my of on or our so "
    "that the their them then there this to was we what when where which who why will with you your "
    "after before into than not no any more most per"
)
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def strip_diacritics(text: str) -> str:
    """``text`` without combining marks (Vietnamese "hoàn tiền" → "hoan tien"), NFKC-normalised."""
    decomposed = unicodedata.normalize("NFKD", text)
    kept = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return unicodedata.normalize("NFKC", kept.replace("đ", "d").replace("Đ", "D"))


def normalize(text: str) -> str:
    """NFKC, lowercase, diacritics removed."""
    return strip_diacritics(unicodedata.normalize("NFKC", text)).lower()


def tokenize(text: str, *, keep_stopwords: bool = False) -> list[str]:
    """Lowercase tokens of ``text``; ids with dashes/underscores stay whole; light plural stemming."""
    tokens = []
    for token in _TOKEN.findall(normalize(text)):
        if not keep_stopwords and token in STOPWORDS:
            continue
        tokens.append(_stem(token))
    return tokens


def _stem(token: str) -> str:
    if len(token) > 4 and token.endswith("ies"):
        return token[:-3] + "y"
    if (
        len(token) > 3
        and token.endswith("s")
        and not token.endswith("ss")
        and not any(c.isdigit() for c in token)
    ):
        return token[:-1]
    return token


def split_sentences(text: str) -> list[tuple[int, int]]:
    """(start, end) character spans of the sentences of ``text``; never cuts inside a sentence."""
    spans = []
    start = 0
    for match in _SENTENCE_END.finditer(text):
        spans.append((start, match.start()))
        start = match.end()
    if start < len(text):
        spans.append((start, len(text)))
    return [(s, e) for s, e in spans if text[s:e].strip()]


def expand_query(tokens: list[str], glossary: Mapping[str, tuple[str, ...]]) -> list[str]:
    """``tokens`` plus the glossary synonyms of each token (each added once, in a fixed order)."""
    expanded = list(tokens)
    seen = set(tokens)
    for token in tokens:
        for synonym in glossary.get(token, ()):
            for part in tokenize(synonym):
                if part not in seen:
                    seen.add(part)
                    expanded.append(part)
    return expanded
