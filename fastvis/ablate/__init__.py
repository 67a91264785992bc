"""Ablations (``fastvis-ablate``): the base recipe and one-change variants over the same seeds,
paired differences with their intervals, and the report's argument built from them."""
from .stats import Effect, compare, mean_std, t_quantile

__all__ = ["Effect", "compare", "mean_std", "t_quantile"]
