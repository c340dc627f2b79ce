"""HTTP API of the assistant (``/assistant/v1``): answers, search and articles for the caller.

Any authenticated person may ask (riders as customers, drivers, merchants, admins as staff);
service principals may not. Every error is ``{"code": ..., "message": ...}`` with its status.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse

from hexcity.assistant.domain.acl import CUSTOMER, DRIVER, MERCHANT, STAFF, Viewer
from hexcity.assistant.domain.components import ComponentRegistry, default_registry
from hexcity.assistant.service import AssistantService
from hexcity.assistant.ui import answer_components, component_catalog
from hexcity.infra.auth import Forbidden, Principal, Role, require
from hexcity.kernel import HexcityError

_AUTHENTICATED = Depends(require())
_AUDIENCE = {Role.RIDER: CUSTOMER, Role.DRIVER: DRIVER, Role.MERCHANT: MERCHANT, Role.ADMIN: STAFF}


def viewer_of(principal: Principal) -> Viewer:
    """The assistant's view of an authenticated principal; services are refused (403)."""
    audience = _AUDIENCE.get(principal.role)
    if audience is None:
        raise Forbidden("the assistant answers people, not services")
    return Viewer(principal.subject, audience)


class AnswerRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(min_length=1, max_length=1000)
    arm: Literal["plain", "graph", "routed"] = "routed"


def build_assistant_router(service: AssistantService, registry: ComponentRegistry | None = None) -> APIRouter:
    """``POST /answers``, ``GET /search``, ``GET /articles``, ``GET /articles/{doc_id}``, ``GET /status``,
    ``GET /components``.

    An answer carries ``ui``: the registry components (validated props) the caller may see, e.g.
    the tracking card of the asker's own order the answer used.
    """
    router = APIRouter(prefix="/assistant/v1", tags=["assistant"])
    components = registry or default_registry()

    @router.post("/answers")
    async def answer(body: AnswerRequest, principal: Annotated[Principal, _AUTHENTICATED]) -> Any:
        viewer = viewer_of(principal)
        try:
            result = await run_in_threadpool(service.answer, body.question, viewer, arm=body.arm)
            ui = await run_in_threadpool(
                answer_components, service, viewer, principal.scopes, components, body.question, result
            )
        except HexcityError as error:
            return _error(error)
        return {
            "text": result.answer.text,
            "handoff": result.answer.handoff,
            "arm": result.answer.arm,
            "route_reason": result.route.reason,
            "facts": list(result.answer.facts),
            "citations": [
                {
                    "number": c.number,
                    "doc_id": c.doc_id,
                    "chunk_id": c.chunk_id,
                    "version": c.version,
                    "heading": c.heading,
                }
                for c in result.answer.citations
            ],
            "index_version": result.index_version,
            "ui": ui,
        }

    @router.get("/components")
    async def component_list(principal: Annotated[Principal, _AUTHENTICATED]) -> Any:
        viewer_of(principal)
        return {"items": component_catalog(components, principal.scopes)}

    @router.get("/search")
    async def search(
        principal: Annotated[Principal, _AUTHENTICATED],
        q: Annotated[str, Query(min_length=1, max_length=1000)],
        k: Annotated[int, Query(ge=1, le=20)] = 5,
    ) -> Any:
        viewer = viewer_of(principal)
        try:
            hits = await run_in_threadpool(service.search, q, viewer, k=k)
        except HexcityError as error:
            return _error(error)
        return {
            "items": [
                {
                    "chunk_id": h.chunk.chunk_id,
                    "doc_id": h.chunk.doc_id,
                    "version": h.chunk.version,
                    "heading": " > ".join(h.chunk.heading_path),
                    "text": h.chunk.text,
                    "score": round(h.score, 6),
                }
                for h in hits
            ]
        }

    @router.get("/articles")
    async def articles(principal: Annotated[Principal, _AUTHENTICATED]) -> Any:
        viewer = viewer_of(principal)
        return {
            "items": [
                {"id": a.doc_id, "title": a.title, "version": a.version}
                for a in service.list_articles(viewer)
            ]
        }

    @router.get("/articles/{doc_id}")
    async def article(doc_id: str, principal: Annotated[Principal, _AUTHENTICATED]) -> Any:
        try:
            found = service.article(doc_id, viewer_of(principal))
        except HexcityError as error:
            return _error(error)
        return {"id": found.doc_id, "title": found.title, "version": found.version, "body": found.body}

    @router.get("/status")
    async def status(principal: Annotated[Principal, _AUTHENTICATED]) -> Any:
        viewer_of(principal)
        return {
            "index_version": service.index_version,
            "last_event_ts": service.last_event_ts,
            "articles": len(service.articles),
            "chunks": len(service.index.chunks),
            "graph_nodes": len(service.graph.nodes),
            "graph_edges": len(service.graph.edges),
            "embedder": service.index.embedder.name,
        }

    return router


def _error(error: HexcityError) -> JSONResponse:
    return JSONResponse({"code": error.code, "message": error.message}, status_code=error.status)
