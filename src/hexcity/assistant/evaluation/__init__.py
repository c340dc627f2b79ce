"""The frozen QA set and the evaluation harness: plain vs graph vs routed at one context budget.

Metrics (requirements §18): hit@1/3/5/10, all-evidence recall@k, MRR@10 on answerable items;
answer accuracy (gold fact contained in the answer after normalisation), refusal accuracy,
citation precision, ACL leak count (must be 0), staleness rate on freshness items, latency.
Bootstrap 95 % CIs at a fixed seed and an exact McNemar test between arms on answer accuracy.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from hexcity.assistant.domain.acl import Viewer, for_audience
from hexcity.assistant.domain.text import normalize
from hexcity.assistant.freshness import apply_event as apply_event_to_service
from hexcity.assistant.service import ARMS, AssistantService, record_from_payload
from hexcity.kernel.events import Event

BOOTSTRAP_SEED = 20261125
BOOTSTRAP_ROUNDS = 2000
RETRIEVAL_DEPTH = 10


@dataclass(frozen=True, slots=True)
class ItemResult:
    item_id: str
    type: str
    split: str
    arm: str
    ranks: tuple[int, ...]  # 1-based rank of each evidence chunk in the top 10 (0 = missing)
    answer_ok: bool
    refusal_ok: bool
    cited_relevant: int
    cited_total: int
    leaks: int
    latency_ms: float


def qa_set_text() -> str:
    return resources.files("hexcity.assistant.evaluation").joinpath("qa_set.json").read_text(encoding="utf-8")


def qa_set_sha256() -> str:
    return hashlib.sha256(qa_set_text().encode("utf-8")).hexdigest()


def load_qa_set() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(qa_set_text())
    return data


def seed_records(
    service: AssistantService,
    records: Sequence[Mapping[str, Any]],
    module_events: Sequence[Mapping[str, Any]] = (),
) -> None:
    """The gold set's platform data: record payloads, then the modules' own events (``ride.status``,
    ``payments.events`` payloads as the modules publish them) through the change-data-capture path."""
    for payload in records:
        service.upsert_record(record_from_payload(payload))
    for event in module_events:
        apply_module_event(service, event, event_ts=0.0)


def apply_module_event(service: AssistantService, event: Mapping[str, Any], *, event_ts: float) -> None:
    """One module event (``{"topic": ..., "payload": ...}``) through :func:`freshness.apply_event`."""
    topic, payload = str(event["topic"]), dict(event["payload"])
    if not apply_event_to_service(service, Event(topic, topic, payload, occurred_at_s=event_ts)):
        raise ValueError(f"{topic} event changes nothing: {payload}")


def apply_event(service: AssistantService, event: Mapping[str, Any]) -> None:
    """Freshness events: an article edit (published as a new version), a module's own event
    (``module_event``: topic + payload, translated by the change-data-capture consumer) or a
    record change."""
    if event["op"] == "edit_article":
        article = service.articles[event["doc_id"]]
        old, new = event["replace"]
        body = article.body.replace(old, new)
        if body == article.body:
            raise ValueError(f"edit of {article.doc_id} changes nothing")
        source = (
            f"---\nid: {article.doc_id}\ntitle: {article.title}\naudience: {article.audience}\n"
            f"version: {article.version + 1}\n---\n{body}"
        )
        service.apply_change({"op": "publish_article", "source": source}, event_ts=1.0)
    elif event["op"] == "module_event":
        apply_module_event(service, event, event_ts=1.0)
    else:
        service.apply_change(event, event_ts=1.0)


def evaluate_item(service: AssistantService, item: Mapping[str, Any], arm: str) -> ItemResult:
    viewer = Viewer(item["viewer"]["subject"], item["viewer"]["audience"])
    started = time.perf_counter()
    _, deep_hits, _ = service.retrieve(item["question"], viewer, arm=arm, k=RETRIEVAL_DEPTH)
    result = service.answer(item["question"], viewer, arm=arm)
    latency_ms = (time.perf_counter() - started) * 1000.0
    ranked_ids = [hit.chunk.chunk_id for hit in deep_hits]
    ranks = tuple(ranked_ids.index(e) + 1 if e in ranked_ids else 0 for e in item["evidence"])
    text = normalize(result.answer.text)
    answerable = item["type"] not in ("unanswerable", "acl")
    answer_ok = (
        normalize(item["answer"]) in text if answerable else result.answer.handoff or not item["answer"]
    )
    refusal_ok = result.answer.handoff != answerable
    cited = [c.chunk_id for c in result.answer.citations]
    relevant = sum(1 for c in cited if c in set(item["evidence"]))
    leaks = sum(
        1
        for forbidden in item["forbidden"]
        if normalize(forbidden) in text or any(c.startswith(forbidden) for c in cited)
    )
    leaks += sum(1 for hit in deep_hits if not for_audience(hit.chunk.audience).allows(viewer))
    leaks += sum(
        1 for node_id in result.answer.records if not service.graph.nodes[node_id].access.allows(viewer)
    )
    return ItemResult(
        item["id"],
        item["type"],
        item["split"],
        arm,
        ranks,
        answer_ok,
        refusal_ok,
        relevant,
        len(cited),
        leaks,
        latency_ms,
    )


def run(service_factory: Callable[[], AssistantService], *, split: str | None = None) -> list[ItemResult]:
    """Every item of ``split`` (all when None) through every arm; freshness items on a fresh service."""
    data = load_qa_set()
    base = service_factory()
    seed_records(base, data["records"], data.get("module_events", ()))
    results = []
    for item in data["items"]:
        if split is not None and item["split"] != split:
            continue
        for arm in ARMS:
            service = base
            if item.get("event"):
                service = service_factory()
                seed_records(service, data["records"], data.get("module_events", ()))
                apply_event(service, item["event"])
            results.append(evaluate_item(service, item, arm))
    return results


def summarise(results: Sequence[ItemResult]) -> dict[str, Any]:
    """Per arm (and per arm × type) metrics with bootstrap CIs; McNemar plain vs graph vs routed."""
    summary: dict[str, Any] = {"arms": {}, "by_type": {}, "paired": {}}
    for arm in ARMS:
        rows = [r for r in results if r.arm == arm]
        summary["arms"][arm] = _metrics(rows)
        for kind in sorted({r.type for r in rows}):
            summary["by_type"][f"{arm}/{kind}"] = _metrics([r for r in rows if r.type == kind])
    for first, second in (("plain", "graph"), ("plain", "routed"), ("graph", "routed")):
        a = {r.item_id: r.answer_ok for r in results if r.arm == first}
        b = {r.item_id: r.answer_ok for r in results if r.arm == second}
        only_a = sum(1 for key in a if a[key] and not b[key])
        only_b = sum(1 for key in a if b[key] and not a[key])
        summary["paired"][f"{first}_vs_{second}"] = {
            "only_first_correct": only_a,
            "only_second_correct": only_b,
            "mcnemar_exact_p": round(_mcnemar_exact(only_a, only_b), 4),
        }
    return summary


def _metrics(rows: Sequence[ItemResult]) -> dict[str, Any]:
    with_evidence = [r for r in rows if r.ranks]

    def hit(r: ItemResult, k: int) -> float:
        return 1.0 if any(0 < rank <= k for rank in r.ranks) else 0.0

    def rr(r: ItemResult) -> float:
        found = [rank for rank in r.ranks if rank > 0]
        return 1.0 / min(found) if found else 0.0

    latencies = sorted(r.latency_ms for r in rows)
    metrics: dict[str, Any] = {"n": len(rows), "n_with_evidence": len(with_evidence)}
    for k in (1, 3, 5, 10):
        metrics[f"hit@{k}"] = _mean_ci([hit(r, k) for r in with_evidence])
    metrics["all_evidence_recall@4"] = _mean_ci(
        [1.0 if all(0 < x <= 4 for x in r.ranks) else 0.0 for r in with_evidence]
    )
    metrics["mrr@10"] = _mean_ci([rr(r) for r in with_evidence])
    metrics["answer_accuracy"] = _mean_ci([1.0 if r.answer_ok else 0.0 for r in rows])
    metrics["refusal_accuracy"] = _mean_ci([1.0 if r.refusal_ok else 0.0 for r in rows])
    cited = sum(r.cited_total for r in with_evidence)
    metrics["citation_precision"] = (
        round(sum(r.cited_relevant for r in with_evidence) / cited, 4) if cited else None
    )
    metrics["acl_leaks"] = sum(r.leaks for r in rows)
    metrics["latency_ms_p50"] = round(latencies[len(latencies) // 2], 3) if latencies else None
    metrics["latency_ms_p95"] = (
        round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.95))], 3) if latencies else None
    )
    return metrics


def _mean_ci(values: Sequence[float]) -> dict[str, float] | None:
    if not values:
        return None
    rng = random.Random(BOOTSTRAP_SEED)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(BOOTSTRAP_ROUNDS))
    return {
        "mean": round(sum(values) / n, 4),
        "ci95_low": round(means[int(0.025 * BOOTSTRAP_ROUNDS)], 4),
        "ci95_high": round(means[int(0.975 * BOOTSTRAP_ROUNDS) - 1], 4),
    }


def _mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact binomial McNemar p-value on the discordant pairs."""
    n = only_a + only_b
    if n == 0:
        return 1.0
    low = min(only_a, only_b)
    tail: float = sum(math.comb(n, i) for i in range(low + 1)) / 2**n
    return min(1.0, 2.0 * tail)
