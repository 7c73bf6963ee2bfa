"""The model card (``README.md``) written beside a trained annotator model."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import yaml

from mlfilter.embedded import EMBEDDED_ENCODER, EMBEDDED_LLM
from mlfilter.params import TaskParams, to_plain
from mlfilter.reports import format_metric
from mlfilter.training.params import METRIC_NAMES, TrainingParams

#: The hub models behind the packaged encoders, for the card's ``base_model`` field.
EMBEDDED_HUB_IDS = {
    EMBEDDED_ENCODER: "sentence-transformers/all-MiniLM-L6-v2",
    EMBEDDED_LLM: "HuggingFaceTB/SmolLM2-135M-Instruct",
}


def hub_base_model(name: str) -> str | None:
    """The hub id of the base model, or None when it is a local folder."""
    if name in EMBEDDED_HUB_IDS:
        return EMBEDDED_HUB_IDS[name]
    if os.path.isdir(name) or name.count("/") != 1:
        return None
    return name


def render_model_card(
    *,
    params: TrainingParams,
    tasks: Sequence[TaskParams],
    seed: int,
    data: dict[str, Any],
    val_metrics: dict[str, dict[str, float]],
    best: dict[str, Any],
    path: str,
    calibration: dict[str, dict[str, Any]] | None = None,
    selection: dict[str, Any] | None = None,
    quality: dict[str, Any] | None = None,
) -> str:
    """Markdown with YAML front matter: base model, tasks, data sizes, validation metrics, params, usage.

    ``calibration`` (task → :meth:`mlfilter.training.calibration.Calibration.as_dict`) adds the calibrated
    cuts; ``selection`` (``requested``, ``chosen``, ``metric``, ``candidates``: mode → ``{"value": …}``)
    records which training mode was kept and why; ``quality``
    (:func:`mlfilter.training.val_quality.validation_quality`) adds the TF-IDF baseline comparison, its warning,
    and per-language quality, all on the validation split.
    """
    front: dict[str, Any] = {
        "library_name": "transformers",
        "pipeline_tag": "text-classification",
        "tags": ["mlfilter", "data-filtering", "regression" if params.is_regression else "classification"],
    }
    base = hub_base_model(params.base_model)
    if base:
        front["base_model"] = base
    head = "regression (one output per task)" if params.is_regression else "classification (one class per label)"
    encoder = (
        "frozen; the heads were trained on cached embeddings"
        if path == "frozen_embeddings"
        else ("frozen" if params.freeze_base_model_parameters else "fine-tuned")
    )
    if "ridge_alpha" in best:
        encoder = (
            "frozen; linear heads fitted by ridge regression on cached embeddings of train and val "
            f"(L2 strength {best['ridge_alpha']:g}, chosen by leave-one-out over train and val from "
            f"{', '.join(best['ridge_alphas_tried'])}; the validation metrics are those of its leave-one-out "
            "predictions)"
        )
    layers = "" if list(params.pooling_layers) == [-1] else f" of hidden states {list(params.pooling_layers)}"
    lines = [
        "---",
        yaml.safe_dump(front, sort_keys=False).rstrip(),
        "---",
        "",
        "# mlfilter annotator model",
        "",
        "Scores web documents for pretraining-data filtering. It was trained with mlfilter on the scores "
        "an LLM gave to a sample of documents (the FineWeb-Edu recipe) and predicts those scores for new "
        "documents at a fraction of the cost.",
        "",
        "## Model",
        "",
        f"- Base model: `{params.base_model}`" + (f" (`{base}`)" if base and base != params.base_model else ""),
        f"- Head: {head}, pooling `{params.pooling}`{layers}, "
        f"hidden size {params.head_hidden_size or 'none (linear)'}, dropout {params.classifier_dropout}",
        f"- Loss: {params.regression_loss.upper() if params.is_regression else 'cross-entropy'}, missing labels masked",
        f"- Encoder: {encoder} (training mode `{params.mode}`)",
        f"- Maximum input length: {params.max_length} tokens",
        "",
        "## Tasks",
        "",
        "| task | labels | positive at rounded score ≥ | train labels (count per label) |",
        "| --- | --- | --- | --- |",
    ]
    for task in tasks:
        counts = data["train"]["labels"].get(task.name, {})
        shown = ", ".join(f"{k}: {v}" for k, v in counts.items())
        lines.append(f"| {task.name} | 0–{task.num_targets - 1} | {task.threshold:g} | {shown} |")
    lines += [
        "",
        "## Data",
        "",
        "| split | documents used | dropped | files |",
        "| --- | --- | --- | --- |",
    ]
    for split in ("train", "val"):
        counts = data[split]["counts"]
        dropped = ", ".join(f"{k}: {v}" for k, v in counts["dropped"].items()) or "none"
        files = ", ".join(f"`{f}`" for f in data[split]["files"])
        lines.append(f"| {split} | {counts['kept']} | {dropped} | {files} |")
    lines += [
        "",
        "The test split was not read during training; model selection used "
        + (
            "leave-one-out predictions over the train and val splits."
            if "ridge_alpha" in best
            else "the val split only."
        ),
        "",
        f"## Validation metrics (best checkpoint by `{best['metric']}` = {format_metric(best.get('value'))})",
        "",
        "| task | " + " | ".join(METRIC_NAMES) + " |",
        "| --- | " + " | ".join("---" for _ in METRIC_NAMES) + " |",
    ]
    for group, metrics in val_metrics.items():
        lines.append(f"| {group} | " + " | ".join(format_metric(metrics[name]) for name in METRIC_NAMES) + " |")
    if selection and len(selection["candidates"]) > 1:
        tried = ", ".join(f"`{mode}` {format_metric(c['value'])}" for mode, c in selection["candidates"].items())
        lines += [
            "",
            f"Training mode `{selection['requested']}` trained every candidate and kept `{selection['chosen']}`, "
            f"the best by validation `{selection['metric']}` ({tried}).",
        ]
    if calibration:
        lines += [
            "",
            "## Calibrated thresholds",
            "",
            "The cut on the raw score that best separates documents labelled at or above the task's threshold, "
            "chosen on scores of documents the model did not train on (`val`: the validation split; ridge heads: "
            "their leave-one-out predictions over train and val). `filter.keep.thresholds: calibrated` keeps "
            "documents whose raw score reaches it.",
            "",
            "| task | threshold | calibrated cut | method | scores | precision | recall | F1 | positives |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for name, c in calibration.items():
            cut = "none (no documents on one side)" if c["cut"] is None else f"{c['cut']:.4f}"
            method = c["method"] + ("" if c["target_reached"] else " (not reached: max smoothed F1 used)")
            lines.append(
                f"| {name} | {c['threshold']:g} | {cut} | {method} | {c.get('source', 'val')} | "
                f"{format_metric(c['precision'])} | "
                f"{format_metric(c['recall'])} | {format_metric(c['f1'])} | {c['positives']} of {c['documents']} |"
            )
    if quality:
        lines += quality_lines(quality)
    lines += [
        "",
        "Predicted labels are regression scores rounded half up (2.5 → 3) and clipped to the label range, or "
        "the most probable class of a classification head; binary F1 counts a document as positive when its "
        "label (true, or predicted) is at or above the task's threshold — FineWeb-Edu's `int_score >= t`, so "
        "a regression score of 2.5 or more passes a threshold of 3. `mlfilter filter --threshold` and the "
        "evaluate stage use the same rule.",
        "",
        "## Training parameters",
        "",
        "```yaml",
        yaml.safe_dump({"seed": seed, "training": to_plain(params)}, sort_keys=False).rstrip(),
        "```",
        "",
        "## Intended use",
        "",
        "Ranking and filtering large web corpora for language-model pretraining by the tasks above, in the "
        "languages and domains of the training data. The scores imitate an LLM annotator, biases included; "
        "check the validation metrics, and the evaluation on the held-out test split, before relying on them.",
        "",
        "## How to load",
        "",
        "```python",
        "import mlfilter.modeling  # registers the model type with transformers",
        "from transformers import AutoTokenizer",
        "from mlfilter.modeling import AnnotatorModel",
        "",
        'model = AnnotatorModel.from_pretrained("path/to/final").eval()',
        'tokenizer = AutoTokenizer.from_pretrained("path/to/final")',
        f'batch = tokenizer(["some document"], truncation=True, max_length={params.max_length}, return_tensors="pt")',
        "scores = model(**batch).scores  # [batch, num_tasks], in task order: " + ", ".join(t.name for t in tasks),
        "```",
        "",
        "`transformers.AutoModel.from_pretrained(...)` returns the same model once `mlfilter.modeling` is "
        "imported; no `trust_remote_code` is needed.",
        "",
    ]
    return "\n".join(lines)


def quality_lines(quality: dict[str, Any]) -> list[str]:
    """Card lines: the model against the TF-IDF baseline per task, warnings, and per-language quality (val split)."""
    lines = [
        "",
        "## Against a TF-IDF baseline (validation split)",
        "",
        "A character n-gram TF-IDF + ridge model (the evaluate stage's baseline) fitted on the same train split and "
        "scored on the validation split; the test split is not read in training (the evaluate stage reports both "
        "on it). Margins are positive when this model is better.",
        "",
    ]
    if quality.get("baseline_error"):
        return [*lines, f"No baseline could be fitted: {quality['baseline_error']}"]
    lines += [
        "| task | Spearman | baseline Spearman | margin | MAE | baseline MAE | margin |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name, entry in quality["tasks"].items():
        model, base, margin = entry["model"], entry["baseline"], entry["margin"]
        lines.append(
            f"| {name} | {format_metric(model['spearman'])} | {format_metric(base['spearman'])} "
            f"| {format_metric(margin['spearman'])} "
            f"| {format_metric(model['mae'])} | {format_metric(base['mae'])} | {format_metric(margin['mae'])} |"
        )
    lines += ["", *(f"**Warning:** {message}" for message in quality["warnings"])]
    lines += [
        "",
        "## Per-language quality (validation split)",
        "",
        "| language | task | documents | Spearman | MAE | baseline Spearman | baseline MAE |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for language, tasks in quality["per_language"].items():
        for name, entry in tasks.items():
            if "skipped" in entry:
                lines.append(f"| {language} | {name} | {entry['documents']} | {entry['skipped']} | | | |")
                continue
            model, base = entry["model"], entry["baseline"] or {"spearman": None, "mae": None}
            lines.append(
                f"| {language} | {name} | {model['documents']} | {format_metric(model['spearman'])} "
                f"| {format_metric(model['mae'])} | {format_metric(base['spearman'])} | {format_metric(base['mae'])} |"
            )
    return lines
