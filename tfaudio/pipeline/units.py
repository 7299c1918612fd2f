"""Work units: the windows a representation can embed a clip in, and the one function that embeds
a batch of them (the local runner and the Beam pipeline both call `embed_windows`).

Which windows give a clip's own frames is each representation's to say, through the
`Representation` interface (`tfaudio.models.base`): its `window_geometry` (None: each clip is one
window, whose memory grows with its length) and, when its frames depend on the whole clip as
well, the `clip_state` every window of the clip then carries into `window_frames`. Nothing here
knows which model it runs.

Kept frames equal the whole clip's up to float rounding of batched arithmetic (~1e-6); files at
another sample rate add the resampler's block rounding (~1e-7 on samples).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tfaudio.data.batches import WindowBatch
from tfaudio.data.windows import WINDOW_SECONDS, Window, kept_frames, plan_windows
from tfaudio.models.base import Representation


def plan_clip(
    path: str,
    representation: Representation,
    *,
    digest: str | None = None,
    position: int = 0,
    window_seconds: float = WINDOW_SECONDS,
    max_duration: float | None = None,
) -> list[Window]:
    """The windows of one clip (from its header; raises `AudioError`), cut by the
    representation's `window_geometry`."""
    return plan_windows(
        path,
        representation.window_geometry,
        sample_rate=representation.sample_rate,
        window_seconds=window_seconds,
        digest=digest,
        position=position,
        duration=max_duration,
    )


def prepare_windows(representation: Representation, windows: Sequence[Window]) -> list[Window]:
    """The windows of one clip as `embed_windows` needs them: when the clip is cut in several and
    the geometry asks for it, each carries the representation's `clip_state` of the whole clip
    (which decodes the clip once more; raises `AudioError`)."""
    geometry = representation.window_geometry
    if not (geometry and geometry.clip_state and len(windows) > 1):
        return list(windows)
    state = representation.clip_state(windows)
    return [window.with_clip_state(state) for window in windows]


def embed_windows(representation: Representation, batch: WindowBatch) -> list[np.ndarray]:
    """The frames each window of `batch` contributes to its clip: float32 [k_i, dim] per window.

    One `representation.window_frames` call per batch (windows carry their clip's state, None for
    whole clips); context frames are dropped. Same batch, same numbers, bit for bit.
    """
    out = representation.window_frames(batch.waveforms, batch.lengths, [w.clip_state for w in batch.windows])
    return [kept_frames(w, out.embeddings[row][out.mask[row]]) for row, w in enumerate(batch.windows)]
