"""The hidden-state cache: each split's hidden states computed once, reused by re-runs.

Entries are safetensors files under ``<cache dir>/hidden/`` (see
:func:`rdgap.paths.cache_dir`). An entry's key is a SHA-256 of everything
that determines its content:

- the model's identity: its name and a digest of every parameter and buffer
  (so a retrained or re-converted model never reuses stale states);
- the exact inputs: a digest of the window tensors (which fixes the corpus
  content, the tokenizer, the window length and count, and the fit/eval part);
- the split point and :data:`CACHE_FORMAT` (bumped when the way states are
  produced changes), and the torch version.

Each file carries the key and a SHA-256 of every tensor's bytes in its
metadata. An entry that is unreadable, truncated, written under another key or
version, or whose bytes do not match their digest is deleted and recomputed,
never used.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from rdgap.paths import cache_dir as resolve_cache_dir

#: Bump when the way cached hidden states are produced changes: old entries are ignored.
CACHE_FORMAT = 1


def tensor_digest(tensors: dict[str, torch.Tensor] | list[torch.Tensor]) -> str:
    """SHA-256 over the dtype, shape and bytes of tensors (in name order for a dict)."""
    items = sorted(tensors.items()) if isinstance(tensors, dict) else enumerate(tensors)
    digest = hashlib.sha256()
    for name, tensor in items:
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        if tensor.numel():
            digest.update(tensor.view(-1).view(torch.uint8).numpy().data)
    return digest.hexdigest()


def model_digest(model: torch.nn.Module) -> str:
    """SHA-256 of a model's parameters and buffers, by name (its identity for the cache)."""
    return tensor_digest(dict(model.state_dict()))


def entry_key(model_name: str, model_hash: str, inputs: dict[str, torch.Tensor],
              split: int, extra: dict | None = None) -> str:
    """The cache key of the hidden states of ``inputs`` at ``split`` (a hex SHA-256)."""
    description = {"model": model_name, "model_hash": model_hash,
                   "inputs": tensor_digest(inputs), "split": int(split),
                   "format": CACHE_FORMAT, "torch": torch.__version__, "extra": extra or {}}
    return hashlib.sha256(json.dumps(description, sort_keys=True).encode()).hexdigest()


class HiddenCache:
    """Hidden states on disk, keyed by :func:`entry_key`.

    Parameters
    ----------
    cache_dir : path-like, optional
        The rdgap cache folder (default: :func:`rdgap.paths.cache_dir`); entries
        live in its ``hidden`` subfolder.

    Attributes
    ----------
    hits, misses, rejected : int
        Entries reused, absent, and found corrupt or mismatched (then recomputed).
    """

    def __init__(self, cache_dir: str | os.PathLike | None = None):
        self.folder = resolve_cache_dir(cache_dir) / "hidden"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.hits = self.misses = self.rejected = 0

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.safetensors"

    def get(self, key: str) -> torch.Tensor | None:
        """The cached tensor for ``key``, or None when absent, corrupt or mismatched."""
        path = self.path(key)
        if not path.is_file():
            self.misses += 1
            return None
        try:
            with safe_open(str(path), framework="pt") as handle:
                metadata = handle.metadata() or {}
            tensor = load_file(str(path))["hidden"]
            valid = (metadata.get("key") == key
                     and metadata.get("format") == str(CACHE_FORMAT)
                     and metadata.get("sha256") == tensor_digest({"hidden": tensor}))
        except (SafetensorError, OSError, KeyError, ValueError, RuntimeError):
            valid = False
        if not valid:
            self.rejected += 1
            path.unlink(missing_ok=True)
            return None
        self.hits += 1
        return tensor

    def put(self, key: str, hidden: torch.Tensor) -> Path:
        """Store ``hidden`` under ``key`` (atomically: a reader never sees half a file)."""
        hidden = hidden.detach().cpu().contiguous()
        metadata = {"key": key, "format": str(CACHE_FORMAT),
                    "sha256": tensor_digest({"hidden": hidden})}
        handle, staging = tempfile.mkstemp(prefix=key[:16] + ".", dir=self.folder)
        os.close(handle)
        try:
            save_file({"hidden": hidden}, staging, metadata=metadata)
            os.replace(staging, self.path(key))
        except BaseException:
            Path(staging).unlink(missing_ok=True)
            raise
        return self.path(key)

