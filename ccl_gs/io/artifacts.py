"""Artifact folders: atomic writes, manifests, config hashing.

Every stage writes its outputs into a folder with a ``manifest.json`` that
records the format version, the resolved config and hashes of its inputs.
Files are written to a temporary name in the same folder and renamed into
place, so a killed run never leaves a half-written file behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np


class ArtifactError(RuntimeError):
    """An artifact is missing, corrupt, stale or of the wrong kind."""


def current_umask() -> int:
    """The process umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` on success.

    The temporary file is removed if the body raises.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        # mkstemp creates 0600; the final file gets the mode a plain open() would give (0666 minus the umask)
        os.chmod(tmp_path, 0o666 & ~current_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file + fsync + rename)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(obj: Any) -> Any:
    """Convert dataclasses, paths, numpy scalars/arrays and tuples to JSON types.

    Non-finite floats (NaN, +-inf), which standard JSON cannot hold, become ``None``.
    """
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return to_jsonable(obj.item())
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write ``obj`` as indented standard JSON (NaN / inf as ``null``, see :func:`to_jsonable`), atomically."""
    atomic_write_text(path, json.dumps(to_jsonable(obj), indent=2, sort_keys=False, allow_nan=False) + "\n")


def _check_out_parents(path: Path) -> None:
    """The nearest existing ancestor of ``path`` must be a folder (else ArtifactError naming both)."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ArtifactError(f"{path}: {parent} is a file, not a folder (--out)")
            return


def check_out_dir(path: str | os.PathLike) -> Path:
    """``path`` as an output folder: absent or a folder, below folders.

    Called before any work, so a wrong ``--out`` is refused at once with a
    one-line message instead of failing after training.

    Raises:
        ArtifactError: ``path`` (or an ancestor) is an existing file; the message names it.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ArtifactError(f"{path} is an existing file, not a folder (--out)")
    _check_out_parents(path)
    return path


def check_out_file(path: str | os.PathLike) -> Path:
    """``path`` as an output file: not a folder, not ending in a path separator, below folders.

    Pass the path as the user typed it (a ``str``): ``Path`` drops a trailing slash.

    Raises:
        ArtifactError: ``path`` names a folder (existing, or by its trailing
            slash) or lies below a file; the message names it.
    """
    text = os.fspath(path)
    seps = (os.sep, os.altsep) if os.altsep else (os.sep,)
    if text.endswith(seps) or Path(text).is_dir():
        raise ArtifactError(f"{text} names a folder; give a file name (--out)")
    _check_out_parents(Path(text))
    return Path(text)


def read_json(path: str | os.PathLike) -> Any:
    """Read JSON; a missing or unparsable file raises :class:`ArtifactError` naming it."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"missing file: {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ArtifactError(f"corrupt JSON file {path}: {e}") from e


def parse_shard(text: str, error: type[Exception] = ValueError) -> tuple[int, int]:
    """``"i/n"`` -> ``(i, n)`` with ``0 <= i < n`` (stages that split their items over processes).

    Raises:
        error: malformed text or an out-of-range shard (one line naming ``--shard``).
    """
    try:
        i, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise error(f"--shard must look like i/n (e.g. 0/4), got '{text}'") from None
    if n < 1 or not 0 <= i < n:
        raise error(f"--shard {text}: need 0 <= i < n")
    return i, n


def config_hash(obj: Any) -> str:
    """A stable short hash of a config (dataclass or JSON-able object)."""
    blob = json.dumps(to_jsonable(obj), sort_keys=True).encode("utf-8")
    return hashlib.sha256(blob).hexdigest()[:16]


def file_hash(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 (hex, first 16 chars) of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()[:16]


def npz_bytes(arrays: dict[str, np.ndarray], compress: bool = False) -> bytes:
    """An ``.npz`` archive of ``arrays`` with fixed timestamps: equal arrays give identical bytes.

    (``np.savez`` stamps zip entries with the current time, so a resumed run
    and a clean run would differ byte-wise.)
    """
    import zipfile

    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compress else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", compression=method) as zf:
        for key, arr in arrays.items():
            info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            b = io.BytesIO()
            np.lib.format.write_array(b, np.asarray(arr), allow_pickle=False)
            zf.writestr(info, b.getvalue())
    return buf.getvalue()


def save_npz_atomic(path: str | os.PathLike, compress: bool = False, **arrays: np.ndarray) -> None:
    """Save arrays as a byte-deterministic ``.npz`` atomically (see :func:`npz_bytes`)."""
    atomic_write_bytes(path, npz_bytes(arrays, compress=compress))


def load_npz(path: str | os.PathLike, keys: tuple[str, ...] = ()) -> dict[str, np.ndarray]:
    """Load a ``.npz`` fully; a truncated/corrupt file or a missing key raises ArtifactError."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"missing file: {path}")
    try:
        with np.load(path, allow_pickle=False) as z:
            out = {k: z[k] for k in z.files}
    except Exception as e:  # zipfile.BadZipFile, ValueError, EOFError, OSError ...
        raise ArtifactError(f"corrupt artifact file {path}: {e}") from e
    missing = [k for k in keys if k not in out]
    if missing:
        raise ArtifactError(f"artifact file {path} lacks arrays {missing}")
    return out


@dataclasses.dataclass
class Manifest:
    """What a stage's artifact folder holds and how it was made."""

    kind: str
    """Stage name, e.g. ``"preprocess"``, ``"rgb"``, ``"codebook"``."""
    format_version: int
    """Bumped whenever the on-disk layout changes."""
    config: dict
    """The resolved config of the run (as JSON)."""
    inputs: dict = dataclasses.field(default_factory=dict)
    """Hashes or identifiers of the inputs (file hashes, upstream manifest hashes)."""
    extra: dict = dataclasses.field(default_factory=dict)
    """Stage-specific facts (model names, checkpoint hashes, counts, ...)."""

    def save(self, folder: str | os.PathLike) -> None:
        write_json(Path(folder) / "manifest.json", self)

    @classmethod
    def load(cls, folder: str | os.PathLike, kind: str | None = None) -> "Manifest":
        path = Path(folder) / "manifest.json"
        d = read_json(path)
        try:
            m = cls(**d)
        except TypeError as e:
            raise ArtifactError(f"malformed manifest {path}: {e}") from e
        if kind is not None and m.kind != kind:
            raise ArtifactError(f"{path} is a '{m.kind}' artifact, expected '{kind}'")
        return m

    def fingerprint(self) -> str:
        """Hash of kind, version, config and inputs: equal iff the artifact is reusable."""
        return config_hash({"kind": self.kind, "v": self.format_version, "c": self.config, "i": self.inputs})


def reusable_manifest(out_dir: str | os.PathLike, expected: "Manifest", complete: Callable[["Manifest"], bool]):
    """The manifest of an up-to-date artifact in ``out_dir``, else None.

    An artifact whose manifest matches ``expected`` (kind, version, config,
    inputs) and that ``complete`` accepts is reusable. A stale one has its
    manifest removed, so the folder counts as incomplete until the new
    manifest lands. A folder holding another kind of artifact (or an
    unreadable manifest), or an ``out_dir`` that is a file (see
    :func:`check_out_dir`), is refused rather than overwritten.

    Raises:
        ArtifactError: ``out_dir`` holds or is something else (the message names it).
    """
    out_dir = check_out_dir(out_dir)
    path = out_dir / "manifest.json"
    if not path.is_file():
        return None
    try:
        old = Manifest.load(out_dir, kind=expected.kind)
    except ArtifactError as e:
        raise ArtifactError(f"{e}; refusing to overwrite {out_dir} (--out)") from e
    if old.fingerprint() == expected.fingerprint() and complete(old):
        return old
    path.unlink()
    return None
