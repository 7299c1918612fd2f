"""Vectors -> 2-D: PCA, t-SNE or UMAP, with the settings a small dataset can support.

Every method sees the vectors after the same scaling (each dimension z-scored by default, so
hand-crafted columns in different units weigh alike). t-SNE and UMAP first reduce to at most
50 principal components: the usual practice, which removes noise dimensions and makes them
several times faster without changing the neighbourhoods they draw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from tfaudio.viz.points import VizError

METHODS = ("pca", "tsne", "umap")
SCALINGS = ("standard", "none")
_PRE_PCA = 50


@dataclass(frozen=True)
class ProjectionConfig:
    """How to draw vectors in 2-D.

    method: "pca", "tsne" or "umap".
    perplexity: t-SNE's effective neighbour count; clamped to (clips - 1) / 3 with a warning.
    iterations: t-SNE optimisation steps (sklearn's max_iter, at least 250).
    neighbors: UMAP's n_neighbors; clamped to clips - 1.
    seed: fixes t-SNE's and UMAP's random start, so the same command draws the same picture.
    scaling: "standard" (z-score each dimension) or "none" (use the vectors as they are).
    """

    method: str = "pca"
    perplexity: float = 30.0
    iterations: int = 1000
    neighbors: int = 15
    seed: int = 0
    scaling: str = "standard"

    def __post_init__(self):
        if self.method not in METHODS:
            raise VizError(f"unknown projection method {self.method!r}; choose one of {', '.join(METHODS)}")
        if self.scaling not in SCALINGS:
            raise VizError(f"unknown scaling {self.scaling!r}; choose one of {', '.join(SCALINGS)}")
        if not self.perplexity > 0:
            raise VizError(f"perplexity must be > 0, got {self.perplexity}")
        if self.iterations < 250:
            raise VizError(f"t-SNE needs at least 250 iterations, got {self.iterations}")
        if self.neighbors < 2:
            raise VizError(f"UMAP needs at least 2 neighbours, got {self.neighbors}")


@dataclass(frozen=True)
class Projection:
    """coords: float32 [clips, 2]; axis titles; settings actually used; notes on adjustments."""

    coords: np.ndarray
    x_title: str
    y_title: str
    settings: dict
    notes: tuple[str, ...] = field(default=())


def scale(vectors: np.ndarray, scaling: str) -> np.ndarray:
    """float [clips, dim] -> float64 [clips, dim], z-scored per dimension for "standard"
    (a constant dimension stays 0 instead of dividing by zero)."""
    vectors = np.asarray(vectors, np.float64)
    if scaling == "none":
        return vectors
    std = vectors.std(axis=0)
    return (vectors - vectors.mean(axis=0)) / np.where(std > 0, std, 1.0)


def max_perplexity(clips: int) -> float:
    """The largest perplexity used for `clips` points: (clips - 1) / 3, the usual bound (each
    point's neighbourhood spans about 3 x perplexity points), and never below 1."""
    return max(1.0, (clips - 1) / 3.0)


def _pca(scaled: np.ndarray, components: int, seed: int):
    from sklearn.decomposition import PCA

    components = min(components, scaled.shape[0], scaled.shape[1])
    # The full SVD is exact and deterministic; randomized solvers would tie results to the seed.
    model = PCA(n_components=components, svd_solver="full", random_state=seed)
    return model.fit_transform(scaled), model.explained_variance_ratio_


def _pad2(coords: np.ndarray) -> np.ndarray:
    """[clips, k<=2] -> [clips, 2] (one-dimensional data gets a zero second axis)."""
    if coords.shape[1] >= 2:
        return coords[:, :2]
    return np.concatenate([coords, np.zeros((coords.shape[0], 2 - coords.shape[1]))], axis=1)


def project(vectors: np.ndarray, config: ProjectionConfig = ProjectionConfig()) -> Projection:
    """float [clips, dim] -> Projection with coords float32 [clips, 2].

    Raises VizError for too few clips or non-finite values; the UMAP method raises VizError
    when umap-learn is not installed.
    """
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] < 3:
        raise VizError(f"projection needs float [clips >= 3, dim], got shape {vectors.shape}")
    if not np.isfinite(vectors).all():
        raise VizError("vectors contain NaN or infinite values; they cannot be projected")
    scaled = scale(vectors, config.scaling)
    clips = scaled.shape[0]
    notes: list[str] = []
    if config.method == "pca":
        coords, ratios = _pca(scaled, 2, config.seed)
        ratios = np.concatenate([ratios, np.zeros(2 - len(ratios))])
        titles = [f"PC{i + 1} ({100 * r:.1f} % of variance)" for i, r in enumerate(ratios[:2])]
        settings = {"method": "pca", "explained_variance": [round(float(r), 4) for r in ratios[:2]]}
        return Projection(_pad2(coords).astype(np.float32), *titles, settings, ())

    reduced = _pca(scaled, _PRE_PCA, config.seed)[0] if scaled.shape[1] > _PRE_PCA else scaled
    if config.method == "tsne":
        from sklearn.manifold import TSNE

        perplexity = config.perplexity
        limit = max_perplexity(clips)
        if perplexity > limit:
            notes.append(
                f"t-SNE perplexity {perplexity:g} is too large for {clips} clips (it must stay below "
                f"(clips - 1) / 3 = {limit:.3g}); using {limit:.3g}"
            )
            perplexity = limit
        model = TSNE(
            n_components=2, perplexity=perplexity, max_iter=config.iterations, init="pca",
            learning_rate="auto", random_state=config.seed,
        )
        coords = model.fit_transform(reduced)
        settings = {"method": "tsne", "perplexity": round(float(perplexity), 3), "iterations": config.iterations,
                    "seed": config.seed, "kl_divergence": round(float(model.kl_divergence_), 4)}
        return Projection(coords.astype(np.float32), "t-SNE 1", "t-SNE 2", settings, tuple(notes))

    from tfaudio.quiet import import_tensorflow_quietly

    # umap-learn imports TensorFlow for its parametric variant; import it without the chatter.
    import_tensorflow_quietly()
    try:
        import umap  # umap-learn, the optional extra
    except ImportError:
        raise VizError(
            "UMAP needs the optional package umap-learn, which is not installed: "
            "pip install 'tfaudio[umap]' (or pip install umap-learn), or use --method pca / tsne"
        ) from None
    neighbors = config.neighbors
    if neighbors > clips - 1:
        notes.append(f"UMAP n_neighbors {neighbors} is too large for {clips} clips; using {clips - 1}")
        neighbors = clips - 1
    # A fixed random_state makes UMAP single-threaded; n_jobs=1 says so instead of warning.
    model = umap.UMAP(n_components=2, n_neighbors=neighbors, random_state=config.seed, n_jobs=1)
    coords = model.fit_transform(reduced)
    settings = {"method": "umap", "neighbors": neighbors, "seed": config.seed}
    return Projection(np.asarray(coords, np.float32), "UMAP 1", "UMAP 2", settings, tuple(notes))
