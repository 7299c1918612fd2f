"""`tfaudio serve` actions over HTTP (issue 20): search by an indexed file or an upload, a region
and negatives; the hits' sound and pictures; labels written when clicked (and undone); the next
round for a label; training, thresholds, detection and export as background jobs. Over the small
hand-crafted index of test_app_security, with Starlette's TestClient. The same round in a real
browser is tests/test_app_browser.py; load, kill -9 and two servers on one store are
tests/test_app_load.py."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf
from test_app_security import ODD, build_indexed, signed_in


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> Path:
    return build_indexed(tmp_path_factory.mktemp("pages"))


@pytest.fixture
def app(indexed, tmp_path):
    from tfaudio.app.server import build_app

    built = build_app(indexed, tmp_path / "labels.db", port=8765, annotator="ana")
    yield built
    built.state.close()


def file_id(app, name: str) -> int:
    return next(number for number, r in enumerate(app.state.recordings) if r.name == name)


def search(client, csrf, **body):
    answer = client.post("/api/search", json=body, headers=csrf)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_search_listen_label_and_undo(app):
    from PIL import Image

    client, csrf = signed_in(app)
    query = file_id(app, "tone300.wav")
    found = search(client, csrf, query={"source": "file", "id": query}, top=4, label="tone")
    hits = found["hits"]
    names = [hit["name"] for hit in hits]
    assert len(hits) == 4 and "tone300.wav" not in names and set(names[:3]) == {"tone310.wav", "long.wav", ODD}
    assert [hit["rank"] for hit in hits] == [1, 2, 3, 4] and hits[0]["score"] >= hits[-1]["score"]
    long = hits[names.index("long.wav")]
    assert long["start"] >= 0.9 and long["end"] <= 2.1  # the tone inside the noise
    # ±1 s of context, inside the 3 s file
    assert long["clip"] == pytest.approx([max(0, long["start"] - 1), min(long["end"] + 1, 3.0)])

    start, end = long["clip"]
    sound = client.get(f"/media/file/{long['file_id']}/audio.wav", params={"start": start, "end": end})
    assert sound.status_code == 200 and sound.headers["content-type"] == "audio/wav"
    samples, rate = sf.read(io.BytesIO(sound.content))
    assert rate == 16000 and len(samples) == pytest.approx((end - start) * 16000, abs=2)
    for size, pixels in (("thumb", (240, 64)), ("wide", (960, 128))):
        image = client.get(f"/media/file/{long['file_id']}/spectrogram.png",
                           params={"start": start, "end": end, "size": size})
        assert image.headers["content-type"] == "image/png"
        assert Image.open(io.BytesIO(image.content)).size == pixels

    saved = []
    for hit, kind in zip(hits[:3], ("positive", "negative", "unsure")):
        answer = client.post("/api/label", json={"id": hit["file_id"], "start": hit["start"], "end": hit["end"],
                                                 "label": "tone", "kind": kind, "source": "search", "annotator": ""},
                             headers=csrf)
        assert answer.status_code == 200 and answer.json()["kind"] == kind
        saved.append(answer.json()["id"])
        # Acknowledged means committed: another connection to the file sees it at once.
        from tfaudio.labels.store import LabelStore

        with LabelStore(app.state.store.path, create=False) as other:
            assert [a.id for a in other.query()] == saved
    stored = app.state.store.query()
    assert [(a.kind, a.source, a.annotator, a.label) for a in stored] == [
        (kind, "search", "ana", "tone") for kind in ("positive", "negative", "unsure")]
    index_hashes = dict(zip(app.state.index.windows["file"], app.state.index.windows["sha256"]))
    assert all(a.sha256 == index_hashes[a.file] for a in stored)

    again = search(client, csrf, query={"source": "file", "id": query}, top=4, label="tone")["hits"]
    assert [hit["labelled"] for hit in again[:3]] == [["positive"], ["negative"], ["unsure"]]
    undone = client.post("/api/undo", json={"id": saved[-1]}, headers=csrf)
    assert undone.json() == {"removed": 1} and len(app.state.store) == 2
    assert client.post("/api/label", json={"id": query, "start": 0, "end": 0.5, "label": "tone", "kind": "maybe"},
                       headers=csrf).status_code == 400


def test_a_region_of_an_upload_with_a_negative(app, indexed):
    client, csrf = signed_in(app)
    data = indexed.parent / "data"
    with open(data / "long" / "long.wav", "rb") as handle:
        upload = client.post("/api/upload", files={"file": ("long copy.wav", handle, "audio/wav")}, headers=csrf).json()
    region = {"source": "upload", "id": upload["upload"], "start": 1.0, "end": 2.0}
    plain = search(client, csrf, query=region, top=3)["hits"]
    assert plain[0]["name"] in ("tone300.wav", "tone310.wav")
    chord = {"source": "file", "id": file_id(app, "chord.wav")}
    pushed = search(client, csrf, query=region, negatives=[chord], top=6, other_files=True)["hits"]
    assert "long.wav" not in [hit["name"] for hit in pushed]  # other files only: not even its noise
    bad = client.post("/api/search", json={"query": {**region, "start": 5.0, "end": 6.0}}, headers=csrf)
    assert bad.status_code == 400 and "long copy.wav" in bad.json()["error"]  # named as uploaded, not by its temp path
    assert str(app.state.uploads.folder) not in bad.text


def test_the_next_round_leaves_judged_windows_out(app):
    client, csrf = signed_in(app)
    tone, hiss = file_id(app, "tone300.wav"), file_id(app, "hiss.wav")
    for number, kind in ((tone, "positive"), (hiss, "negative")):
        assert client.post("/api/label", json={"id": number, "start": 0, "end": 1.0, "label": "tone", "kind": kind},
                           headers=csrf).status_code == 200
    found = client.post("/api/rounds", json={"label": "tone", "strategy": "top", "n": 3}, headers=csrf)
    assert found.status_code == 200, found.text
    windows = found.json()["windows"]
    assert len(windows) == 3 and {w["round"] for w in windows} == {1} and {w["strategy"] for w in windows} == {"top"}
    assert not {w["name"] for w in windows} & {"tone300.wav", "hiss.wav"}
    first = windows[0]
    answer = client.post("/api/label", json={"id": first["file_id"], "start": first["start"], "end": first["end"],
                                             "label": "tone", "kind": "positive", "source": "round",
                                             "round": first["round"], "strategy": first["strategy"]}, headers=csrf)
    assert answer.status_code == 200
    newest = app.state.store.query()[-1]
    assert (newest.source, newest.round, newest.strategy, newest.weight) == ("round", 1, "top", None)
    assert all(w["weight"] is None for w in windows)  # a top pick is no probability sample: no weight
    for body, status in (({"label": "tone", "strategy": "best"}, 400), ({"label": "nothing-yet"}, 400)):
        assert client.post("/api/rounds", json=body, headers=csrf).status_code == status, body


def test_a_round_pick_keeps_its_inclusion_weight(app):
    client, csrf = signed_in(app)
    tone = file_id(app, "tone300.wav")
    assert client.post("/api/label", json={"id": tone, "start": 0, "end": 1.0, "label": "tone", "kind": "positive"},
                       headers=csrf).status_code == 200
    found = client.post("/api/rounds", json={"label": "tone", "strategy": "stratified", "n": 4}, headers=csrf)
    assert found.status_code == 200, found.text
    windows = found.json()["windows"]
    weights = [w["weight"] for w in windows]
    assert all(w is not None and w >= 1 for w in weights), weights  # each pick stands for `weight` windows
    pick = windows[0]
    body = {"id": pick["file_id"], "start": pick["start"], "end": pick["end"], "label": "tone", "kind": "negative",
            "source": "round", "round": pick["round"], "strategy": "stratified"}
    for weight in ("3", 0, -1, True, [2], 10**400):
        refused = client.post("/api/label", json={**body, "weight": weight}, headers=csrf)
        assert refused.status_code == 400, (weight, refused.text)
        assert refused.json()["error"] == ("weight must be a number above 0 (a round pick's inclusion weight), "
                                           "or null")
    assert len(app.state.store) == 1  # nothing stored by a refused label
    answer = client.post("/api/label", json={**body, "weight": pick["weight"]}, headers=csrf)
    assert answer.status_code == 200 and answer.json()["weight"] == pick["weight"]
    assert app.state.store.query()[-1].weight == pick["weight"]
    answer = client.post("/api/label", json={**body, "start": 0.0, "end": 0.5, "id": tone, "weight": None},
                         headers=csrf)
    assert answer.status_code == 200 and answer.json()["weight"] is None


#: Labels of "tone" enough to cross-validate: (file, start, end, kind), positives in 4 recordings.
TONE_LABELS = [("tone300.wav", 0, 1, "positive"), ("tone310.wav", 0, 1, "positive"), ("long.wav", 1, 2, "positive"),
               ("chord.wav", 0, 1, "positive"), ("hiss.wav", 0, 1, "negative"), ("tone2000.wav", 0, 1, "negative"),
               ("tone2100.wav", 0, 1, "negative"), ("long.wav", 0, 1, "negative"), ("long.wav", 2, 3, "negative")]


def finished(client, job: dict, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        now = client.get(f"/api/jobs/{job['job']}").json()
        if now["state"] != "running":
            return now
        time.sleep(0.2)
    raise AssertionError(f"job {job} still running after {timeout} s")


def test_train_try_a_threshold_commit_it_detect_and_export(app):
    from tfaudio.detector.model import Detector

    client, csrf = signed_in(app)
    for name, start, end, kind in TONE_LABELS:
        assert client.post("/api/label", json={"id": file_id(app, name), "start": start, "end": end, "label": "tone",
                                               "kind": kind}, headers=csrf).status_code == 200
    assert client.get("/api/detector", params={"label": "tone"}).json() == {"trained": False, "label": "tone"}
    assert client.post("/api/detect", json={"label": "tone"}, headers=csrf).status_code == 404  # nothing trained

    trained = finished(client, client.post("/api/train", json={"label": "tone"}, headers=csrf).json())
    assert trained["state"] == "done" and trained["done"] == trained["total"] > 1, trained
    shown = client.get("/api/detector", params={"label": "tone"}).json()
    report = shown["report"]
    assert (report["positives"], report["negatives"], report["recordings"]) == (40, 50, 7)
    assert report["average_precision"] > 0.9 and len(report["average_precision_ci95"]) == 2
    assert report["calibration"]["reliability"] and report["point"]["reached"]
    assert len(shown["curve"]["precision"]) == len(shown["curve"]["recall"]) > 2
    assert Path(shown["path"]).parent == app.state.detector_root

    tried = client.get("/api/point", params={"label": "tone", "threshold": 0.6}).json()
    assert set(tried) >= {"precision", "precision_ci95", "recall", "recall_ci95", "predicted", "positives"}
    assert Detector.load(shown["path"]).thresholds[0] == pytest.approx(shown["threshold"])  # trying commits nothing
    assert client.get("/api/point", params={"label": "tone", "threshold": 2}).status_code == 400
    committed = client.post("/api/threshold", json={"label": "tone", "threshold": 0.6}, headers=csrf).json()
    assert committed["threshold"] == 0.6 and Detector.load(shown["path"]).thresholds[0] == 0.6
    moved = client.get("/api/detector", params={"label": "tone"}).json()  # the page's figures follow the threshold
    assert moved["report"]["point"]["threshold"] == 0.6 and moved["report"]["point"]["precision"] == tried["precision"]

    detected = finished(client, client.post("/api/detect", json={"label": "tone"}, headers=csrf).json())
    assert detected["state"] == "done" and detected["result"]["windows"] == len(app.state.index), detected
    table = client.get(f"/download/{detected['job']}/detections.csv")
    assert table.status_code == 200 and "attachment" in table.headers["content-disposition"]
    assert table.text.startswith("file,label,start,end,probability,windows") and "tone300.wav" in table.text
    assert client.get(f"/download/{detected['job']}/detections.selections.txt").text.startswith("Selection\t")
    for bad in (f"/download/{detected['job']}/detect.json", f"/download/{detected['job']}/..%2Fdetector.json",
                f"/download/{trained['job']}/detections.csv", "/download/999/detections.csv"):
        assert client.get(bad).status_code == 404, bad

    scored = client.post("/api/rounds", json={"label": "tone", "strategy": "margin", "n": 3}, headers=csrf).json()
    assert all(0 <= w["score"] <= 1 for w in scored["windows"])  # calibrated: the trained detector scores
    exported = finished(client, client.post("/api/export", json={"label": "tone"}, headers=csrf).json(), 120)
    assert exported["state"] == "done", exported
    assert (Path(exported["result"]["path"]) / "saved_model.pb").is_file()
    assert client.get("/api/detector", params={"label": "tone"}).json()["exports"] == ["1"]


def test_one_job_at_a_time():
    from tfaudio.app.errors import AppError
    from tfaudio.app.jobs import Jobs

    jobs, release = Jobs(), threading.Event()
    first = jobs.start("train", "a", lambda job: {"waited": release.wait(10)})
    with pytest.raises(AppError, match="a train job for 'a' is running") as refused:
        jobs.start("detect", "b", lambda job: {})
    assert refused.value.status == 409
    release.set()
    for _ in range(100):
        if jobs.get(first.number).state == "done":
            break
        time.sleep(0.05)
    assert jobs.get(first.number).result == {"waited": True}
    failed = jobs.start("detect", "b", lambda job: 1 / 0)
    time.sleep(0.3)
    assert failed.state == "failed" and "internal error" in failed.error
