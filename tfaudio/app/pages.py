"""The app's pages: search (pick or upload a query, choose its region, results to judge), rounds
(the next windows to judge for a label) and labels (what the store holds).

Pages are jinja2 templates (tfaudio/app/templates) rendered with autoescaping on, so a file
called `<script>.wav` or a label with markup in it is shown as text. They hold no script of
their own: behaviour lives in tfaudio/app/static/*.js, which the Content-Security-Policy allows
and nothing else; what a script needs from the server it reads from data-* attributes and the
CSRF <meta> tag, or fetches as JSON.
"""

from __future__ import annotations

import functools
from pathlib import Path

from starlette.responses import HTMLResponse

from tfaudio.app.api import state_of, strategies

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
#: The most recent annotations the labels page lists.
RECENT = 100


@functools.lru_cache(maxsize=1)
def environment():
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def render(request, name: str, page: str, **context) -> HTMLResponse:
    """Template `name` with what every page shows: the index, the store, the CSRF token, the
    annotator and the labels known so far (for the label box)."""
    state = state_of(request)
    common = {"page": page, "csrf": request.scope.get("tfaudio.csrf") or "", "annotator": state.annotator,
              "labels": state.store.labels(), "index_path": str(state.index.path), "model": state.index.model,
              "windows": len(state.index), "file_count": len(state.recordings), "store_path": str(state.store.path)}
    return HTMLResponse(environment().get_template(name).render(**common, **context))


async def search_page(request):
    state = state_of(request)
    files = [(number, recording.name, recording.path, recording.end)
             for number, recording in enumerate(state.recordings)]
    return render(request, "search.html", "search", files=files)


async def rounds_page(request):
    known = strategies()
    return render(request, "rounds.html", "rounds", strategies=known or (), available=known is not None)


async def labels_page(request):
    state = state_of(request)
    summary = state.store.summary()
    # LabelStore.query has no limit: list the newest only while reading them all stays cheap.
    recent = list(reversed(state.store.query()[-RECENT:])) if summary.annotations <= 20000 else []
    return render(request, "labels.html", "labels", summary=summary, recent=recent)


async def train_page(request):
    state = state_of(request)
    return render(request, "train.html", "train", detector_root=str(state.detector_root))
