"""The help-center articles shipped as package data in ``hexcity/assistant/corpus/*.md``."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from hexcity.assistant.domain.documents import AUDIENCES, Article, ArticleFormatError, parse_article
from hexcity.assistant.errors import CorpusInvalid

MAX_ARTICLES = 1000


def load_shipped_articles() -> list[Article]:
    """Every shipped article, sorted by id. Raises :class:`CorpusInvalid` on a malformed file."""
    folder = resources.files("hexcity.assistant").joinpath("corpus")
    articles = []
    for entry in sorted(folder.iterdir(), key=lambda item: item.name):
        if not entry.name.endswith(".md"):
            continue
        try:
            article = parse_article(entry.read_text(encoding="utf-8"))
        except ArticleFormatError as error:
            raise CorpusInvalid(f"{entry.name}: {error}") from error
        if entry.name != f"{article.doc_id}.md":
            raise CorpusInvalid(f"{entry.name}: file name must be '<id>.md'")
        articles.append(article)
        if len(articles) > MAX_ARTICLES:
            raise CorpusInvalid(f"more than {MAX_ARTICLES} articles")
    ids = [article.doc_id for article in articles]
    if len(set(ids)) != len(ids):
        raise CorpusInvalid("duplicate article ids")
    return sorted(articles, key=lambda article: article.doc_id)


def shipped_source(doc_id: str) -> str | None:
    """The raw markdown of a shipped article (chunk offsets point into it), or None."""
    entry = resources.files("hexcity.assistant").joinpath("corpus", f"{doc_id}.md")
    return entry.read_text(encoding="utf-8") if entry.is_file() else None


def load_markdown_folder(
    folder: Path, *, audience: str = "staff", prefix: str = "platform-"
) -> list[Article]:
    """Plain markdown files (the platform's own docs, no front matter) as articles for ``audience``.

    Id: ``prefix`` + file stem; title: the first ``# `` line (else the stem); version 1; chunk
    offsets point into the file. Raises :class:`CorpusInvalid` for an unknown audience or too many files.
    """
    if audience not in AUDIENCES:
        raise CorpusInvalid(f"unknown audience {audience!r}")
    files = sorted(path for path in folder.glob("*.md") if path.is_file())
    if len(files) > MAX_ARTICLES:
        raise CorpusInvalid(f"more than {MAX_ARTICLES} documents in {folder}")
    articles = []
    for path in files:
        text = path.read_text(encoding="utf-8")
        if not text.strip():
            continue
        title = next((line[2:].strip() for line in text.splitlines() if line.startswith("# ")), path.stem)
        articles.append(Article(f"{prefix}{path.stem}", title, audience, 1, text, 0))
    return articles
