"""The annotate report (``reports/annotate/<annotator>.json``): what was asked, what came back, how fast."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlfilter.annotation.statuses import OK, fix_for
from mlfilter.reports import ALL_TASKS, Figure, StageCounts
from mlfilter.scores import round_half_up

#: Examples kept per task and invalid status (for the report and the failure-budget message).
EXAMPLES_PER_STATUS = 3
_EXAMPLE_CHARS = 200


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
    status_by_language: dict[str, dict[str, Counter[str]]] = field(default_factory=dict)
    examples: dict[str, dict[str, list[dict[str, Any]]]] = field(default_factory=dict)
    errors: dict[str, list[str]] = field(default_factory=dict)
    scores: dict[str, Counter[int]] = field(default_factory=dict)
    languages: dict[str, Counter[str]] = field(default_factory=dict)
    prompts: dict[str, dict[str, str | None]] = field(default_factory=dict)
    imported: dict[str, Any] | None = None
    batches: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        for task in self.tasks:
            self.statuses.setdefault(task, Counter())
            self.status_by_language.setdefault(task, {})
            self.examples.setdefault(task, {})
            self.scores.setdefault(task, Counter())
            self.languages.setdefault(task, Counter())

    def add_record(self, record: dict[str, Any]) -> None:
        """Count the statuses (per task and per prompt language), score histogram, languages, truncation
        and usage of one output record, and keep the first examples of each invalid status."""
        for task in self.tasks:
            statuses = record["status"].get(task, [])
            self.statuses[task].update(statuses)
            language = record["prompt"].get(task, {}).get("language")
            self.status_by_language[task].setdefault(language or "unknown", Counter()).update(statuses)
            for score in record["scores"].get(task, []):
                if score is not None:
                    self.scores[task][int(round_half_up(score))] += 1
            if language:
                self.languages[task][language] += 1
            self._keep_examples(record, task, statuses)
        if any(record.get("truncated", {}).values()):
            self.truncated_documents += 1
        usage = record.get("usage", {})
        self.tokens["prompt"] += usage.get("prompt_tokens", 0)
        self.tokens["completion"] += usage.get("completion_tokens", 0)
        self.tokens["reasoning"] += usage.get("reasoning_tokens", 0)

    def _keep_examples(self, record: dict[str, Any], task: str, statuses: Sequence[str]) -> None:
        replies = record.get("replies", {}).get(task) or [None] * len(statuses)
        finishes = record.get("finish_reason", {}).get(task) or [None] * len(statuses)
        for status, reply, finish in zip(statuses, replies, finishes, strict=False):
            if status == OK:
                continue
            kept = self.examples[task].setdefault(status, [])
            if len(kept) < EXAMPLES_PER_STATUS:
                text = None if reply is None else reply[:_EXAMPLE_CHARS]
                kept.append({"id": record["id"], "reply": text, "finish_reason": finish})

    def invalid_fraction(self, task: str) -> float:
        """The share of ``task``'s generations whose status is not ``ok`` (0 when there are none)."""
        counts = self.statuses[task]
        total = sum(counts.values())
        return (total - counts[OK]) / total if total else 0.0

    def budget_message(self, task: str, limit: float) -> str:
        """Why ``task`` broke the ``max_invalid_fraction`` budget: top statuses, examples and the likely fix."""
        counts = self.statuses[task]
        total = sum(counts.values())
        top = [(status, n) for status, n in counts.most_common() if status != OK][:3]
        lines = [
            f"annotator {self.annotator!r}, task {task!r}: {total - counts[OK]} of {total} generations are invalid "
            f"({self.invalid_fraction(task):.1%}), more than max_invalid_fraction {limit}. Top statuses: "
            + ", ".join(f"{status} {n}" for status, n in top)
            + ". Examples:"
        ]
        examples = [(status, e) for status, _ in top for e in self.examples[task].get(status, [])]
        for status, example in examples[:EXAMPLES_PER_STATUS]:
            lines.append(
                f"  {status}: document {example['id']!r}, finish_reason {example['finish_reason']}, "
                f"reply {example['reply']!r}"
            )
        lines.append(f"Most likely fix: {fix_for(top[0][0])}. The output and the report are written")
        kinds = [status.split(":", 1)[1] for status, _ in top if status.startswith("request_failed:")]
        for kind in kinds:
            for text in self.errors.get(kind, [])[:1]:
                lines.append(f"The server said ({kind}): {text}")
        return "\n".join(lines)

    def as_dict(self, seconds: float) -> dict[str, Any]:
        """The report, with throughput over ``seconds`` of wall time."""
        generations = sum(sum(c.values()) for c in self.statuses.values())
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
                "errors": {kind: list(texts) for kind, texts in sorted(self.errors.items())},
            },
            "generations": {
                "total": generations,
                "ok": ok,
                "invalid": generations - ok,
                "invalid_fraction": {
                    task: round(self.invalid_fraction(task), 6) if sum(c.values()) else None
                    for task, c in self.statuses.items()
                },
                "status": {task: dict(sorted(c.items())) for task, c in self.statuses.items()},
                "status_by_language": {
                    task: {lang: dict(sorted(c.items())) for lang, c in sorted(by.items())}
                    for task, by in self.status_by_language.items()
                },
                "examples": {task: dict(sorted(by.items())) for task, by in self.examples.items()},
            },
            "scores": {task: {str(k): v for k, v in sorted(c.items())} for task, c in self.scores.items()},
            "prompt_languages": {task: dict(sorted(c.items())) for task, c in self.languages.items()},
            "truncation": {"method": self.truncation, "truncated_documents": self.truncated_documents},
            "tokens": {
                "prompt": self.tokens["prompt"],
                "completion": self.tokens["completion"],
                "reasoning": self.tokens["reasoning"],
                "sent_prompt": self.tokens["sent_prompt"],
                "sent_completion": self.tokens["sent_completion"],
                "sent_reasoning": self.tokens["sent_reasoning"],
            },
            "throughput": {
                "seconds": round(seconds, 3),
                "docs_per_s": round(self.documents.kept / seconds, 3),
                "requests_per_s": round(self.requests["sent"] / seconds, 3),
                "prompt_tokens_per_s": round(self.tokens["sent_prompt"] / seconds, 3),
                "completion_tokens_per_s": round(self.tokens["sent_completion"] / seconds, 3),
            },
            "latency_s": latency_summary(self.latencies),
            **({"imported": self.imported} if self.imported is not None else {}),
            **({"batches": self.batches} if self.batches is not None else {}),
        }


def headline(report: dict[str, Any]) -> dict[str, dict[str, Figure]]:
    """An annotator's headline figures (:func:`mlfilter.reports.write_headline`) from its report: documents
    annotated, and per task the share of generations with a valid score (``None`` for a task without any
    generation; the report's ``generations.status`` shows it)."""
    valid: dict[str, Figure] = {}
    for task, counts in report["generations"]["status"].items():
        total = sum(counts.values())
        valid[task] = counts.get(OK, 0) / total if total else None
    return {"documents": {ALL_TASKS: report["documents"]["kept"]}, "valid_fraction": valid}
