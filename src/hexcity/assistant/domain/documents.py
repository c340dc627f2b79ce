"""Help articles and their chunks with provenance (doc id, version, heading path, character offsets).

Chunking: by ``##`` heading first, then by whole sentences up to ``max_tokens`` (default 300 words,
no mid-sentence cut), so a citation points at a short, precise passage.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from hexcity.assistant.domain.text import split_sentences

AUDIENCES = frozenset({"customer", "driver", "merchant", "staff"})
_HEADING = re.compile(r"^(#{1,3})\s+(.+?)\s*$", re.MULTILINE)
_FIELD = re.compile(r"^([a-z_]+):\s*(.+?)\s*$")


class ArticleFormatError(ValueError):
    """A help article has no valid front matter or no body."""


@dataclass(frozen=True, slots=True)
class Article:
    doc_id: str
    title: str
    audience: str
    version: int
    body: str
    body_offset: int  # offset of ``body`` inside the source file text


@dataclass(frozen=True, slots=True)
class Chunk:
    chunk_id: str  # "<doc_id>#<n>"
    doc_id: str
    version: int
    audience: str
    heading_path: tuple[str, ...]
    text: str
    start: int  # character offsets in the article's source text
    end: int
    content_hash: str


def parse_article(source: str) -> Article:
    """The article of a markdown file with ``---`` front matter (id, title, audience, version).

    Raises :class:`ArticleFormatError` on missing fields, an unknown audience or an empty body.
    """
    if not source.startswith("---\n"):
        raise ArticleFormatError("article must start with '---' front matter")
    end = source.find("\n---\n", 4)
    if end < 0:
        raise ArticleFormatError("front matter is not closed")
    fields: dict[str, str] = {}
    for line in source[4:end].splitlines():
        match = _FIELD.match(line)
        if match:
            fields[match.group(1)] = match.group(2)
    missing = {"id", "title", "audience", "version"} - fields.keys()
    if missing:
        raise ArticleFormatError(f"front matter lacks {sorted(missing)}")
    if fields["audience"] not in AUDIENCES:
        raise ArticleFormatError(f"unknown audience {fields['audience']!r}")
    if not fields["version"].isdigit():
        raise ArticleFormatError("version must be a non-negative integer")
    body_offset = end + len("\n---\n")
    body = source[body_offset:]
    if not body.strip():
        raise ArticleFormatError("article body is empty")
    return Article(
        fields["id"], fields["title"], fields["audience"], int(fields["version"]), body, body_offset
    )


def chunk_article(article: Article, *, max_tokens: int = 300) -> list[Chunk]:
    """Chunks of ``article``: one per section, split at sentence ends when above ``max_tokens`` words."""
    if max_tokens < 20:
        raise ValueError("max_tokens must be at least 20")
    chunks: list[Chunk] = []
    for heading_path, start, end in _sections(article):
        text = article.body[start:end]
        for span_start, span_end in _pack_sentences(text, max_tokens):
            piece = text[span_start:span_end].strip()
            if not piece:
                continue
            lead = len(text[span_start:span_end]) - len(text[span_start:span_end].lstrip())
            absolute = article.body_offset + start + span_start + lead
            chunks.append(
                Chunk(
                    chunk_id=f"{article.doc_id}#{len(chunks)}",
                    doc_id=article.doc_id,
                    version=article.version,
                    audience=article.audience,
                    heading_path=heading_path,
                    text=piece,
                    start=absolute,
                    end=absolute + len(piece),
                    content_hash=hashlib.sha256(piece.encode()).hexdigest()[:16],
                )
            )
    return chunks


def _sections(article: Article) -> list[tuple[tuple[str, ...], int, int]]:
    """(heading path, body start, body end) of each heading's own text."""
    headings = list(_HEADING.finditer(article.body))
    sections = []
    path: list[str] = []
    for index, match in enumerate(headings):
        level = len(match.group(1))
        path = [*path[: level - 1], match.group(2)]
        end = headings[index + 1].start() if index + 1 < len(headings) else len(article.body)
        if article.body[match.end() : end].strip():
            sections.append((tuple(path), match.end(), end))
    if not headings:
        sections.append(((article.title,), 0, len(article.body)))
    return sections


def _pack_sentences(text: str, max_tokens: int) -> list[tuple[int, int]]:
    packs: list[tuple[int, int]] = []
    current_start, current_end, count = -1, -1, 0
    for start, end in split_sentences(text):
        words = len(text[start:end].split())
        if current_start >= 0 and count + words > max_tokens:
            packs.append((current_start, current_end))
            current_start, count = -1, 0
        if current_start < 0:
            current_start = start
        current_end, count = end, count + words
    if current_start >= 0:
        packs.append((current_start, current_end))
    return packs
