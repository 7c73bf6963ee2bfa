"""The annotate stage: prompt-based LLM scoring of documents, resumable per request."""
