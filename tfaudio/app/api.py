"""The app's JSON actions and media: upload a query, search, label, undo, next round; sound and
pictures by id. Each is a thin layer over the Python API the CLI uses (tfaudio.search.search,
LabelStore.add / remove, tfaudio.detector.next_windows): the app has no logic of its own.

Requests name recordings by id (tfaudio.app.state), never by path. JSON actions refuse other
content types (415), so a form posted by another site cannot pass for one even before the CSRF
check. Work that blocks (a search embeds the query; a label is committed with fsync) runs in a
worker thread; a label's answer comes after its commit, so "saved" on the page means on disk.
"""

from __future__ import annotations

import functools
import json
import math
import warnings
from pathlib import Path

from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from tfaudio.app import media
from tfaudio.app.errors import AppError
from tfaudio.errors import TfaudioError, TfaudioWarning

#: Sources a label from the app may give (tfaudio.labels.store: where a judgement came from).
LABEL_SOURCES = ("search", "round", "app")
MAX_TOP = 200
MAX_TEXT = 200


def state_of(request):
    return request.app.state.tfaudio


def answers(handler):
    """Turn AppError / TfaudioError into {"error": message} with the error's status (400 for
    tfaudio's own: something the user can fix)."""

    @functools.wraps(handler)
    async def wrapper(request):
        try:
            return await handler(request)
        except AppError as err:
            return JSONResponse({"error": str(err)}, status_code=err.status)
        except TfaudioError as err:
            return JSONResponse({"error": str(err)}, status_code=400)

    return wrapper


async def read_json(request) -> dict:
    """The body as a JSON object; AppError 415 for another content type, 400 for bad JSON."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json":
        raise AppError("send JSON (Content-Type: application/json)", 415)
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        raise AppError("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise AppError("send a JSON object")
    return body


def number(body: dict, key: str, *, default=None, low: float = 0.0, high: float = math.inf):
    """body[key] as a finite float in [low, high] (None/absent: default)."""
    value = body.get(key)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not low <= value <= high:
        raise AppError(f"{key} must be a number from {low:g} to {high:g}")
    return float(value)


def integer(body: dict, key: str, *, default=None, low: int = 0, high: int = 2**31):
    value = body.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise AppError(f"{key} must be a whole number from {low} to {high}")
    return value


def text(body: dict, key: str, *, default: str | None = None, required: bool = False) -> str | None:
    """body[key] as stripped text of at most MAX_TEXT characters (absent: default; required: not empty)."""
    value = body.get(key)
    if value is None:
        if required:
            raise AppError(f"{key} is needed")
        return default
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise AppError(f"{key} must be text of at most {MAX_TEXT} characters")
    value = value.strip()
    if required and not value:
        raise AppError(f"{key} is needed")
    return value


def _recording(state, spec) -> tuple:
    """A {"source", "id", "start", "end"} object -> (Recording, start, end)."""
    if not isinstance(spec, dict):
        raise AppError("a query is {source, id, start, end}")
    recording = state.recording(spec.get("source"), spec.get("id"))
    start = number(spec, "start", low=0.0)
    end = number(spec, "end", low=0.0)
    if start is not None and end is not None and end <= start:
        raise AppError(f"{recording.name}: the region ends ({end:g} s) before it starts ({start:g} s)")
    return recording, start, end


# -- media ------------------------------------------------------------------------------------------


@answers
async def media_route(request):
    """GET /media/{source}/{ident}/audio.wav|spectrogram.png?start=&end=[&size=thumb|wide]."""
    state = state_of(request)
    params = request.path_params
    recording = state.recording(params["source"], params["ident"])
    start, end = media.parse_span(request.query_params.get("start"), request.query_params.get("end"))
    if params["what"] == "audio.wav":
        sound = await run_in_threadpool(media.samples, recording.path, start, end)
        return Response(media.wav(sound), media_type="audio/wav")
    if params["what"] == "spectrogram.png":
        size = request.query_params.get("size", "thumb")
        image = await run_in_threadpool(media.picture, recording.path, start, end, size)
        return Response(image, media_type="image/png")
    raise AppError("no such media (audio.wav or spectrogram.png)", 404)


# -- uploads ----------------------------------------------------------------------------------------


@answers
async def upload_route(request):
    """POST /api/upload (multipart/form-data, field `file`): a query file -> {upload, name, duration}."""
    state = state_of(request)
    if request.headers.get("content-type", "").split(";")[0].strip().lower() != "multipart/form-data":
        raise AppError("upload a file as multipart/form-data (field `file`)", 415)
    form = await request.form(max_files=1, max_fields=4)
    item = form.get("file")
    if item is None or isinstance(item, str):
        raise AppError("choose a file to upload (field `file`)")
    name = Path(item.filename or "upload").name[:MAX_TEXT] or "upload"

    def audio_duration(path) -> float:
        try:
            seconds = media.duration(path)
        except TfaudioError:
            raise AppError(f"{name}: not audio tfaudio can read (WAV, FLAC, OGG or MP3); choose an audio file",
                           415) from None
        if seconds <= 0:
            raise AppError(f"{name}: holds no audio", 415)
        return seconds

    try:
        upload, recording = await run_in_threadpool(state.uploads.add, name, item.file, audio_duration)
    finally:
        await form.close()
    return JSONResponse({"upload": upload, "name": recording.name, "duration": recording.end})


# -- search -----------------------------------------------------------------------------------------


def hit_json(state, file: str, start: float, end: float, score: float, *, missing: bool = False, label=None,
             **extra) -> dict:
    """One hit or proposed window as the page shows it: ids, name, times, score, the span its
    media cover (clip, None when the file cannot be read), the kinds already stored for `label`."""
    number_ = state.file_ids[file]
    recording = state.recordings[number_]
    clip = None
    if not missing:
        try:
            clip = media.clip_span(start, end, media.duration(recording.path))
        except TfaudioError:
            missing = True
    labelled = []
    if label:
        found = state.store.query(label=label, file=recording.path, sha256=recording.sha256, start=start, end=end,
                                  latest=True)
        labelled = sorted({annotation.kind for annotation in found})
    score = float(score) if score is not None and math.isfinite(score) else None  # NaN: JSON has none
    return {"file_id": number_, "name": recording.name, "path": recording.path, "start": start, "end": end,
            "score": score, "missing": missing, "clip": clip, "labelled": labelled, **extra}


def _search(state, query, negatives, top: int, other_files: bool, label):
    from tfaudio.search.query import search

    with state.work, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", TfaudioWarning)
        results = search(state.index, [query], negatives=negatives, top=top, other_files=other_files)
    hits = [hit_json(state, hit.file, hit.start, hit.end, hit.score, missing=hit.missing, label=label, rank=hit.rank)
            for hit in results.hits.itertuples(index=False)]
    notes = list(dict.fromkeys(str(w.message) for w in caught if issubclass(w.category, TfaudioWarning)))
    return {"hits": hits, "notes": notes, "exact": results.exact}


def _as_query(recording, start, end):
    from tfaudio.search.query import Query

    region = "" if start is None and end is None else f"@{start or 0:g}-{'' if end is None else f'{end:g}'}"
    return Query(Path(recording.path), start, end, text=recording.name + region)


@answers
async def search_route(request):
    """POST /api/search {query: {source, id, start, end}, negatives: [...], top, other_files, label}."""
    state = state_of(request)
    body = await read_json(request)
    recording, start, end = _recording(state, body.get("query"))
    negatives = body.get("negatives") or []
    if not isinstance(negatives, list) or len(negatives) > 20:
        raise AppError("negatives must be a list of at most 20 regions")
    unwanted = [_as_query(*_recording(state, spec)) for spec in negatives]
    top = integer(body, "top", default=10, low=1, high=MAX_TOP)
    label = text(body, "label")
    found = await run_in_threadpool(_search, state, _as_query(recording, start, end), unwanted, top,
                                    bool(body.get("other_files")), label)
    return JSONResponse(found)


# -- labels -----------------------------------------------------------------------------------------


@answers
async def label_route(request):
    """POST /api/label {id (file id), start, end, label, kind, annotator, source, round, strategy,
    weight} -> the stored annotation's {id, label, kind, annotator, weight}, answered after the
    commit. weight: a stratified or random round's inclusion weight (a number above 0, or null)."""
    from tfaudio.labels.store import KINDS

    state = state_of(request)
    body = await read_json(request)
    recording = state.recording("file", body.get("id"))
    start = number(body, "start", low=0.0, high=recording.end)
    end = number(body, "end", low=0.0, high=recording.end + 1e-3)
    if start is None or end is None or end <= start:
        raise AppError("start and end (seconds, start < end) are needed")
    label = text(body, "label", required=True)
    kind = text(body, "kind", required=True)
    if kind not in KINDS:
        raise AppError(f"kind must be one of {', '.join(KINDS)}")
    source = text(body, "source", default="app")
    if source not in LABEL_SOURCES:
        raise AppError(f"source must be one of {', '.join(LABEL_SOURCES)}")
    annotator = text(body, "annotator", default="") or state.annotator
    weight = _inclusion_weight(body)
    stored = await run_in_threadpool(
        functools.partial(state.store.add, recording.path, start, end, label, kind, annotator=annotator,
                          source=source, round=integer(body, "round"), strategy=text(body, "strategy"),
                          sha256=recording.sha256, weight=weight))
    return JSONResponse({"id": stored.id, "label": stored.label, "kind": stored.kind, "annotator": stored.annotator,
                         "weight": stored.weight, "saved": True})


def _inclusion_weight(body: dict) -> float | None:
    """body["weight"]: a round pick's inclusion weight, a finite number above 0 (absent, null: None)."""
    value = body.get("weight")
    if value is None:
        return None
    try:
        weight = float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else math.nan
    except OverflowError:  # a JSON integer past any float
        weight = math.nan
    if not (math.isfinite(weight) and weight > 0):
        raise AppError("weight must be a number above 0 (a round pick's inclusion weight), or null")
    return weight


@answers
async def undo_route(request):
    """POST /api/undo {id}: remove that annotation -> {removed: 0 or 1}."""
    state = state_of(request)
    body = await read_json(request)
    ident = integer(body, "id", low=1, high=2**62)
    if ident is None:
        raise AppError("id is needed")
    removed = await run_in_threadpool(state.store.remove, ident)
    return JSONResponse({"removed": removed})


# -- rounds -----------------------------------------------------------------------------------------


def _round(state, label: str, strategy: str, count: int) -> dict:
    from tfaudio.detector.rounds import next_windows

    detector = state.detector(label)  # a trained detector scores with calibrated probabilities
    if detector is not None and label not in detector.labels:
        detector = None
    with state.work:
        rows = next_windows(state.index, state.store, label, strategy=strategy, n=count, detector=detector)
    windows = [hit_json(state, row.file, float(row.start), float(row.end), float(row.score), label=label,
                        window=int(row.id), round=int(row.round), strategy=str(row.strategy),
                        weight=_json_weight(getattr(row, "weight", None)))
               for row in rows.itertuples(index=False)]
    return {"windows": windows}


def _json_weight(value) -> float | None:
    """A round's inclusion weight for JSON: None for a pick that was no probability sample (NaN:
    top, margin) and for a rounds table without weights."""
    return float(value) if value is not None and math.isfinite(value) else None


def strategies() -> tuple[str, ...] | None:
    """The strategies of tfaudio.detector.rounds, or None when this tfaudio has none."""
    try:
        from tfaudio.detector.rounds import STRATEGIES
    except ImportError:
        return None
    return tuple(STRATEGIES)


@answers
async def rounds_route(request):
    """POST /api/rounds {label, strategy, n}: the next windows to judge for a label."""
    state = state_of(request)
    body = await read_json(request)
    known = strategies()
    if known is None:
        raise AppError("rounds need tfaudio.detector.rounds, which this tfaudio lacks", 501)
    label = text(body, "label", required=True)
    strategy = text(body, "strategy", default=known[0])
    if strategy not in known:
        raise AppError(f"strategy must be one of {', '.join(known)}")
    count = integer(body, "n", default=10, low=1, high=MAX_TOP)
    return JSONResponse(await run_in_threadpool(_round, state, label, strategy, count))
