"""What a search returns: the ranked hits as a table, written as CSV and a page you can listen to."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

#: The columns of `SearchResults.hits` and of results.csv.
COLUMNS = ("rank", "file", "start", "end", "score", "missing")


def _shown(path) -> str:
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def _near(path: str) -> str:
    """`path` relative to the current folder when that is shorter (at most two `..`), as typed."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive
        return path
    return relative if len(relative) < len(path) and not relative.startswith("../../../") else path


@dataclass(frozen=True, eq=False)  # eq would compare DataFrames, whose truth is ambiguous
class SearchResults:
    """Hits of a search, best first.

    hits: pandas DataFrame with columns rank (1..), file (str), start, end (seconds), score
    (float), missing (bool: the file is gone or changed since the index was built; no playback).
    index_path, model: the index searched. queries, negatives: the examples as given. exact:
    whether every window was scored (else graph candidates, re-ranked exactly). other_files:
    whether hits from the query files were left out.
    In a notebook the object shows the table with players (`_repr_html_`).
    """

    hits: pd.DataFrame
    index_path: str
    model: str
    queries: tuple[str, ...]
    negatives: tuple[str, ...] = ()
    exact: bool = True
    other_files: bool = False

    @classmethod
    def from_hits(cls, hits: Sequence, missing: Iterable[str], *, index, queries, negatives, exact: bool,
                  other_files: bool) -> SearchResults:
        import pandas as pd

        missing = set(missing)
        frame = pd.DataFrame(
            {"rank": range(1, len(hits) + 1), "file": [hit.file for hit in hits],
             "start": [hit.start for hit in hits], "end": [hit.end for hit in hits],
             "score": [hit.score for hit in hits], "missing": [hit.file in missing for hit in hits]},
            columns=list(COLUMNS),
        )
        frame = frame.astype({"rank": int, "start": float, "end": float, "score": float, "missing": bool})
        named = [query.text or _shown(query.path) for query in queries]
        return cls(frame, _shown(index.path), index.model, tuple(named),
                   tuple(query.text or _shown(query.path) for query in negatives), exact, other_files)

    def __len__(self) -> int:
        return len(self.hits)

    def table(self) -> str:
        """The hits as terminal text: rank, score, place and file (relative to the current folder
        when shorter; marked when missing)."""
        lines = [f"{'#':>3}  {'score':>7}  {'start':>8}  {'end':>8}  file"]
        for hit in self.hits.itertuples(index=False):
            mark = "  (missing or changed since the build)" if hit.missing else ""
            place = f"{hit.start:8.2f}  {hit.end:8.2f}"
            lines.append(f"{hit.rank:>3}  {hit.score:7.4f}  {place}  {_shown(_near(hit.file))}{mark}")
        return "\n".join(lines)

    def to_csv(self, path: str | os.PathLike) -> Path:
        """Write the hits (COLUMNS) to `path`, whole or not at all."""
        from tfaudio.outputs import check_writable, write_text

        check_writable(path, folder=False)
        frame = self.hits.assign(file=self.hits["file"].map(_shown))
        return write_text(path, frame.to_csv(index=False, float_format="%.6g"))

    def html(self) -> str:
        """The self-contained results page (tfaudio.search.page)."""
        from tfaudio.search.page import render_page

        return render_page(self)

    def write(self, out: str | os.PathLike) -> Path:
        """Write `out`/results.csv and `out`/index.html (each whole or not at all); returns `out`."""
        from tfaudio.outputs import check_writable, write_text

        out = check_writable(out)
        out.mkdir(parents=True, exist_ok=True)
        self.to_csv(out / "results.csv")
        write_text(out / "index.html", self.html())
        return out

    def _repr_html_(self) -> str:
        from tfaudio.search.page import hits_table, summary

        return f"<p>{summary(self)}</p>{hits_table(self)}"
