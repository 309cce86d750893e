"""sailvl: curate, train and evaluate SAIL-VL style vision-language models."""

__version__ = "0.1.0"
