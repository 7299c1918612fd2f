"""The steps of the Beam pipeline (tfaudio.pipeline.beam builds the graph from them).

This module imports Apache Beam, so only `run_beam` imports it. Every step calls the functions
the local runner calls: `plan_clip` for work units, `read_window` to decode, `embed_windows` for a
batch, `FramePool` to pool a clip's windows, `rows_table` / `write_shard` for the output; Beam
adds only where each runs. Elements are plain tuples and frozen dataclasses, so any runner's
coders can move them between workers.

Clip keys are tuples (position, path, file, label, fold, group, audio_sha256): the clip's place in
the listing, its path or URL, and the row the output gives it.

Rows are written where they are pooled, into shards flushed by size and by time
(`beam_io.RowShards`): a clip of one window in the step that embeds it, a clip of several in the
step that joins its windows. So a killed run keeps the shards written so far, and a resumed run
reads them back instead of computing those clips again.
"""

from __future__ import annotations

import os
import socket
import threading
from dataclasses import dataclass, replace

import apache_beam as beam
import numpy as np
from apache_beam.metrics import Metrics
from apache_beam.utils import shared

from tfaudio.data.audio import AudioError
from tfaudio.data.batches import pad_windows
from tfaudio.data.windows import read_window
from tfaudio.frontend.window_pooling import FramePool
from tfaudio.pipeline.beam_finish import INCOMPLETE
from tfaudio.pipeline.sources import LocalCopies
from tfaudio.pipeline.units import embed_windows, plan_clip, prepare_windows

#: Beam metrics namespace; the counters are listed in `tfaudio.pipeline.beam.COUNTERS`.
NAMESPACE = "tfaudio"
#: Tagged outputs: unreadable clips (dead letters), clips served from earlier output or the
#: store, and the descriptors of the shards a step wrote ({"name", "rows", "ids"}).
DEAD, CACHED, SHARDS = "dead", "cached", "shards"

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
    """(position, ClipRef) -> (window, clip key, wanted) per window of the clip; its key to CACHED
    when its vectors exist already; a dead letter when it cannot be read. Hashes each file once
    (remote files while they are copied here) and reads only headers, except for the clip state
    of clips of several windows where the representation has one (e.g. a loudness reference).

    earlier: digest -> (source, resumed). A clip that an interrupted run of this output computed
    (resumed) is read back, and also planned again, unwanted: batches are then formed over the
    windows the interrupted run formed them over, so the clips computed now get its vectors bit
    for bit, as an uninterrupted run would.
    """

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
            source, resumed = earlier.get(digest, (None, False))
            if source is None and self.store is not None and self.store.contains(self.store_key, [digest]):
                source = "store"
            if source is not None:
                yield beam.pvalue.TaggedOutput(CACHED, (source, key))
                if not resumed:
                    return
            windows = plan_clip(local, self.representation, digest=digest, position=position,
                                window_seconds=self.settings.window_seconds, max_duration=self.settings.max_duration)
            windows = prepare_windows(self.representation, windows)
        except AudioError as err:
            if source is None:  # a resumed clip is read back whatever its file has become
                counter("failed_units").inc()
                yield beam.pvalue.TaggedOutput(DEAD, dead_letter(clip.path, err.problem, digest))
            return
        finally:
            self.copies.release(clip.path)
        for window in windows:
            yield replace(window, path=clip.path), key, source is None

    def teardown(self):
        self.copies.cleanup()


def pool_clip(pooling: str, parts) -> tuple[np.ndarray | None, str | None]:
    """parts: (window index, kept frames float32 [k, dim]) of every window of a clip, in order
    -> (vector, None), or (None, why the clip has no usable vector)."""
    pool = FramePool(pooling)
    for index, kept in parts:
        pool.add(kept, index)
    try:
        vector = pool.result()
    except ValueError as err:  # no valid frame
        return None, str(err)
    if not np.isfinite(vector).all():
        return None, ("the model gave non-finite values (NaN or inf) for this clip; nothing was cached "
                      "(its samples may be extreme)")
    return vector, None


class _RowWriter:
    """What the steps that pool clips share: rows into shards (`beam_io.RowShards`, created at
    `start_bundle`), dead letters for clips without a vector, and the shards still buffered
    written at the end of each bundle (the final step lists only shards that reached it)."""

    def _start(self, run):
        from tfaudio.pipeline.beam_io import RowShards

        self.shards = RowShards(run.work, run.pooling, run.frame_hop_seconds, run.file_format, run.flush_seconds)

    def rows(self, keys, vector, reason: str | None):
        """Each clip key's row (or dead letter), then the descriptors of any shards written."""
        for key in keys:
            counter("clips" if reason is None else "failed_units").inc()
            if reason is not None:
                yield beam.pvalue.TaggedOutput(DEAD, dead_letter(key[1], reason, key[6]))
            else:
                yield from self.written(self.shards.add(key, vector))

    def written(self, descriptors: list[dict]):
        for descriptor in descriptors:
            yield beam.pvalue.TaggedOutput(SHARDS, descriptor)

    def finish_bundle(self):
        from apache_beam.transforms.window import GlobalWindows

        for descriptor in self.shards.flush():
            yield beam.pvalue.TaggedOutput(SHARDS, GlobalWindows.windowed_value(descriptor))


class EmbedBatches(_RowWriter, beam.DoFn):
    """(batch number, planned batch of (window, clip keys, wanted)) -> the rows of the clips of
    one window (written to shards here), and (digest, (order, index, count, frames, keys)) per
    window of a clip of several, `order` being the window's place in the local runner's sequence
    of batches (keys travel with a clip's first window: every clip holding that audio).

    The model is built once per worker process, when its first batch arrives (a re-run whose
    clips are all cached loads nothing): a worker running bundles in several threads has several
    DoFn instances, which share it through Beam's `Shared`. The first bundle
    after a load counts it in the `model_loads` counter and names the worker process in the
    counter `model_loaded_by:<host>:<pid>`. A window that cannot be decoded goes to the dead letters and
    the rest of its batch is embedded. Unwanted windows (clips a resumed run reads back) are
    embedded, for the batch to be the one the interrupted run embedded, and dropped.
    """

    def __init__(self, spec: ModelSpec, run):
        self.spec, self.run = spec, run
        self.shared = shared.Shared()  # one model per worker process, whatever its DoFn instances

    def setup(self):
        self.model = None
        self.copies = LocalCopies()

    def start_bundle(self):
        self._start(self.run)

    def process(self, element):
        number, entries = element
        yield from self.written(self.shards.due())
        if self.model is None:  # at the first batch, so a run with nothing to compute loads nothing
            self.model = self.shared.acquire(self.spec.load, tag=repr(self.spec))
        if self.model.announce():
            counter("model_loads").inc()
            # One counter per process (Beam 2.77's FnApiRunner merges string-set metrics lossily).
            counter(f"{LOADED_BY}{socket.gethostname()}:{os.getpid()}").inc()
        good, local, samples = [], [], []
        for row, (window, keys, wanted) in enumerate(entries):
            try:
                readable = replace(window, path=self.copies.path(window.path))
                samples.append(read_window(readable))
            except (AudioError, OSError) as err:
                if wanted:
                    counter("failed_units").inc()
                    reason = err.problem if isinstance(err, AudioError) else f"cannot be read: {err}"
                    for path, digest in {(key[1], key[6]) for key in keys} or {(window.path, window.digest)}:
                        yield beam.pvalue.TaggedOutput(DEAD, dead_letter(path, reason, digest))
                continue
            good.append((row, window, keys, wanted))
            local.append(readable)
        if not good:
            return
        frames = embed_windows(self.model.representation, pad_windows(local, samples))
        for (row, window, keys, wanted), wave, kept in zip(good, samples, frames):
            after = 0 if window.stop is None else window.read_stop - window.stop
            counter("audio_samples").inc(len(wave) - (window.start - window.read_start) - after)
            counter("windows").inc()
            if not wanted:
                continue
            if window.count == 1:
                yield from self.rows(keys, *pool_clip(self.run.pooling, [(0, kept)]))
            else:
                yield window.digest, ((number, row), window.index, window.count, kept, keys)

    def teardown(self):
        self.copies.cleanup()


class PoolClips(_RowWriter, beam.DoFn):
    """(digest, [window parts]) of a clip of several windows -> a row for each clip of that audio
    (several when files are copies), pooled in the order the local runner pools them, written
    to shards; a dead letter for each when its windows did not all arrive."""

    def __init__(self, run):
        self.run = run

    def start_bundle(self):
        self._start(self.run)

    def process(self, element):
        _, parts = element
        parts = sorted(parts, key=lambda part: part[0])
        keys = next((part[4] for part in parts if part[1] == 0), ())
        # Without its first window, a clip's keys are unknown here: that window's failure
        # sent every clip of the audio to the dead letters (and the final step counts them all).
        count = parts[0][2]
        if len(parts) != count:
            reason = INCOMPLETE.format(arrived=len(parts), count=count)
            yield from self.rows(keys, None, reason)
            return
        yield from self.rows(keys, *pool_clip(self.run.pooling, [(index, kept) for _, index, _, kept, _ in parts]))


class ReadEarlier(_RowWriter, beam.DoFn):
    """(source, [clip keys]) -> rows of vectors computed by an earlier run, read from the store
    or from one shard of an earlier output (each shard read once), written to shards."""

    def __init__(self, run, store_root: str | None, store_key: str):
        self.run, self.store_root, self.store_key = run, store_root, store_key

    def start_bundle(self):
        self._start(self.run)

    def process(self, element):
        source, keys = element
        keys = list(keys)
        yield from self.written(self.shards.due())
        digests = {key[6] for key in keys}
        if source == "store":
            from tfaudio.store import EmbeddingStore

            found = EmbeddingStore(self.store_root).lookup(self.store_key, digests)
        else:
            from tfaudio.pipeline.beam_io import read_shard_vectors

            found = read_shard_vectors(source, digests, self.run.pooling)
        for key in keys:
            vector = found.get(key[6])
            if vector is None:  # the earlier shard vanished meanwhile: say so rather than guess
                yield from self.rows([key], None, f"cached vector missing from {source}")
                continue
            counter("cached").inc()
            yield from self.rows([key], vector, None)
