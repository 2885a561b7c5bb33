"""Reader for the IDX format of (Fashion-)MNIST, gzip-compressed or raw."""
from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

import numpy as np

_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx_bytes(path: Path) -> bytes:
    """The decompressed bytes of an IDX file (``.gz`` or raw)."""
    with open(path, "rb") as f:
        head = f.read(2)
    opener = gzip.open if head == b"\x1f\x8b" else open
    with opener(path, "rb") as f:
        return f.read()


def parse_idx(data: bytes, source: str = "IDX data") -> np.ndarray:
    """Parse IDX bytes into an array of the shape stored in its header.

    :raises ValueError: the magic number or the size disagree with the header.
    """
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _DTYPES:
        raise ValueError(f"{source} is not an IDX file (bad magic number)")
    ndim = data[3]
    dims = np.frombuffer(data, dtype=">i4", count=ndim, offset=4).astype(np.int64)
    dtype = np.dtype(_DTYPES[data[2]])
    expected = 4 + 4 * ndim + int(np.prod(dims)) * dtype.itemsize
    if len(data) != expected:
        raise ValueError(f"{source} holds {len(data)} bytes, its header promises {expected} (truncated or corrupt)")
    return np.frombuffer(data, dtype=dtype, offset=4 + 4 * ndim).reshape(tuple(dims))


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
