"""Training annotator models: typed params, labelled data, the Trainer and frozen-embedding paths."""
