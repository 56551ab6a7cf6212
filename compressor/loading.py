"""Loading PyTorch checkpoints and tokenizers safely.

Safetensors is the default. A pickle-only checkpoint is refused unless the user passes
``--allow-pickle`` (then torch loads it with ``weights_only=True``); remote code never runs unless
asked. Weight files are validated up front so a truncated download fails with a line naming it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from compressor.artifact import PYTORCH, Artifact
from compressor.errors import BadInputError


def _check_safetensors(path: Path) -> None:
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            handle.keys()
    except (SafetensorError, OSError) as exc:
        raise BadInputError(f"{path}: corrupt or truncated safetensors file ({exc})") from exc


def check_weights(directory: Path, allow_pickle: bool) -> bool:
    """Validate the weight files; return True when safetensors will be used."""
    single = directory / "model.safetensors"
    index = directory / "model.safetensors.index.json"
    if single.exists():
        _check_safetensors(single)
        return True
    if index.exists():
        try:
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
        except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError) as exc:
            raise BadInputError(f"{index}: malformed safetensors index ({exc})") from exc
        for shard in shards:
            if not (directory / shard).exists():
                raise BadInputError(f"{index}: names shard {shard!r}, which is missing")
            _check_safetensors(directory / shard)
        return True
    pickles = [p for p in ("pytorch_model.bin", "pytorch_model.bin.index.json") if (directory / p).exists()]
    if pickles:
        if not allow_pickle:
            raise BadInputError(
                f"{directory / pickles[0]}: pickle checkpoint refused (pickle can run code); "
                "pass --allow-pickle to load it with torch weights_only=True"
            )
        return False
    raise BadInputError(f"{directory}: no model weights (model.safetensors or pytorch_model.bin)")


def quantized_recipe(artifact: Artifact) -> dict[str, Any] | None:
    """How to rebuild a PyTorch artifact written by ``compress quantize`` (from its last quantize
    stage record), or None for a float checkpoint that transformers loads directly."""
    for record in reversed(artifact.stages):
        if record.stage == "quantize":
            return record.report.get("reload")
    return None


def load_model(
    artifact: Artifact,
    *,
    allow_pickle: bool = False,
    trust_remote_code: bool = False,
    task: str | None = None,
    **kwargs: Any,
) -> Any:
    """A transformers model for a PyTorch artifact, in eval mode (quantized artifacts are rebuilt
    from their manifest recipe, see ``compressor.formats.torch_quantized``)."""
    if artifact.format != PYTORCH:
        raise BadInputError(f"{artifact.path}: is a {artifact.format} artifact; this step needs a PyTorch checkpoint")
    recipe = quantized_recipe(artifact)
    if recipe is not None:
        from compressor.formats.torch_quantized import load_artifact

        return load_artifact(artifact, recipe, task=task or artifact.task, trust_remote_code=trust_remote_code)
    use_safetensors = check_weights(artifact.path, allow_pickle)
    auto = artifact.family.auto_class(task or artifact.task)
    try:
        model = auto.from_pretrained(
            artifact.path,
            use_safetensors=use_safetensors,
            trust_remote_code=trust_remote_code,
            local_files_only=True,
            **kwargs,
        )
    except (OSError, ValueError, RuntimeError) as exc:
        raise BadInputError(f"{artifact.path}: could not load the model ({str(exc).splitlines()[0]})") from exc
    model.eval()
    return model


def load_tokenizer(directory: Path, *, trust_remote_code: bool = False) -> Any:
    """The checkpoint's tokenizer; causal-LM tokenizers get a pad token so batches can be padded."""
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, TypeError) as exc:
        raise BadInputError(f"{directory}: no usable tokenizer ({str(exc).splitlines()[0]})") from exc
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer
