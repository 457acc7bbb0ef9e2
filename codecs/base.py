"""The interface every rdgap codec for hidden states implements."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np
import torch

from .coders.container import BitstreamError, Stream, pack, params_hash, unpack


def check_hidden(hidden: torch.Tensor, name: str = "hidden") -> torch.Tensor:
    """Validate a hidden-state matrix ``(tokens, channels)`` and return it as float32.

    Raises
    ------
    ValueError
        If it is not a 2-D floating tensor with at least one token and one
        channel, or holds NaN or Inf.
    """
    if isinstance(hidden, np.ndarray):
        hidden = torch.from_numpy(hidden)
    if not isinstance(hidden, torch.Tensor):
        raise ValueError(f"{name}: expected a torch.Tensor (tokens, channels), "
                         f"got {type(hidden).__name__}")
    if hidden.layout != torch.strided or hidden.is_meta:
        kind = "a meta tensor (no data)" if hidden.is_meta else f"layout {hidden.layout}"
        raise ValueError(f"{name}: expected a dense tensor with data, got {kind}; pass "
                         f"hidden.to_dense() or the materialised tensor")
    if hidden.dim() != 2 or hidden.shape[0] == 0 or hidden.shape[1] == 0:
        raise ValueError(f"{name}: expected shape (tokens, channels) with both ≥ 1, "
                         f"got {tuple(hidden.shape)}; flatten the batch with "
                         f"hidden.reshape(-1, hidden.shape[-1])")
    if not hidden.is_floating_point():
        raise ValueError(f"{name}: expected a floating-point tensor, got {hidden.dtype}")
    hidden = hidden.detach().to("cpu", torch.float32).contiguous()
    if not np.isfinite(hidden.numpy()).all():  # numpy: ~100× faster than torch here
        bad = (~torch.isfinite(hidden)).nonzero()[0].tolist()
        raise ValueError(f"{name}: contains NaN or Inf (first at token {bad[0]}, channel "
                         f"{bad[1]}); expected finite values")
    return hidden


class HiddenStateCodec(ABC):
    """A codec for a matrix of hidden states ``(tokens, channels)``.

    One call of :meth:`encode` writes one stream (one container header and
    checksum) for all the tokens it is given: per-stream overhead is paid once
    per sequence, never per token (THEORY.md T2).

    Subclasses set :attr:`codec_id`, implement :meth:`_encode_payload` and
    :meth:`_decode_payload`, and may override :meth:`estimate_bits` when they
    have a likelihood model.
    """

    #: Identifier written into every stream.
    codec_id: str = ""
    #: Whether decoding returns the input exactly (a lossless codec).
    lossless: bool = False

    def params(self) -> dict:
        """Parameters and tables that the decoder must share with the encoder."""
        return {}

    @property
    def digest(self) -> bytes:
        return params_hash(self.codec_id, self.params())

    def encode(self, hidden: torch.Tensor) -> bytes:
        """One stream holding ``hidden`` (tokens × channels)."""
        hidden = check_hidden(hidden)
        payload = self._encode_payload(hidden)
        return pack(self.codec_id, self.digest, tuple(hidden.shape), payload)

    def decode(self, data: bytes) -> torch.Tensor:
        """The float32 tensor a stream holds; raises BitstreamError on a bad stream."""
        return self._decode_payload(self._unpack_tokens(data))

    def _unpack_tokens(self, data: bytes) -> Stream:
        """This codec's stream of ``data``, checked to declare (tokens ≥ 1, channels ≥ 1)."""
        stream = unpack(data, self.codec_id, self.digest)
        if len(stream.shape) != 2:
            raise BitstreamError(f"data: expected a 2-D (tokens, channels) stream, got shape "
                                 f"{stream.shape}")
        if 0 in stream.shape:  # encode never writes it (check_hidden)
            raise BitstreamError(f"data: stream declares shape {stream.shape}; an rdgap stream "
                                 f"holds at least one token and one channel")
        return stream

    def estimate_bits(self, hidden: torch.Tensor) -> float | None:
        """Likelihood estimate Σ −log2 q of the payload, or None without a model."""
        return None

    @abstractmethod
    def _encode_payload(self, hidden: torch.Tensor) -> bytes: ...

    @abstractmethod
    def _decode_payload(self, stream: Stream) -> torch.Tensor: ...

    @staticmethod
    def _expect_payload(stream: Stream, expected: int) -> None:
        if len(stream.payload) != expected:
            raise BitstreamError(f"data: payload of {len(stream.payload)} bytes does not fit "
                                 f"shape {stream.shape} (expected {expected} bytes)")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.params()})"
