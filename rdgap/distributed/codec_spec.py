"""Which codec a split-run uses, and the identity both ranks must agree on."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from rdgap.codecs.base import HiddenStateCodec
from rdgap.codecs.baselines import baseline_codecs

#: Short names accepted for the baselines, besides their codec ids.
ALIASES = {"int8": "int8-absmax", "int4": "int4-absmax", "zstd": "zstd-fp16"}


def baseline_names() -> list[str]:
    """Codec ids of the baseline codecs (``fp16``, ``bf16``, ``int8-absmax``, ...)."""
    return [codec.codec_id for codec in baseline_codecs()]


def resolve_codec(spec: str) -> HiddenStateCodec:
    """A baseline codec by name, or a fitted codec saved in a folder.

    Parameters
    ----------
    spec : str
        ``fp16``, ``bf16``, ``int8`` / ``int8-absmax``, ``int4`` /
        ``int4-absmax``, ``zstd-fp16`` / ``zstd``, or the folder of a fitted codec of
        any recipe, written by its ``save`` (:func:`rdgap.codecs.recipes.load_codec`;
        e.g. :meth:`rdgap.codecs.entropy_models.factorized.FactorizedCodec.save`).

    Raises
    ------
    ValueError
        If ``spec`` is neither a baseline name nor an existing folder.
    """
    from rdgap.codecs.recipes import load_codec

    name = ALIASES.get(str(spec), str(spec))
    for codec in baseline_codecs():
        if codec.codec_id == name:
            return codec
    folder = Path(spec).expanduser()
    if folder.is_dir():
        return load_codec(folder)
    raise ValueError(f"codec: expected a baseline name ({', '.join(baseline_names())}; or "
                     f"int8, int4, zstd) or the folder of a codec saved by any recipe's "
                     f"save (rdgap.codecs.recipes), got {spec!r}")


def model_fingerprint(model: torch.nn.Module) -> str:
    """A short digest of a model's parameter names, shapes and 1-D parameters (norms,
    biases): cheap, and different for different checkpoints of one architecture."""
    digest = hashlib.blake2b(digest_size=8)
    for name, parameter in model.state_dict().items():
        digest.update(f"{name}:{tuple(parameter.shape)};".encode())
        if parameter.dim() == 1:
            digest.update(parameter.detach().to("cpu", torch.float32).numpy().tobytes())
    return digest.hexdigest()


def describe_mismatch(mine: dict, theirs: dict, my_rank: int, their_rank: int) -> str | None:
    """A sentence naming every field on which two ranks' identities differ, or None."""
    fields = sorted(set(mine) | set(theirs))
    differences = [f"{field}: rank {my_rank} has {mine.get(field)!r}, rank {their_rank} "
                   f"has {theirs.get(field)!r}" for field in fields
                   if mine.get(field) != theirs.get(field)]
    if not differences:
        return None
    return ("the two ranks do not hold the same codec / model / run settings; "
            + "; ".join(differences)
            + ". Give both ranks the same --codec (the same saved folder), --model and "
              "settings")
