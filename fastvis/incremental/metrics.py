"""The class-incremental metrics, as the field defines them, from the accuracy matrix.

``matrix[t][j]``: after training task ``t``, the accuracy on the test samples of the classes of
task ``j`` (``j <= t``; ``None`` above the diagonal). ``seen[t]``: after task ``t``, the accuracy
on all test samples of the classes seen so far (each sample counts once, so tasks weigh by
their samples).

- average incremental accuracy (Rebuffi et al. 2017): the mean of ``seen`` over the tasks;
- last accuracy: ``seen[T-1]``;
- average forgetting (Chaudhry et al. 2018): over the tasks ``j < T-1``, the mean of the best
  accuracy task ``j`` ever had before the last task minus its accuracy at the end;
- backward transfer (Lopez-Paz and Ranzato 2017): the mean over ``j < T-1`` of
  ``matrix[T-1][j] - matrix[j][j]`` (negative: forgetting).
"""
from __future__ import annotations

import statistics

__all__ = ["order_study", "split_blocks", "summarize"]


def summarize(matrix: list[list[float | None]], seen: list[float]) -> dict:
    t = len(seen)
    if t == 0:
        raise ValueError("no task finished")
    out = {"average_incremental": sum(seen) / t, "last": seen[-1], "seen": list(seen)}
    if t > 1:
        last = matrix[t - 1]
        forgetting = [max(matrix[k][j] for k in range(j, t - 1)) - last[j] for j in range(t - 1)]
        out["forgetting"] = sum(forgetting) / len(forgetting)
        out["backward_transfer"] = sum(last[j] - matrix[j][j] for j in range(t - 1)) / (t - 1)
    else:
        out["forgetting"] = out["backward_transfer"] = None
    return out


def split_blocks(matrix: dict, seen: dict, nme_seen: dict) -> dict:
    """Per evaluated split: :func:`summarize` of its matrix, the matrix, and the nearest-mean
    classifier's accuracies where there are some."""
    out = {}
    for split in matrix:
        block = summarize(matrix[split], seen[split])
        block["matrix"] = matrix[split]
        if split in nme_seen:
            nme = summarize(matrix[split], nme_seen[split])
            block["nme"] = {k: nme[k] for k in ("average_incremental", "last", "seen")}
        out[split] = block
    return out


def _sd(values: list[float]) -> float:
    return statistics.stdev(values) if len(values) > 1 else 0.0


def order_study(results: dict[str, dict[int, float]]) -> dict:
    """Mean and spread of one metric over class orders x seeds, with the spread split into its
    two sources: ``results[order][seed]``. The seed-to-seed spread is the pooled standard
    deviation within an order; the order-to-order spread is that of the per-order means,
    corrected for the seed noise those means still carry (a balanced one-way random-effects
    estimate, floored at zero)."""
    values = [v for per in results.values() for v in per.values()]
    means = {o: statistics.fmean(per.values()) for o, per in results.items()}
    within = [v - means[o] for o, per in results.items() for v in per.values()]
    dof = len(values) - len(results)
    seed_var = sum(d * d for d in within) / dof if dof > 0 else None
    seeds = statistics.fmean(len(per) for per in results.values())
    between = statistics.variance(means.values()) if len(means) > 1 else None
    order_var = None
    if between is not None:
        order_var = max(0.0, between - (seed_var or 0.0) / seeds)
    return {"mean": statistics.fmean(values), "sd": _sd(values), "orders": len(results),
            "runs": len(values), "per_order_mean": means,
            "seed_sd": seed_var ** 0.5 if seed_var is not None else None,
            "order_sd": order_var ** 0.5 if order_var is not None else None}
