"""Explainers: ``rules`` (predicate search, no LLM) and ``llm`` (a chat endpoint or a local model)."""
