"""Agile modelling, simulated with an oracle: how good a detector gets from one query clip and a
few rounds of labels, per labelling strategy, against random labelling and perch-hoplite.

For each dataset (a folder with meta.csv: filename, a class column, fold) the clips of every fold
but --held-out-fold form the pool (an index that is searched and labelled); the held-out fold
(its own index, same model and windows) is only ever scored. For each class, with its own
label store:

  round 0   one query clip of the pool (seeded pick): the whole clip labelled positive; the pool
            searched for it (tfaudio.search, other files only) and the oracle labels the top
            --per-round hits;
  round r   tfaudio.detector.next_windows picks --per-round windows by the strategy (top,
            margin, stratified, random), the oracle labels them;
  after each round a detector is trained (tfaudio.detector.train_detector, defaults of
  DetectorConfig) and scores the held-out fold.

"passive" is the random-labelling baseline: the query clip, then --per-round random windows in
round 0 as in every later round (no search). The oracle is meta.csv: a window (or search hit)
takes its clip's class, so a window of a clip of the class is a positive, any other a negative.
"Labels" counts the oracle's answers: the query clip is one, each hit or window one more (a
labelled window also speaks for the windows it overlaps by half, as tfaudio.labels.window_kinds
has it, for both classifiers).

Average precision is clip-level: a held-out clip's score is its best window's (the oracle's
truth is per clip, and padded or quiet stretches of a clip of the class are not the class);
window-level AP is in the JSON too. hoplite: perch-hoplite's own linear classifier
(perch_hoplite.agile.classifier.train_linear_classifier, the agile notebook's settings) trained
on the SAME window vectors and the SAME labelled windows, every unlabelled pool window a weak
negative, scored the same way.

The operating-point check: after the last round, one more round of --calibration stratified
labels (a known-probability sample of the pool, its inclusion weights kept) and a detector
trained on everything; its threshold (chosen at DetectorConfig.target_precision on the archive
estimate, tfaudio.detector.archive) goes to the held-out fold: precision and recall of the
held-out windows there against the intervals the detector reported. With --calibration 0 the
threshold and interval are the cross-validated ones (on labelled windows only).

    python benchmarks/agile.py                                  # ESC-10 and Speech Commands words
    python benchmarks/agile.py --data esc10 --classes dog,rain --rounds 2 --out /tmp/agile/out
    python benchmarks/agile.py --data /path/to/dataset --class-column label --model handcrafted

Writes OUT/results.json and OUT/results.md (and prints the tables); the label stores the oracle
filled stay in OUT/labels/. Each (dataset, class, strategy) is saved under OUT/cells/ as it
finishes: a rerun with the same OUT skips those (delete OUT to start over). Indexes and the
embedding store go to --work (default OUT/work), which runs may share: a later build finds the
index up to date. ESC-10 with YAMNet and hoplite took 4-7 minutes on 2 shared cores (frames
already in the store).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
import zlib
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
#: Known datasets: the column naming a clip's class, and which clips' classes are simulated
#: (Speech Commands: the words, by `sublabel`; its noise clips stay in the pool as negatives).
DATASETS = {"esc10": ("label", None), "speech_commands": ("sublabel", ("label", "speech"))}
ACTIVE = ("top", "margin", "stratified", "random")
PASSIVE = "passive"
#: perch-hoplite's agile notebook (02_agile_modeling.ipynb) settings: "should not require tuning".
HOPLITE = {"learning_rate": 1e-3, "weak_neg_weight": 0.05, "num_train_steps": 128, "batch_size": 128,
           "weak_negatives_batch_size": 128}


class Split:
    """One dataset cut into pool and held-out indexes, with the oracle's truth.

    pool, test: SearchIndex; clip_class: resolved path -> class; classes: the simulated ones;
    queries: class -> the pool clip that starts its simulation.
    """

    def __init__(self, name, pool, test, clip_class, classes, queries):
        self.name, self.pool, self.test = name, pool, test
        self.clip_class, self.classes, self.queries = clip_class, tuple(classes), queries
        self.pool_sha = dict(zip(pool.windows["file"], pool.windows["sha256"]))
        self.pool_class = np.array([clip_class[_key(f)] for f in pool.windows["file"]], dtype=object)
        self.pool_vectors = pool.vectors(np.arange(len(pool)))
        files = test.windows["file"].to_numpy()
        self.test_clip, clip_files = _factorize(files)
        self.test_class = np.array([clip_class[_key(f)] for f in files], dtype=object)
        self.clip_truth_class = np.array([clip_class[_key(f)] for f in clip_files], dtype=object)
        self.test_vectors = test.vectors(np.arange(len(test)))


def _key(path) -> str:
    return os.path.realpath(path)


def _factorize(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    uniques, codes = np.unique(values, return_inverse=True)
    return codes, uniques


def prepare(data: Path, work: Path, *, model: str, hop: float | None, held_out: int, class_column: str, where, classes,
            seed: int, store: str | None) -> Split:
    """Manifests and indexes of the pool (folds != held_out) and of the held-out fold under
    work/<name>/ (built once: a later run finds them up to date), classes and query clips."""
    import pandas as pd

    from tfaudio.pipeline.run import RunSettings
    from tfaudio.search.build import IndexConfig, build_index
    from tfaudio.search.index import SearchIndex

    meta = pd.read_csv(data / "meta.csv")
    meta["path"] = [_key(data / name) for name in meta["filename"]]
    meta["class"] = meta[class_column].astype(str)
    folder = work / data.name
    folder.mkdir(parents=True, exist_ok=True)
    indexes = {}
    for part, rows in (("pool", meta[meta["fold"] != held_out]), ("test", meta[meta["fold"] == held_out])):
        if rows.empty:
            sys.exit(f"{data}: no clips {'outside' if part == 'pool' else 'in'} fold {held_out}")
        manifest = folder / f"{part}.csv"
        rows[["path", "class", "fold"]].set_axis(["filename", "label", "fold"], axis=1).to_csv(manifest, index=False)
        build_index(manifest, folder / f"{part}.index", IndexConfig(model=model, hop=hop), RunSettings(store=store))
        indexes[part] = SearchIndex.open(folder / f"{part}.index")
    eligible = meta if where is None else meta[meta[where[0]].astype(str) == where[1]]
    pool_counts = eligible[eligible["fold"] != held_out]["class"].value_counts()
    test_counts = eligible[eligible["fold"] == held_out]["class"].value_counts()
    usable = sorted(c for c in pool_counts.index if pool_counts[c] >= 2 and test_counts.get(c, 0) >= 1)
    chosen = usable if classes is None else classes
    if isinstance(chosen, int):
        chosen = usable[:chosen]
    unknown = sorted(set(chosen) - set(usable))
    if unknown:
        sys.exit(f"{data}: no class {', '.join(unknown)} with 2+ pool clips and a held-out clip; "
                 f"choose from {', '.join(usable)}")
    pool = meta[meta["fold"] != held_out]
    # Seeded by the class's name too: a class gets the same query whichever others run beside it.
    queries = {c: str(np.random.default_rng([seed, zlib.crc32(c.encode())]).choice(
        sorted(pool.loc[pool["class"] == c, "path"]))) for c in sorted(chosen)}
    return Split(data.name, indexes["pool"], indexes["test"], dict(zip(meta["path"], meta["class"])),
                 sorted(chosen), queries)


# ------------------------------------------------------------------------------ the oracle's loop


def _answer(split: Split, store, label: str, regions, *, source: str, round_: int, strategy: str) -> int:
    """The oracle labels each (file, start, end[, weight]) of `regions` by its clip's class;
    returns how many it labelled (a window of no length, as an index may end a file with,
    cannot be). weight: a probability round's inclusion weight, kept as `labels import` keeps it."""
    answered = 0
    for file, start, end, *weight in regions:
        if not end > start:
            continue
        answered += 1
        kind = "positive" if split.clip_class[_key(file)] == label else "negative"
        kept = weight[0] if weight and np.isfinite(weight[0]) else None
        store.add(file, float(start), float(end), label, kind, annotator="oracle", source=source, round=round_,
                  strategy=strategy, sha256=split.pool_sha.get(file), weight=kept)
    return answered


def simulate(split: Split, label: str, strategy: str, *, rounds: int, per_round: int, calibration: int, config,
             hoplite: bool, folder: Path) -> dict:
    """One class, one strategy: rounds + 1 detectors, each measured on the held-out fold, then
    (calibration > 0) a stratified round of `calibration` labels for the archive estimate.
    Returns {"rounds": [per round: labels, windows, AP (tfaudio / hoplite, clip and window),
    the detector's cross-validated AP], "operating_point": of the last detector, "seconds"}."""
    from tfaudio.data.audio import info
    from tfaudio.detector import next_windows, train_detector
    from tfaudio.labels import LabelStore
    from tfaudio.search import search

    start = time.perf_counter()
    path = folder / f"{split.name}-{strategy}-{label}.db".replace("/", "_")
    for stale in folder.glob(path.name + "*"):
        stale.unlink()  # a cell not saved last time starts over
    store = LabelStore(path)
    query = split.queries[label]
    _answer(split, store, label, [(query, 0.0, info(query).duration)], source="query", round_=0, strategy=strategy)
    spent, measured, detector = 1, [], None
    for round_ in range(rounds + 1):
        if round_ == 0 and strategy != PASSIVE:
            hits = search(split.pool, query, top=per_round, other_files=True).hits
            regions, source = zip(hits["file"], hits["start"], hits["end"]), "search"
        else:
            picks = next_windows(split.pool, store, label, strategy="random" if strategy == PASSIVE else strategy,
                                 n=per_round, detector=detector, config=config, seed=config.seed + round_)
            regions, source = zip(picks["file"], picks["start"], picks["end"], picks["weight"]), "next"
        spent += _answer(split, store, label, list(regions), source=source, round_=round_, strategy=strategy)
        detector = train_detector(split.pool, store, labels=[label], config=config)
        measured.append(_measure(split, store, label, detector, spent, config, hoplite))
    if calibration:
        picks = next_windows(split.pool, store, label, strategy="stratified", n=calibration, detector=detector,
                             config=config, seed=config.seed + rounds + 1)
        spent += _answer(split, store, label, list(zip(picks["file"], picks["start"], picks["end"], picks["weight"])),
                         source="next", round_=rounds + 1, strategy="stratified")
        detector = train_detector(split.pool, store, labels=[label], config=config)
    store.close()
    return {"rounds": measured, "operating_point": {**_operating_point(split, label, detector), "labels": spent},
            "seconds": round(time.perf_counter() - start, 1)}


def _average_precision(truth: np.ndarray, scores: np.ndarray) -> float:
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(truth, scores)) if truth.any() else float("nan")


def _aps(split: Split, label: str, window_scores: np.ndarray) -> tuple[float, float]:
    """(clip-level AP: a clip scores its best window; window-level AP) on the held-out fold."""
    clip_scores = np.full(len(split.clip_truth_class), -np.inf)
    np.maximum.at(clip_scores, split.test_clip, window_scores)
    return (_average_precision(split.clip_truth_class == label, clip_scores),
            _average_precision(split.test_class == label, window_scores))


def _measure(split: Split, store, label: str, detector, spent: int, config, hoplite: bool) -> dict:
    from tfaudio.labels import window_kinds

    kinds = window_kinds(split.pool.windows, store.query(label=label, latest=True), min_overlap=config.min_overlap)
    report = detector.reports[0]
    clip_ap, window_ap = _aps(split, label, detector.probabilities(split.test_vectors)[:, 0])
    row = {"labels": spent, "positive_windows": int((kinds == "positive").sum()),
           "negative_windows": int((kinds == "negative").sum()), "ap": clip_ap, "window_ap": window_ap,
           "raw_ap": _aps(split, label, detector.scores(split.test_vectors)[:, 0])[0],  # before Platt scaling
           "cv_ap": _number(report.average_precision), "cv_ap_ci": [_number(v) for v in report.average_precision_ci],
           "note": report.note}
    if hoplite:
        labelled = np.flatnonzero((kinds == "positive") | (kinds == "negative"))
        scores = hoplite_scores(split.pool, labelled, kinds[labelled] == "positive", split.test_vectors, config.seed)
        row["hoplite_ap"], row["hoplite_window_ap"] = _aps(split, label, scores)
    return row


def _number(value) -> float | None:
    return None if value is None or not np.isfinite(value) else float(value)


def _operating_point(split: Split, label: str, detector) -> dict:
    """The last detector's threshold, against the interval the detector reported for it: the
    archive estimate's when it made one (the threshold is then chosen on it), else the
    cross-validated one.

    On the held-out fold: precision and recall of its windows (and clips, by their best window)
    at the threshold, the precision's own 95 % interval (resampling its clips: a fold of 8 clips
    of a class is a small sample too), whether the precision lies in the stated interval
    (in_interval), is not below its lower end (at_least_low), and whether the two intervals
    overlap (consistent). On the pool: the archive estimate's own target, the precision and recall
    the oracle's labels give for every pool window scored as the estimate scores them (out-of-fold
    where labelled), and whether the stated intervals hold them (archive_covered, recall_covered).
    """
    from tfaudio.detector.stats import operating_point

    report, threshold = detector.reports[0], float(detector.thresholds[0])
    probability = detector.probabilities(split.test_vectors)[:, 0]
    clip_best = np.full(len(split.clip_truth_class), -np.inf)
    np.maximum.at(clip_best, split.test_clip, probability)
    found = {"threshold": threshold, "cv": None if report.point is None else report.point.to_dict(),
             "archive": None if report.archive is None else report.archive.to_dict()}
    for level, truth, scores in (("window", split.test_class == label, probability),
                                 ("clip", split.clip_truth_class == label, clip_best)):
        predicted = scores >= threshold
        found[f"{level}_precision"] = float(truth[predicted].mean()) if predicted.any() else None
        found[f"{level}_recall"] = float(predicted[truth].mean()) if truth.any() else None
    stated = report.archive if report.archive is not None else report.point
    if stated is None or found["window_precision"] is None:
        return found
    held = operating_point(split.test_class == label, probability, threshold, split.test_clip, seed=detector.config.seed)
    low, high = stated.precision_ci
    found.update(interval="archive" if report.archive is not None else "cv", held_out_ci=list(held.precision_ci),
                 in_interval=bool(low <= found["window_precision"] <= high),
                 at_least_low=bool(found["window_precision"] >= low),
                 consistent=bool(held.precision_ci[0] <= high and held.precision_ci[1] >= low),
                 reached=bool(found["window_precision"] >= detector.config.target_precision))
    if report.archive is not None:
        scores = detector.probabilities(split.pool_vectors)[:, 0]
        out_of_fold = detector.held_out[label]
        scores[out_of_fold["ids"]] = out_of_fold["probability"]
        truth, predicted = split.pool_class == label, scores >= threshold
        archive = report.archive
        found["archive_true_precision"] = float(truth[predicted].mean()) if predicted.any() else None
        found["archive_true_recall"] = float(predicted[truth].mean())
        found["archive_covered"] = found["archive_true_precision"] is not None and bool(
            archive.precision_ci[0] <= found["archive_true_precision"] <= archive.precision_ci[1])
        found["recall_covered"] = bool(archive.recall_ci[0] <= found["archive_true_recall"] <= archive.recall_ci[1])
    return found


# ------------------------------------------------------------------------------ hoplite's classifier


def hoplite_scores(pool, labelled: np.ndarray, positive: np.ndarray, test_vectors: np.ndarray, seed: int) -> np.ndarray:
    """perch-hoplite's linear classifier trained on the pool's windows: `labelled` (int64 window
    ids) with `positive` (bool, same length) as labels, every other pool window a weak negative;
    returns its logits for test_vectors float32 [n, dim] -> float32 [n].

    Its data manager normally holds out part of the labels for its own evaluation and reads
    labels from hoplite's database; here it trains on every labelled window (as tfaudio's final
    heads do) and takes the labels as given, so both see the same examples.
    """
    import functools
    import types
    import warnings

    import tqdm
    from perch_hoplite.agile import classifier, classifier_data

    from tfaudio.quiet import keras  # TensorFlow's logging quietened before hoplite imports it

    classifier.tqdm = types.SimpleNamespace(tqdm=functools.partial(tqdm.tqdm, disable=True))  # no bar per fit

    db = _hoplite_db(pool)
    offset = 1  # hoplite numbers windows from 1, in insertion order
    truth = {int(i) + offset: bool(p) for i, p in zip(labelled, positive)}

    class GivenLabels(classifier_data.AgileDataManager):
        def get_train_test_split(self):
            ids = np.array(sorted(truth), np.int64)
            return ids, ids

        def get_multihot_labels(self, idx):
            known = int(idx) in truth
            return np.array([float(truth.get(int(idx), False))], np.float32), np.array([known])

    keras.utils.set_random_seed(seed)
    manager = GivenLabels(target_labels=("target",), db=db, train_ratio=1.0, min_eval_examples=1,
                          batch_size=HOPLITE["batch_size"],
                          weak_negatives_batch_size=HOPLITE["weak_negatives_batch_size"],
                          rng=np.random.default_rng(seed))
    with warnings.catch_warnings():  # its own evaluation of one class warns of empty means
        warnings.simplefilter("ignore", RuntimeWarning)
        model, _ = classifier.train_linear_classifier(manager, learning_rate=HOPLITE["learning_rate"],
                                                      weak_neg_weight=HOPLITE["weak_neg_weight"],
                                                      num_train_steps=HOPLITE["num_train_steps"])
    return np.asarray(model(test_vectors), np.float32)[:, 0]


_HOPLITE_DBS: dict[str, object] = {}


def _hoplite_db(pool):
    """An in-memory hoplite database of the pool's windows and float32 vectors (once per index)."""
    if str(pool.path) not in _HOPLITE_DBS:
        from perch_hoplite.db import in_mem_impl

        db = in_mem_impl.InMemoryGraphSearchDB.create(embedding_dim=pool.dim, embedding_dtype=np.float32)
        deployment = db.insert_deployment("pool", "agile")
        recordings = {}
        vectors = pool.vectors(np.arange(len(pool)))
        for row, (file, start, end) in enumerate(zip(pool.windows["file"], pool.windows["start"], pool.windows["end"])):
            if file not in recordings:
                recordings[file] = db.insert_recording(file, deployment_id=deployment)
            db.insert_window(recordings[file], [float(start), float(end)], vectors[row], handle_duplicates="allow")
        db.insert_metadata("model_config", {"model_key": pool.model})  # kept, never read, by its classifier
        _HOPLITE_DBS[str(pool.path)] = db
    return _HOPLITE_DBS[str(pool.path)]


# ------------------------------------------------------------------------------ tables


def summarize(cells: dict, strategies, rounds: int, hoplite: bool) -> dict:
    """Mean over classes per strategy and round (cells: class -> strategy -> simulate()), and
    the operating-point check per strategy."""
    table, points = {}, {}
    for strategy in strategies:
        per_round = []
        for round_ in range(rounds + 1):
            rows = [cells[c][strategy]["rounds"][round_] for c in cells]
            entry = {"labels": int(np.mean([r["labels"] for r in rows])), "classes": len(rows)}
            keys = ("ap", "window_ap", "raw_ap", "cv_ap") + (("hoplite_ap", "hoplite_window_ap") if hoplite else ())
            for key in keys:
                values = [r[key] for r in rows if r.get(key) is not None and np.isfinite(r[key])]
                entry[key] = float(np.mean(values)) if values else None
            per_round.append(entry)
        table[strategy] = per_round
        checks = [cells[c][strategy]["operating_point"] for c in cells]
        judged = [p for p in checks if "in_interval" in p]
        points[strategy] = {"classes": len(checks), "with_interval": len(judged),
                            "archive": sum(p.get("interval") == "archive" for p in judged),
                            "in_interval": sum(p["in_interval"] for p in judged),
                            "at_least_low": sum(p["at_least_low"] for p in judged),
                            "consistent": sum(p["consistent"] for p in judged),
                            "reached": sum(p["reached"] for p in judged),
                            "archive_covered": sum(p.get("archive_covered", False) for p in judged),
                            "recall_covered": sum(p.get("recall_covered", False) for p in judged),
                            "labels": _mean(p.get("labels") for p in checks),
                            "mean_window_precision": _mean(p["window_precision"] for p in checks),
                            "mean_window_recall": _mean(p["window_recall"] for p in checks),
                            "mean_stated_precision": _mean((p["archive"] or p["cv"] or {}).get("precision")
                                                           for p in checks),
                            "mean_cv_precision": _mean(p["cv"]["precision"] for p in checks if p["cv"])}
    return {"mean": table, "operating_point": points}


def _mean(values) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def markdown(name: str, summary: dict, hoplite: bool) -> str:
    """The tables of one dataset: mean clip-level AP per strategy and round (tfaudio / hoplite),
    and the operating-point check."""
    def shown(value):
        return "-" if value is None else f"{value:.3f}"

    table = summary["mean"]
    first = next(iter(table.values()))
    lines = [f"### {name}: mean average precision over {first[0]['classes']} classes (held-out fold, clip level)", "",
             "| strategy | " + " | ".join(f"round {r} ({row['labels']} labels)" for r, row in enumerate(first)) + " |",
             "|---" * (len(first) + 1) + "|"]
    for strategy, rows in table.items():
        cells = [shown(r["ap"]) + (f" / {shown(r['hoplite_ap'])}" if hoplite else "") for r in rows]
        lines.append(f"| {strategy} | " + " | ".join(cells) + " |")
    lines += ["", "tfaudio" + (" / hoplite (same labels)" if hoplite else "") + "; window-level AP, AP of the raw "
              "scores (before Platt scaling) and the detector's cross-validated AP are in results.json.", "",
              f"### {name}: threshold at the target precision, last detector, on the held-out fold", "",
              "Interval: the archive estimate's (stratified labels) where the detector made one, else the "
              "cross-validated one.", "",
              "| strategy | labels | classes with an interval (archive) | mean stated precision | "
              "mean held-out precision | held-out reached target | held-out in the interval | not below its lower "
              "end | intervals overlap | pool's true precision in the interval | pool's true recall in its "
              "interval | mean held-out recall |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for strategy, p in summary["operating_point"].items():
        judged, labels = p["with_interval"], "-" if p["labels"] is None else round(p["labels"])
        lines.append(f"| {strategy} | {labels} | {judged}/{p['classes']} ({p['archive']}) | "
                     f"{shown(p['mean_stated_precision'])} | {shown(p['mean_window_precision'])} | "
                     f"{p['reached']}/{judged} | {p['in_interval']}/{judged} | {p['at_least_low']}/{judged} | "
                     f"{p['consistent']}/{judged} | {p['archive_covered']}/{p['archive']} | "
                     f"{p['recall_covered']}/{p['archive']} | {shown(p['mean_window_recall'])} |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ command line


def _classes(text: str | None):
    if text is None:
        return None
    return int(text) if text.isdigit() else [c.strip() for c in text.split(",") if c.strip()]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="esc10,speech_commands",
                        help="datasets, comma-separated: names under ../shared/datasets or folders with meta.csv")
    parser.add_argument("--class-column", help="meta.csv column naming the class (default: label; sublabel, the "
                        "word, for speech_commands)")
    parser.add_argument("--classes", help="comma-separated classes, or a number: the first N (default: every "
                        "class with 2+ pool clips and a held-out clip)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds after round 0 (default 3)")
    parser.add_argument("--per-round", type=int, default=10, help="labels per round (default 10)")
    parser.add_argument("--calibration", type=int, default=20,
                        help="labels of a last stratified round, for the archive estimate of the threshold's "
                        "precision (default 20; 0: none, the threshold then the cross-validated one)")
    parser.add_argument("--strategies", default=",".join(ACTIVE + (PASSIVE,)),
                        help=f"comma-separated, of {', '.join(ACTIVE + (PASSIVE,))}")
    parser.add_argument("--held-out-fold", type=int, default=5, help="the fold only ever scored (default 5)")
    parser.add_argument("--model", default="yamnet", help="registry name of the representation (default yamnet)")
    parser.add_argument("--hop", type=float, help="seconds between index windows (default: the model's frame hop)")
    parser.add_argument("--classifier", default="linear", help="DetectorConfig.classifier: linear or mlp")
    parser.add_argument("--seed", type=int, default=0, help="query clips, picks and detectors (default 0)")
    parser.add_argument("--resamples", type=int, default=None, help="bootstrap resamples (default DetectorConfig's)")
    parser.add_argument("--no-hoplite", action="store_true", help="skip perch-hoplite's classifier")
    parser.add_argument("--out", type=Path, default=Path("agile-benchmark"), help="results folder")
    parser.add_argument("--work", type=Path,
                        help="indexes and the embedding store, reusable across runs (default OUT/work)")
    args = parser.parse_args(argv)
    return run(args)


def run(args) -> dict:
    """Every dataset, class and strategy of `args` (main's options); writes and returns the results."""
    from dataclasses import replace

    from tfaudio.detector import DetectorConfig
    from tfaudio.outputs import check_writable

    os.environ.setdefault("TFAUDIO_MODELS", str(SHARED / "models"))
    out = check_writable(args.out)
    work = args.work or out / "work"
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if set(strategies) - set(ACTIVE + (PASSIVE,)) or args.rounds < 0 or args.per_round < 1 or args.calibration < 0:
        sys.exit(f"--strategies of {', '.join(ACTIVE + (PASSIVE,))}; --rounds >= 0; --per-round >= 1; "
                 "--calibration >= 0")
    config = DetectorConfig(classifier=args.classifier, seed=args.seed)
    config = config if args.resamples is None else replace(config, resamples=args.resamples)
    hoplite = not args.no_hoplite
    if hoplite and importlib.util.find_spec("perch_hoplite") is None:
        sys.exit("perch-hoplite is not installed: pip install -e '.[bench]', or pass --no-hoplite")
    results = {"settings": {**{k: str(v) for k, v in vars(args).items()}, "detector": _plain(config),
                            **({"hoplite": HOPLITE} if hoplite else {})}, "datasets": {}}
    text = []
    for entry in [d.strip() for d in args.data.split(",") if d.strip()]:
        data = Path(entry) if Path(entry).exists() else SHARED / "datasets" / entry
        column, where = DATASETS.get(data.name, ("label", None))
        started = time.perf_counter()
        split = prepare(data, work, model=args.model, hop=args.hop, held_out=args.held_out_fold,
                        class_column=args.class_column or column, where=where, classes=_classes(args.classes),
                        seed=args.seed, store=str(work / "store"))
        cells = {}
        for label in split.classes:
            cells[label] = {}
            for strategy in strategies:
                saved = out / "cells" / split.name / strategy / f"{label}.json"
                if not saved.exists():
                    cell = simulate(split, label, strategy, rounds=args.rounds, per_round=args.per_round,
                                    calibration=args.calibration, config=config, hoplite=hoplite,
                                    folder=out / "labels")
                    _write(saved, json.dumps(cell, indent=1))
                cells[label][strategy] = json.loads(saved.read_text())
                last = cells[label][strategy]["rounds"][-1]
                print(f"{split.name} {label} {strategy}: AP {last['ap']:.3f}"
                      + (f" (hoplite {last['hoplite_ap']:.3f})" if hoplite else "")
                      + f" after {last['labels']} labels", file=sys.stderr, flush=True)
        summary = summarize(cells, strategies, args.rounds, hoplite)
        results["datasets"][split.name] = {"classes": list(split.classes), "queries": split.queries,
                                           "pool_windows": len(split.pool), "test_windows": len(split.test),
                                           "seconds": round(time.perf_counter() - started, 1), **summary,
                                           "cells": cells}
        text.append(markdown(split.name, summary, hoplite))
    _write(out / "results.json", json.dumps(results, indent=1))
    _write(out / "results.md", "\n".join(text))
    print("\n".join(text))
    return results


def _plain(config) -> dict:
    from dataclasses import asdict

    return asdict(config)


def _write(path: Path, text: str) -> None:
    """Write by rename, so an interrupted run leaves no half file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.partial")
    temporary.write_text(text)
    os.replace(temporary, path)


if __name__ == "__main__":
    main()
