"""Windows above a detector's threshold merged into detections, and the tables that hold them.

A detection is a stretch of one recording where one label's calibrated probability reached its
threshold: windows of that file and label at or above the threshold that overlap or touch (the
next one starts at or before the end of those merged so far) become one detection, from the
first window's start to the last one's end, with the highest probability among them and the
number of windows merged. With overlapping windows (YAMNet: 0.96 s every 0.48 s) a window below
the threshold between two above it is covered by its neighbours, so those two merge: a
detection is the union of the audio its windows saw.

    detections.csv             file,label,start,end,probability,windows
    detections.selections.txt  a Raven selection table (tab-separated), one selection a detection;
                               `tfaudio labels import` reads it back as positives
"""

from __future__ import annotations

import csv
import io
import os

import numpy as np

#: The columns of a detections table, in the order written.
COLUMNS = ("file", "label", "start", "end", "probability", "windows")
#: Seconds by which windows may miss each other and still merge (window times are sums of float hops).
TOUCHING = 1e-6


def merge_windows(windows):
    """Detections from the windows that reached their label's threshold.

    windows: pandas DataFrame with columns file, label, start, end (seconds), probability, one
    row per (window, label) at or above threshold, in any order. Returns a DataFrame with
    COLUMNS, one row per detection, sorted by file, label, start; windows int64.
    """
    import pandas as pd

    if not len(windows):
        return pd.DataFrame({"file": pd.Series(dtype=str), "label": pd.Series(dtype=str),
                             "start": pd.Series(dtype=np.float64), "end": pd.Series(dtype=np.float64),
                             "probability": pd.Series(dtype=np.float32), "windows": pd.Series(dtype=np.int64)})
    ordered = windows.sort_values(["file", "label", "start", "end"], kind="stable").reset_index(drop=True)
    keys = [ordered["file"], ordered["label"]]
    # the furthest end reached so far in each (file, label), before this window
    reached = ordered.groupby(keys, sort=False)["end"].cummax().groupby(keys, sort=False).shift(1)
    starts_new = reached.isna().to_numpy() | (ordered["start"].to_numpy() > reached.to_numpy() + TOUCHING)
    ordered["detection"] = np.cumsum(starts_new)
    merged = ordered.groupby("detection", sort=True).agg(
        file=("file", "first"), label=("label", "first"), start=("start", "min"), end=("end", "max"),
        probability=("probability", "max"), windows=("start", "size"))
    merged = merged.reset_index(drop=True)
    merged["windows"] = merged["windows"].astype(np.int64)
    merged["probability"] = merged["probability"].astype(np.float32)
    return merged[list(COLUMNS)]


def _seconds(value: float) -> str:
    """Seconds to the microsecond (what the label store keeps), without trailing zeros."""
    return format(float(value), ".6f").rstrip("0").rstrip(".")


def _probability(value: float) -> str:
    return format(float(value), ".6f")


def _text(value: str) -> str:
    """A file name printable whatever its bytes (names that are not UTF-8 as \\xNN)."""
    return os.fsencode(value).decode("utf-8", "backslashreplace")


def detections_csv(detections) -> str:
    """The text of detections.csv (header COLUMNS) for `detections` (merge_windows' frame)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in detections.itertuples(index=False):
        writer.writerow([_text(row.file), row.label, _seconds(row.start), _seconds(row.end),
                         _probability(row.probability), int(row.windows)])
    return buffer.getvalue()


#: The columns of the Raven selection table written. Begin Path names the recording wherever the
#: table is read (Begin File alone would need --audio and is ambiguous across folders); File
#: Offset (s) equals Begin Time because each selection's times count from its own file's start.
RAVEN_COLUMNS = ("Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)", "High Freq (Hz)",
                 "Begin Path", "Begin File", "File Offset (s)", "Label", "Probability")


def raven_table(detections, sample_rate: float | None = None) -> str:
    """The text of a Raven selection table for `detections`: one selection a detection, over
    the full band (0 Hz to the detector's Nyquist frequency, sample_rate / 2; 0 when unknown)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter="\t", lineterminator="\n")
    writer.writerow(RAVEN_COLUMNS)
    high = _seconds(sample_rate / 2) if sample_rate else "0"
    for number, row in enumerate(detections.itertuples(index=False), start=1):
        writer.writerow([number, "Spectrogram 1", 1, _seconds(row.start), _seconds(row.end), "0", high,
                         _text(row.file), _text(os.path.basename(row.file)), _seconds(row.start), row.label,
                         _probability(row.probability)])
    return buffer.getvalue()


__all__ = ["COLUMNS", "RAVEN_COLUMNS", "detections_csv", "merge_windows", "raven_table"]
