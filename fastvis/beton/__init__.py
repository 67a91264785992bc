"""The ``.beton`` file format (FFCV's layout), read and written with numpy alone."""
from .fields import (
    BytesField,
    Field,
    FloatField,
    IntField,
    JSONField,
    NDArrayField,
    RGBImageField,
    TorchTensorField,
)
from .format import BetonError
from .reader import BetonReader, sidecar_path
from .writer import BetonWriter

__all__ = [
    "BetonError",
    "BetonReader",
    "BetonWriter",
    "BytesField",
    "Field",
    "FloatField",
    "IntField",
    "JSONField",
    "NDArrayField",
    "RGBImageField",
    "TorchTensorField",
    "sidecar_path",
]
