"""Classifiers that are not transformer encoders (fastText, character n-gram TF-IDF, model2vec static embeddings).

The train stage fits them on the same labels as the encoder (``training.classifier``), the evaluate stage
scores the test split with them, and the filter stage applies the same keep rules to their scores. A model
folder holding :data:`~mlfilter.classifiers.base.CONFIG_NAME` is one of these; any other model folder is a
transformers :class:`~mlfilter.modeling.AnnotatorModel`.
"""
