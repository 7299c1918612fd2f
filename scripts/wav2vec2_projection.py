"""Demo 1 of the course module, over tfaudio's public API: embed a few labeled clips with a
pretrained model, average each clip's frame embeddings, project them to 2-D with PCA or t-SNE
and open an interactive scatter (hover for the file, click a point to hear it).

Edit the settings below, then run:

    python scripts/wav2vec2_projection.py                   # the FILES below, MODEL_NAME
    python scripts/wav2vec2_projection.py --model yamnet    # another representation
    python scripts/wav2vec2_projection.py --model yamnet --data ../shared/datasets/esc10

The page is reports/<model>_projection.html under the current folder (wav2vec2_projection.html
for the default model), titled with the model's name; --out writes it elsewhere.

Wav2Vec2's weights come from the Hugging Face cache; where it cannot be had (offline, nothing
cached) the script says so and where to put the files. MODEL_NAME = "yamnet" works offline with
TFAUDIO_MODELS=../shared/models.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

# ------------------------------------------------------------------------------- settings
REPO = Path(__file__).resolve().parents[1]
ROOT = Path(os.environ.get("TFAUDIO_SHARED", REPO.parent / "shared")) / "datasets" / "esc10"

#: (label, file) pairs; files relative to ROOT (ESC-10: one clip per class and fold).
FILES = [
    ("chainsaw", "audio/1-116765-A-41.flac"),
    ("chainsaw", "audio/2-50667-A-41.flac"),
    ("chainsaw", "audio/3-118656-A-41.flac"),
    ("chainsaw", "audio/4-149294-A-41.flac"),
    ("chainsaw", "audio/5-170338-A-41.flac"),
    ("crying_baby", "audio/1-187207-A-20.flac"),
    ("crying_baby", "audio/2-107351-A-20.flac"),
    ("crying_baby", "audio/3-151080-A-20.flac"),
    ("crying_baby", "audio/4-167077-A-20.flac"),
    ("crying_baby", "audio/5-151085-A-20.flac"),
    ("dog", "audio/1-100032-A-0.flac"),
    ("dog", "audio/2-114280-A-0.flac"),
    ("dog", "audio/3-136288-A-0.flac"),
    ("dog", "audio/4-182395-A-0.flac"),
    ("dog", "audio/5-203128-A-0.flac"),
    ("rain", "audio/1-17367-A-10.flac"),
    ("rain", "audio/2-101676-A-10.flac"),
    ("rain", "audio/3-132852-A-10.flac"),
    ("rain", "audio/4-160999-A-10.flac"),
    ("rain", "audio/5-181766-A-10.flac"),
    ("rooster", "audio/1-26806-A-1.flac"),
    ("rooster", "audio/2-100786-A-1.flac"),
    ("rooster", "audio/3-107219-A-1.flac"),
    ("rooster", "audio/4-164021-A-1.flac"),
    ("rooster", "audio/5-194930-A-1.flac"),
]
MODEL_NAME = "wav2vec2"  # or "yamnet", "vggish", "handcrafted", "hf:<id>", "hub:<handle>"
USE_TSNE = True          # False: PCA, axes labelled with their explained variance
PERPLEXITY = 5.0         # t-SNE; clamped (with a warning) to (clips - 1) / 3
N_ITER = 1000            # t-SNE iterations
SEED = 0
OUT_DIR = Path("reports")  # the page: OUT_DIR / "<model>_projection.html"
# -----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=MODEL_NAME, help=f"representation (default: {MODEL_NAME})")
    parser.add_argument("--data", type=Path, help="a whole dataset folder / manifest instead of FILES")
    parser.add_argument("--pca", action="store_true", help="PCA instead of t-SNE")
    parser.add_argument("--out", type=Path, help=f"page to write (default: {OUT_DIR}/<model>_projection.html)")
    args = parser.parse_args(argv)
    out = args.out or OUT_DIR / f"{file_stem(args.model)}_projection.html"

    import tfaudio
    from tfaudio.data.dataset import DatasetError
    from tfaudio.models.registry import ModelUnavailable
    from tfaudio.viz import ProjectionConfig, VizError

    if args.data is not None:
        data = args.data
    else:
        missing = [f for _, f in FILES if not (ROOT / f).is_file()]
        if missing:
            print(f"FILES point into {ROOT}, where {len(missing)} of them are missing (e.g. {missing[0]}); "
                  "edit FILES or pass --data DIR", file=sys.stderr)
            return 1
        data = [(label, ROOT / file) for label, file in FILES]

    method = "pca" if args.pca or not USE_TSNE else "tsne"
    projection = ProjectionConfig(method=method, perplexity=PERPLEXITY, iterations=N_ITER, seed=SEED)
    title = f"{args.model} embeddings, {'PCA' if method == 'pca' else 't-SNE'}"
    try:
        # pooling="mean": the clip vector is the mean of the model's frame embeddings.
        result = tfaudio.visualize(data, [args.model], out, projection=projection, pooling="mean", title=title)
    except ModelUnavailable as err:
        print(f"{args.model} is unavailable: {err}", file=sys.stderr)
        print("Try another model, e.g. --model yamnet (with TFAUDIO_MODELS=../shared/models).", file=sys.stderr)
        return 1
    except (VizError, DatasetError) as err:
        print(f"cannot draw: {err}", file=sys.stderr)
        return 1
    print(result.summary())
    print(f"wrote {result.path} ({result.clips} clips); open it in a browser and click a point to listen")
    return 0


def file_stem(model: str) -> str:
    """A file name part for a model name: "hf:facebook/hubert-base" -> "hf_facebook_hubert-base"."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model).strip("._") or "model"


if __name__ == "__main__":
    sys.exit(main())
