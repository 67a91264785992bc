"""Field types of a ``.beton`` file: how a value is encoded into a metadata record plus an
optional payload in the data pages, and decoded back.

Each field pairs its encoder with its decoder and declares its metadata record and its
1024-byte argument block exactly as FFCV does, so files interoperate both ways.
"""
from __future__ import annotations

import io
import json
from typing import Any, ClassVar

import numpy as np

from .format import (
    ARGS_SIZE,
    MODE_JPEG,
    MODE_RAW,
    TYPE_BYTES,
    TYPE_FLOAT,
    TYPE_INT,
    TYPE_JSON,
    TYPE_NDARRAY,
    TYPE_RGB,
    TYPE_TORCH,
)

__all__ = [
    "Field",
    "IntField",
    "FloatField",
    "RGBImageField",
    "BytesField",
    "JSONField",
    "NDArrayField",
    "field_from_descriptor",
]


class Field:
    """Base class. Subclasses set ``type_id`` and implement the hooks below."""

    type_id: ClassVar[int]
    #: name of the pointer inside the metadata record ("" when the record itself is the pointer,
    #: None for fields without a payload)
    ptr_key: ClassVar[str | None] = None

    @property
    def metadata_dtype(self) -> np.dtype:
        raise NotImplementedError

    def to_args(self) -> np.ndarray:
        return np.zeros(ARGS_SIZE, np.uint8)

    @classmethod
    def from_args(cls, args: np.ndarray) -> "Field":
        return cls()

    # -- writing ---------------------------------------------------------------------------
    def encode(self, value: Any) -> tuple[Any, Any]:
        """Return ``(payload, partial_meta)``; payload is a bytes-like object or None."""
        raise NotImplementedError

    def make_meta(self, partial: Any, ptr: int, size: int) -> Any:
        """The metadata record once the payload has its place in the file."""
        return partial

    # -- reading ---------------------------------------------------------------------------
    def decode(self, meta: np.void | np.generic, payload: np.ndarray | None) -> Any:
        raise NotImplementedError

    def pointers(self, meta: np.ndarray) -> np.ndarray | None:
        """Payload pointers of all samples (``meta`` is this field's column), or None."""
        if self.ptr_key is None:
            return None
        return meta if self.ptr_key == "" else meta[self.ptr_key]

    def payload_sizes(self, meta: np.ndarray) -> np.ndarray | None:
        """Sizes the metadata implies for each payload; -1 where only the allocation table knows."""
        return None

    def check_meta(self, meta: np.ndarray) -> str | None:
        """A description of what is wrong with this field's metadata column, or None."""
        return None

    # -- batches (the fast path of ``BetonReader.read_batch``) -----------------------------
    def batch_spec(self, meta: np.ndarray) -> tuple[tuple[int, ...], np.dtype] | None:
        """``(shape, dtype)`` of one sample in a batch array of the samples whose metadata is
        ``meta``, or None when the field gives a list of decoded values instead. Scalar fields
        batch as their metadata; ValueError when the samples cannot share one array."""
        return ((), meta.dtype) if self.ptr_key is None else None

    def read_into(self, reader, j: int, idx: np.ndarray, meta: np.ndarray, out: np.ndarray,
                  threads: int | None) -> None:
        """Fill ``out`` (shaped by :meth:`batch_spec`) with samples ``idx`` (metadata ``meta``)
        of field ``j`` of ``reader``, through ``reader.gather`` (payload copies) or
        ``reader.decode_into`` (decoding on threads)."""
        out[...] = meta

    def describe(self) -> dict:
        return {"type": type(self).__name__}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.describe().items() if k != "type")
        return f"{type(self).__name__}({args})"

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other) and self.describe() == other.describe()  # type: ignore[union-attr]

    def __hash__(self) -> int:
        return hash(repr(self))


class IntField(Field):
    """A signed 64-bit integer per sample (labels)."""

    type_id = TYPE_INT

    @property
    def metadata_dtype(self) -> np.dtype:
        return np.dtype("<i8")

    def encode(self, value):
        if isinstance(value, (float, np.floating)) or isinstance(value, bool):
            raise TypeError(f"IntField takes an integer, got {value!r}")
        return None, int(value)

    def decode(self, meta, payload):
        return int(meta)


class FloatField(Field):
    """A 64-bit float per sample."""

    type_id = TYPE_FLOAT

    @property
    def metadata_dtype(self) -> np.dtype:
        return np.dtype("<f8")

    def encode(self, value):
        return None, float(value)

    def decode(self, meta, payload):
        return float(meta)


class RGBImageField(Field):
    """An RGB uint8 image of any size up to 65535 x 65535, stored raw or as JPEG.

    ``mode``: ``"raw"`` keeps pixels exactly; ``"jpeg"`` compresses with ``jpeg_quality``.
    Decoded images are ``(H, W, 3)`` uint8 arrays.
    """

    type_id = TYPE_RGB
    ptr_key = "data_ptr"
    _META = np.dtype([("mode", "u1"), ("width", "<u2"), ("height", "<u2"), ("data_ptr", "<u8")])

    def __init__(self, mode: str = "raw", jpeg_quality: int = 90):
        if mode not in ("raw", "jpeg"):
            raise ValueError(f"RGBImageField mode must be 'raw' or 'jpeg', not {mode!r}")
        if not 1 <= int(jpeg_quality) <= 100:
            raise ValueError(f"jpeg_quality must be in 1..100, not {jpeg_quality}")
        self.mode = mode
        self.jpeg_quality = int(jpeg_quality)

    @property
    def metadata_dtype(self) -> np.dtype:
        return self._META

    def describe(self) -> dict:
        return {"type": "RGBImageField", "mode": self.mode, "jpeg_quality": self.jpeg_quality}

    def encode(self, value):
        image = np.asarray(value)
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"an RGB image must be an (H, W, 3) uint8 array, got {image.dtype} {image.shape}")
        h, w = image.shape[:2]
        if not (0 < h < 65536 and 0 < w < 65536):
            raise ValueError(f"image size {w}x{h} is outside 1..65535")
        if self.mode == "raw":
            return np.ascontiguousarray(image).reshape(-1), (MODE_RAW, w, h)
        return encode_jpeg(image, self.jpeg_quality), (MODE_JPEG, w, h)

    def make_meta(self, partial, ptr, size):
        return (*partial, ptr)

    def decode(self, meta, payload):
        h, w = int(meta["height"]), int(meta["width"])
        if meta["mode"] == MODE_RAW:
            return payload.reshape(h, w, 3).copy()
        return decode_jpeg(payload, h, w)

    def payload_sizes(self, meta):
        raw = meta["mode"] == MODE_RAW
        sizes = meta["width"].astype(np.int64) * meta["height"].astype(np.int64) * 3
        return np.where(raw, sizes, -1)

    def batch_spec(self, meta):
        if meta.size == 0:
            return (0, 0, 3), np.dtype(np.uint8)
        h, w = int(meta["height"][0]), int(meta["width"][0])
        if (meta["height"] != h).any() or (meta["width"] != w).any():
            raise ValueError("images differ in size; convert with --size to batch them")
        return (h, w, 3), np.dtype(np.uint8)

    def read_into(self, reader, j, idx, meta, out, threads):
        if (meta["mode"] == MODE_RAW).all():  # a parallel copy of the stored pixels
            reader.gather(j, idx, int(np.prod(out.shape[1:])), out.reshape(idx.size, -1), threads)
        else:
            reader.decode_into(j, idx, out, threads)

    def check_meta(self, meta):
        bad = (meta["mode"] != MODE_RAW) & (meta["mode"] != MODE_JPEG)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            return f"sample {i} has unknown image mode {int(meta['mode'][i])}"
        empty = (meta["width"] == 0) | (meta["height"] == 0)
        if empty.any():
            return f"sample {int(np.flatnonzero(empty)[0])} has an empty image"
        return None


class BytesField(Field):
    """A variable-length byte string per sample, decoded as a 1-D uint8 array."""

    type_id = TYPE_BYTES
    ptr_key = "ptr"
    _META = np.dtype([("ptr", "<u8"), ("size", "<u8")])

    @property
    def metadata_dtype(self) -> np.dtype:
        return self._META

    def encode(self, value):
        if isinstance(value, (bytes, bytearray, memoryview)):
            data = np.frombuffer(value, np.uint8)
        else:
            data = np.ascontiguousarray(value).reshape(-1).view(np.uint8)
        return data, None

    def make_meta(self, partial, ptr, size):
        return (ptr, size)

    def decode(self, meta, payload):
        return payload.copy()

    def payload_sizes(self, meta):
        # a corrupt, absurd size must not wrap to a negative "unknown" size
        return np.minimum(meta["size"], np.uint64(1 << 62)).astype(np.int64)


class JSONField(BytesField):
    """A JSON document per sample (UTF-8, NUL-terminated as FFCV writes it), decoded to Python."""

    type_id = TYPE_JSON

    def encode(self, value):
        text = json.dumps(value) + "\0"  # json.dumps escapes NUL, so the terminator is unique
        return np.frombuffer(text.encode("utf-8"), np.uint8), None

    def decode(self, meta, payload):
        raw = payload.tobytes().split(b"\0", 1)[0]
        return json.loads(raw.decode("utf-8"))


_NDARRAY_HEAD = np.dtype([("shape", "<u8", 32), ("type_length", "<u8")])


class NDArrayField(Field):
    """A fixed-shape array of any numpy dtype per sample (uint16 radiographs included)."""

    type_id = TYPE_NDARRAY
    ptr_key = ""

    def __init__(self, dtype, shape):
        self.dtype = np.dtype(dtype)
        if self.dtype.hasobject or self.dtype.itemsize == 0:
            raise ValueError(f"NDArrayField cannot store dtype {self.dtype}")
        self.shape = tuple(int(s) for s in shape)
        if not 1 <= len(self.shape) <= 32 or any(s <= 0 for s in self.shape):
            raise ValueError(f"NDArrayField shape must have 1..32 positive sizes, got {shape}")
        self.element_size = int(self.dtype.itemsize * np.prod(self.shape))

    @property
    def metadata_dtype(self) -> np.dtype:
        return np.dtype("<u8")

    def describe(self) -> dict:
        return {"type": "NDArrayField", "dtype": self.dtype.str, "shape": list(self.shape)}

    def to_args(self) -> np.ndarray:
        out = np.zeros(ARGS_SIZE, np.uint8)
        head = np.zeros(1, _NDARRAY_HEAD)
        head["shape"][0, : len(self.shape)] = self.shape
        descr = json.dumps(self.dtype.descr).encode("ascii")
        head["type_length"] = len(descr)
        blob = np.concatenate([head.view(np.uint8), np.frombuffer(descr, np.uint8)])
        if blob.size > ARGS_SIZE:
            raise ValueError(f"dtype {self.dtype} is too complex to describe in {ARGS_SIZE} bytes")
        out[: blob.size] = blob
        return out

    @classmethod
    def from_args(cls, args):
        head = np.asarray(args[: _NDARRAY_HEAD.itemsize]).view(_NDARRAY_HEAD)[0]
        length = int(head["type_length"])
        if length > ARGS_SIZE - _NDARRAY_HEAD.itemsize:
            raise ValueError(f"dtype description length {length} does not fit the argument block")
        text = bytes(args[_NDARRAY_HEAD.itemsize : _NDARRAY_HEAD.itemsize + length]).decode("ascii")
        descr = [tuple(x) for x in json.loads(text)]
        if len(descr) != 1:
            raise ValueError(f"expected one dtype in {text!r}")
        dtype = np.dtype(descr)[0]
        shape = [int(s) for s in head["shape"]]
        while shape and shape[-1] == 0:
            shape.pop()
        if any(s > 1 << 40 for s in shape):
            raise ValueError(f"implausible array shape {shape}")
        return cls(dtype, shape)

    def encode(self, value):
        arr = np.asarray(value)
        if arr.shape != self.shape:
            raise ValueError(f"array of shape {arr.shape} given to a field of shape {self.shape}")
        arr = np.ascontiguousarray(arr, dtype=self.dtype)
        return arr.reshape(-1).view(np.uint8), None

    def make_meta(self, partial, ptr, size):
        return ptr

    def decode(self, meta, payload):
        return payload.view(self.dtype).reshape(self.shape).copy()

    def payload_sizes(self, meta):
        return np.full(meta.shape, self.element_size, np.int64)

    def batch_spec(self, meta):
        return self.shape, self.dtype

    def read_into(self, reader, j, idx, meta, out, threads):
        reader.gather(j, idx, self.element_size, out.reshape(idx.size, -1).view(np.uint8), threads)


class TorchTensorField(NDArrayField):
    """FFCV's torch-tensor field: stored exactly as an NDArray, read back as a numpy array."""

    type_id = TYPE_TORCH


FIELD_TYPES: dict[int, type[Field]] = {
    cls.type_id: cls
    for cls in (FloatField, IntField, RGBImageField, BytesField, NDArrayField, JSONField, TorchTensorField)
}


def field_from_descriptor(type_id: int, args: np.ndarray) -> Field:
    """Build the field a descriptor names; ValueError for unknown ids or unreadable arguments."""
    cls = FIELD_TYPES.get(int(type_id))
    if cls is None:
        raise ValueError(f"unknown field type id {int(type_id)}")
    try:
        return cls.from_args(args)
    except (ValueError, TypeError, UnicodeDecodeError, OverflowError) as exc:
        raise ValueError(f"unreadable arguments for {cls.__name__}: {exc}") from None


# -- JPEG through Pillow (libjpeg-turbo) ---------------------------------------------------

def encode_jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image, "RGB").save(buf, format="JPEG", quality=quality)
    return np.frombuffer(buf.getvalue(), np.uint8)


def decode_jpeg(payload: np.ndarray, height: int, width: int) -> np.ndarray:
    """Decode a JPEG payload; raise ValueError when it is corrupt or not of the recorded size."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(payload.tobytes())) as img:
            if img.format != "JPEG":
                raise ValueError(f"payload is {img.format}, not JPEG")
            if img.size != (width, height):
                raise ValueError(f"JPEG is {img.size[0]}x{img.size[1]}, metadata says {width}x{height}")
            img = img.convert("RGB") if img.mode != "RGB" else img
            img.load()
            return np.asarray(img)
    except ValueError:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, struct.error ... on corrupt data
        raise ValueError(f"corrupt JPEG payload ({type(exc).__name__}: {exc})") from None
