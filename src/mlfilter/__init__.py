"""mlfilter: build machine-learning quality filters for LLM pretraining data."""

__version__ = "0.1.0"
