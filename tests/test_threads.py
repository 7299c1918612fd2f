"""Classifier fits hold BLAS to one thread, run splits in parallel processes with the same
results, and give byte-identical metrics.json whatever thread settings the user has."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from tfaudio.comparison import classifiers as C
from tfaudio.data.splits import Split


def _problem(clips=200, dim=300, classes=4, seed=0):
    """Overlapping Gaussian classes (so the fits iterate and round), with 5 interleaved folds."""
    rng = np.random.default_rng(seed)
    y = np.arange(clips) % classes
    X = (0.2 * rng.normal(size=(classes, dim))[y] + rng.normal(size=(clips, dim))).astype(np.float32)
    folds = np.arange(clips) % 5
    splits = [Split(f"fold{i + 1}", np.flatnonzero(folds != i), np.flatnonzero(folds == i)) for i in range(5)]
    return X, y, splits


def test_fits_run_with_one_blas_thread(monkeypatch):
    from sklearn.base import BaseEstimator, ClassifierMixin

    seen = []

    class Spy(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            seen.append({lib["internal_api"]: lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"})
            self.classes_ = np.unique(y)
            return self

        def predict(self, X):
            return np.zeros(len(X), np.int64)

    monkeypatch.setattr(C, "make_classifier", lambda spec: Spy())
    X, y, splits = _problem(clips=50, dim=4)
    assert any(lib["user_api"] == "blas" for lib in threadpool_info()), "numpy has no BLAS to limit?"
    with threadpool_limits(limits=2, user_api="blas"):  # as a user's OPENBLAS_NUM_THREADS=2 would
        C.cross_validate(X, y, splits, C.ClassifierSpec("logreg"), n_jobs=1)
    assert len(seen) == 5 and all(seen) and all(count == 1 for fit in seen for count in fit.values()), seen


@pytest.mark.parametrize("name, params", [("logreg", ()), ("mlp", (("max_iter", 60), ("hidden_layer_sizes", (64,))))])
def test_parallel_splits_give_the_sequential_results(name, params):
    X, y, splits = _problem()
    spec = C.ClassifierSpec(name, params)
    assert C._workers(spec, [X] * 5, None) == min(2, len(os.sched_getaffinity(0)))  # 60,000 values: parallel
    alone = C.cross_validate(X, y, splits, spec, n_jobs=1)
    parallel = C.cross_validate(X, y, splits, spec, n_jobs=2)
    np.testing.assert_array_equal(parallel.predictions, alone.predictions)
    np.testing.assert_array_equal(parallel.fold_accuracy, alone.fold_accuracy)
    assert parallel.warnings == alone.warnings
    assert 0.3 < np.mean(alone.predictions == y) < 1.0  # a problem with rounding to do, not a trivial one


def test_small_problems_and_forests_stay_in_this_process():
    X, y, splits = _problem(clips=80, dim=100)
    assert C._workers(C.ClassifierSpec("mlp"), [X] * 5, None) == 1  # 8,000 values: not worth processes
    assert C._workers(C.ClassifierSpec("rf"), [np.zeros((400, 1024))] * 5, None) == 1  # threads of its own
    assert C._workers(C.ClassifierSpec("rf"), [X] * 5, 8) == 5  # asked for: at most one per split


# A comparison on generated audio with a numpy-only 256-d representation (no TensorFlow needed),
# wide enough that the MLP and the linear probe run their splits in worker processes.
_COMPARE = textwrap.dedent(
    """
    import sys
    import numpy as np
    from tfaudio.models import registry
    from tfaudio.models.base import FrameEmbeddings, Representation

    class Bands(Representation):
        name, sample_rate, frame_hop_seconds, dim = "bands256", 16000, 0.1, 256

        def frames(self, waveforms, lengths):
            count = max(1, waveforms.shape[1] // 1600)
            frames = waveforms[:, : count * 1600].reshape(len(waveforms), count, 1600)
            power = np.abs(np.fft.rfft(frames, axis=-1))[..., :768] ** 2
            energies = np.log(power.reshape(len(waveforms), count, 256, 3).sum(-1) + 1e-6).astype(np.float32)
            mask = (np.arange(count)[np.newaxis] + 1) * 1600 <= np.maximum(lengths[:, np.newaxis], 1600)
            return FrameEmbeddings(energies, mask)

        def identity(self):
            return {"model": "bands256", "version": 1}

    real_get = registry.get
    registry.get = lambda name, **kw: Bands() if name == "bands256" else real_get(name, **kw)
    from tfaudio.cli.main import main
    main(["compare", sys.argv[1], "--model", "bands256", "--classifier", "logreg", "--classifier", "mlp",
          "--classifier", "rf", "--param", "rf.n_estimators=50", "--param", "mlp.max_iter=100", "--out", sys.argv[2]])
    """
)


@pytest.mark.slow
def test_metrics_json_identical_whatever_the_thread_settings(synth_data, tmp_path):
    outputs = []
    out = tmp_path / "report"  # the same for both runs: metrics.json records the command
    for count in ("1", "2"):
        env = {**os.environ, "TFAUDIO_HOME": str(tmp_path / f"home{count}"), "TFAUDIO_OFFLINE": "1"}
        env.update({name: count for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")})
        result = subprocess.run([sys.executable, "-c", _COMPARE, str(synth_data), str(out)], env=env,
                                capture_output=True, text=True)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs.append((out / "metrics.json").read_bytes())
    assert outputs[0] == outputs[1]
