"""The interactive page: one Plotly scatter per representation, side by side, and a player.

The page is one self-contained HTML file (plotly.js inlined: it must open offline, from a file
or an e-mail). Clips are kept once, in page-level arrays (file, label, fold, thumbnail, audio),
and every point carries only its clip index, so several panels cost no more audio. Clicking a
point in any panel plays the clip, shows its log-mel thumbnail and rings the same clip in every
panel; clicking a legend entry hides or shows that label in every panel.
"""

from __future__ import annotations

import html
import json
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import numpy as np

#: Category-10 colours and 7 marker shapes: 7 and 10 share no factor, so the first 70 labels
#: all get a distinct (colour, shape) pair.
COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
SYMBOLS = ("circle", "square", "diamond", "triangle-up", "cross", "triangle-down", "star")


@dataclass(frozen=True)
class Panel:
    """One representation's scatter: title, subtitle, coords float [clips, 2], axis titles,
    and the rows of its figures table (label, original space, 2-D)."""

    title: str
    subtitle: str
    coords: np.ndarray
    x_title: str
    y_title: str
    rows: tuple[tuple[str, str, str], ...]
    original_label: str


def label_style(index: int) -> tuple[str, str]:
    """(colour, marker symbol) of the label at `index` in the sorted class list."""
    return COLORS[index % len(COLORS)], SYMBOLS[index % len(SYMBOLS)]


def plotly_text(text: str) -> str:
    """`text` as Plotly shows it, literally: Plotly reads trace names and hover text as its own
    HTML subset (<b>, <br>, entities), so '&', '<' and '>' are written as entities."""
    return html.escape(text, quote=False)


def label_indices(clips: list[dict], classes: list[str]) -> list[int]:
    """Each clip's label as its index in `classes` (raw strings on both sides)."""
    position = {name: index for index, name in enumerate(classes)}
    return [position[clip["label"]] for clip in clips]


def figure(panel: Panel, clips: list[dict], classes: list[str]) -> dict:
    """Plotly figure JSON: one trace per label (legend entries), then the ring of the selected clip.

    Clips keep raw strings; points are grouped by label index, and the names and file names
    Plotly displays are escaped for Plotly's markup (see `plotly_text`)."""
    groups: list[list[int]] = [[] for _ in classes]
    for clip_index, label_index in enumerate(label_indices(clips, classes)):
        groups[label_index].append(clip_index)
    traces = []
    for index, (name, members) in enumerate(zip(classes, groups)):
        color, symbol = label_style(index)
        traces.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": plotly_text(name),
                "x": [round(float(panel.coords[i, 0]), 5) for i in members],
                "y": [round(float(panel.coords[i, 1]), 5) for i in members],
                "customdata": [[i, plotly_text(clips[i]["file"]), plotly_text(clips[i]["fold"])] for i in members],
                "marker": {"color": color, "symbol": symbol, "size": 8, "opacity": 0.85,
                           "line": {"width": 0.5, "color": "#ffffff"}},
                "hovertemplate": "<b>%{customdata[1]}</b><br>label: %{fullData.name}<br>fold: %{customdata[2]}<extra></extra>",
            }
        )
    traces.append(
        {
            "type": "scatter", "mode": "markers", "name": "selected", "x": [], "y": [], "showlegend": False,
            "hoverinfo": "skip",
            "marker": {"symbol": "circle-open", "size": 20, "color": "#000000", "line": {"width": 3}},
        }
    )
    layout = {
        "margin": {"l": 60, "r": 10, "t": 36, "b": 50},
        "height": 520,
        "hovermode": "closest",
        "clickmode": "event",
        "dragmode": "pan",
        "xaxis": {"title": {"text": panel.x_title}, "zeroline": False},
        "yaxis": {"title": {"text": panel.y_title}, "zeroline": False, "scaleanchor": "x", "scaleratio": 1},
        "legend": {"itemclick": "toggle", "itemdoubleclick": "toggleothers"},
        "plot_bgcolor": "#fafafa",
    }
    return {"data": traces, "layout": layout}


def clip_rows(files: list[str], labels: list[str], folds: list, audio_sources: list[str | None]) -> list[dict]:
    """The page's clip records, raw strings: the page's script writes them as text, never as HTML."""
    return [
        {"file": f, "label": label, "fold": "" if fold is None else str(fold), "audio": src}
        for f, label, fold, src in zip(files, labels, folds, audio_sources)
    ]


def linked_sources(paths: list[Path], page: Path) -> list[str]:
    """Each file as a URL relative to the page's folder (forward slashes, percent-quoted). The
    name's own bytes are quoted, so a byte that is not UTF-8 (`bad%FFbyte.wav`) still links to
    the file."""
    base = page.resolve().parent
    return [quote(os.fsencode(Path(os.path.relpath(Path(p).resolve(), base)).as_posix())) for p in paths]


def _script_json(value) -> str:
    """JSON safe inside a <script> element: '<', '>' and '&' appear only inside JSON strings, so
    writing them as \\u escapes keeps the value and leaves no '</script', '<!--' or '-->' to end
    or confuse the element. (ensure_ascii already escapes U+2028 and U+2029.)"""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;color:#222;background:#fff}
header{padding:14px 24px 6px}
h1{font-size:1.35rem;margin:0 0 4px}
.about{color:#555;font-size:.9rem;margin:2px 0}
.notes{background:#fff7e0;border-left:4px solid #e0a800;padding:6px 12px;margin:8px 24px;font-size:.88rem}
.notes li{margin:2px 0}
#player{position:sticky;top:0;z-index:10;display:flex;gap:16px;align-items:center;padding:10px 24px;
  background:#f2f4f7;border-bottom:1px solid #d8dde3}
#player img{width:256px;height:128px;image-rendering:pixelated;background:#ddd;border:1px solid #bbb}
#clip-info{min-width:260px;font-size:.92rem}
#clip-info .file{font-family:ui-monospace,Menlo,Consolas,monospace;font-weight:600;word-break:break-all}
#panels{display:grid;grid-template-columns:repeat(auto-fit,minmax(520px,1fr));gap:18px;padding:14px 24px}
.panel{border:1px solid #e1e4e8;border-radius:6px;padding:10px 12px}
.panel h2{font-size:1.1rem;margin:0}
.panel .sub{color:#666;font-size:.85rem;margin:2px 0 6px}
table.figures{border-collapse:collapse;font-size:.9rem;margin-top:6px}
table.figures th,table.figures td{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}
table.figures th:first-child,table.figures td:first-child{text-align:left}
.method{color:#555;font-size:.82rem;margin:6px 0 0}
details{margin:4px 24px 18px;font-size:.85rem;color:#555}
"""

_SCRIPT = """
(function () {
  const page = JSON.parse(document.getElementById('page-data').textContent);
  const audio = document.getElementById('player-audio');
  const thumb = document.getElementById('player-thumb');
  const info = document.getElementById('clip-info');
  const plots = [];
  function select(index) {
    const clip = page.clips[index];
    // Clip strings are raw text: built as DOM text nodes, never parsed as HTML.
    const file = document.createElement('div');
    file.className = 'file';
    file.textContent = clip.file;
    const line = document.createElement('div');
    const label = document.createElement('b');
    label.className = 'label';
    label.textContent = clip.label;
    line.append('label ', label);
    if (clip.fold) { line.append(' \u00b7 fold ' + clip.fold); }
    const parts = [file, line];
    if (!clip.audio) {
      const missing = document.createElement('div');
      missing.textContent = '(audio unavailable)';
      parts.push(missing);
    }
    info.replaceChildren.apply(info, parts);
    info.dataset.index = String(index);
    thumb.src = page.thumbs[index];
    thumb.alt = 'log-mel spectrogram of ' + clip.file;
    if (clip.audio) {
      audio.src = clip.audio;
      // Browsers may refuse to start playback; the controls still let the user press play.
      const started = audio.play();
      if (started && started.catch) { started.catch(function () {}); }
    } else {
      audio.removeAttribute('src');
    }
    plots.forEach(function (plot) {
      const xy = plot.coords[index];
      Plotly.restyle(plot.div, {x: [[xy[0]]], y: [[xy[1]]]}, [plot.ring]);
    });
  }
  page.panels.forEach(function (panel, number) {
    const div = document.getElementById('plot-' + number);
    Plotly.newPlot(div, panel.figure.data, panel.figure.layout, {responsive: true, displaylogo: false});
    plots.push({div: div, coords: panel.coords, ring: panel.figure.data.length - 1});
    div.on('plotly_click', function (event) {
      const point = event.points.find(function (p) { return p.customdata !== undefined; });
      if (point) { select(point.customdata[0]); }
    });
    div.on('plotly_legendclick', function (event) {
      const name = event.data[event.curveNumber].name;
      const hidden = event.data[event.curveNumber].visible === 'legendonly';
      plots.forEach(function (plot) {
        const trace = plot.div.data.findIndex(function (t) { return t.name === name; });
        if (trace >= 0) { Plotly.restyle(plot.div, {visible: hidden ? true : 'legendonly'}, [trace]); }
      });
      return false;  // handled for every panel at once
    });
  });
  window.tfaudioSelect = select;
})();
"""


def render(
    *,
    title: str,
    about: list[str],
    notes: list[str],
    skipped: list[tuple[str, str]],
    clips: list[dict],
    classes: list[str],
    thumbs: list[str],
    panels: list[Panel],
    method_note: str,
) -> str:
    """The whole HTML document."""
    from plotly.offline import get_plotlyjs

    payload = {
        "clips": clips,
        "thumbs": thumbs,
        "panels": [
            {"figure": figure(p, clips, classes), "coords": [[round(float(x), 5), round(float(y), 5)] for x, y in p.coords]}
            for p in panels
        ],
    }
    panel_html = []
    for number, panel in enumerate(panels):
        rows = "".join(
            f"<tr><td>{html.escape(name)}</td><td>{html.escape(a)}</td><td>{html.escape(b)}</td></tr>"
            for name, a, b in panel.rows
        )
        panel_html.append(
            f'<section class="panel"><h2>{html.escape(panel.title)}</h2><div class="sub">{html.escape(panel.subtitle)}</div>'
            f'<div class="plot" id="plot-{number}"></div>'
            f'<table class="figures"><thead><tr><th></th><th>{html.escape(panel.original_label)}</th><th>2-D</th></tr></thead>'
            f"<tbody>{rows}</tbody></table></section>"
        )
    notes_html = (
        '<div class="notes"><ul>' + "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul></div>" if notes else ""
    )
    skipped_html = (
        f"<details><summary>{len(skipped)} clip(s) left out</summary><ul>"
        + "".join(f"<li>{html.escape(p)}: {html.escape(r)}</li>" for p, r in skipped)
        + "</ul></details>"
        if skipped
        else ""
    )
    about_html = "".join(f'<p class="about">{html.escape(line)}</p>' for line in about)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>{_STYLE}</style>
<script>{get_plotlyjs()}</script>
</head><body>
<header><h1>{html.escape(title)}</h1>{about_html}</header>
<div id="player"><img id="player-thumb" alt="log-mel spectrogram of the selected clip"
 src="data:image/gif;base64,R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==">
<div id="clip-info">Click a point to hear its clip and see its log-mel spectrogram.</div>
<audio id="player-audio" controls preload="none"></audio></div>
{notes_html}
<main id="panels">{"".join(panel_html)}</main>
<p class="method" style="padding:0 24px">{html.escape(method_note)}</p>
{skipped_html}
<script type="application/json" id="page-data">{_script_json(payload)}</script>
<script>{_SCRIPT}</script>
</body></html>
"""
