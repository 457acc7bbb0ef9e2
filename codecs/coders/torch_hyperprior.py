"""``klt-hyperprior`` on the batched torch rANS coder.

:class:`TorchHyperpriorCodec` is :class:`~rdgap.codecs.coders.torch_context.TorchContextCodec`
(the same quantizer, causal loop and reconstruction — the hyperprior's reconstruction
is klt-context's bit for bit) with the learned side latents ``ŷ`` of
:class:`~rdgap.codecs.entropy_models.hyperprior.HyperpriorCodec` in the head section
and its table indices in the body:

- head: the ``(T−1)·G`` closed-form side latents, then the ``(T−1)·S`` learned latents
  (token-major, latent ``s`` with the model's histogram table ``s``), then position 0;
- body: symbol ``(t, j)`` with the table ``clip(u_j + GAIN_STEP·k_tg + δ_tj)``,
  ``δ`` the model's *integer* hyper-synthesis of ``[k_t, ŷ_t]``
  (:func:`~rdgap.codecs.entropy_models.hyperprior.integer_synthesis`), computed from
  integers read from the stream, so the decoder selects the encoder's tables on any
  device. ``δ`` is computed on the host (int64 matmul has no CUDA kernel); the
  hyper-analysis ``h_a`` (encoder only) runs the CPU model's float network.

Codec id ``klt-hyperprior-rans``; a CPU ``klt-hyperprior`` stream and a torch one never
decode with each other.
"""

from __future__ import annotations

import torch

from . import ans, rans_torch
from .container import BitstreamError
from .sections import SectionTables
from .torch_context import Quantized, TorchContextCodec
from ..entropy_models.context import GAIN_LIMIT, GAIN_STEP, MAX_INDEX, MIN_INDEX
from ..entropy_models.hyperprior import HyperpriorCodec


class TorchHyperpriorCodec(TorchContextCodec):
    """The torch rANS coder of a fitted :class:`HyperpriorCodec` (``klt-hyperprior``).

    Parameters
    ----------
    model : HyperpriorCodec
        The fitted CPU codec (its parameters and tables).
    device, lanes, dtype, body
        As :class:`~rdgap.codecs.coders.torch_context.TorchContextCodec`.
    """

    MODELS = (HyperpriorCodec,)

    def __init__(self, model: HyperpriorCodec, device="cpu",
                 lanes: int = rans_torch.DEFAULT_LANES, dtype: torch.dtype | None = None,
                 body=None):
        super().__init__(model, device, lanes, dtype, body)
        hyper_tables = [ans.ChannelTable(p, GAIN_LIMIT) for p in model.hyper_side_probabilities]
        # head rows: side groups 0..G-1, position 0 G..G+C-1, learned latents G+C..G+C+S-1
        self._sections[0] = SectionTables.build(
            model._side_tables + model._first_tables + hyper_tables, self.device)

    def quantize(self, hidden, input_ids=None) -> Quantized:
        """klt-context's symbols and side latents on the device, and the learned latents
        ``ŷ`` of every window from the CPU model's hyper-analysis (encoder only)."""
        q = super().quantize(hidden, input_ids)
        windows = torch.as_tensor(hidden).to("cpu", torch.float32)
        latents = self.model.latents
        batch, rest = q.side.shape[:2]
        if rest == 0:  # one-token windows: no body, no side latents
            q.hyper = torch.zeros((batch, 0, latents), dtype=torch.int64, device=self.device)
            return q
        hyper = [torch.from_numpy(self.model._code(w)[1].side.reshape(rest, -1)[:, -latents:])
                 for w in windows]
        q.hyper = torch.stack(hyper).to(self.device, torch.int64)
        return q

    def _head_values(self, q: Quantized) -> torch.Tensor:
        batch = q.side.shape[0]
        return torch.cat([q.side.reshape(batch, -1), q.hyper.reshape(batch, -1), q.first], 1)

    def _head_count(self, rest: int) -> int:
        return rest * (len(self._groups) + self.model.latents) + self.model.channels

    def _head_table(self, rest: int, batch: int) -> torch.Tensor:
        groups, channels, latents = len(self._groups), self.model.channels, self.model.latents
        arange = lambda a, b: torch.arange(a, b, device=self.device)  # noqa: E731
        rows = torch.cat([arange(0, groups).repeat(rest),
                          arange(groups + channels, groups + channels + latents).repeat(rest),
                          arange(groups, groups + channels)])
        return rows.expand(batch, -1)

    def _split_head(self, values: torch.Tensor, rest: int):
        side, _, tail = super()._split_head(values, rest)
        latents = self.model.latents
        hyper = tail[:, :rest * latents].reshape(values.shape[0], rest, latents)
        if hyper.numel() and bool((hyper.abs() > GAIN_LIMIT).any()):
            raise BitstreamError("data: a learned side latent outside its range; the stream "
                                 "is corrupted")
        return side, hyper, tail[:, rest * latents:]

    def _body_rows(self, side: torch.Tensor, hyper: torch.Tensor | None) -> torch.Tensor:
        vectors = torch.cat([side, hyper], -1).cpu()
        delta = self.model.index_corrections(vectors).to(self.device)
        index = self._base_index + GAIN_STEP * side[..., self._group_of] + delta
        return (index.clamp(MIN_INDEX, MAX_INDEX) - MIN_INDEX).reshape(side.shape[0], -1)
