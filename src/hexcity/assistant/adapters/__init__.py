"""Adapters of the assistant: shipped corpus, embedders, record readers, LLM gateway."""
