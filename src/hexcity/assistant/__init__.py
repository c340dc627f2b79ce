"""Support assistant: help-center RAG, GraphRAG over platform records, cited answers (issue 9).

Other modules may import only from here. See ``docs/assistant.md``.
"""

from hexcity.assistant.adapters.corpus import load_shipped_articles
from hexcity.assistant.adapters.memory_records import InMemoryRecords
from hexcity.assistant.domain.acl import Access, Viewer
from hexcity.assistant.domain.answers import Answer, AnswerParams, Citation
from hexcity.assistant.domain.documents import Article, Chunk
from hexcity.assistant.domain.records import PlatformRecord
from hexcity.assistant.domain.retrieval import Hit
from hexcity.assistant.domain.vectors import HashedNgramEmbedder
from hexcity.assistant.errors import ArticleNotFound, AssistantError, CorpusInvalid, InvalidQuestion
from hexcity.assistant.service import AnswerResult, AssistantService
from hexcity.assistant.settings import AssistantSettings

__all__ = [
    "Access",
    "Answer",
    "AnswerParams",
    "AnswerResult",
    "Article",
    "ArticleNotFound",
    "AssistantError",
    "AssistantService",
    "AssistantSettings",
    "Chunk",
    "Citation",
    "CorpusInvalid",
    "HashedNgramEmbedder",
    "Hit",
    "InMemoryRecords",
    "InvalidQuestion",
    "PlatformRecord",
    "Viewer",
    "load_shipped_articles",
]
