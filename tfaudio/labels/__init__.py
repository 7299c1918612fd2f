"""Labels: which spans of which recordings are (or are not) examples of a sound, kept safe.

    import tfaudio.labels
    store = tfaudio.labels.LabelStore("labels.db")                 # created when absent
    store.add("calls/a.wav", 12.5, 14.0, "owl", "positive", annotator="ana")
    store.undo()                                                     # take the last one back
    tfaudio.labels.import_tables(store, ["selections.txt"])          # Raven, CSV or a manifest
    store.frame(label="owl", latest=True)                            # pandas DataFrame
    tfaudio.labels.export_labels(store, "owl.csv", "csv", labels=["owl"])
    kinds = tfaudio.labels.window_kinds(index_windows, store.query(label="owl", latest=True))

Importing this package costs the standard library's sqlite3 and csv; numpy only for
`window_kinds`, pandas only for `frame`.
See docs/labels.md.
"""

from tfaudio.labels.formats import FORMATS, Table, export_labels, import_tables, read_table, write_table
from tfaudio.labels.store import KINDS, SCHEMA_VERSION, Annotation, Counts, LabelError, LabelStore

__all__ = ["FORMATS", "KINDS", "SCHEMA_VERSION", "Annotation", "Counts", "LabelError", "LabelStore", "Table",
           "export_labels", "import_tables", "read_table", "window_kinds", "write_table"]


def __getattr__(name):
    if name == "window_kinds":  # numpy, on first use
        from tfaudio.labels.windows import window_kinds

        return window_kinds
    raise AttributeError(f"module 'tfaudio.labels' has no attribute {name!r}")
