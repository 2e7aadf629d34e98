"""A minimal reader for Caffe's ``.caffemodel`` files (a binary protobuf ``NetParameter``).

Used to import BVLC's replication of the paper's network (section 5, Table 1); see
:mod:`googlenet.weights.importers.caffe`.

Only what a weight import needs is decoded: each layer's name, type and parameter blobs. Hand
written because the alternatives cost more than these ~150 lines: the ``protobuf`` package would
need a descriptor for ``caffe.proto`` (thousands of lines of schema, or a generated ``caffe_pb2``
module pinned to one protobuf version) and Caffe itself is not installable from PyPI.

Field numbers, from BVLC ``src/caffe/proto/caffe.proto`` (checked against the file itself):

- ``NetParameter``: ``name = 1``, ``layers = 2`` (``V1LayerParameter``, legacy), ``layer = 100``
  (``LayerParameter``).
- ``LayerParameter``: ``name = 1``, ``type = 2`` (string), ``blobs = 7``.
- ``V1LayerParameter``: ``name = 4``, ``type = 5`` (``LayerType`` enum: ``CONVOLUTION = 4``,
  ``INNER_PRODUCT = 14``), ``blobs = 6``.
- ``BlobProto``: ``num = 1``, ``channels = 2``, ``height = 3``, ``width = 4`` (legacy 4-D shape),
  ``data = 5`` (float, declared packed), ``diff = 6``, ``shape = 7`` (``BlobShape``),
  ``double_data = 8`` (double, declared packed).
- ``BlobShape``: ``dim = 1`` (int64, declared packed).

Protobuf parsers must accept a repeated scalar field both packed (one length-delimited record)
and unpacked (one record per value), whatever the schema declares; so does this reader.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

# Wire types (protobuf encoding spec).
VARINT, FIXED64, LENGTH_DELIMITED, FIXED32 = 0, 1, 2, 5

# caffe.proto field numbers (see the module docstring).
NET_NAME, NET_LAYERS_V1, NET_LAYER = 1, 2, 100
LAYER_NAME, LAYER_TYPE, LAYER_BLOBS = 1, 2, 7
V1_NAME, V1_TYPE, V1_BLOBS = 4, 5, 6
BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH = 1, 2, 3, 4
BLOB_DATA, BLOB_SHAPE, BLOB_DOUBLE_DATA = 5, 7, 8
SHAPE_DIM = 1

# V1LayerParameter.LayerType values for the layers that carry weights, as LayerParameter's strings.
V1_LAYER_TYPES = {4: "Convolution", 14: "InnerProduct", 39: "Deconvolution"}


class ProtobufError(ValueError):
    """The bytes are not a well-formed protobuf message."""


@dataclass
class CaffeBlob:
    """One parameter blob: its shape as stored and its values (float32, flat)."""

    shape: tuple[int, ...]
    data: np.ndarray
    legacy_4d: bool  # shape came from num/channels/height/width rather than BlobShape


@dataclass
class CaffeLayer:
    name: str
    type: str
    blobs: list[CaffeBlob]


@dataclass
class CaffeNet:
    name: str
    layers: list[CaffeLayer]
    layout: str  # "layer" (current LayerParameter) or "layers" (legacy V1LayerParameter)


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint longer than 10 bytes")


def _read_record(buf: memoryview, pos: int) -> tuple[int, int, int | memoryview, int]:
    """One record at ``pos``: ``(field_number, wire_type, value, next_pos)``.

    ``value`` is an int for varints and a memoryview (no copy) for length-delimited and
    fixed-size records: blobs of millions of floats are sliced, not parsed, until asked for.
    """
    start = pos
    key, pos = _varint(buf, pos)
    number, wire = key >> 3, key & 7
    if number == 0:
        raise ProtobufError(f"field number 0 at byte {start}")
    if wire == VARINT:
        value, pos = _varint(buf, pos)
        return number, wire, value, pos
    if wire == LENGTH_DELIMITED:
        size, pos = _varint(buf, pos)
    elif wire == FIXED32:
        size = 4
    elif wire == FIXED64:
        size = 8
    else:  # 3/4 are the long-deprecated groups; Caffe never writes them
        raise ProtobufError(f"unsupported wire type {wire} at byte {start}")
    if pos + size > len(buf):
        raise ProtobufError(f"record at byte {start} runs past the end of its message")
    return number, wire, buf[pos : pos + size], pos + size


def iter_fields(buf: memoryview) -> Iterator[tuple[int, int, int | memoryview]]:
    """Yield ``(field_number, wire_type, value)`` for every record of one message."""
    pos = 0
    while pos < len(buf):
        number, wire, value, pos = _read_record(buf, pos)
        yield number, wire, value


def _unpacked_floats(buf: memoryview, start: int, key_byte: int) -> tuple[np.ndarray, int]:
    """Read a run of unpacked fixed32 records (``key_byte`` + 4 bytes each) from ``start`` at once.

    One Python iteration per float would take seconds for a 7M-parameter net; numpy reads the
    run at a stride of 5 bytes instead.
    """
    raw = np.frombuffer(buf[start:], dtype=np.uint8)
    n = len(raw) // 5
    bad = np.flatnonzero(raw[: n * 5 : 5] != key_byte)
    count = int(bad[0]) if len(bad) else n
    values = raw[: count * 5].reshape(count, 5)[:, 1:].copy().view("<f4").reshape(-1)
    return values, start + count * 5


def _packed_varints(value: memoryview) -> list[int]:
    out, pos = [], 0
    while pos < len(value):
        v, pos = _varint(value, pos)
        out.append(v)
    return out


def _int64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def parse_blob(buf: memoryview) -> CaffeBlob:
    """Decode a ``BlobProto``: BlobShape or legacy 4-D shape; packed or unpacked float/double data."""
    floats: list[np.ndarray] = []
    doubles: list[np.ndarray] = []
    dims: list[int] = []
    legacy = {BLOB_NUM: 0, BLOB_CHANNELS: 0, BLOB_HEIGHT: 0, BLOB_WIDTH: 0}
    has_shape = False
    unpacked_float_key = (BLOB_DATA << 3) | FIXED32  # one byte: 0x2d
    pos = 0
    while pos < len(buf):
        if buf[pos] == unpacked_float_key:
            values, pos = _unpacked_floats(buf, pos, unpacked_float_key)
            floats.append(values)
            continue
        number, wire, value, pos = _read_record(buf, pos)
        if number == BLOB_DATA and isinstance(value, memoryview):
            if len(value) % 4:
                raise ProtobufError("packed float data length is not a multiple of 4")
            floats.append(np.frombuffer(value, dtype="<f4"))
        elif number == BLOB_DOUBLE_DATA and isinstance(value, memoryview):
            if len(value) % 8:
                raise ProtobufError("packed double data length is not a multiple of 8")
            doubles.append(np.frombuffer(value, dtype="<f8"))
        elif number == BLOB_SHAPE and wire == LENGTH_DELIMITED:
            has_shape = True
            for n, w, v in iter_fields(value):
                if n == SHAPE_DIM:
                    dims.extend(_packed_varints(v) if w == LENGTH_DELIMITED else [v])
        elif number in legacy and wire == VARINT:
            legacy[number] = value
    if floats:
        data = np.concatenate(floats) if len(floats) > 1 else floats[0]
    elif doubles:
        data = np.concatenate(doubles)
    else:
        data = np.zeros(0, dtype="<f4")
    if has_shape:
        shape = tuple(_int64(d) for d in dims)
    else:
        shape = tuple(_int64(legacy[k]) for k in (BLOB_NUM, BLOB_CHANNELS, BLOB_HEIGHT, BLOB_WIDTH))
    return CaffeBlob(shape=shape, data=data.astype(np.float32), legacy_4d=not has_shape)


def _text(value: memoryview) -> str:
    try:
        return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
        raise ProtobufError("a layer name is not valid UTF-8") from None


def parse_net(data: bytes) -> CaffeNet:
    """Decode a ``NetParameter``: its name and every layer (current or V1 layout) with blobs."""
    buf = memoryview(data)
    name = ""
    current: list[CaffeLayer] = []
    legacy: list[CaffeLayer] = []
    for number, wire, value in iter_fields(buf):
        if wire != LENGTH_DELIMITED:
            continue
        if number == NET_NAME:
            name = _text(value)
        elif number == NET_LAYER:
            current.append(_parse_layer(value, LAYER_NAME, LAYER_TYPE, LAYER_BLOBS))
        elif number == NET_LAYERS_V1:
            legacy.append(_parse_layer(value, V1_NAME, V1_TYPE, V1_BLOBS))
    # Caffe's own UpgradeNetAsNeeded refuses files with both; prefer the current layout.
    if current:
        return CaffeNet(name, current, "layer")
    return CaffeNet(name, legacy, "layers")


def _parse_layer(buf: memoryview, name_field: int, type_field: int, blobs_field: int) -> CaffeLayer:
    name, kind, blobs = "", "", []
    for number, wire, value in iter_fields(buf):
        if number == name_field and wire == LENGTH_DELIMITED:
            name = _text(value)
        elif number == type_field:
            if wire == LENGTH_DELIMITED:
                kind = _text(value)
            elif wire == VARINT:  # V1 enum
                kind = V1_LAYER_TYPES.get(value, f"V1 type {value}")
        elif number == blobs_field and wire == LENGTH_DELIMITED:
            blobs.append(parse_blob(value))
    return CaffeLayer(name, kind, blobs)
