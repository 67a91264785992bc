"""Loaders: from a .beton file to batches on the device."""
from .resident import ResidentDataset, epoch_order, shard_indices

__all__ = ["ResidentDataset", "epoch_order", "shard_indices"]
