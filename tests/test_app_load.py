"""`tfaudio serve` under load and on a shared machine (issue 20): 20 clients labelling at once for
30 s over loopback lose no label and get their answers quickly; a `kill -9` of the server while
they go on loses no label it acknowledged; two servers on one label store share it, each seeing
what the other wrote. Real `tfaudio serve` processes, over the small index of test_app_security.

The clients are threads of this process, each with one kept-alive HTTP connection, labelling as
fast as the answers come (no pause to listen, as no person labels): a harder load than 20
people. A label's latency is measured from sending the request to reading the whole answer, which
comes only after the commit (fsync).
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from test_app_security import _serve, _url, build_indexed

#: Seconds the 20 clients label before the server is killed under them (the issue's 30 s).
LOAD_SECONDS = 30.0
CLIENTS = 20
#: The most a label's answer may take at the 95th percentile (the issue's bound).
P95_LIMIT = 0.200


@pytest.fixture(scope="module")
def indexed(tmp_path_factory) -> Path:
    return build_indexed(tmp_path_factory.mktemp("load"))


def address(url: str) -> tuple[int, str]:
    """(port, token) of a URL `tfaudio serve` printed."""
    return int(url.split(":")[2].split("/")[0]), url.split("token=")[1]


@dataclass
class Labeller:
    """One client: labels of its own (`label` + step, annotator `client<number>`) sent one after
    another over one connection until `stop` is set or the server goes; what was acknowledged
    (annotation id, label, annotator) and how long each answer took."""

    port: int
    token: str
    number: int
    stop: threading.Event
    acknowledged: list = field(default_factory=list)
    latencies: list = field(default_factory=list)
    failures: list = field(default_factory=list)

    def run(self) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        headers = {"Authorization": f"token {self.token}", "Content-Type": "application/json"}
        annotator = f"client{self.number}"
        for step in range(10**6):
            if self.stop.is_set():
                break
            label = f"load{step}"
            body = {"id": step % 8, "start": 0.0, "end": 0.25, "label": label, "kind": "positive",
                    "annotator": annotator}
            started = time.perf_counter()
            try:
                connection.request("POST", "/api/label", json.dumps(body), headers)
                answer = connection.getresponse()
                data = answer.read()
            except (OSError, http.client.HTTPException):
                break  # the server is gone (killed): what was answered before it counts
            if answer.status != 200:
                self.failures.append(f"{answer.status} {data[:200]!r}")
                break
            self.latencies.append(time.perf_counter() - started)
            self.acknowledged.append((json.loads(data)["id"], label, annotator))
        connection.close()


def labelling(port: int, token: str, numbers) -> tuple[list[Labeller], list[threading.Thread], threading.Event]:
    stop = threading.Event()
    clients = [Labeller(port, token, number, stop) for number in numbers]
    threads = [threading.Thread(target=client.run, daemon=True) for client in clients]
    for thread in threads:
        thread.start()
    return clients, threads, stop


def stored(database: Path) -> dict[int, tuple[str, str]]:
    """Annotation id -> (label, annotator) of every annotation in the store."""
    from tfaudio.labels.store import LabelStore

    with LabelStore(database, create=False) as store:
        return {a.id: (a.label, a.annotator) for a in store.query()}


def test_twenty_clients_for_30_s_then_a_kill_9_lose_no_acknowledged_label(indexed, tmp_path):
    """20 clients label for LOAD_SECONDS; then SIGKILL while they go on. Every answered label is
    in the database as it was sent, and p95 of the answers stays under P95_LIMIT."""
    process = _serve(tmp_path, indexed)
    try:
        port, token = address(_url(process))
        clients, threads, stop = labelling(port, token, range(CLIENTS))
        time.sleep(LOAD_SECONDS)
        measured = np.array([latency for client in clients for latency in client.latencies])  # a snapshot
        answered = len(measured)
        os.kill(process.pid, signal.SIGKILL)  # mid-stream: every client is waiting on an answer or sending
        process.wait(10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    stop.set()
    for thread in threads:
        thread.join(15)
    failures = [failure for client in clients for failure in client.failures]
    assert not failures, failures[:3]
    acknowledged = [entry for client in clients for entry in client.acknowledged]
    p50, p95, p99 = np.percentile(measured, [50, 95, 99])
    print(f"\n{answered} labels in {LOAD_SECONDS:.0f} s from {CLIENTS} clients ({answered / LOAD_SECONDS:.0f} a "
          f"second): p50 {1000 * p50:.0f} ms, p95 {1000 * p95:.0f} ms, p99 {1000 * p99:.0f} ms; "
          f"{len(acknowledged)} acknowledged when killed")
    assert all(client.latencies for client in clients)  # every client was served, none starved
    assert answered > 20 * LOAD_SECONDS and p95 < P95_LIMIT, f"p95 {1000 * p95:.0f} ms"
    in_store = stored(tmp_path / "labels.db")  # opened after the kill: SQLite recovers its WAL
    lost = [entry for entry in acknowledged if in_store.get(entry[0]) != entry[1:]]
    assert not lost, f"{len(lost)} acknowledged labels lost, e.g. {lost[:3]}"
    assert len({entry[0] for entry in acknowledged}) == len(acknowledged)


def signed_in_opener(url: str):
    """(urllib opener holding the session cookie, CSRF token) for a server's URL with its token."""
    import http.cookiejar
    import re
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    with opener.open(url, timeout=30) as page:
        csrf = re.search(r'<meta name="csrf-token" content="([0-9a-f]{64})">', page.read().decode()).group(1)
    return opener, csrf


def test_two_servers_share_one_label_store(indexed, tmp_path):
    """Two `tfaudio serve` on one labels.db, each with clients labelling at once: every label
    either acknowledged is stored, and each server's pages show what the other wrote."""
    import urllib.request

    first, second = _serve(tmp_path, indexed), _serve(tmp_path, indexed)  # the same --labels tmp_path/labels.db
    try:
        urls = [_url(first), _url(second)]
        assert urls[0] != urls[1]  # two ports, two tokens
        runs = [labelling(*address(url), numbers) for url, numbers in zip(urls, (range(0, 4), range(4, 8)))]
        time.sleep(3.0)
        for _, _, stop in runs:
            stop.set()
        for _, threads, _ in runs:
            for thread in threads:
                thread.join(15)
        clients = [client for run in runs for client in run[0]]
        assert not [failure for client in clients for failure in client.failures]
        acknowledged = [entry for client in clients for entry in client.acknowledged]
        assert all(client.acknowledged for client in clients)

        # A label through the browser's path (cookie + CSRF token) on each, then each page lists the other's.
        for url, name in zip(urls, ("from-first", "from-second")):
            opener, csrf = signed_in_opener(url)
            body = json.dumps({"id": 0, "start": 0.0, "end": 0.5, "label": name, "kind": "negative"}).encode()
            request = urllib.request.Request(url.split("?")[0] + "api/label", body, method="POST", headers={
                "Content-Type": "application/json", "X-CSRF-Token": csrf})
            with opener.open(request, timeout=30) as answer:
                acknowledged.append((json.loads(answer.read())["id"], name, "ana"))
        for url, other in zip(urls, ("from-second", "from-first")):
            opener, _ = signed_in_opener(url)
            with opener.open(url.split("?")[0] + "labels", timeout=30) as page:
                shown = page.read().decode()
            assert other in shown and f"{len(acknowledged)} annotations" in shown
    finally:
        for process in (first, second):
            process.send_signal(signal.SIGTERM)
        for process in (first, second):
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert [first.returncode, second.returncode] == [0, 0], first.stderr.read() + second.stderr.read()
    in_store = stored(tmp_path / "labels.db")
    assert len(in_store) == len(acknowledged)
    assert all(in_store.get(entry[0]) == entry[1:] for entry in acknowledged)
    print(f"\ntwo servers, 8 clients: {len(acknowledged)} labels in 3 s, all stored")
