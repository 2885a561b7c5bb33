"""Atomic, checksummed artifact I/O shared by every stage.

A file is written to a temporary name in the same folder, flushed and fsync'ed,
then renamed over its final name, so a reader never sees a partial file.
"""
from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


_PERMISSION_ERRNOS = {errno.EACCES, errno.EPERM, errno.EROFS}
_SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class ArtifactWriteError(OSError):
    """An artifact could not be written for lack of permission or space.

    Raised by every atomic writer here instead of the bare :class:`OSError`; its ``errno`` is the
    original one, ``filename`` the final path.  Nothing is left behind: no temporary file, and a
    file already under the final name keeps its bytes.
    """

    def __str__(self) -> str:
        return self.strerror


def _write_error(path: Path, e: OSError) -> ArtifactWriteError:
    folder = path.parent
    reason = e.strerror or os.strerror(e.errno)
    if e.errno in _SPACE_ERRNOS:
        fix = f"free space on the file system holding {folder}"
        if e.errno == errno.EFBIG:
            fix += " (or raise the file-size limit, `ulimit -f`)"
        what = "out of space"
    else:
        fix = f"make {folder} writable or choose another output folder"
        what = "permission denied" if e.errno != errno.EROFS else "read-only file system"
    return ArtifactWriteError(e.errno, f"cannot write {path}: {what} ({reason}); {fix}. "
                                       "No partial file was left and any previous file is unchanged.", str(path))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temporary file, fsync, rename).

    :raises ArtifactWriteError: no permission (EACCES, EPERM, EROFS) or no space (ENOSPC, EDQUOT,
        EFBIG); the temporary file is removed and a previous file under ``path`` is untouched.
    """
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), 0o644)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError) and e.errno in _PERMISSION_ERRNOS | _SPACE_ERRNOS:
            raise _write_error(path, e) from e
        raise


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented, key-sorted JSON (stable bytes for equal content)."""
    atomic_write_bytes(path, (json.dumps(obj, indent=2, sort_keys=True) + "\n").encode())


def torch_bytes(obj: Any) -> bytes:
    """Serialise ``obj`` with :func:`torch.save` into memory."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    return buf.getvalue()


def atomic_torch_save(path: str | os.PathLike, obj: Any) -> str:
    """:func:`torch.save` ``obj`` atomically; returns the file's SHA-256."""
    data = torch_bytes(obj)
    atomic_write_bytes(path, data)
    return sha256_bytes(data)


def _global_name(entry) -> str:
    """The pickle name an allow-list entry admits: ``module.qualname``, or the name given with it."""
    if isinstance(entry, tuple):
        return entry[1]
    return f"{entry.__module__}.{entry.__qualname__}"


def safe_torch_load(path: str | os.PathLike, what: str = "file",
                    fix: str = "Delete it and rerun the stage that produces it.", allowed_globals: tuple = ()) -> Any:
    """``torch.load(path, weights_only=True)`` with a clear error for bad files.

    :param what: what the file is, for the messages (``"teacher checkpoint"``).
    :param fix: the advice that ends the corrupt-file message.
    :param allowed_globals: extra classes and functions the unpickler may use, beyond torch's own
        (entries as :func:`torch.serialization.safe_globals` takes them: the object, or (object, the
        name a file refers to it by)); nothing else is ever allowed.
    :raises FileNotFoundError: the file is missing.
    :raises ValueError: the file is corrupt, or it needs code outside the allowed set (named).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        with torch.serialization.safe_globals(list(allowed_globals)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for bad archives
        try:  # reads the pickle's opcodes only: nothing in the file runs
            asked = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # noqa: BLE001 - an unreadable archive: the damaged-file message below
            asked = []
        allowed = {_global_name(g) for g in allowed_globals}
        refused = sorted(g for g in asked if g not in allowed)
        if refused:
            raise ValueError(
                f"{what} {path} cannot be loaded safely: it needs code outside what may be unpickled "
                f"({', '.join(refused)}), so it is not the file this reader expects. {fix}") from e
        raise ValueError(
            f"{what} {path} cannot be loaded safely (corrupt, truncated, or it needs arbitrary code "
            f"to unpickle): {type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}. "
            f"{fix}"
        ) from e


class ArtifactError(ValueError):
    """An artifact is missing, corrupt, or not what the caller expects."""


def record_path(path: str | os.PathLike) -> Path:
    """The JSON record that vouches for ``path`` (same stem, ``.json``)."""
    return Path(path).with_suffix(".json")


def save_with_record(path: str | os.PathLike, obj: Any, record: dict) -> dict:
    """:func:`torch.save` ``obj`` to ``path`` and write ``record`` + its SHA-256 beside it.

    The weights are written first and the record last, so a record never vouches
    for a file that is not complete.  :returns: the record written.
    """
    full = {**record, "sha256": atomic_torch_save(path, obj)}
    atomic_write_json(record_path(path), full)
    return full


def load_with_record(path: str | os.PathLike, what: str) -> tuple[Any, dict]:
    """Load an artifact written by :func:`save_with_record`, checking its SHA-256 first.

    :param what: how to call the artifact in errors ("checkpoint", "condensed set").
    :raises ArtifactError: a missing file or record, or a checksum mismatch.
    """
    path = Path(path)
    rec = record_path(path)
    if not rec.is_file():
        raise ArtifactError(f"{what} record {rec} is missing: rerun the stage that writes {path.name}")
    try:
        record = json.loads(rec.read_text())
    except json.JSONDecodeError as e:
        raise ArtifactError(f"{what} record {rec} is not valid JSON ({e}); rerun the stage that wrote it") from e
    if not path.is_file():
        raise ArtifactError(f"{what} {path} is missing (its record exists): rerun the stage that writes it")
    digest = sha256_file(path)
    if digest != record.get("sha256"):
        raise ArtifactError(
            f"{what} {path} does not match its record (sha256 {digest[:12]}... != {str(record.get('sha256'))[:12]}...): "
            "the file is corrupt or was replaced; restore it (git checkout / dvc checkout) or rerun its stage"
        )
    return safe_torch_load(path, what), record
