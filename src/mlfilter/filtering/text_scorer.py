"""Scoring with a non-encoder classifier (fastText, TF-IDF) through the filter's shard machinery.

:class:`TextClassifierScorer` has the interface of :class:`mlfilter.filtering.engine.Scorer` (``task_names``,
``score``, ``score_stream``), so the local engine, keep rules and reports treat both alike; :func:`load_scorer`
picks the one a model folder needs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, TypeVar

import numpy as np

from mlfilter.classifiers.base import ENCODER, TextClassifier, classifier_kind, load_classifier
from mlfilter.filtering.engine import ScoredDocuments, Scorer
from mlfilter.filtering.params import ScoringParams

T = TypeVar("T")


class TextClassifierScorer:
    """Scores documents with a :class:`~mlfilter.classifiers.base.TextClassifier`.

    Document lengths (``ScoredDocuments.tokens``) are white-space word counts: these classifiers have no
    subword tokenizer, and words are the units they read. Long documents are read whole.
    """

    def __init__(self, classifier: TextClassifier) -> None:
        self.classifier = classifier

    @property
    def task_names(self) -> list[str]:
        """The classifier's task names, in score column order."""
        return list(self.classifier.task_names)

    def score(self, texts: Sequence[str]) -> ScoredDocuments:
        """Scores ``[documents, tasks]`` (float32, input order) and word counts."""
        scores = np.asarray(self.classifier.predict(list(texts)), dtype=np.float32)
        tokens = np.fromiter((len(text.split()) for text in texts), dtype=np.int64, count=len(texts))
        return ScoredDocuments(scores.reshape(len(texts), len(self.task_names)), tokens)

    def score_stream(
        self, windows: Iterable[list[T]], text_of: Callable[[T], str]
    ) -> Iterator[tuple[list[T], ScoredDocuments]]:
        """Score successive windows of items."""
        for items in windows:
            yield items, self.score([text_of(item) for item in items])


def load_scorer(model_path: str, options: ScoringParams) -> Any:
    """A :class:`Scorer` for an AnnotatorModel folder, a :class:`TextClassifierScorer` for any other kind."""
    if classifier_kind(model_path) == ENCODER:
        return Scorer.load(model_path, options)
    return TextClassifierScorer(load_classifier(model_path))
