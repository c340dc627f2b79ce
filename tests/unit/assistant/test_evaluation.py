from __future__ import annotations

from collections import Counter

from hexcity.assistant import AssistantService, HashedNgramEmbedder, load_shipped_articles
from hexcity.assistant.evaluation import _mcnemar_exact, load_qa_set, qa_set_sha256, run, summarise

FROZEN_SHA256 = "cb03b20029b9520eb93a697c961a8de1ca2b2e69c727d8afe232e088298c3d83"


def test_qa_set_is_frozen_and_balanced() -> None:
    assert qa_set_sha256() == FROZEN_SHA256  # changing the gold set is a reviewed decision
    items = load_qa_set()["items"]
    assert len(items) == 40
    assert Counter(item["type"] for item in items) == {
        "single_fact": 16,
        "multi_hop": 8,
        "aggregate": 4,
        "unanswerable": 4,
        "acl": 4,
        "freshness": 4,
    }
    assert Counter(item["split"] for item in items) == {"dev": 14, "test": 26}
    assert len({item["id"] for item in items}) == 40


def test_no_access_leak_on_the_gold_set_and_metrics_are_sane() -> None:
    articles = load_shipped_articles()
    embedder = HashedNgramEmbedder()
    results = run(lambda: AssistantService(articles, embedder))
    summary = summarise(results)
    assert len(results) == 120
    for arm in ("plain", "graph", "routed"):
        metrics = summary["arms"][arm]
        assert metrics["acl_leaks"] == 0
    assert summary["by_type"]["routed/unanswerable"]["refusal_accuracy"]["mean"] == 1.0
    assert summary["by_type"]["routed/freshness"]["answer_accuracy"]["mean"] == 1.0
    assert summary["by_type"]["routed/multi_hop"]["answer_accuracy"]["mean"] == 1.0


def test_mcnemar_exact() -> None:
    assert _mcnemar_exact(0, 0) == 1.0
    assert _mcnemar_exact(0, 6) == 0.03125
    assert _mcnemar_exact(3, 3) == 1.0
