"""The label store (tfaudio.labels, `tfaudio labels`): annotations kept through kills and two
writers, versioned schema, tables in and out (CSV, Raven, manifests) without loss or duplicates."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
import soundfile as sf
from click.testing import CliRunner
from conftest import sine
from helpers import run_process

from tfaudio.assets import sha256_of
from tfaudio.cli.main import main
from tfaudio.labels import Annotation, LabelError, LabelStore, export_labels, import_tables, read_table
from tfaudio.labels.schema import SCHEMA_VERSION
from tfaudio.labels.store import BATCH

CLI = [str(Path(sys.executable).parent / "tfaudio")]


def record(folder: Path, name: str, seconds: float, freq: float = 440.0) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, sine(freq, seconds), 16000)
    return path


def fields(store: LabelStore) -> list[tuple]:
    """Every annotation of `store` without its row id, sorted: what must survive a round trip."""
    return sorted((a.file, a.start, a.end, a.label, a.kind, a.annotator, a.time, a.source, a.round, a.strategy,
                   a.sha256, a.whole) for a in store)


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


# -- the Python API -------------------------------------------------------------------------------


def test_add_query_undo_and_the_frame(tmp_path):
    owl = record(tmp_path, "owl.wav", 3.0)
    with LabelStore(tmp_path / "labels.db") as store:
        first = store.add(owl, 0.5, 1.25, "owl", annotator="ana", round=1, strategy="top")
        assert first.id is not None and first.sha256 == sha256_of(owl) and first.file == str(owl.resolve())
        assert first.source == "python" and first.time  # stamped when stored
        again = store.add(owl, 0.5, 1.25, "owl", annotator="ana")
        assert again == first and len(store) == 1  # the same judgement is stored once
        changed = store.add(owl, 0.5, 1.25, "owl", "negative", annotator="ana")
        store.add(owl, 2.0, 3.0, "frog", "unsure", annotator="bo")
        # Overlap: [1.0, 2.5) meets both spans; [1.25, 2.0) meets neither (ends are open).
        assert {a.label for a in store.query(start=1.0, end=2.5)} == {"owl", "frog"}
        assert store.query(start=1.25, end=2.0) == []
        # By content: a renamed file still finds its labels through its hash.
        assert len(store.query(file=tmp_path / "renamed.wav", sha256=first.sha256)) == 3
        assert [a.kind for a in store.query(label="owl", latest=True)] == ["negative"]
        frame = store.frame(label=["owl", "frog"], kind=("positive", "unsure"))
        assert list(frame["label"]) == ["owl", "frog"] and frame["start"].dtype == float
        assert store.labels() == ["frog", "owl"]
        assert [a.label for a in store.undo()] == ["frog"]
        assert store.remove([changed.id]) == 1 and [a.id for a in store] == [first.id]
        with pytest.raises(LabelError, match="start 2 must be 0 or more and before end 1"):
            store.add(owl, 2, 1, "owl")
        with pytest.raises(LabelError, match="unknown kind 'maybe'"):
            store.add(owl, 0, 1, "owl", "maybe")
        summary = store.summary().text()
    assert "1 annotations of 1 files" in summary and "annotators: ana 1" in summary


def test_latest_filters_the_current_judgement_not_the_older_ones(tmp_path):
    store = LabelStore(tmp_path / "labels.db")
    store.add("/x/a.wav", 0, 1, "owl", "positive", annotator="ana", time="2026-01-01T00:00:00+00:00")
    store.add("/x/a.wav", 0, 1, "owl", "negative", annotator="bo", time="2026-01-02T00:00:00+00:00")
    assert store.query(label="owl", kind="positive", latest=True) == []  # changed to negative since
    assert [a.kind for a in store.query(label="owl", latest=True)] == ["negative"]
    assert store.query(annotator="ana", latest=True) == []  # ana's judgement is not the current one
    assert [a.annotator for a in store.query(kind="positive")] == ["ana"]  # the history keeps it


def test_windows_take_the_kind_of_the_labels_they_overlap():
    import pandas as pd

    from tfaudio.labels import window_kinds

    # An index's windows: 1 s hops over a.wav (3 s) and b.wav (2 s), and one window of c.wav.
    windows = pd.DataFrame({"file": ["/a.wav"] * 3 + ["/b.wav"] * 2 + ["/c.wav"],
                            "sha256": ["A"] * 3 + ["B"] * 2 + [None],
                            "start": [0.0, 1.0, 2.0, 0.0, 1.0, 0.0], "end": [1.0, 2.0, 3.0, 1.0, 2.0, 1.0]})
    annotations = [
        Annotation("/a.wav", 1.2, 1.5, "owl", "positive", sha256="A"),  # a short call inside window 1
        Annotation("/a.wav", 0.0, 3.0, "owl", "negative", sha256="A", whole=True),  # the file, judged as a whole
        Annotation("/a.wav", 2.9, 3.0, "owl", "unsure", sha256="A"),  # a call all inside window 2
        Annotation("/moved/b.wav", 0.0, 0.4, "owl", "unsure", sha256="B"),  # by content: the file was renamed
        Annotation("/b.wav", 1.0, 2.0, "owl", "positive", sha256="OLD"),  # about other content: no match
        Annotation("/c.wav", 0.6, 1.0, "owl", "positive"),  # no hash: by path; 0.4 of a 0.4 s call
    ]
    assert list(window_kinds(windows, annotations)) == ["negative", "positive", "unsure", "unsure", None, "positive"]
    assert list(window_kinds(windows, annotations[3:4], min_overlap=1.0)) == [None] * 3 + ["unsure", None, None]


# -- tables in and out ----------------------------------------------------------------------------


@pytest.fixture
def labelled(tmp_path) -> Path:
    """A store holding window and whole-file annotations of every kind, one of a file not there."""
    a, b = record(tmp_path, "audio/a.wav", 2.0), record(tmp_path, "audio/b.wav", 1.0, 880)
    with LabelStore(tmp_path / "source.db") as store:
        store.add(a, 0.25, 0.75, "owl", annotator="ana", round=2, strategy="margin", source="round")
        store.add(a, 1.0, 1.96, "owl", "unsure", annotator="bo")
        store.add(b, 0.0, 1.0, "frog", "negative", whole=True, source="search")
        store.add(tmp_path / "gone.wav", 3.5, 4.0, "owl, \"barn\"", annotator="ana")  # a label that needs quoting
    return tmp_path / "source.db"


@pytest.mark.parametrize("table_format", ["csv", "raven"])
def test_a_written_table_reads_back_as_the_same_annotations(labelled, tmp_path, table_format):
    with LabelStore(labelled) as source:
        out = tmp_path / "tables" / f"labels.{table_format}"
        out.parent.mkdir()
        assert export_labels(source, out, table_format) == (4, 0)
        with LabelStore(tmp_path / "copy.db") as copy:
            tables, counts = import_tables(copy, [out])  # the format told from the first line
            assert tables[0].format == table_format and tables[0].problems == []
            assert counts.added == 4 and fields(copy) == fields(source)
            assert list(tables[0].missing) == [str(tmp_path / "gone.wav")]  # reported, kept with its hash
    assert not list(out.parent.glob(".*partial*"))


def test_a_manifest_is_a_positive_for_its_label_and_a_negative_for_the_others(tmp_path):
    for name, seconds in (("dog_1.wav", 1.0), ("rain_1.wav", 0.5), ("bird_1.wav", 0.75)):
        record(tmp_path / "data", name, seconds)
    manifest = tmp_path / "data" / "manifest.csv"
    manifest.write_text("filename,label,fold\ndog_1.wav,dog,1\nrain_1.wav,rain,1\nbird_1.wav,bird,2\n"
                        "bird_1.wav,rain,2\nmissing.wav,dog,2\n")
    with LabelStore(tmp_path / "labels.db") as store:
        (table,), counts = import_tables(store, [manifest])
        assert counts.added == 9  # 3 files x 3 labels
        assert table.problems == [f"{manifest}:6: {tmp_path / 'data' / 'missing.wav'}: file not found; a manifest's "
                                  "label covers the whole file, so its length is needed"]
        judged = {(Path(a.file).name, a.label): (a.kind, a.start, a.end, a.whole) for a in store}
        assert judged[("dog_1.wav", "dog")] == ("positive", 0.0, 1.0, True)
        assert judged[("dog_1.wav", "rain")] == ("negative", 0.0, 1.0, True)
        assert judged[("rain_1.wav", "dog")][0] == "negative"
        assert judged[("bird_1.wav", "bird")][0] == judged[("bird_1.wav", "rain")][0] == "positive"
        assert judged[("bird_1.wav", "dog")] == ("negative", 0.0, 0.75, True)
        store.add(tmp_path / "data" / "dog_1.wav", 0.1, 0.2, "bark")  # a window: no manifest row holds it
        out = tmp_path / "data" / "exported.csv"
        assert export_labels(store, out, "manifest") == (9, 1)
        assert out.read_text().splitlines() == ["filename,label", "bird_1.wav,bird", "bird_1.wav,rain",
                                                "dog_1.wav,dog", "rain_1.wav,rain"]
        assert import_tables(store, [out])[1].added == 0  # the same judgements: nothing new


def test_importing_again_adds_nothing_and_bad_rows_are_named(tmp_path):
    record(tmp_path, "a.wav", 2.0)
    table = tmp_path / "labels.csv"
    table.write_text("file,start,end,label,kind\na.wav,0,1,owl,positive\na.wav,1,0.5,owl,positive\n"
                     "a.wav,0,1,owl,maybe\na.wav,zero,1,owl,\nb.wav,0,1,owl,Negative\n\na.wav,0.5,1.5,frog,\n")
    with LabelStore(tmp_path / "labels.db") as store:
        with pytest.raises(LabelError, match=r"labels.csv:3: start 1 must be .*nothing was imported \(--strict\)"):
            import_tables(store, [table], strict=True)
        assert len(store) == 0
        (found,), counts = import_tables(store, [table])
        assert (counts.added, counts.present, found.rows) == (3, 0, 6)
        assert [p.split(": ", 1)[0] for p in found.problems] == [f"{table}:3", f"{table}:4", f"{table}:5"]
        assert "unknown kind 'maybe'" in found.problems[1] and "not a number: 'zero'" in found.problems[2]
        assert found.missing == {str(tmp_path / "b.wav"): 1}
        assert store.query(file=tmp_path / "b.wav")[0].sha256 is None  # kept, its hash unknown
        assert import_tables(store, [table])[1].added == 0 and len(store) == 3


def test_raven_tables_name_their_recordings_in_several_ways(tmp_path):
    one = record(tmp_path, "recordings/site1.wav", 4.0)
    record(tmp_path, "recordings/site2.wav", 4.0, 660)
    views = tmp_path / "tables" / "views.selections.txt"
    views.parent.mkdir()
    # Raven lists each selection once per view; a table over two files counts Begin Time from the first.
    views.write_text("Selection\tView\tChannel\tBegin Time (s)\tEnd Time (s)\tBegin File\tFile Offset (s)\tSpecies\n"
                     "1\tWaveform 1\t1\t1.0\t2.5\tsite1.wav\t1.0\towl\n"
                     "1\tSpectrogram 1\t1\t1.0\t2.5\tsite1.wav\t1.0\towl\n"
                     "2\tSpectrogram 1\t1\t5.0\t5.5\tsite2.wav\t1.0\tfrog\n"
                     "3\tSpectrogram 1\t1\t7.0\t6.0\tsite2.wav\t3.0\tfrog\n")
    single = tmp_path / "tables" / "site1.txt"
    single.write_text("Selection\tBegin Time (s)\tEnd Time (s)\tCall\n1\t0.5\t1.5\thoot\n")
    with LabelStore(tmp_path / "labels.db") as store:
        (table,), _ = import_tables(store, [views], audio=tmp_path / "recordings")
        assert [(Path(a.file).name, a.start, a.end, a.label) for a in table.annotations] == [
            ("site1.wav", 1.0, 2.5, "owl"), ("site2.wav", 1.0, 1.5, "frog")]
        assert table.problems == [f"{views}:5: start 3 must be 0 or more and before end 2"]
        with pytest.raises(LabelError, match="no annotation column .*--annotation-column"):
            read_table(single, audio=one)
        (table,), _ = import_tables(store, [single], audio=one, annotation_column="Call", annotator="cy")
        assert [(a.file, a.label, a.annotator, a.sha256) for a in table.annotations] == [
            (str(one), "hoot", "cy", sha256_of(one))]
        (table,), _ = import_tables(store, [single], annotation_column="Call")
        assert table.annotations == [] and "names no recording (give --audio RECORDING" in table.problems[0]


# -- what the store refuses -------------------------------------------------------------------------


def test_newer_foreign_and_damaged_files_are_refused_in_one_line(tmp_path):
    newer = tmp_path / "newer.db"
    LabelStore(newer).close()
    with sqlite3.connect(newer) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    foreign = tmp_path / "foreign.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE birds (name TEXT)")
    damaged = tmp_path / "damaged.db"
    damaged.write_bytes(b"SQLite format 3\0" + b"\xff" * 4000)
    cut = tmp_path / "cut.db"  # a store cut short (a copy that stopped half-way)
    with LabelStore(cut) as store:
        store.add_many(Annotation(f"/x{i}.wav", 0, 1, "owl") for i in range(2000))
    cut.write_bytes(cut.read_bytes()[:8192])
    text = tmp_path / "notes.db"
    text.write_text("these are not labels\n" * 200)
    expected = {newer: f"written by a newer tfaudio \\(label schema {SCHEMA_VERSION + 1}; this one reads up to",
                foreign: "not a tfaudio label store \\(an SQLite file of another program\\)",
                damaged: "not a tfaudio label store, or a damaged one \\(file is not a database\\)",
                cut: "not a tfaudio label store, or a damaged one \\(database disk image is malformed\\)",
                text: "not a tfaudio label store",
                tmp_path / "absent.db": "no label store there"}
    for path, message in expected.items():
        with pytest.raises(LabelError, match=f"^{path}: {message}"):
            LabelStore(path, create=path.name != "absent.db")
        result = invoke("labels", "info", "--labels", str(path))
        assert result.exit_code == 1 and result.output.count("\n") == 1, result.output
        assert result.output.startswith(f"Error: {path}: ")
    assert not (tmp_path / "absent.db").exists()


def test_an_older_store_is_upgraded_in_place(tmp_path, monkeypatch):
    from tfaudio.labels import schema

    with LabelStore(tmp_path / "labels.db") as store:
        kept = store.add("/x.wav", 0, 1, "owl")
    # The next tfaudio adds a column: stores of this version are brought up to the next when opened.
    now = schema.SCHEMA_VERSION
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, "ALTER TABLE annotations ADD COLUMN note TEXT"))
    monkeypatch.setattr(schema, "SCHEMA_VERSION", now + 1)
    with LabelStore(tmp_path / "labels.db") as store:
        assert list(store) == [kept]
        assert store._db.execute("PRAGMA user_version").fetchone()[0] == now + 1
        assert "note" in [row[1] for row in store._db.execute("PRAGMA table_info(annotations)")]


def old_store(path: Path, version: int, rows: list[tuple]) -> list[Annotation]:
    """A store as the tfaudio of label schema `version` wrote it (its DDL: MIGRATIONS[:version]),
    holding `rows` (file, start, end, label, kind, annotator); the annotations it holds, as read now."""
    from tfaudio.labels import schema

    db = sqlite3.connect(path)
    for migration in schema.MIGRATIONS[:version]:
        db.executescript(migration)
    db.execute(f"PRAGMA user_version = {version}")
    db.execute(f"PRAGMA application_id = {schema.APPLICATION_ID}")
    stamp = "2024-05-01T10:00:00.000000+00:00"
    db.executemany("INSERT INTO annotations (file, start_s, end_s, label, kind, annotator, time, source, round, "
                   "strategy) VALUES (?, ?, ?, ?, ?, ?, ?, 'round', 1, 'top')", [(*row, stamp) for row in rows])
    db.commit()
    db.close()
    return [Annotation(file, float(start), float(end), label, kind, annotator, stamp, "round", 1, "top", id=number)
            for number, (file, start, end, label, kind, annotator) in enumerate(rows, start=1)]


def test_a_version_1_store_keeps_its_labels_and_never_reuses_an_undone_id(tmp_path):
    from tfaudio.labels import schema

    kept = old_store(tmp_path / "labels.db", 1, [("/x.wav", 0, 1, "owl", "positive", ""),
                                                 ("/x.wav", 1, 2, "owl", "negative", "ana")])
    with LabelStore(tmp_path / "labels.db") as store:
        assert list(store) == kept and store._db.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        undone = store.add("/x.wav", 2, 3, "owl")
        store.undo()
        assert store.add("/x.wav", 3, 4, "owl").id > undone.id  # an undo sent late cannot hit a newer label


def test_a_version_2_store_gains_weights_keeping_its_labels_and_ids(tmp_path):
    from tfaudio.labels import schema

    database = tmp_path / "labels.db"
    kept = old_store(database, 2, [("/x.wav", 0, 1, "owl", "positive", ""), ("/x.wav", 1, 2, "owl", "negative", "")])
    with sqlite3.connect(database) as db:
        db.execute("DELETE FROM annotations WHERE id = 2")  # undone: its id must stay unused after the upgrade
    with LabelStore(database) as store:
        assert list(store) == kept[:1] and kept[0].weight is None  # old rows: no weight
        assert store._db.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION == 3
        weighed = store.add("/x.wav", 5, 6, "owl", weight=12.5)
        assert weighed.id == 3 and weighed.weight == 12.5
        with pytest.raises(sqlite3.IntegrityError):  # the file itself refuses a weight of 0 (another writer's)
            store._db.execute("UPDATE annotations SET weight = 0 WHERE id = 3")
    with LabelStore(database) as store:  # opened again: nothing to upgrade, all kept
        assert list(store) == [kept[0], weighed]


def test_weights_are_kept_with_their_labels_and_bad_ones_refused(tmp_path):
    import numpy as np

    with LabelStore(tmp_path / "labels.db") as store:
        one = store.add("/x.wav", 0, 1, "owl", "negative", round=1, strategy="stratified", weight=np.float64(40 / 3))
        plain = store.add("/x.wav", 1, 2, "owl", round=1, strategy="top")
        assert (one.weight, type(one.weight), plain.weight) == (40 / 3, float, None)
        # The weight is no part of what makes an annotation one: the same judgement again is the one stored.
        assert store.add("/x.wav", 0, 1, "owl", "negative", weight=2.0) == one and len(store) == 2
        store.add_many([Annotation("/y.wav", 0, 1, "owl", weight=3)])
        assert [a.weight for a in store.query(label="owl", latest=True)] == [40 / 3, None, 3.0]
        assert [a.weight for a in store] == [40 / 3, None, 3.0]
        frame = store.frame()
        assert frame.columns[-2:].tolist() == ["weight", "id"] and frame["weight"].dtype == float
        assert frame["weight"].tolist()[0] == 40 / 3 and np.isnan(frame["weight"].tolist()[1])
        for bad in (0, -2.5, float("nan"), float("inf"), "7", True):
            with pytest.raises(LabelError, match=r"^/x\.wav: weight \S+ must be a finite number above 0 \(or none\)$"):
                store.add("/x.wav", 3, 4, "owl", weight=bad)
            with pytest.raises(LabelError, match="must be a finite number above 0"):
                store.add_many([Annotation("/x.wav", 3, 4, "owl", weight=bad)])
        assert len(store) == 3


def test_weights_go_through_csv_and_a_round_sheet_but_not_raven(tmp_path):
    from tfaudio.labels.formats import CSV_COLUMNS, NEXT_COLUMNS

    assert CSV_COLUMNS[-1] == "weight" and NEXT_COLUMNS[-1] == "weight"
    a = record(tmp_path, "a.wav", 2.0)
    with LabelStore(tmp_path / "source.db") as source:
        source.add(a, 0, 0.5, "owl", weight=100 / 3, round=2, strategy="stratified")
        source.add(a, 0.5, 1, "owl", "negative", weight=1.0)
        source.add(a, 1, 1.5, "owl")
        for table_format, weights in (("csv", [100 / 3, 1.0, None]), ("raven", [None] * 3)):
            out = tmp_path / f"labels.{table_format}"
            export_labels(source, out, table_format)
            with LabelStore(tmp_path / f"{table_format}.db") as copy:
                assert import_tables(copy, [out])[1].added == 3
                assert [x.weight for x in copy] == weights  # exactly: a weight is written in full
        assert "weight" not in (tmp_path / "labels.raven").read_text().splitlines()[0].lower()

    sheet = tmp_path / "next.csv"  # a round's sheet as `tfaudio labels next` writes it, two rows judged
    sheet.write_text(",".join(NEXT_COLUMNS) + "\n"
                     f"{a},0,0.5,owl,positive,0.91,stratified,3,12.5\n"
                     f"{a},0.5,1,owl,negative,0.4,top,3,\n"
                     f"{a},1,1.5,owl,,0.3,stratified,3,7\n")
    with LabelStore(tmp_path / "next.db") as store:
        (table,), counts = import_tables(store, [sheet])
        assert (counts.added, table.unjudged, table.problems) == (2, 1, [])
        assert [(x.kind, x.strategy, x.weight, x.source) for x in store] == [
            ("positive", "stratified", 12.5, "next"), ("negative", "top", None, "next")]

    bad = tmp_path / "bad.csv"
    bad.write_text(f"file,start,end,label,weight\n{a},0,1,owl,many\n{a},1,2,owl,0\n{a},1,2,owl,-inf\n{a},0,1,owl,2\n")
    with LabelStore(tmp_path / "bad.db") as store:
        (table,), counts = import_tables(store, [bad])
        assert counts.added == 1 and table.problems == [
            f"{bad}:2: weight 'many' is not a number (an inclusion weight above 0, or empty)",
            f"{bad}:3: weight 0 must be a finite number above 0 (or none)",
            f"{bad}:4: weight -inf must be a finite number above 0 (or none)"]
        result = invoke("labels", "import", str(bad), "--labels", str(tmp_path / "strict.db"), "--strict")
        assert result.exit_code == 1 and result.output.count("\n") == 1 and "weight 'many'" in result.output


# -- kills and two writers --------------------------------------------------------------------------


def test_a_kill_during_an_import_loses_no_committed_batch(tmp_path):
    record(tmp_path, "a.wav", 1.0)
    rows = 10 * BATCH
    table = tmp_path / "big.csv"
    table.write_text("file,start,end,label\n" + "".join(f"a.wav,{i / 2},{i / 2 + 0.5},{'owl' if i % 3 else 'frog'}\n"
                                                         for i in range(rows)))
    database = tmp_path / "labels.db"
    command = [sys.executable, "-m", "tfaudio.cli", "labels", "import", str(table), "--labels", str(database)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    acknowledged = 0
    for line in process.stderr:  # "DB: 10000 of 50000 annotations committed"
        if "annotations committed" in line:
            acknowledged = int(line.split(": ")[1].split()[0])
            if acknowledged >= 2 * BATCH:
                process.send_signal(signal.SIGKILL)
                break
    process.wait()
    assert process.returncode == -signal.SIGKILL and acknowledged == 2 * BATCH
    with LabelStore(database) as store:
        stored = len(store)
        assert acknowledged <= stored < rows  # killed mid-way, nothing acknowledged lost
        assert store._db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    result = invoke("labels", "import", str(table), "--labels", str(database))
    assert result.exit_code == 0, result.output
    assert f"{rows - stored} added, {stored} already there; {rows} annotations in all" in result.output
    with LabelStore(database) as store:
        assert len({(a.start, a.label) for a in store}) == len(store) == rows


WRITER = textwrap.dedent("""
    import sys
    from tfaudio.labels import LabelStore
    name, count = sys.argv[1], int(sys.argv[2])
    with LabelStore(sys.argv[3]) as store:
        for i in range(count):
            store.add("/archive/" + name + ".wav", i, i + 1, "owl", annotator=name)
            print(i, flush=True)  # acknowledged: add has returned
""")


def test_a_kill_during_a_labelling_session_loses_no_acknowledged_label(tmp_path):
    database = tmp_path / "labels.db"
    session = subprocess.Popen([sys.executable, "-c", WRITER, "ana", "100000", str(database)],
                               stdout=subprocess.PIPE, text=True)
    acknowledged = [int(next(session.stdout)) for _ in range(60)]
    session.send_signal(signal.SIGKILL)
    session.wait()
    with LabelStore(database) as store:
        starts = [a.start for a in store]
    assert starts[:60] == [float(i) for i in acknowledged] and len(starts) < 100000


def test_two_writers_at_once_lose_nothing(tmp_path):
    database, count = tmp_path / "labels.db", 150
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, name, str(count), str(database)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for name in ("ana", "bo")]
    for writer in writers:
        assert writer.wait(timeout=120) == 0, writer.stderr.read()
    with LabelStore(database) as store:
        assert len(store) == 2 * count
        assert {(a.annotator, a.start) for a in store} == {(n, float(i)) for n in ("ana", "bo") for i in range(count)}


OPENER = """
import sys, time
from tfaudio.labels import LabelStore
start = float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))  # every process opens the new store at the same moment
with LabelStore(sys.argv[1]) as store:
    store.add("/x.wav", 0, 1, "owl", annotator=sys.argv[3])
"""


def test_processes_creating_one_store_at_once_all_get_it(tmp_path):
    """Two `tfaudio serve` started together on a new labels.db: one creates it, the others find it
    made (once, a reader between another's reads saw half a store and refused it as foreign)."""
    for trial in range(3):
        database, start = tmp_path / f"labels-{trial}.db", time.time() + 1.5
        openers = [subprocess.Popen([sys.executable, "-c", OPENER, str(database), str(start), f"p{i}"],
                                    stderr=subprocess.PIPE, text=True) for i in range(6)]
        for opener in openers:
            assert opener.wait(timeout=120) == 0, opener.stderr.read()
        with LabelStore(database) as store:
            assert sorted(a.annotator for a in store) == [f"p{i}" for i in range(6)]


# -- the command line ------------------------------------------------------------------------------


def test_labels_import_and_export_from_the_console(tmp_path):
    record(tmp_path, "a.wav", 2.0)
    table = tmp_path / "in.csv"
    table.write_text("file,start,end,label,kind\na.wav,0,1,owl,positive\na.wav,1,2,owl,negative\n"
                     "a.wav,2,1,owl,positive\n")
    env = {**os.environ, "TFAUDIO_OFFLINE": "1"}
    database, out = tmp_path / "labels.db", tmp_path / "out" / "selections.txt"
    imported = run_process([*CLI, "labels", "import", table, "--labels", database, "--annotator", "ana"],
                           env=env, cwd=tmp_path).check()
    assert "labels.db: 2 added, 0 already there; 2 annotations in all" in imported.stdout
    assert f"warning: {table}:4: start 2 must be 0 or more and before end 1 (row skipped)" in imported.stderr
    out.parent.mkdir()
    exported = run_process([*CLI, "labels", "export", "--labels", database, "--out", out, "--format", "raven"],
                           env=env, cwd=tmp_path).check()
    assert f"{out}: 2 annotations (raven)" in exported.stdout
    lines = out.read_text().splitlines()
    assert len(lines) == 3 and lines[1].split("\t")[3:5] == ["0", "1"] and "\tana\t" in lines[1]


def test_export_checks_its_output_first_and_replaces_it_whole(tmp_path, labelled):
    out = tmp_path / "labels.csv"
    out.write_text("an earlier export\n")
    result = invoke("labels", "export", "--labels", str(labelled), "--out", str(tmp_path / "audio"))
    assert result.exit_code == 1 and "is a folder; give a file name" in result.output
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    result = invoke("labels", "export", "--labels", str(labelled), "--out", str(blocked / "x.csv"))
    assert result.exit_code == 1 and "a part of this path is a file" in result.output
    result = invoke("labels", "export", "--labels", str(labelled), "--out", str(out), "--label", "frog")
    assert result.exit_code == 0, result.output
    assert out.read_text().splitlines()[1].split(",")[3:5] == ["frog", "negative"]
    result = invoke("labels", "export", "--labels", str(tmp_path / "none.db"), "--out", str(out))
    assert result.exit_code == 1 and "no label store there" in result.output and not (tmp_path / "none.db").exists()
    result = invoke("labels", "info", "--labels", str(labelled))
    assert result.exit_code == 0 and "4 annotations of 3 files" in result.output
    assert "1 files were not found when labelled" in result.output


def test_a_label_is_committed_when_add_returns(tmp_path):
    """Another connection (another process's view) sees each label as soon as add returns;
    threads may share one store."""
    from concurrent.futures import ThreadPoolExecutor

    with LabelStore(tmp_path / "labels.db") as store:
        for i in range(3):
            store.add("/archive/x.wav", i, i + 0.5, "owl")
            with sqlite3.connect(tmp_path / "labels.db") as other:
                assert other.execute("SELECT count(*) FROM annotations").fetchone()[0] == i + 1
        assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: store.add("/archive/y.wav", i, i + 1, "frog"), range(40)))
        assert len(store.query(label="frog")) == 40
    assert Annotation("/x.wav", 0, float("nan"), "owl").problem() is not None
