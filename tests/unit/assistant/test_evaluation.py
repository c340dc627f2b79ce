from __future__ import annotations

from collections import Counter

from hexcity.assistant import AssistantService, HashedNgramEmbedder, load_shipped_articles
from hexcity.assistant.evaluation import _mcnemar_exact, load_qa_set, qa_set_sha256, run, summarise

FROZEN_SHA256 = "39e841c25777ff75a4428613a42cc7ecc0fb31d03f27c66e49b6003c4bbe4d68"


def test_qa_set_is_frozen_and_balanced() -> None:
    assert qa_set_sha256() == FROZEN_SHA256  # changing the gold set is a reviewed decision
    items = load_qa_set()["items"]
    assert len(items) == 60
    assert Counter(item["type"] for item in items) == {
        "single_fact": 23,
        "multi_hop": 12,
        "aggregate": 6,
        "unanswerable": 6,
        "acl": 7,
        "freshness": 6,
    }
    assert Counter(item["split"] for item in items) == {"dev": 21, "test": 39}
    assert len({item["id"] for item in items}) == 60


def test_no_access_leak_on_the_gold_set_and_metrics_are_sane() -> None:
    articles = load_shipped_articles()
    embedder = HashedNgramEmbedder()
    results = run(lambda: AssistantService(articles, embedder))
    summary = summarise(results)
    assert len(results) == 180
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
