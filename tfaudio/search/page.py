"""The results page of a search: one self-contained HTML file (and the same table in a notebook).

Each hit shows its rank, score and file, a bar of the whole file with the hit's place marked, a
log-mel spectrogram of what it plays, and a player: the hit with `CONTEXT` seconds of the file on
each side, embedded as a 16-bit WAV data URI (WAV because every browser plays it and it needs no
encoder; 16 kHz mono is what the models heard). Long merged hits play their first `MAX_SECONDS`.
A hit in a file that is missing or changed since the build is listed, marked, without playback.

The spectrogram comes from the in-graph front end the models use (`tfaudio.frontend.LogMel`),
scaled to its own peak and drawn with the magma colour map. Every name in the page is escaped,
so a file called `<script>.wav` is text. No script runs: the page is plain HTML and CSS.
"""

from __future__ import annotations

import base64
import html
import io

import numpy as np

#: Seconds of the file played (and drawn) before and after each hit.
CONTEXT = 1.0
#: Most seconds of one hit embedded (a long merged hit plays its start).
MAX_SECONDS = 30.0
RATE = 16000
SPECTROGRAM_SIZE = (240, 64)  # pixels: width (time), height (mel bands)

_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table{border-collapse:collapse}
td,th{padding:.35em .6em;border-bottom:1px solid #ddd;text-align:left;vertical-align:middle}
th{background:#f4f4f4}.num{text-align:right;font-variant-numeric:tabular-nums}
.file{max-width:28em;word-break:break-all;font-family:monospace;font-size:.9em}
.bar{position:relative;width:160px;height:10px;background:#e4e4e4;border-radius:2px}
.bar span{position:absolute;top:0;height:10px;background:#c0392b;min-width:2px}
.spec{position:relative;width:240px}.spec span{position:absolute;top:0;bottom:0;border:1px solid #fff;min-width:2px}
.missing{color:#a00}img{display:block;image-rendering:pixelated}audio{width:240px}
.meta{color:#555;font-size:.9em}
"""


def _data_uri(payload: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def wav_bytes(samples: np.ndarray) -> bytes:
    """float32 [samples] at 16 kHz -> a 16-bit PCM WAV file's bytes (also what `tfaudio serve` plays)."""
    import soundfile as sf

    buffer = io.BytesIO()
    sf.write(buffer, np.clip(samples, -1.0, 1.0), RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def spectrogram_png(samples: np.ndarray, size: tuple[int, int] = SPECTROGRAM_SIZE) -> bytes:
    """float32 [samples] at 16 kHz -> PNG [size] of its log-mel (low frequencies at the bottom,
    80 dB below the peak drawn black); also what `tfaudio serve` shows."""
    from matplotlib import colormaps
    from PIL import Image  # Pillow: a dependency of matplotlib

    from tfaudio.frontend.layers import LogMel
    from tfaudio.frontend.params import MelParams

    db = np.asarray(LogMel(MelParams())(samples[np.newaxis]))[0].T[::-1]  # [64, frames], dB
    level = np.clip((db - (db.max() - 80.0)) / 80.0, 0.0, 1.0)
    rgb = (colormaps["magma"](level)[..., :3] * 255).astype(np.uint8)
    picture = Image.fromarray(rgb).resize(size, Image.Resampling.BOX)
    buffer = io.BytesIO()
    picture.save(buffer, format="png", optimize=True)
    return buffer.getvalue()


def hit_media(file: str, start: float, end: float) -> tuple[str, str, float, float, float] | None:
    """(WAV data URI, spectrogram PNG data URI, file duration, snippet start, snippet length in
    seconds) of a hit with its context, or None when the file cannot be read any more."""
    from tfaudio.data.audio import info, load
    from tfaudio.errors import TfaudioError

    try:
        duration = info(file).duration
        offset = max(0.0, start - CONTEXT)
        length = min(end + CONTEXT, duration, offset + MAX_SECONDS) - offset
        samples = load(file, RATE, offset=offset, duration=max(length, 0.05), min_duration=0.05)
    except (TfaudioError, OSError):
        return None
    sound, image = _data_uri(wav_bytes(samples), "audio/wav"), _data_uri(spectrogram_png(samples), "image/png")
    return sound, image, duration, offset, len(samples) / RATE


def _bar(start: float, end: float, duration: float) -> str:
    """A bar of the whole file with [start, end] marked."""
    duration = max(duration, end, 1e-9)
    left, width = 100 * start / duration, 100 * (end - start) / duration
    return (f'<div class="bar" title="{start:.2f}-{end:.2f} s of {duration:.2f} s">'
            f'<span style="left:{left:.2f}%;width:{width:.2f}%"></span></div>')


def hits_table(results, *, media: bool = True, score_name: str = "score") -> str:
    """The hits as an HTML table (players and spectrograms when media). results: anything with
    `.hits`, a DataFrame with columns rank, score, file, start, end, missing (SearchResults, or
    the windows `tfaudio labels next` proposes); score_name: the score column's heading."""
    rows = []
    for hit in results.hits.itertuples(index=False):
        found = None if hit.missing or not media else hit_media(hit.file, hit.start, hit.end)
        if hit.missing:
            player = '<span class="missing">missing or changed since the build: no playback</span>'
            picture, duration = "", hit.end
        elif found is None:
            player, picture, duration = ('<span class="missing">unreadable now</span>' if media else ""), "", hit.end
        else:
            sound, image, duration, offset, length = found
            player = f'<audio controls preload="none" src="{sound}"></audio>'
            left = 100 * (hit.start - offset) / length
            width = 100 * (min(hit.end, offset + length) - hit.start) / length
            picture = (f'<div class="spec"><img alt="log-mel spectrogram" src="{image}">'
                       f'<span style="left:{left:.2f}%;width:{width:.2f}%"></span></div>')
        rows.append(
            f'<tr><td class="num">{hit.rank}</td><td class="num">{hit.score:.4f}</td>'
            f'<td class="file">{html.escape(str(hit.file))}</td>'
            f'<td class="num">{hit.start:.2f}–{hit.end:.2f} s</td><td>{_bar(hit.start, hit.end, duration)}</td>'
            f"<td>{picture}</td><td>{player}</td></tr>"
        )
    head = (f"<tr><th>#</th><th>{html.escape(score_name)}</th><th>file</th><th>where</th><th>place in file</th>"
            f"<th>spectrogram (±{CONTEXT:g} s)</th><th>listen (±{CONTEXT:g} s)</th></tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def summary(results) -> str:
    """One line on what was searched and how, escaped for HTML."""
    queries = ", ".join(results.queries)
    parts = [f"{len(results.hits)} hits for {queries}", f"index {results.index_path} ({results.model})",
             "exact search" if results.exact else "approximate candidates, re-ranked exactly"]
    if results.negatives:
        parts.append("pushed away from " + ", ".join(results.negatives))
    if results.other_files:
        parts.append("hits from other files only")
    return html.escape("; ".join(parts))


def document(heading: str, meta: str, body: str, *, title: str = "tfaudio search") -> str:
    """A whole self-contained page: `heading` (text, escaped here), `meta` and `body` (HTML,
    escaped by the caller)."""
    return (f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body><h1>{html.escape(heading)}</h1>"
            f'<p class="meta">{meta}</p>{body}</body></html>\n')


def render_page(results) -> str:
    """The whole self-contained page of a search."""
    return document(f"Sounds like {', '.join(results.queries)}", summary(results), hits_table(results))
