"""Loaders: from a .beton file to batches on the device."""
from .resident import ResidentDataset, epoch_order, shard_indices
from .streaming import StreamingLoader, quasi_random_order

__all__ = ["ResidentDataset", "StreamingLoader", "epoch_order", "quasi_random_order", "shard_indices"]
