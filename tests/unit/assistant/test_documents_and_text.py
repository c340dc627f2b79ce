from __future__ import annotations

import pytest

from hexcity.assistant.adapters.corpus import load_shipped_articles, shipped_source
from hexcity.assistant.domain.documents import ArticleFormatError, chunk_article, parse_article
from hexcity.assistant.domain.text import expand_query, normalize, split_sentences, tokenize

ARTICLE = """---
id: demo
title: Demo
audience: customer
version: 4
---
# Demo

## First part
One sentence here. Two sentences here! Three?

## Second part
Only one.
"""


def test_parse_article_reads_front_matter() -> None:
    article = parse_article(ARTICLE)
    assert (article.doc_id, article.title, article.audience, article.version) == (
        "demo",
        "Demo",
        "customer",
        4,
    )
    assert ARTICLE[article.body_offset :].startswith("# Demo")


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("no front matter", "must start"),
        ("---\nid: x\n", "not closed"),
        ("---\nid: x\ntitle: t\naudience: customer\n---\nbody", "lacks ['version']"),
        ("---\nid: x\ntitle: t\naudience: pirates\nversion: 1\n---\nbody", "unknown audience"),
        ("---\nid: x\ntitle: t\naudience: customer\nversion: one\n---\nbody", "version must be"),
        ("---\nid: x\ntitle: t\naudience: customer\nversion: 1\n---\n  \n", "body is empty"),
    ],
)
def test_parse_article_rejects_malformed(source: str, message: str) -> None:
    with pytest.raises(ArticleFormatError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_article(source)


def test_chunks_keep_provenance_offsets_and_headings() -> None:
    article = parse_article(ARTICLE)
    chunks = chunk_article(article)
    assert [c.chunk_id for c in chunks] == ["demo#0", "demo#1"]
    assert chunks[0].heading_path == ("Demo", "First part")
    assert chunks[1].heading_path == ("Demo", "Second part")
    for chunk in chunks:
        assert ARTICLE[chunk.start : chunk.end] == chunk.text
    assert chunks[0].text == "One sentence here. Two sentences here! Three?"


def test_chunking_splits_only_at_sentence_ends() -> None:
    body = "## Long\n" + " ".join(f"Sentence number {i} has six words." for i in range(20))
    article = parse_article(f"---\nid: long\ntitle: L\naudience: customer\nversion: 1\n---\n{body}")
    chunks = chunk_article(article, max_tokens=20)
    assert len(chunks) == 7  # 6 words per sentence: 3 per chunk (18 ≤ 20), 20 sentences → 6 × 3 + 2
    assert all(chunk.text.endswith("words.") for chunk in chunks)
    assert all(len(chunk.text.split()) <= 20 for chunk in chunks)


def test_shipped_corpus_is_valid_and_offsets_point_into_files() -> None:
    articles = load_shipped_articles()
    assert 15 <= len(articles) <= 25
    assert {a.audience for a in articles} == {"customer", "driver", "merchant", "staff"}
    for article in articles:
        source = shipped_source(article.doc_id)
        assert source is not None
        for chunk in chunk_article(article):
            assert source[chunk.start : chunk.end] == chunk.text


def test_tokenize_keeps_ids_codes_and_strips_diacritics() -> None:
    assert tokenize("Where is ORD-1042? Code WELCOME10, error InsufficientFunds") == [
        "ord-1042",
        "code",
        "welcome10",
        "error",
        "insufficientfund",
    ]
    assert normalize("Hoàn tiền ĐƠN") == "hoan tien don"
    assert tokenize("refunds parcels policies") == ["refund", "parcel", "policy"]


def test_split_sentences_and_expansion() -> None:
    text = "First one. Second one! Third"
    assert [text[s:e] for s, e in split_sentences(text)] == ["First one.", "Second one!", "Third"]
    assert expand_query(["money", "money"], {"money": ("refund", "wallet")}) == [
        "money",
        "money",
        "refund",
        "wallet",
    ]


def test_platform_docs_are_loaded_for_staff_with_provenance() -> None:
    from pathlib import Path

    from hexcity.assistant import AssistantService, HashedNgramEmbedder, Viewer
    from hexcity.assistant.adapters.corpus import load_markdown_folder

    folder = Path(__file__).resolve().parents[3] / "docs"
    docs = load_markdown_folder(folder)
    assert "platform-payments" in {a.doc_id for a in docs}
    payments = next(a for a in docs if a.doc_id == "platform-payments")
    source = (folder / "payments.md").read_text(encoding="utf-8")
    assert payments.audience == "staff" and f"# {payments.title}\n" in source
    for chunk in chunk_article(payments):
        assert source[chunk.start : chunk.end] == chunk.text
    service = AssistantService([*load_shipped_articles(), *docs], HashedNgramEmbedder())
    staff = service.search("idempotency key retention pruning", Viewer("agent", "staff"), k=3)
    assert staff[0].chunk.doc_id.startswith("platform-")
    customer = service.search("idempotency key retention pruning", Viewer("alice", "customer"), k=10)
    assert not any(hit.chunk.doc_id.startswith("platform-") for hit in customer)
