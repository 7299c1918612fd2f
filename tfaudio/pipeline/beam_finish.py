"""The last step of a Beam run (`tfaudio.pipeline.beam`): account for every clip listed, then
write the manifest and the dead letters and publish the work folder.

Every clip the driver listed must end as a row of a shard that reached this step or as a dead
letter. One that is neither (a step that lost it, a bundle whose output went missing) fails the
run: nothing is published, the work folder stays with its shards for the next run to resume
from, and the driver raises `UnaccountedClips` naming the clips. This module imports no Beam.
"""

from __future__ import annotations

import json
import os

from tfaudio.data.audio import printable_path
from tfaudio.errors import TfaudioError
from tfaudio.pipeline import beam_io, writer
from tfaudio.store import MANIFEST

#: The reason given to a clip of several windows that did not all arrive (a window's own dead
#: letter, when there is one, names the cause and is the one kept).
INCOMPLETE = "only {arrived} of its {count} windows were embedded"
#: How many missing clips an error names before it gives the count of the rest.
NAMED = 5


class UnaccountedClips(TfaudioError):
    """A Beam run ended with clips that are neither a row nor a dead letter."""


def refused(position: int, path: str, file: str, label, fold, group) -> dict | None:
    """The dead letter of a clip the driver cannot hand to the workers (with its "position" and
    its output "row" in printable form, for the final step), or None when it can: Beam's coders
    carry text as UTF-8, and a name holding bytes that are not UTF-8 (kept by Python as
    surrogate escapes) cannot be encoded."""
    def text(value):
        return None if value is None else printable_path(value)

    if all(value is None or text(value) == value for value in (path, file, label, group)):
        return None
    return {"path": printable_path(path), "reason": "its name is not valid UTF-8, which Beam's workers cannot "
            "carry; rename it (or embed it with the local runner)", "audio_sha256": None,
            "position": position, "row": [text(file), text(label), fold, text(group)]}


def _one_per_clip(letters: list[dict]) -> list[dict]:
    """One dead letter per path: a clip whose windows did not all arrive also has the letter of
    the window that failed, which names the cause and is kept."""
    chosen: dict[str, dict] = {}
    generic = INCOMPLETE.split("{")[0]
    for letter in sorted(letters, key=lambda x: (x["path"], x["reason"].startswith(generic), x["reason"])):
        chosen.setdefault(letter["path"], letter)
    return list(chosen.values())


def finalize(_, shards: list[dict], dead: list[dict], run) -> dict:
    """The pipeline's last step (one worker): check that every clip is a row or a dead letter,
    list the shards that reached it in the manifest, delete strays (retried bundles), write
    the dead letters, publish the work folder. Where clips are missing, write their listing to
    `beam_io.UNACCOUNTED` instead and publish nothing."""
    refusals = [json.loads(line) for line in _lines(beam_io.join(run.work, beam_io.REFUSED))]
    letters = _one_per_clip([{k: v for k, v in x.items() if k not in ("position", "row")} for x in refusals] + dead)
    digests = {position: digest for s in shards for position, digest in s["ids"]}
    failed = {letter["path"]: letter["audio_sha256"] for letter in letters}
    listed = [json.loads(line) for line in _lines(beam_io.join(run.work, beam_io.CLIPS))]
    listed += [[x["position"], x["path"], *x["row"]] for x in refusals]  # printable: the stamp hashes UTF-8
    rows, missing = [], []
    for position, path, file, label, fold, group in sorted(listed, key=lambda item: item[0]):
        if position not in digests and path not in failed:
            missing.append(path)
        rows.append((file, label, fold, group, digests.get(position, failed.get(path))))
    if missing:
        beam_io.write_bytes(beam_io.join(run.work, beam_io.UNACCOUNTED),
                            json.dumps({"clips": len(listed), "missing": missing}).encode())
        return {"shards": len(shards), "missing": len(missing)}
    kept = {s["name"] for s in shards}
    beam_io.delete([p for p in beam_io.listing(run.work, "part-*") if os.path.basename(p) not in kept])
    beam_io.write_bytes(beam_io.join(run.work, beam_io.DEAD_LETTER),
                        "".join(json.dumps(letter) + "\n" for letter in letters).encode())
    manifest = writer.manifest_for(
        **run.manifest, stamp=writer.output_stamp(run.key, rows),
        shards=[{"name": s["name"], "rows": s["rows"]} for s in sorted(shards, key=lambda s: s["name"])],
        skipped=[[letter["path"], letter["reason"]] for letter in letters],
    )
    beam_io.delete([beam_io.join(run.work, name)
                    for name in (beam_io.CLIPS, beam_io.EARLIER, beam_io.KEY_FILE, beam_io.REFUSED)])
    beam_io.write_bytes(beam_io.join(run.work, MANIFEST), json.dumps(manifest, indent=2, default=str).encode())
    beam_io.publish(run.work, run.final)
    beam_io.delete(list(run.stale_work))
    return {"shards": len(shards), "rows": sum(s["rows"] for s in shards), "skipped": len(letters)}


def check_accounted(work: str) -> None:
    """On the driver, after the pipeline: raise UnaccountedClips when the final step found clips
    missing (its work folder stays, for the next run to resume from)."""
    report = beam_io.join(work, beam_io.UNACCOUNTED)
    if not beam_io.exists(report):
        return
    found = json.loads(beam_io.read_bytes(report))
    missing = found["missing"]
    more = f", and {len(missing) - NAMED} more" if len(missing) > NAMED else ""
    raise UnaccountedClips(
        f"the Beam run accounted for {found['clips'] - len(missing)} of {found['clips']} clips: {len(missing)} "
        f"are neither a row nor a dead letter ({', '.join(missing[:NAMED])}{more}); nothing was published. "
        f"Its shards are kept in {work}: run the same command again to compute only what is missing")


def _lines(path: str) -> list[str]:
    return beam_io.read_bytes(path).decode().splitlines() if beam_io.exists(path) else []
