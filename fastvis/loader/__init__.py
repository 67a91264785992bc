"""Loaders: from a .beton file to batches on the device."""
from .jpeg import (JpegLoader, center_boxes, center_crop_resize, decode_jpeg_batch, random_resized_crop,
                   resized_crops, rrc_boxes)
from .resident import ResidentDataset, epoch_order, shard_indices
from .streaming import StreamingLoader, quasi_random_order

__all__ = ["JpegLoader", "ResidentDataset", "StreamingLoader", "center_boxes", "center_crop_resize",
           "decode_jpeg_batch", "epoch_order", "quasi_random_order",
           "random_resized_crop", "resized_crops", "rrc_boxes", "shard_indices"]
