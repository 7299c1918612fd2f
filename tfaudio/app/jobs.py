"""Work that outlasts a request (training a detector, exporting it, running it over the archive),
in a background thread the page polls for progress.

One job runs at a time: they share two cores with the server, and a second training of the
same label would race the first to its folder. A job's result is what its function returned
(JSON-ready); its error, when it fails, the one line of a TfaudioError (anything else is a
bug: its traceback goes to the server's stderr and the page says "internal error").
"""

from __future__ import annotations

import itertools
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from tfaudio.app.errors import AppError
from tfaudio.errors import TfaudioError

#: Finished jobs remembered (their results and downloads), oldest forgotten first.
KEPT = 20


@dataclass(eq=False)
class Job:
    """One background task: kind ("train", "export", "detect"), label, state ("running", "done",
    "failed"), progress (step text, done, total), result or error."""

    number: int
    kind: str
    label: str
    state: str = "running"
    step: str = ""
    done: int = 0
    total: int = 0
    result: dict = field(default_factory=dict)
    error: str = ""
    started: float = field(default_factory=time.monotonic)
    finished: float | None = None

    def progress(self, step: str, done: int, total: int) -> None:
        self.step, self.done, self.total = step, int(done), int(total)

    def to_dict(self) -> dict:
        end = self.finished if self.finished is not None else time.monotonic()
        return {"job": self.number, "kind": self.kind, "label": self.label, "state": self.state, "step": self.step,
                "done": self.done, "total": self.total, "result": self.result, "error": self.error,
                "seconds": round(end - self.started, 1)}


class Jobs:
    """The server's background jobs, by number."""

    def __init__(self):
        self._jobs: dict[int, Job] = {}
        self._numbers = itertools.count(1)
        self._turn = threading.Lock()

    def start(self, kind: str, label: str, work: Callable[[Job], dict]) -> Job:
        """Run work(job) in a thread; AppError 409 while another job runs."""
        with self._turn:
            running = [job for job in self._jobs.values() if job.state == "running"]
            if running:
                raise AppError(f"a {running[0].kind} job for {running[0].label!r} is running; wait for it", 409)
            job = Job(next(self._numbers), kind, label)
            self._jobs[job.number] = job
            for number in sorted(self._jobs)[:-KEPT]:
                del self._jobs[number]
        threading.Thread(target=self._run, args=(job, work), name=f"tfaudio-{kind}", daemon=True).start()
        return job

    @staticmethod
    def _run(job: Job, work: Callable[[Job], dict]) -> None:
        try:
            job.result = work(job)
            job.state = "done"
        except TfaudioError as err:
            job.error, job.state = str(err), "failed"
        except Exception:  # a bug: keep the traceback for whoever runs the server
            traceback.print_exc(file=sys.stderr)
            job.error, job.state = "internal error (the server's terminal has the details)", "failed"
        finally:
            job.finished = time.monotonic()

    def get(self, number) -> Job:
        text = str(number)
        with self._turn:
            job = self._jobs.get(int(text)) if text.isdigit() and len(text) < 10 else None
        if job is None:
            raise AppError(f"no job {text[:20]!r} (jobs are forgotten when the server stops)", 404)
        return job
