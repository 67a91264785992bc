"""Controlled differences with their spread: per variant the mean and standard deviation of a
metric over seeds, and the paired difference to the base (same seeds) with a Student-t
confidence interval. An effect is called out only when its interval excludes zero."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

__all__ = ["Effect", "compare", "mean_std", "t_quantile"]

# two-sided 95% quantiles of Student's t (0.975) by degrees of freedom
_T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t_quantile(df: int) -> float:
    """t_{0.975, df}: 12.706 for one degree of freedom, 1.96 in the limit."""
    if df < 1:
        raise ValueError("a confidence interval needs at least two seeds")
    return _T975[df - 1] if df <= len(_T975) else 1.96 + 2.4 / df  # within 0.002 of the exact value beyond 30


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    n = len(values)
    m = sum(values) / n
    sd = math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return m, sd


@dataclass
class Effect:
    variant: str
    seeds: int  # paired seeds
    mean: float  # of the variant's metric
    std: float
    diff: float  # mean paired difference, variant - base
    low: float | None  # 95% interval of the difference (None with one seed)
    high: float | None
    significant: bool  # the interval excludes zero

    def as_dict(self) -> dict:
        return asdict(self)


def compare(base: dict[int, float], variant: dict[int, float], name: str) -> Effect:
    """The variant against the base on the seeds both have: ``{seed: metric}`` each."""
    seeds = sorted(set(base) & set(variant))
    if not seeds:
        raise ValueError(f"{name}: no seed in common with the base")
    diffs = [variant[s] - base[s] for s in seeds]
    m, sd = mean_std([variant[s] for s in seeds])
    d, dsd = mean_std(diffs)
    if len(seeds) < 2:
        return Effect(name, 1, m, sd, d, None, None, False)
    half = t_quantile(len(seeds) - 1) * dsd / math.sqrt(len(seeds))
    low, high = d - half, d + half
    return Effect(name, len(seeds), m, sd, d, low, high, low > 0 or high < 0)
