"""The annotate report (``reports/annotate/<annotator>.json``): what was asked, what came back, how fast."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlfilter.annotation.parsing import OK, PARSE_ERROR
from mlfilter.reports import StageCounts


def latency_summary(latencies: Sequence[float]) -> dict[str, float | None]:
    """p50, p95 and max of request latencies in seconds (None when nothing was sent)."""
    if not latencies:
        return {"p50": None, "p95": None, "max": None}
    values = np.asarray(latencies, dtype=float)
    return {
        "p50": round(float(np.percentile(values, 50)), 4),
        "p95": round(float(np.percentile(values, 95)), 4),
        "max": round(float(values.max()), 4),
    }


@dataclass
class AnnotationReport:
    """Counts gathered while annotating; :meth:`as_dict` is the metrics JSON."""

    annotator: str
    backend: str
    model: str
    score_mode: str
    tasks: Sequence[str]
    documents: StageCounts = field(default_factory=StageCounts)
    requests: Counter[str] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    retries: Counter[str] = field(default_factory=Counter)
    tokens: Counter[str] = field(default_factory=Counter)
    truncated_documents: int = 0
    truncation: str = "none"
    latencies: list[float] = field(default_factory=list)
    statuses: dict[str, Counter[str]] = field(default_factory=dict)
    scores: dict[str, Counter[int]] = field(default_factory=dict)
    languages: dict[str, Counter[str]] = field(default_factory=dict)
    prompts: dict[str, dict[str, str | None]] = field(default_factory=dict)
    imported: dict[str, Any] | None = None
    batches: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for task in self.tasks:
            self.statuses.setdefault(task, Counter())
            self.scores.setdefault(task, Counter())
            self.languages.setdefault(task, Counter())

    def add_record(self, record: dict[str, Any]) -> None:
        """Count the statuses, score histogram, languages, truncation and usage of one output record."""
        for task in self.tasks:
            statuses = record["status"].get(task, [])
            self.statuses[task].update(statuses)
            for score in record["scores"].get(task, []):
                if score is not None:
                    self.scores[task][round(score)] += 1
            language = record["prompt"].get(task, {}).get("language")
            if language:
                self.languages[task][language] += 1
        if any(record.get("truncated", {}).values()):
            self.truncated_documents += 1
        usage = record.get("usage", {})
        self.tokens["prompt"] += usage.get("prompt_tokens", 0)
        self.tokens["completion"] += usage.get("completion_tokens", 0)

    def as_dict(self, seconds: float) -> dict[str, Any]:
        """The report, with throughput over ``seconds`` of wall time."""
        generations = sum(sum(c.values()) for c in self.statuses.values())
        parse_failures = sum(c[PARSE_ERROR] + c["out_of_range"] for c in self.statuses.values())
        ok = sum(c[OK] for c in self.statuses.values())
        seconds = max(seconds, 1e-9)
        return {
            "annotator": self.annotator,
            "backend": self.backend,
            "model": self.model,
            "score_mode": self.score_mode,
            "prompts": self.prompts,
            "documents": self.documents.as_dict(),
            "requests": {
                "planned": self.requests["planned"],
                "unique": self.requests["unique"],
                "cache_hits": self.requests["cache_hits"],
                "sent": self.requests["sent"],
                "succeeded": self.requests["succeeded"],
                "failed": sum(self.failures.values()),
                "failures": dict(sorted(self.failures.items())),
                "retries": dict(sorted(self.retries.items())),
            },
            "generations": {
                "total": generations,
                "ok": ok,
                "parse_failure_rate": round(parse_failures / generations, 6) if generations else 0.0,
                "status": {task: dict(sorted(c.items())) for task, c in self.statuses.items()},
            },
            "scores": {task: {str(k): v for k, v in sorted(c.items())} for task, c in self.scores.items()},
            "prompt_languages": {task: dict(sorted(c.items())) for task, c in self.languages.items()},
            "truncation": {"method": self.truncation, "truncated_documents": self.truncated_documents},
            "tokens": {
                "prompt": self.tokens["prompt"],
                "completion": self.tokens["completion"],
                "sent_prompt": self.tokens["sent_prompt"],
                "sent_completion": self.tokens["sent_completion"],
            },
            "throughput": {
                "seconds": round(seconds, 3),
                "docs_per_s": round(self.documents.kept / seconds, 3),
                "requests_per_s": round(self.requests["sent"] / seconds, 3),
                "completion_tokens_per_s": round(self.tokens["sent_completion"] / seconds, 3),
            },
            "latency_s": latency_summary(self.latencies),
            **({"imported": self.imported} if self.imported is not None else {}),
            **({"batches": self.batches} if self.batches is not None else {}),
        }
