"""Export an :class:`~mlfilter.modeling.AnnotatorModel` as a standard transformers sequence classifier.

The exported folder loads with ``AutoModelForSequenceClassification.from_pretrained(folder)`` — no mlfilter, no
``trust_remote_code`` — so datatrove, NeMo Curator or a plain script can run the classifier. It is written for
models whose architecture a standard class can express exactly:

- the encoder is a BERT (``BertForSequenceClassification``) or RoBERTa / XLM-RoBERTa
  (``…ForSequenceClassification``) model,
- pooling is ``cls`` and every task head is one linear layer (``head_hidden_size: 0``).

Those standard heads put ``tanh(W_p h_cls + b_p)`` between the first token's hidden state and the linear
classifier. The export sets ``W_p = eps * I``, ``b_p = 0`` and divides the task weights by ``eps``: since
``tanh(x) = x - x^3/3 + O(x^5)``, the logits differ from the model's by at most ``eps^2 * sum_i |w_i| |h_i|^3 / 3``,
about 1e-7 with ``eps = 1e-5`` for hidden states up to 30 in magnitude (:func:`export_sequence_classifier` checks
the difference on probe texts and refuses an export worse than :data:`TOLERANCE`). Mean pooling has no standard
equivalent (the standard heads read the first token only), so such models are not exported.

Regression tasks: ``logits[:, t]`` is task ``t``'s score. Classification tasks: the logits of task ``t`` are
its ``K_t`` class logits, concatenated in task order; the score is ``softmax(logits_t) @ [0 .. K_t - 1]``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from mlfilter.errors import MlfilterError
from mlfilter.modeling import AnnotatorModel

log = logging.getLogger(__name__)

#: The sub-folder of a saved AnnotatorModel that holds the standard export.
EXPORT_FOLDER = "sequence_classification"
#: Scale of the linearised tanh (see the module docstring).
EPSILON = 1e-5
#: Largest score difference an export may show on the probe texts.
TOLERANCE = 1e-4
#: Encoder model type → (module path of the tanh layer, module path of the final linear layer).
HEADS = {
    "bert": ("bert.pooler.dense", "classifier"),
    "roberta": ("classifier.dense", "classifier.out_proj"),
    "xlm-roberta": ("classifier.dense", "classifier.out_proj"),
}
#: Encoder config keys that describe its (absent) output layer; the export sets its own.
LABEL_KEYS = ("architectures", "id2label", "label2id", "num_labels", "problem_type")
PROBE_TEXTS = (
    "Photosynthesis converts light energy into chemical energy stored in glucose.",
    "BUY NOW!!! cheap watches, free shipping, limited offer",
    "Der Satz des Pythagoras beschreibt die Seiten eines rechtwinkligen Dreiecks.",
)


def unsupported_reason(model: AnnotatorModel) -> str | None:
    """Why ``model`` cannot be exported as a standard classifier, or None when it can."""
    encoder_type = model.config.encoder.get("model_type")
    if encoder_type not in HEADS:
        return f"encoder type {encoder_type!r} is not one of {', '.join(HEADS)}"
    if model.config.pooling != "cls":
        return f"pooling {model.config.pooling!r}: standard sequence classifiers read the first token only (cls)"
    if model.config.pooling_layers != [-1]:
        return f"pooling_layers {model.config.pooling_layers}: standard sequence classifiers pool the last layer only"
    if model.config.head_hidden_size:
        return "MLP task heads (head_hidden_size > 0): standard classifiers have one linear layer after the pooler"
    return None


def score_names(model: AnnotatorModel) -> list[str]:
    """The exported model's logit column names: ``<task>`` (regression) or ``<task>_<label>`` (classification)."""
    config = model.config
    if config.is_regression:
        return list(config.task_names)
    return [
        f"{task}_{k}" for task, n in zip(config.task_names, config.num_targets_per_task, strict=True) for k in range(n)
    ]


def build_sequence_classifier(model: AnnotatorModel) -> Any:
    """A standard ``…ForSequenceClassification`` with the weights of ``model`` (float32, eval mode).

    Raises:
        MlfilterError: the model's architecture has no standard equivalent (:func:`unsupported_reason`).
    """
    from transformers import AutoConfig, AutoModelForSequenceClassification

    reason = unsupported_reason(model)
    if reason:
        raise MlfilterError(f"cannot export as a standard sequence classifier: {reason}")
    encoder = dict(model.config.encoder)
    encoder_type = encoder.pop("model_type")
    names = score_names(model)
    config = AutoConfig.for_model(
        encoder_type,
        **{k: v for k, v in encoder.items() if k not in LABEL_KEYS},
        id2label=dict(enumerate(names)),
        label2id={name: i for i, name in enumerate(names)},
        problem_type="regression" if model.config.is_regression else None,
    )
    target = AutoModelForSequenceClassification.from_config(config).float().eval()
    base = getattr(target, target.base_model_prefix)
    state = {k: v.float() for k, v in model.encoder.state_dict().items() if k in base.state_dict()}
    missing, unexpected = base.load_state_dict(state, strict=False)
    if unexpected or any(not key.startswith("pooler.") for key in missing):
        raise MlfilterError(
            f"encoder weights do not fit {type(target).__name__}: missing {missing}, extra {unexpected}"
        )
    tanh_layer, linear = (target.get_submodule(path) for path in HEADS[encoder_type])
    heads = [head.layers for head in model.heads.tasks]
    with torch.no_grad():
        tanh_layer.weight.copy_(torch.eye(tanh_layer.weight.shape[0]) * EPSILON)
        tanh_layer.bias.zero_()
        linear.weight.copy_(torch.cat([h.weight.float() for h in heads]) / EPSILON)
        linear.bias.copy_(torch.cat([h.bias.float() for h in heads]))
    return target


def export_sequence_classifier(model: AnnotatorModel, tokenizer: Any, folder: Path) -> bool:
    """Save the standard classifier, tokenizer and a model card to ``folder``; False (logged) where unsupported.

    Raises:
        MlfilterError: the export's scores on :data:`PROBE_TEXTS` differ from the model's by more than TOLERANCE.
    """
    reason = unsupported_reason(model)
    if reason:
        log.info("no standard transformers export: %s", reason)
        return False
    target = build_sequence_classifier(model)
    encoded = tokenizer(list(PROBE_TEXTS), padding=True, truncation=True, max_length=128, return_tensors="pt")
    encoded.pop("token_type_ids", None)
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        logits = target(**encoded).logits
        original = model(**{k: v.to(device) for k, v in encoded.items()}).logits.float().cpu()
    model.train(was_training)
    difference = float((logits - original).abs().max())
    if difference > TOLERANCE:
        raise MlfilterError(f"standard export differs from the model by {difference:.2e} (> {TOLERANCE})")
    target.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    (folder / "README.md").write_text(render_card(model, type(target).__name__, difference), encoding="utf-8")
    return True


def render_card(model: AnnotatorModel, class_name: str, difference: float) -> str:
    """The export's model card: which loader, which columns, how scores follow from logits."""
    names = score_names(model)
    columns = "\n".join(f"| {i} | `{name}` |" for i, name in enumerate(names))
    tasks = ", ".join(f"`{t}_score`, `{t}_int_score`" for t in model.config.task_names)
    if model.config.is_regression:
        recipe = "scores = logits  # one regression output per task, in label units"
    else:
        recipe = (
            "# per task t: its K_t class logits, concatenated in task order\n"
            "scores_t = logits[:, start:start + K_t].softmax(-1) @ torch.arange(K_t, dtype=torch.float32)"
        )
    return f"""---
library_name: transformers
pipeline_tag: text-classification
tags: [mlfilter, data-filtering]
---

# mlfilter classifier, standard transformers export

A `{class_name}` with the weights of the mlfilter model in the parent folder: load it with
`AutoModelForSequenceClassification.from_pretrained(folder)` — mlfilter is not needed and
`trust_remote_code` is not used. Its scores match the mlfilter model's (largest difference on probe texts
at export: {difference:.1e}). Truncate inputs to the length the filter used (`filter.scoring.max_length`).

```python
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
tokenizer = AutoTokenizer.from_pretrained(folder)
model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
batch = tokenizer(texts, padding=True, truncation=True, max_length=512, return_tensors="pt")
with torch.inference_mode():
    logits = model(**batch).logits
{recipe}
```

| logit column | name (`config.id2label`) |
| --- | --- |
{columns}

mlfilter's filter writes these scores as {tasks} (the score rounded half up and clipped to the label range).
The pooler is a linearised `tanh` (weights `1e-5 * I`), see `mlfilter.export`.
"""
