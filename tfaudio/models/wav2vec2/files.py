"""Finding a Hugging Face model's files (a local folder or the Hugging Face cache), with their
digests and preprocessing settings, before anything is built.
"""

from __future__ import annotations

import json
import urllib.parse
import urllib.request
import warnings
from dataclasses import dataclass
from pathlib import Path

from tfaudio.assets import offline_switch, reachable
from tfaudio.errors import TfaudioError
from tfaudio.models.wav2vec2.config import Preprocessing

#: Either variable set to 1/on/yes/true keeps every load to the local Hugging Face cache.
#: Without offline mode, how long the hub gets to accept a connection before the cache is used.
HUB_PROBE_TIMEOUT_SECONDS = 3.0


# Loadable weights in order of preference: TF's own HDF5 first (no name mapping), then
# safetensors, which transformers maps into TF without torch.
_TF_WEIGHTS = ("tf_model.h5", "tf_model.h5.index.json")


_SAFETENSORS_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")


_PYTORCH_WEIGHTS = ("pytorch_model.bin", "pytorch_model.bin.index.json")


class ModelFilesError(TfaudioError, OSError):
    """A model that cannot be found or loaded; the message names the model, the file and the fix."""


@dataclass(frozen=True)
class ResolvedModel:
    """A model's files on disk: all in ``directory`` (a hub snapshot or the user's folder).

    weights: the files of one checkpoint, an index file first when sharded.
    revision: the hub commit of the snapshot, None for a local directory.
    """

    directory: Path
    config: Path
    preprocessor: Path | None
    weights: tuple[Path, ...]
    revision: str | None

    @property
    def safetensors(self) -> bool:
        return self.weights[0].name in _SAFETENSORS_WEIGHTS


def _hub_unreachable() -> str | None:
    """None if the hub (or the HTTPS proxy) accepts a TCP connection within the timeout, else why.

    huggingface_hub retries a failed request five times with back-off (about 23 s) before it
    falls back to the cache; one short probe makes a blocked network fail in seconds instead.
    """
    from huggingface_hub import constants

    endpoint = urllib.parse.urlsplit(constants.ENDPOINT)
    proxy = urllib.request.getproxies().get(endpoint.scheme)
    target = urllib.parse.urlsplit(proxy) if proxy else endpoint
    port = target.port or (443 if target.scheme == "https" else 80)
    if not reachable(target.hostname, port, HUB_PROBE_TIMEOUT_SECONDS):
        return f"{target.hostname}:{port} is unreachable"
    return None


def _fill_hint(model: str, cache_dir: str) -> str:
    from huggingface_hub.file_download import repo_folder_name

    folder = Path(cache_dir) / repo_folder_name(repo_id=model, repo_type="model")
    return (
        f"To fill the cache, run `hf download {model} config.json preprocessor_config.json tf_model.h5` "
        f"(`huggingface-cli download` before huggingface_hub 0.34) on a machine with internet and copy "
        f"{folder} to the same place here (or point HF_HUB_CACHE at the copy), or download the files "
        f"anywhere and pass their directory as the model"
    )


def resolve_model(model: str, revision: str | None = None) -> ResolvedModel:
    """Find (downloading if allowed) the files of ``model``: a local directory or a hub id.

    Hub ids go through ``huggingface_hub.hf_hub_download``, so files land in and are read from
    the standard cache (``huggingface_hub.constants.HF_HUB_CACHE``). With TFAUDIO_OFFLINE=1 or
    HF_HUB_OFFLINE=1, or when the hub does not answer a connection within
    ``HUB_PROBE_TIMEOUT_SECONDS``, only the cache is read and no request is made.

    Raises:
        ModelFilesError: naming the model, the missing file, the cache looked in and how to fill it.
    """
    directory = Path(model).expanduser()
    if directory.is_dir():
        return _resolve_directory(directory)

    from huggingface_hub import constants, hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        HFValidationError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    cache_dir = constants.HF_HUB_CACHE
    offline_reason = offline_switch() or _hub_unreachable()

    def fetch(filename: str) -> Path | None:
        try:
            return Path(
                hf_hub_download(model, filename, revision=revision, local_files_only=offline_reason is not None)
            )
        except HFValidationError:
            raise ModelFilesError(
                f"{model!r}: neither an existing directory nor a valid Hugging Face model id"
            ) from None
        except RepositoryNotFoundError:
            raise ModelFilesError(
                f"{model}: no such model on the Hugging Face hub (or it is private or gated: log in "
                f"with `hf auth login` or set HF_TOKEN)"
            ) from None
        except LocalEntryNotFoundError as err:
            if offline_reason is None:  # the hub failed after the probe, and there is no cached copy
                raise ModelFilesError(
                    f"{model}: downloading {filename} failed ({err}) and it is not in the Hugging Face cache "
                    f"{cache_dir}. {_fill_hint(model, cache_dir)}."
                ) from None
            return None  # not cached; whether it is required is the caller's call
        except EntryNotFoundError:  # the repository has no such file
            return None

    def missing(what: str) -> ModelFilesError:
        if offline_reason is None:
            return ModelFilesError(f"{model}: the hub repository has no {what}")
        return ModelFilesError(
            f"{model}: {what} is not in the Hugging Face cache {cache_dir} and the hub is not used "
            f"({offline_reason}). {_fill_hint(model, cache_dir)}."
        )

    config = fetch("config.json")
    if config is None:
        raise missing("config.json")
    preprocessor = fetch("preprocessor_config.json")
    weights = None
    for name in _TF_WEIGHTS + _SAFETENSORS_WEIGHTS:
        first = fetch(name)
        if first is not None:
            shards = _shard_names(first)
            weights = (first, *(fetch(shard) for shard in shards))
            if any(path is None for path in weights):
                absent = [shard for shard, path in zip(shards, weights[1:]) if path is None]
                raise missing(f"weight shard(s) {absent} of {name}")
            break
    if weights is None:
        if any(fetch(name) is not None for name in _PYTORCH_WEIGHTS):
            raise _pytorch_only_error(model)
        raise missing(f"TF weights ({' / '.join(_TF_WEIGHTS + _SAFETENSORS_WEIGHTS)})")
    snapshot = config.parent
    if any(path.parent != snapshot for path in (preprocessor, *weights) if path is not None):
        raise ModelFilesError(f"{model}: the cached files belong to different snapshots; download them again")
    return ResolvedModel(snapshot, config, preprocessor, weights, revision=snapshot.name)


def _resolve_directory(directory: Path) -> ResolvedModel:
    config = directory / "config.json"
    if not config.is_file():
        raise ModelFilesError(f"{directory}: no config.json, so not a saved Hugging Face model (save_pretrained)")
    for name in _TF_WEIGHTS + _SAFETENSORS_WEIGHTS:
        first = directory / name
        if first.is_file():
            weights = (first, *(directory / shard for shard in _shard_names(first)))
            absent = [path.name for path in weights if not path.is_file()]
            if absent:
                raise ModelFilesError(f"{first}: names weight shards that are missing: {absent}")
            break
    else:
        if any((directory / name).is_file() for name in _PYTORCH_WEIGHTS):
            raise _pytorch_only_error(str(directory))
        raise ModelFilesError(
            f"{directory}: no TF weights ({' / '.join(_TF_WEIGHTS + _SAFETENSORS_WEIGHTS)}); save the model "
            f"with save_pretrained"
        )
    preprocessor = directory / "preprocessor_config.json"
    return ResolvedModel(directory, config, preprocessor if preprocessor.is_file() else None, weights, None)


def _shard_names(first: Path) -> list[str]:
    """The shard files an ``*.index.json`` lists (sorted), or none for a single-file checkpoint."""
    if not first.name.endswith(".index.json"):
        return []
    try:
        return sorted(set(json.loads(first.read_text())["weight_map"].values()))
    except (ValueError, KeyError) as err:
        raise ModelFilesError(f"{first}: not a weights index with a 'weight_map' ({err!r})") from None


def _pytorch_only_error(model: str) -> ModelFilesError:
    return ModelFilesError(
        f"{model}: only PyTorch weights (pytorch_model.bin); loading them into TF needs torch "
        f"(from_pt=True), which tfaudio does not install. Convert once where torch is available "
        f"(TFWav2Vec2Model.from_pretrained(..., from_pt=True).save_pretrained(dir)) and pass that directory"
    )


def read_preprocessing(resolved: ResolvedModel) -> Preprocessing:
    """The feature extractor settings from ``preprocessor_config.json``; defaults, with a warning,
    when the model has none."""
    if resolved.preprocessor is None:
        defaults = Preprocessing(source="defaults of Wav2Vec2FeatureExtractor (no preprocessor_config.json)")
        warnings.warn(
            f"{resolved.directory}: no preprocessor_config.json; using Wav2Vec2FeatureExtractor's defaults "
            f"(sampling_rate={defaults.sample_rate}, do_normalize={defaults.do_normalize})",
            stacklevel=3,
        )
        return defaults
    try:
        settings = json.loads(resolved.preprocessor.read_text())
    except ValueError as err:
        raise ModelFilesError(f"{resolved.preprocessor}: not valid JSON ({err})") from None
    if settings.get("feature_size", 1) != 1:
        raise ModelFilesError(
            f"{resolved.preprocessor}: feature_size={settings['feature_size']}; this backend feeds raw "
            f"waveforms (feature_size 1)"
        )
    base = Preprocessing()
    return Preprocessing(
        sample_rate=int(settings.get("sampling_rate", base.sample_rate)),
        do_normalize=bool(settings.get("do_normalize", base.do_normalize)),
        padding_value=float(settings.get("padding_value", base.padding_value)),
        source=str(resolved.preprocessor),
    )
