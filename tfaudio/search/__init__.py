"""Find sounds like this: a search index over an archive's windows, and queries by example.

    import tfaudio
    index = tfaudio.search.build_index("recordings/", "recordings.index", tfaudio.search.IndexConfig(model="yamnet"))
    results = tfaudio.search("recordings.index", "call.wav@12.5-14", top=10)   # SearchResults
    results.write("hits/")                                                       # results.csv, index.html

Names are imported on first use, so `import tfaudio.search` loads neither TensorFlow nor usearch.
"""

from __future__ import annotations

import importlib
import sys
import types

_LAZY = {
    "SearchIndex": "tfaudio.search.index",
    "SearchIndexError": "tfaudio.search.index",
    "IndexConfig": "tfaudio.search.build",
    "build_index": "tfaudio.search.build",
    "search": "tfaudio.search.query",
    "Query": "tfaudio.search.query",
    "QueryError": "tfaudio.search.query",
    "parse_query": "tfaudio.search.query",
    "Scorer": "tfaudio.search.scoring",
    "SearchResults": "tfaudio.search.results",
    "exact_top_k": "tfaudio.search.exact",
    "recall_at_k": "tfaudio.search.exact",
}

__all__ = sorted(_LAZY)


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tfaudio.search' has no attribute {name!r}")


class _CallableModule(types.ModuleType):
    """This package, callable as its main function.

    The API is `tfaudio.search(index, queries, ...)`, and `tfaudio.search` is also the name of
    this subpackage: once any of its modules is imported, Python sets the attribute `search` of
    `tfaudio` to this module object, whatever `tfaudio` defined under that name. So the module
    itself is made callable (its class switched to this subclass of ModuleType), and the call
    and the package are one object: `tfaudio.search(...)` and `from tfaudio.search import
    SearchIndex` both work, in either order.
    """

    def __call__(self, index, queries, **options):
        """See tfaudio.search.query.search."""
        from tfaudio.search.query import search

        return search(index, queries, **options)


sys.modules[__name__].__class__ = _CallableModule
