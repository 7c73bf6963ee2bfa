"""LLM backends of the annotate stage: ``openai`` (any OpenAI-compatible server) and ``local`` (transformers)."""
