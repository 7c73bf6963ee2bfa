"""The status of one generation: exactly one name per generation, saying why its score is or is not valid.

Every generation of every document and task ends in one of these. Only ``ok`` carries a score; every
other status leaves the score ``null`` and counts against the annotator's ``max_invalid_fraction``.
The README's table "Generation statuses" lists the same names; :data:`DESCRIPTIONS` is its source.
"""

from __future__ import annotations

#: The reply proves a valid score (a label of the prompt, read from the final answer).
OK = "ok"
#: The reply stopped at the token limit (``finish_reason: length``) before it proved a score; valid only
#: with ``accept_length: true``. Raise ``sampling.max_new_tokens``.
LENGTH = "length"
#: The reply has text but no score matching ``score_pattern`` (generate mode).
NO_SCORE = "no_score"
#: The reply names a score that is not one of the prompt's labels (e.g. 7 on a 0–5 scale, or 2.5).
OUT_OF_RANGE = "out_of_range"
#: The server returned no text at all (no answer, no reasoning).
EMPTY_REPLY = "empty_reply"
#: A reasoning model spent its budget thinking: reasoning text, but no final answer.
REASONING_ONLY = "reasoning_only"
#: Logprobs mode: the generated token is not a label — typically a server that answers a new turn
#: instead of continuing the reply prefix.
NO_LABEL_TOKEN = "no_label_token"
#: Logprobs mode: the labels hold less probability than ``min_label_mass``, so their distribution is noise.
LOW_LABEL_MASS = "low_label_mass"
#: Logprobs mode: the reply carries no top log-probabilities (the server ignored ``logprobs``).
NO_LOGPROBS = "no_logprobs"
#: The model or the server refused (an OpenAI ``refusal``, or ``finish_reason: content_filter``).
REFUSED = "refused"
#: JSON mode: the reply is not JSON, or breaks the score schema.
INVALID_JSON = "invalid_json"
#: Prefix of ``request_failed:<kind>``: the request itself failed for good (``timeout``, ``connection``,
#: ``http_500``, ``context_length``, ``http_400``, …); see the report's ``requests.errors`` for the
#: server's own words.
REQUEST_FAILED = "request_failed"

DESCRIPTIONS: dict[str, str] = {
    OK: "the reply proves a valid score",
    LENGTH: "the reply was cut off by the token limit before it proved a score (raise sampling.max_new_tokens)",
    NO_SCORE: "the reply has no score matching score_pattern",
    OUT_OF_RANGE: "the reply's score is not one of the prompt's labels",
    EMPTY_REPLY: "the server returned no text and no reasoning",
    REASONING_ONLY: "a reasoning model returned reasoning but no final answer (raise sampling.max_reasoning_tokens)",
    NO_LABEL_TOKEN: "logprobs: the generated token is not a label (the server did not continue the reply prefix)",
    LOW_LABEL_MASS: "logprobs: the labels hold less probability than min_label_mass",
    NO_LOGPROBS: "logprobs: the reply carries no top log-probabilities",
    REFUSED: "the model or the server refused (refusal, or finish_reason content_filter)",
    INVALID_JSON: "json: the reply is not JSON matching the score schema",
    REQUEST_FAILED + ":<kind>": "the request failed for good; <kind> names why (timeout, connection, http_500, …)",
}

#: Request failures that a rerun cannot fix: the same request gets the same answer.
DETERMINISTIC_FAILURES = frozenset({"http_400", "http_404", "http_413", "http_422", "context_length"})

#: The param most likely to fix each invalid status (the advice of the failure-budget message).
FIXES: dict[str, str] = {
    LENGTH: "sampling.max_new_tokens (or accept_length: true)",
    NO_SCORE: "score_pattern (or the prompt's output format)",
    OUT_OF_RANGE: "score_pattern (or the prompt's labels)",
    EMPTY_REPLY: "sampling.max_new_tokens, and the server log",
    REASONING_ONLY: "sampling.max_reasoning_tokens (the thinking budget)",
    NO_LABEL_TOKEN: "force_reply_prefix / api: completions (the server does not continue the reply prefix)",
    LOW_LABEL_MASS: "force_reply_prefix / api: completions, or min_label_mass",
    NO_LOGPROBS: "score_mode: generate or json (the server returns no log-probabilities)",
    REFUSED: "the prompt (the model refuses it)",
    INVALID_JSON: "score_mode: generate (the server does not enforce the JSON schema)",
    "request_failed:context_length": "max_document_tokens (the prompt exceeds the server's context length)",
}


def request_failed(kind: str) -> str:
    """The status of a generation whose request failed for good, e.g. ``request_failed:timeout``."""
    return f"{REQUEST_FAILED}:{kind}"


def fix_for(status: str) -> str:
    """The param most likely to fix ``status``; for other request failures, what a rerun can do."""
    if status in FIXES:
        return FIXES[status]
    if status.startswith(REQUEST_FAILED + ":"):
        kind = status.split(":", 1)[1]
        if kind in DETERMINISTIC_FAILURES:
            return "the request itself (the server rejects it; see requests.errors in the report)"
        return "the server (timeout_s, max_retries), then rerun: finished requests come from the cache"
    return "nothing (valid)"
