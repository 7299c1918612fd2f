"""Acceptance of query by example on real recordings (issue 18): ESC-10 indexed with YAMNet; for
every class, one clip of fold 1 as the query finds, among its top 10 hits from other files, at
least 7 of its own class on average over the classes.

Needs ../shared (ESC-10 and YAMNet's weights); skipped without. The index is built once per
session; YAMNet's frames go to the default embedding store, so a later session embeds nothing
(the first build costs 1-2 minutes on 2 cores, later ones a few seconds).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from conftest import shared_path

#: Hits per query, and the mean same-class count the issue asks for among them.
TOP, WANTED = 10, 7.0


def precision_at_top(index, esc10: Path, queries: pd.DataFrame) -> pd.Series:
    """Per class: the mean share of same-class files among the TOP hits from other files of each
    query clip (rows of meta.csv)."""
    from tfaudio.search.query import search

    meta = pd.read_csv(esc10 / "meta.csv")
    label_of = {str((esc10 / name).resolve()): label for name, label in zip(meta["filename"], meta["label"])}
    shares = []
    for name, label in zip(queries["filename"], queries["label"]):
        hits = search(index, esc10 / name, top=TOP, other_files=True).hits
        assert len(hits) == TOP
        shares.append((label, sum(label_of[str(Path(file).resolve())] == label for file in hits["file"]) / TOP))
    return pd.DataFrame(shares, columns=["label", "precision"]).groupby("label")["precision"].mean()


def first_of_fold_one(esc10: Path) -> pd.DataFrame:
    """One query per class: its first clip of fold 1 in meta.csv."""
    meta = pd.read_csv(esc10 / "meta.csv")
    return meta[meta["fold"] == 1].groupby("label", sort=True).head(1)


@pytest.fixture(scope="session")
def esc10_yamnet_index(tmp_path_factory):
    from tfaudio.search.build import IndexConfig, build_index
    from tfaudio.search.index import SearchIndex

    esc10 = shared_path("datasets", "esc10")
    models = shared_path("models", "yamnet", "yamnet.h5").parents[1]
    out = tmp_path_factory.mktemp("esc10-index") / "yamnet"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFAUDIO_MODELS", str(models))
        build_index(esc10, out, IndexConfig(model="yamnet"))
    return esc10, models, SearchIndex.open(out)


def test_esc10_yamnet_queries_find_their_class(esc10_yamnet_index, monkeypatch):
    esc10, models, index = esc10_yamnet_index
    monkeypatch.setenv("TFAUDIO_MODELS", str(models))  # the queries are embedded by YAMNet too
    precision = precision_at_top(index, esc10, first_of_fold_one(esc10))
    assert len(precision) == 10
    assert precision.mean() * TOP >= WANTED, f"same-class hits in the top {TOP} per class:\n{precision * TOP}"
