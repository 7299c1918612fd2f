"""`tfaudio info --system`: this machine's CPU, bfloat16 units, GPUs, thread settings, versions and
cache folder, without importing TensorFlow."""

from __future__ import annotations

import json
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from click.testing import CliRunner

import tfaudio.runtime
from tfaudio.cli.data import THREAD_SETTINGS
from tfaudio.cli.main import main


@pytest.fixture
def cpu(tmp_path, monkeypatch):
    """Make `info --system` read a fake /proc/cpuinfo with the given flags (and see no GPU)."""
    real = tfaudio.runtime.detect_hardware

    def use(flags: str) -> None:
        cpuinfo = tmp_path / "cpuinfo"
        cpuinfo.write_text(f"processor\t: 0\nmodel name\t: Test CPU 9000\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
        monkeypatch.setattr(tfaudio.runtime, "detect_hardware", lambda *a, **k: real(cpuinfo, gpus=False))

    return use


def system(*args: str):
    return CliRunner().invoke(main, ["info", "--system", *args])


@pytest.mark.parametrize(
    "flags, units, advice",
    [
        ("fpu avx512f avx512_bf16 amx_bf16 amx_tile", "AMX yes, AVX512-BF16 yes", "this CPU has AMX"),
        ("fpu avx512f avx512_bf16", "AMX no, AVX512-BF16 yes", "AVX512-BF16 (no AMX)"),
        ("fpu avx2 fma", "AMX no, AVX512-BF16 no", "keep the default --precision float32"),
    ],
)
def test_names_the_cpu_its_bfloat16_units_and_the_advice(cpu, flags, units, advice):
    cpu(flags)
    result = system()
    assert result.exit_code == 0, result.output
    lines = dict(line.split(None, 1) for line in result.output.splitlines())
    assert lines["cpu"].startswith("Test CPU 9000; ")
    assert lines["bfloat16"] == units
    assert lines["gpus"] == "none"
    assert advice in lines["advice"]


def test_reports_the_thread_settings_versions_and_home(cpu, monkeypatch, tmp_path):
    cpu("fpu avx2")
    for name in THREAD_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OPENBLAS_NUM_THREADS", "1")
    monkeypatch.setenv("TF_NUM_INTRAOP_THREADS", "2")
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "0")
    monkeypatch.setenv("TFAUDIO_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TFAUDIO_OFFLINE", "1")
    result = system()
    assert result.exit_code == 0, result.output
    lines = dict(line.split(None, 1) for line in result.output.splitlines())
    assert lines["threads"].startswith(
        "OPENBLAS_NUM_THREADS=1, TF_NUM_INTRAOP_THREADS=2; not set: OMP_NUM_THREADS, MKL_NUM_THREADS, "
        "TF_NUM_INTEROP_THREADS"
    )
    assert lines["oneDNN"].startswith("off: --precision bfloat16 changes nothing")
    assert lines["home"].startswith(f"{tmp_path / 'home'} ") and "offline (TFAUDIO_OFFLINE=1)" in lines["home"]
    assert f"Keras {metadata.version('keras')}" in lines["tfaudio"]
    assert f"TensorFlow {metadata.version('tensorflow')}" in lines["tfaudio"]
    facts = json.loads(system("--json").output)
    assert facts["python"] == platform.python_version() and facts["keras"] == metadata.version("keras")
    assert (facts["cpu"], facts["amx"], facts["avx512_bf16"], facts["gpus"]) == ("Test CPU 9000", False, False, [])
    assert facts["environment"]["OPENBLAS_NUM_THREADS"] == "1" and facts["environment"]["OMP_NUM_THREADS"] is None
    assert facts["onednn"] is False and facts["home"] == str(tmp_path / "home")


def test_data_or_system_is_required_but_not_both(synth_data):
    neither = CliRunner().invoke(main, ["info"])
    assert neither.exit_code == 2 and "Missing argument 'DATA'" in neither.output and "--system" in neither.output
    both = CliRunner().invoke(main, ["info", str(synth_data), "--system"])
    assert both.exit_code == 2 and "without DATA" in both.output
    assert "Traceback" not in neither.output + both.output


def test_a_fresh_process_does_not_import_tensorflow():
    if any(Path("/dev").glob("nvidia[0-9]*")):
        pytest.skip("an NVIDIA device node exists: listing the GPUs takes TensorFlow")
    result = subprocess.run([sys.executable, "-X", "importtime", "-m", "tfaudio.cli", "info", "--system"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "bfloat16   AMX" in result.stdout and "advice     " in result.stdout
    # -X importtime lists every module imported, one per line: "import time: self | cumulative | name".
    imported = {line.rsplit("|", 1)[1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}
    assert "tfaudio.cli.data" in imported  # the listing is complete enough to trust
    assert not {name for name in imported if name.split(".")[0] in ("tensorflow", "keras")}
