"""The embedding store: every vector computed once, kept safe, read back with pandas.

Vectors are keyed by (audio content hash, representation key). The representation key is a
digest of everything that determines the numbers: the backend's `identity()` (model, weights
digest, front-end parameters, layer), the pooling, and how the audio was decoded. Each key has
a folder of Parquet shards:

    <root>/<key>/identity.json          what the key stands for (human-readable)
    <root>/<key>/part-<time>-<id>.parquet   columns audio_sha256, frames, vector (list<float>)

A shard is written to a temporary name and renamed into place, so a crash leaves either a
whole shard or none: the store is never corrupt, and an interrupted run resumes by computing
only the hashes that no shard holds yet.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import uuid
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from tfaudio.assets import sha256_of
from tfaudio.data.dataset import Clip

if TYPE_CHECKING:
    pass


#: A pooling name, or "frames" for the frame-level embeddings themselves.
FRAMES = "frames"


# Parquet schema metadata of written tables: the plan's stamp and the clips skipped.
_STAMP, _SKIPPED = b"tfaudio.stamp", b"tfaudio.skipped"


def default_root() -> Path:
    """$TFAUDIO_HOME/embeddings (TFAUDIO_HOME defaults to ~/.cache/tfaudio)."""
    home = os.environ.get("TFAUDIO_HOME") or Path.home() / ".cache" / "tfaudio"
    return Path(home) / "embeddings"


def representation_key(identity: dict, pooling: str, decode: dict) -> str:
    """16 hex digits naming one (representation, pooling, decoding) combination."""
    blob = json.dumps({"identity": identity, "pooling": pooling, "decode": decode}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class EmbeddingStore:
    """Parquet shards under `root` (default: $TFAUDIO_HOME/embeddings)."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_root()

    def _folder(self, key: str) -> Path:
        return self.root / key

    def lookup(self, key: str, hashes: Iterable[str]) -> dict[str, np.ndarray]:
        """The stored vectors among `hashes`: hash -> float32 [dim] (or [frames, dim])."""
        import pyarrow.parquet as pq

        wanted = set(hashes)
        found: dict[str, np.ndarray] = {}
        for shard in sorted(self._folder(key).glob("part-*.parquet")):
            table = pq.ParquetFile(shard).read()
            digests = table.column("audio_sha256").to_pylist()
            frames = table.column("frames").to_numpy()
            vectors = table.column("vector").combine_chunks()
            flat, offsets = vectors.values.to_numpy(), vectors.offsets.to_numpy()
            for row, digest in enumerate(digests):
                # Two runs may have computed the same clip; the vectors are equal, keep the first.
                if digest in wanted and digest not in found:
                    array = flat[offsets[row] : offsets[row + 1]]
                    found[digest] = array.reshape(int(frames[row]), -1) if frames[row] >= 0 else array
        return found

    def add(self, key: str, identity: dict, hashes: Sequence[str], vectors: Sequence[np.ndarray], frames: bool = False):
        """Write one shard atomically. vectors: float32 [dim] each, or [frames, dim] when frames."""
        folder = self._folder(key)
        folder.mkdir(parents=True, exist_ok=True)
        about = folder / "identity.json"
        if not about.exists():
            _atomic_write(about, json.dumps(identity, indent=2, sort_keys=True, default=str).encode())
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table(
            {
                "audio_sha256": pa.array(list(hashes), pa.string()),
                "frames": pa.array([v.shape[0] if frames else -1 for v in vectors], pa.int64()),
                "vector": pa.array([np.asarray(v, np.float32).ravel() for v in vectors], pa.list_(pa.float32())),
            }
        )
        name = f"part-{time.time_ns()}-{uuid.uuid4().hex[:8]}.parquet"
        temporary = folder / f".{name}.tmp"
        pq.write_table(table, temporary)
        os.replace(temporary, folder / name)


def hash_clips(clips: Sequence[Clip], workers: int = 4) -> list[str | None]:
    """sha256 per clip file (None where the file cannot be read)."""

    def digest(clip: Clip) -> str | None:
        try:
            return sha256_of(clip.path)
        except OSError:
            return None

    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(digest, clips))


def _atomic_write(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    temporary.write_bytes(data)
    os.replace(temporary, path)
