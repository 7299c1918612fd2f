"""Validation metrics as the export serves: whole clips through the serving function (window
probabilities averaged, weighted by their audio), then accuracy, balanced accuracy, macro F1,
per-class recall and the confusion matrix."""

from __future__ import annotations

import numpy as np

from tfaudio.training.inputs import windows_of


def evaluate_predictions(labels: np.ndarray, probabilities: np.ndarray, class_names) -> dict:
    """Validation metrics from int labels [n] and probabilities float32 [n, classes]."""
    from sklearn.metrics import balanced_accuracy_score, confusion_matrix, f1_score

    predicted = probabilities.argmax(axis=1)
    classes = list(range(len(class_names)))
    confusion = confusion_matrix(labels, predicted, labels=classes)
    recall = np.diag(confusion) / np.maximum(confusion.sum(axis=1), 1)
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "balanced_accuracy": float(balanced_accuracy_score(labels, predicted)),
        "macro_f1": float(f1_score(labels, predicted, labels=classes, average="macro", zero_division=0)),
        "per_class_recall": {name: float(r) for name, r in zip(class_names, recall)},
        "confusion": confusion.tolist(),
        "class_names": list(class_names),
    }


def combine_windows(window_probabilities: np.ndarray, clips: list[np.ndarray], num_samples: int) -> np.ndarray:
    """Per-window probabilities float32 [windows, classes] (in window_clips' order) -> per clip
    float32 [clips, classes], weighted as the export does."""
    out, row = [], 0
    for wave in clips:
        _, audio = windows_of(wave, num_samples)
        part = window_probabilities[row : row + len(audio)]
        out.append((part * (audio / audio.sum())[:, np.newaxis]).sum(axis=0))
        row += len(audio)
    return np.asarray(out, np.float32)


def serve_clips(classifier, class_names, num_samples: int, clips: list[np.ndarray], batch_size: int) -> np.ndarray:
    """float32 [clips, classes]: the export's serving function (tfaudio.training.export.serving_function)
    on each whole clip; clips of equal length go together, batch_size at a time."""
    from tfaudio.quiet import import_tensorflow_quietly

    tf = import_tensorflow_quietly()

    from tfaudio.training.export import serving_function

    serve = tf.function(
        serving_function(classifier, class_names, num_samples), input_signature=[tf.TensorSpec([None, None], tf.float32)]
    )
    out = np.zeros((len(clips), len(class_names)), np.float32)
    by_length: dict[int, list[int]] = {}
    for i, wave in enumerate(clips):
        by_length.setdefault(len(wave), []).append(i)
    for rows in by_length.values():
        for start in range(0, len(rows), batch_size):
            chosen = rows[start : start + batch_size]
            batch = np.stack([clips[i] for i in chosen]).astype(np.float32)
            out[chosen] = serve(tf.constant(batch))["probabilities"].numpy()
    return out
