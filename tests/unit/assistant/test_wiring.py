from __future__ import annotations

import json

import httpx
import pytest

from hexcity.assistant import AssistantSettings, Viewer
from hexcity.assistant.adapters.llm_gateway import OpenAiCompatibleGateway
from hexcity.assistant.wiring import build_assistant_service, build_embedder


def test_default_is_offline_and_hashed() -> None:
    service = build_assistant_service(AssistantSettings())
    assert service.generator is None
    assert service.index.embedder.name == "hashed-ngram-v1"
    assert len(service.articles) == 18


def test_minilm_falls_back_when_the_wheel_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from hexcity.assistant.adapters import minilm

    def missing() -> object:
        raise minilm.ModelUnavailable("package 'all_minilm_l6_v2' is not installed")

    monkeypatch.setattr(minilm, "packaged_model_zip", missing)
    assert build_embedder(AssistantSettings(embedder="minilm")).name == "hashed-ngram-v1"


def test_llm_settings_wire_the_gateway() -> None:
    reply = {
        "choices": [{"message": {"content": json.dumps({"answer": "Capped at 3.5x.", "citations": [1]})}}]
    }
    client = httpx.Client(
        base_url="http://llm.test", transport=httpx.MockTransport(lambda r: httpx.Response(200, json=reply))
    )
    settings = AssistantSettings(llm_base_url="http://llm.test", llm_response_format="json_object")
    service = build_assistant_service(settings, http_client=client)
    assert isinstance(service.generator, OpenAiCompatibleGateway)
    answer = service.answer("how high can surge go", Viewer("alice", "customer")).answer
    assert "Capped at 3.5x." in answer.text and service.generator.last_path == "llm"
