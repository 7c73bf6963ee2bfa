"""Evaluation: agreement among annotators, scores against a gold annotator, and the trained classifier
on the test split — with DVC metrics and plots (the ``evaluate`` stage and the reliability commands)."""
