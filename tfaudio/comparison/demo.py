"""What `make demo` runs: the comparison on ESC-10 with every representation available here.

Data: `TFAUDIO_DATA` when set, else ESC-10 fetched into the cache, else (offline, nothing
local) a small synthetic dataset, said so at the top of the report. Models: the baseline,
YAMNet, VGGish, Wav2Vec2 and the autoencoder (trained per split); those whose weights cannot be
had are listed as unavailable.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from tfaudio.comparison.report import write_report
from tfaudio.comparison.result import ComparisonResult
from tfaudio.comparison.run import CompareConfig, compare
from tfaudio.data.fetch import FetchError, datasets_home, fetch

DEMO_MODELS = ("handcrafted", "yamnet", "vggish", "wav2vec2", "autoencoder")


def demo_data(log: Callable[[str], None]) -> tuple[Path, str | None]:
    """(dataset path, why it is not ESC-10 or None)."""
    chosen = os.environ.get("TFAUDIO_DATA")
    if chosen:
        return Path(chosen), None
    try:
        return fetch("esc10"), None
    except FetchError as err:
        from tfaudio.data.synth import SynthConfig, make_dataset

        reason = (str(err).splitlines() or ["unknown reason"])[0]
        log(f"ESC-10 is unavailable ({reason}); using a synthetic dataset instead")
        path = make_dataset(datasets_home() / "synth-demo", SynthConfig())
        return path, (
            f"ESC-10 could not be fetched ({reason}). This report uses a small synthetic dataset that tfaudio "
            "generates (tone, chirp, noise, clicks), so its numbers say nothing about real sounds. Set TFAUDIO_DATA "
            "to a local copy of ESC-10 (a folder with meta.csv) or allow network access, and run make demo again."
        )


def run_demo(out: Path, config: CompareConfig, log: Callable[[str], None], command: str) -> ComparisonResult:
    data, fallback = demo_data(log)
    log(f"comparing {', '.join(config.model_list)} on {data}")
    result = compare(data, config, log=log, command=command)
    result.fallback = fallback
    write_report(result, out)
    return result
