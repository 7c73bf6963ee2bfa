"""``AnnotatorModel``: any Hugging Face encoder with one regression or classification head per task.

Importing this module registers the model with ``AutoConfig``/``AutoModel``, so a saved model loads
with ``AnnotatorModel.from_pretrained(path)`` or ``AutoModel.from_pretrained(path)`` and never needs
``trust_remote_code``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, PreTrainedModel
from transformers.utils import ModelOutput

from mlfilter.scores import to_int_score

MODEL_TYPE = "mlfilter_annotator"
Pooling = Literal["cls", "mean"]


def drop_layers_above(encoder: PreTrainedModel, pooling_layers: Sequence[int]) -> list[int]:
    """Cut ``encoder``'s layer stack (in place) to what ``pooling_layers`` read; return them as indices >= 0.

    ``hidden_states[i]`` is the output of the first ``i`` layers; a model's last state may also pass its final
    norm (Llama's does), so the stack keeps ``deepest + 1`` layers and state ``deepest`` stays the plain output
    of the first ``deepest`` layers — identical embeddings, ``(deepest + 1) / num_hidden_layers`` of the compute
    (SmolLM2-135M pooling states 10, 15, 20: 21 of 30 layers). Nothing is cut when the last state is pooled,
    an index is outside ``[-states, states)`` (left to the caller's error), or the stack is not the one
    ``nn.ModuleList`` of ``config.num_hidden_layers`` blocks.
    """
    count = getattr(encoder.config, "num_hidden_layers", None)
    states = (count or 0) + 1
    if count is None or not all(-states <= i < states for i in pooling_layers):
        return list(pooling_layers)
    keep = max(i % states for i in pooling_layers) + 1
    stacks = [m for m in encoder.modules() if isinstance(m, nn.ModuleList) and len(m) == count]
    if keep >= count or len(stacks) != 1:
        return list(pooling_layers)
    del stacks[0][keep:]
    encoder.config.num_hidden_layers = keep
    if isinstance(getattr(encoder.config, "layer_types", None), list):
        encoder.config.layer_types = encoder.config.layer_types[:keep]
    return [i % states for i in pooling_layers]


class AnnotatorConfig(PretrainedConfig):
    """Configuration of an :class:`AnnotatorModel`: the encoder's own config plus the task heads.

    ``num_targets_per_task[i]`` is the number of labels of task ``i`` (labels ``0..K-1``); with
    ``is_regression`` each task has one output, otherwise ``K`` class logits. ``thresholds`` (optional)
    records each task's positive cut from training, so a saved model carries it.
    ``calibrated_thresholds`` (optional, one per task, None where the validation split could not
    calibrate it) is the cut on the raw score that best separated validation labels at or above the
    task's threshold, chosen by ``calibration_method`` (see :mod:`mlfilter.training.calibration`).
    ``pooling_layers``: the encoder's hidden states that are pooled, as indices into its
    ``hidden_states`` (0: the embedding layer, -1: the last layer); their pooled vectors are concatenated,
    so the heads read ``len(pooling_layers) * hidden_size`` features.
    """

    model_type = MODEL_TYPE
    #: ``Trainer`` leaves the pooled embeddings out of gathered predictions.
    keys_to_ignore_at_inference: ClassVar[list[str]] = ["embeddings"]

    def __init__(
        self,
        encoder: dict[str, Any] | None = None,
        task_names: Sequence[str] = ("educational",),
        num_targets_per_task: Sequence[int] = (6,),
        is_regression: bool = True,
        pooling: Pooling = "cls",
        head_hidden_size: int = 0,
        classifier_dropout: float = 0.0,
        regression_loss: Literal["mse", "huber"] = "mse",
        thresholds: Sequence[float] | None = None,
        calibrated_thresholds: Sequence[float | None] | None = None,
        calibration_method: str | None = None,
        pooling_layers: Sequence[int] = (-1,),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.encoder = dict(encoder or {})
        self.task_names = list(task_names)
        self.num_targets_per_task = [int(k) for k in num_targets_per_task]
        if len(self.task_names) != len(self.num_targets_per_task):
            raise ValueError("task_names and num_targets_per_task must have the same length")
        self.is_regression = is_regression
        self.pooling = pooling
        self.head_hidden_size = head_hidden_size
        self.classifier_dropout = classifier_dropout
        self.regression_loss = regression_loss
        self.thresholds = [float(t) for t in thresholds] if thresholds is not None else None
        if self.thresholds is not None and len(self.thresholds) != len(self.task_names):
            raise ValueError("thresholds must have one value per task")
        self.calibrated_thresholds = (
            [None if t is None else float(t) for t in calibrated_thresholds]
            if calibrated_thresholds is not None
            else None
        )
        if self.calibrated_thresholds is not None and len(self.calibrated_thresholds) != len(self.task_names):
            raise ValueError("calibrated_thresholds must have one value per task")
        self.calibration_method = calibration_method
        self.pooling_layers = [int(i) for i in pooling_layers]
        if not self.pooling_layers:
            raise ValueError("pooling_layers must name at least one hidden layer")

    @property
    def num_tasks(self) -> int:
        """Number of tasks (heads)."""
        return len(self.task_names)

    def encoder_config(self) -> PretrainedConfig:
        """The encoder's configuration object."""
        encoder = dict(self.encoder)
        return AutoConfig.for_model(encoder.pop("model_type"), **encoder)


@dataclass
class AnnotatorOutput(ModelOutput):
    """``scores``: one continuous score per task, shape ``[batch, num_tasks]`` — the regression
    output, or the probability-weighted mean label of a classification head. ``logits``: the raw
    head outputs concatenated over tasks (``[batch, num_tasks]`` or ``[batch, sum(K_i)]``)."""

    loss: torch.Tensor | None = None
    logits: torch.Tensor | None = None
    scores: torch.Tensor | None = None
    embeddings: torch.Tensor | None = None


class TaskHead(nn.Module):
    """A linear layer, or a one-hidden-layer MLP, from the pooled embedding to one task's outputs."""

    def __init__(self, hidden_size: int, outputs: int, head_hidden_size: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        if head_hidden_size > 0:
            self.layers: nn.Module = nn.Sequential(
                nn.Linear(hidden_size, head_hidden_size),
                nn.GELU(),
                nn.Dropout(dropout),
                nn.Linear(head_hidden_size, outputs),
            )
        else:
            self.layers = nn.Linear(hidden_size, outputs)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.layers(self.dropout(pooled))


def label_classes(labels: torch.Tensor, num_targets: int) -> torch.Tensor:
    """Class indices (int64, same device) of labels, by the project's one rounding rule (half up, clipped)."""
    classes = to_int_score(labels.detach().float().cpu().numpy(), num_targets)
    return torch.from_numpy(classes).long().to(labels.device)


class AnnotatorHeads(nn.Module):
    """The task heads on their own: pooled embeddings in, :class:`AnnotatorOutput` out.

    The frozen-encoder fast path trains this module directly on cached embeddings; inside an
    :class:`AnnotatorModel` it runs on the encoder's pooled output, with the same parameters.
    """

    def __init__(self, config: AnnotatorConfig, hidden_size: int) -> None:
        super().__init__()
        self.config = config
        widths = [1 if config.is_regression else k for k in config.num_targets_per_task]
        self.tasks = nn.ModuleList(
            TaskHead(hidden_size, n, config.head_hidden_size, config.classifier_dropout) for n in widths
        )
        starts = [sum(widths[:i]) for i in range(len(widths))]
        self.slices = [slice(s, s + w) for s, w in zip(starts, widths, strict=True)]

    @torch.no_grad()
    def init_from_label_prior(self, labels: torch.Tensor) -> None:
        """Start each head at the training labels' prior: the mean label (regression) or log class frequencies.

        ``labels`` is ``[n, num_tasks]`` with NaN where missing. Heads then begin at the constant
        predictor's loss instead of spending their first epochs learning the label mean.
        """
        for task, head in enumerate(self.tasks):
            column = labels[:, task].float()
            present = column[~torch.isnan(column)]
            if present.numel() == 0:
                continue
            last = head.layers[-1] if isinstance(head.layers, nn.Sequential) else head.layers
            if self.config.is_regression:
                last.bias.fill_(present.mean().item())
            else:
                k = self.config.num_targets_per_task[task]
                counts = torch.bincount(label_classes(present, k), minlength=k).float()
                last.bias.copy_(torch.log((counts + 1.0) / (counts.sum() + k)))

    def forward(
        self, embeddings: torch.Tensor, labels: torch.Tensor | None = None, weights: torch.Tensor | None = None
    ) -> AnnotatorOutput:
        """Scores (and the masked, optionally weighted loss when ``labels`` is given) from pooled embeddings."""
        logits = torch.cat([head(embeddings) for head in self.tasks], dim=-1)
        scores = self.logits_to_scores(logits)
        loss = self.compute_loss(logits, labels, weights) if labels is not None else None
        return AnnotatorOutput(loss=loss, logits=logits, scores=scores, embeddings=embeddings)

    def logits_to_scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Continuous scores ``[batch, num_tasks]`` from concatenated head outputs."""
        if self.config.is_regression:
            return logits
        columns = []
        for part in self.slices:
            probabilities = logits[:, part].float().softmax(-1)
            values = torch.arange(probabilities.shape[-1], device=logits.device, dtype=probabilities.dtype)
            columns.append((probabilities * values).sum(-1))
        return torch.stack(columns, dim=-1).to(logits.dtype)

    def compute_loss(
        self, logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean loss over the labels present (NaN labels are masked out), averaged over tasks.

        ``weights`` (``[batch]``, optional): per-document weights, e.g. inverse inclusion probabilities of a
        proxy-stratified sample; each task's loss is then ``Σ w·loss / Σ w`` over its labelled documents.
        """
        labels = labels.to(logits.device).float().reshape(logits.shape[0], -1)
        w = None if weights is None else weights.to(logits.device).float().reshape(-1)
        losses = []
        for task, part in enumerate(self.slices):
            present = ~torch.isnan(labels[:, task])
            if not present.any():
                continue
            target = labels[present, task]
            output = logits[present, part].float()
            if self.config.is_regression:
                loss_fn = nn.functional.huber_loss if self.config.regression_loss == "huber" else nn.functional.mse_loss
                per_document = loss_fn(output.squeeze(-1), target, reduction="none")
            else:
                classes = label_classes(target, self.config.num_targets_per_task[task])
                per_document = nn.functional.cross_entropy(output, classes, reduction="none")
            losses.append(per_document.mean() if w is None else (per_document * w[present]).sum() / w[present].sum())
        if not losses:
            return logits.sum() * 0.0
        return torch.stack(losses).mean()


class AnnotatorModel(PreTrainedModel):
    """An encoder, a pooling step (CLS or mean) and one head per task; losses mask missing labels."""

    config_class = AnnotatorConfig
    base_model_prefix = "annotator"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    def __init__(self, config: AnnotatorConfig, encoder: PreTrainedModel | None = None) -> None:
        super().__init__(config)
        self.encoder = encoder if encoder is not None else AutoModel.from_config(config.encoder_config())
        self.heads = AnnotatorHeads(config, self.embedding_size)
        self.encoder_frozen = False
        self.post_init()

    @classmethod
    def from_encoder(cls, encoder_name_or_path: str, **config_kwargs: Any) -> AnnotatorModel:
        """A new model on a pretrained encoder (hub id or local folder) with freshly initialised heads.

        When every pooled hidden state lies below the top layers, the encoder keeps its layers only up to one
        past the deepest pooled state (:func:`drop_layers_above`): the same embeddings at a fraction of the cost.
        """
        encoder_kwargs = config_kwargs.pop("encoder_kwargs", {})
        encoder = AutoModel.from_pretrained(encoder_name_or_path, **encoder_kwargs)
        layers = config_kwargs.get("pooling_layers")
        if layers is not None:
            config_kwargs["pooling_layers"] = drop_layers_above(encoder, layers)
        config = AnnotatorConfig(encoder=encoder.config.to_dict(), **config_kwargs)
        return cls(config, encoder=encoder)

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, nn.Linear) and any(module is m for m in self.heads.modules()):
            nn.init.normal_(module.weight, std=0.02)
            nn.init.zeros_(module.bias)

    @property
    def embedding_size(self) -> int:
        """Width of the pooled embedding the heads read: the encoder's hidden size per pooled layer."""
        return self.encoder.config.hidden_size * len(self.config.pooling_layers)

    def freeze_encoder(self) -> None:
        """Stop gradients into the encoder and keep it in eval mode (no dropout): only the heads train.

        The pooled embeddings are then a fixed function of the text, which is what lets the fast path
        train the heads on cached embeddings with the same result.
        """
        for parameter in self.encoder.parameters():
            parameter.requires_grad = False
        self.encoder_frozen = True
        self.encoder.eval()

    def train(self, mode: bool = True) -> AnnotatorModel:
        """Set training mode; a frozen encoder stays in eval mode."""
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
        return self

    def embed(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """The pooled document embeddings, shape ``[batch, embedding_size]``: each layer of ``pooling_layers``
        pooled (mean over the attended tokens, or the first token), concatenated in that order."""
        kwargs: dict[str, Any] = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        layers = self.config.pooling_layers
        if layers != [-1]:
            kwargs["output_hidden_states"] = True
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.encoder_frozen):
            output = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        states = [output.last_hidden_state] if layers == [-1] else [output.hidden_states[i] for i in layers]
        if self.config.pooling == "mean":
            mask = attention_mask.unsqueeze(-1).to(states[0].dtype)
            count = mask.sum(1).clamp(min=1e-9)
            pooled = [(hidden * mask).sum(1) / count for hidden in states]
        else:
            pooled = [hidden[:, 0] for hidden in states]
        return pooled[0] if len(pooled) == 1 else torch.cat(pooled, dim=-1)

    def forward_embeddings(
        self, embeddings: torch.Tensor, labels: torch.Tensor | None = None, weights: torch.Tensor | None = None
    ) -> AnnotatorOutput:
        """Run only the heads on pooled embeddings (the frozen-encoder fast path uses this directly)."""
        return self.heads(embeddings, labels, weights)

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
        labels: torch.Tensor | None = None,
        weights: torch.Tensor | None = None,
        **_: Any,
    ) -> AnnotatorOutput:
        """Encode, pool and score; ``labels`` is ``[batch, num_tasks]`` with NaN where a label is missing,
        ``weights`` ``[batch]`` optional per-document loss weights."""
        return self.heads(self.embed(input_ids, attention_mask, token_type_ids), labels, weights)

    def logits_to_scores(self, logits: torch.Tensor) -> torch.Tensor:
        """Continuous scores ``[batch, num_tasks]`` from concatenated head outputs."""
        return self.heads.logits_to_scores(logits)

    def compute_loss(
        self, logits: torch.Tensor, labels: torch.Tensor, weights: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean loss over the labels present (NaN labels are masked out), averaged over tasks; see
        :meth:`AnnotatorHeads.compute_loss` for ``weights``."""
        return self.heads.compute_loss(logits, labels, weights)


AutoConfig.register(MODEL_TYPE, AnnotatorConfig, exist_ok=True)
AutoModel.register(AnnotatorConfig, AnnotatorModel, exist_ok=True)
