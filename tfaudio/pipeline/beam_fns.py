"""The steps of the Beam pipeline (tfaudio.pipeline.beam builds the graph from them).

This module imports Apache Beam, so only `run_beam` imports it. Every step calls the functions
the local runner calls: `plan_clip` for work units, `read_window` to decode, `embed_windows` for a
batch, `FramePool` to pool a clip's windows, `rows_table` / `write_shard` for the output; Beam
adds only where each runs. Elements are plain tuples and frozen dataclasses, so any runner's
coders can move them between workers.

Clip keys are tuples (position, path, file, label, fold, group, audio_sha256): the clip's place in
the listing, its path or URL, and the row the output gives it.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from dataclasses import dataclass, replace

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.utils import shared

from tfaudio.data.audio import AudioError
from tfaudio.data.batches import pad_windows
from tfaudio.data.windows import read_window
from tfaudio.frontend.window_pooling import FramePool
from tfaudio.pipeline.sources import LocalCopies
from tfaudio.pipeline.units import embed_windows, plan_clip, prepare_windows

#: Beam metrics namespace; the counters are listed in `tfaudio.pipeline.beam.COUNTERS`.
NAMESPACE = "tfaudio"
#: Tagged outputs: unreadable clips (dead letters), clips served from earlier output or the
#: store, and the clip key of every clip that will be computed.
DEAD, CACHED, PLANNED = "dead", "cached", "planned"
#: Prefix of the per-process counters that name the workers which loaded the model.
LOADED_BY = "model_loaded_by:"


def counter(name: str):
    return Metrics.counter(NAMESPACE, name)


@dataclass(frozen=True)
class ModelSpec:
    """What a worker needs to build the representation: its registry name and a local weights
    file (None: the registry's own lookup, TFAUDIO_MODELS and the caches)."""

    name: str
    weights_path: str | None = None

    def build(self):
        """The registry's representation (a lazy entry builds no network yet)."""
        from tfaudio.models.registry import get

        return get(self.name, weights_path=self.weights_path)

    def load(self) -> LoadedModel:
        """The representation with its network built, ready to embed."""
        representation = self.build()
        loaded = getattr(representation, "loaded", None)
        if callable(loaded):
            loaded()
        return LoadedModel(representation)


class LoadedModel:
    """A worker's model, shared by its DoFn instances (Beam's `Shared` keeps it per process).

    announce() is True once per load: the first bundle after it reports the load in Beam's
    metrics (metrics cannot be reported from `setup`)."""

    def __init__(self, representation):
        self.representation = representation
        self._unannounced = True
        self._lock = threading.Lock()

    def announce(self) -> bool:
        with self._lock:
            fresh, self._unannounced = self._unannounced, False
        return fresh


@dataclass(frozen=True)
class PlanSettings:
    """How clips become windows (the local runner's EmbedConfig values)."""

    window_seconds: float
    max_duration: float | None


def dead_letter(path: str, reason: str, digest: str | None = None) -> dict:
    """One line of the dead-letter output."""
    return {"path": path, "reason": reason, "audio_sha256": digest}


class PlanClips(beam.DoFn):
    """(position, ClipRef) -> the clip's windows, or its key to CACHED when its vectors exist
    already, or a dead letter when it cannot be read. Hashes each file once (remote files while
    they are copied here) and reads only headers, except for the clip state of clips of several
    windows where the representation has one (e.g. a loudness reference)."""

    def __init__(self, spec: ModelSpec, settings: PlanSettings, store_root: str | None, store_key: str):
        self.spec, self.settings = spec, settings
        self.store_root, self.store_key = store_root, store_key

    def setup(self):
        self.representation = self.spec.build()  # lazy: the network is built only if a clip state needs it
        self.copies = LocalCopies()
        self.store = None
        if self.store_root is not None:
            from tfaudio.store import EmbeddingStore

            self.store = EmbeddingStore(self.store_root)

    def process(self, element, earlier: dict):
        position, clip = element
        try:
            local, digest = self.copies.local_and_digest(clip.path)
        except OSError as err:
            counter("failed_units").inc()
            yield beam.pvalue.TaggedOutput(DEAD, dead_letter(clip.path, f"cannot be read: {err.strerror or err}"))
            return
        key = (position, clip.path, clip.file, clip.label, clip.fold, clip.group, digest)
        try:
            source = earlier.get(digest)
            if source is None and self.store is not None and self.store.contains(self.store_key, [digest]):
                source = "store"
            if source is not None:
                yield beam.pvalue.TaggedOutput(CACHED, (source, key))
                return
            windows = plan_clip(local, self.representation, digest=digest, position=position,
                                window_seconds=self.settings.window_seconds, max_duration=self.settings.max_duration)
            windows = prepare_windows(self.representation, windows)
        except AudioError as err:
            counter("failed_units").inc()
            yield beam.pvalue.TaggedOutput(DEAD, dead_letter(clip.path, err.problem, digest))
            return
        finally:
            self.copies.release(clip.path)
        yield beam.pvalue.TaggedOutput(PLANNED, (position, key))
        for window in windows:
            yield replace(window, path=clip.path)

    def teardown(self):
        self.copies.cleanup()


class EmbedBatches(beam.DoFn):
    """(batch number, planned batch of windows) -> (position, (order, index, count, frames)) per
    window, `order` being the window's place in the local runner's sequence of batches.

    The model is built once per worker process, when its first batch arrives (a re-run whose
    clips are all cached loads nothing): a worker running bundles in several threads has several
    DoFn instances, which share it through Beam's `Shared`. The first bundle
    after a load counts it in the `model_loads` counter and names the worker process in the
    counter `model_loaded_by:<host>:<pid>`. A window that cannot be decoded goes to the dead letters and
    the rest of its batch is embedded.
    """

    def __init__(self, spec: ModelSpec):
        self.spec = spec
        self.shared = shared.Shared()  # one model per worker process, whatever its DoFn instances

    def setup(self):
        self.model = None
        self.copies = LocalCopies()

    def process(self, element):
        number, windows = element
        if self.model is None:  # at the first batch, so a run with nothing to compute loads nothing
            self.model = self.shared.acquire(self.spec.load, tag=repr(self.spec))
        if self.model.announce():
            counter("model_loads").inc()
            # One counter per process (Beam 2.77's FnApiRunner merges string-set metrics lossily).
            counter(f"{LOADED_BY}{socket.gethostname()}:{os.getpid()}").inc()
        good, local, samples = [], [], []
        for row, window in enumerate(windows):
            try:
                readable = replace(window, path=self.copies.path(window.path))
                samples.append(read_window(readable))
            except (AudioError, OSError) as err:
                counter("failed_units").inc()
                reason = err.problem if isinstance(err, AudioError) else f"cannot be read: {err}"
                yield beam.pvalue.TaggedOutput(DEAD, dead_letter(window.path, reason, window.digest))
                continue
            good.append((row, window))
            local.append(readable)
        if not good:
            return
        frames = embed_windows(self.model.representation, pad_windows(local, samples))
        for (row, window), wave, kept in zip(good, samples, frames):
            after = 0 if window.stop is None else window.read_stop - window.stop
            counter("audio_samples").inc(len(wave) - (window.start - window.read_start) - after)
            counter("windows").inc()
            yield window.position, ((number, row), window.index, window.count, kept)

    def teardown(self):
        self.copies.cleanup()


class PoolClips(beam.DoFn):
    """(position, {"key": [clip keys], "windows": [...]}) -> (clip key, vector) for each clip
    of that audio (several when files are copies) once all its windows are there, pooled in the
    order the local runner pools them. A clip with a failed window is already a dead letter."""

    def __init__(self, pooling: str):
        self.pooling = pooling

    def process(self, element):
        position, joined = element
        keys = sorted(joined["key"])
        parts = sorted(joined["windows"], key=lambda part: part[0])
        if not keys:
            return
        first = next((key for key in keys if key[0] == position), keys[0])
        if not parts or len(parts) != parts[0][2]:
            for key in keys:
                if key is not first:  # copies of a clip that failed
                    counter("failed_units").inc()
                    reason = f"same audio as {first[1]}, which was skipped"
                    yield beam.pvalue.TaggedOutput(DEAD, dead_letter(key[1], reason, key[6]))
            return
        pool = FramePool(self.pooling)
        for _, index, _, kept in parts:
            pool.add(kept, index)
        try:
            vector = pool.result()
        except ValueError as err:  # no valid frame
            reason = str(err)
        else:
            reason = None if np.isfinite(vector).all() else (
                "the model gave non-finite values (NaN or inf) for this clip; nothing was cached "
                "(its samples may be extreme)")
        for key in keys:
            if reason is not None:
                counter("failed_units").inc()
                yield beam.pvalue.TaggedOutput(DEAD, dead_letter(key[1], reason, key[6]))
            else:
                counter("clips").inc()
                yield key, vector


class ReadEarlier(beam.DoFn):
    """(source, [clip keys]) -> (clip key, vector): vectors computed by an earlier run, read
    from the store or from one shard of an earlier output (each shard read once)."""

    def __init__(self, pooling: str, store_root: str | None, store_key: str):
        self.pooling, self.store_root, self.store_key = pooling, store_root, store_key

    def process(self, element):
        source, keys = element
        keys = list(keys)
        digests = {key[6] for key in keys}
        if source == "store":
            from tfaudio.store import EmbeddingStore

            found = EmbeddingStore(self.store_root).lookup(self.store_key, digests)
        else:
            from tfaudio.pipeline.beam_io import read_shard_vectors

            found = read_shard_vectors(source, digests, self.pooling)
        for key in keys:
            vector = found.get(key[6])
            if vector is None:  # the earlier shard vanished meanwhile: say so rather than guess
                counter("failed_units").inc()
                yield beam.pvalue.TaggedOutput(DEAD, dead_letter(key[1], f"cached vector missing from {source}", key[6]))
                continue
            counter("cached").inc()
            counter("clips").inc()
            yield key, vector


class WriteShards(beam.DoFn):
    """A list of (clip key, vector) -> one shard in the work folder; yields {"name", "rows",
    "ids"}. Names carry a per-worker random id, so workers and retried bundles never overwrite
    each other; the final step keeps only the shards whose names reached it."""

    def __init__(self, folder: str, pooling: str, frame_hop_seconds: float, file_format: str):
        self.folder, self.pooling, self.hop, self.format = folder, pooling, frame_hop_seconds, file_format

    def setup(self):
        self.worker = uuid.uuid4().hex[:8]
        self.count = 0

    def process(self, rows):
        from tfaudio.pipeline.beam_io import write_rows
        from tfaudio.pipeline.writer import shard_name

        name = shard_name(f"{self.worker}-{self.count:05d}", self.format)
        self.count += 1
        yield write_rows(self.folder, name, list(rows), self.pooling, self.hop, self.format)
