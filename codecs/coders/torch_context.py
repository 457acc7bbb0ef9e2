r"""The joint codecs on the batched torch rANS coder (the "GPU codec" of ``klt-context``).

Length (≈500 lines): the torch port of the joint models' causal loop (encoder and
decoder) beside the stream layout it writes; the integer tables and the sectioned
payload are the generic :mod:`rdgap.codecs.coders.sections`. Moving the loop into the
entropy models (one implementation for both coders) is the rest of issue 16.

:class:`TorchContextCodec` wraps a fitted :class:`~rdgap.codecs.entropy_models.context.ContextCodec`
(``klt-context``) or :class:`~rdgap.codecs.entropy_models.token_context.TokenContextCodec`
(``klt-context-tokens``) and codes many windows at once on any torch device: the
causal prediction loop runs for all windows of a batch together on the device,
and the symbols are coded by :mod:`rdgap.codecs.coders.rans_torch`.

What is computed where
----------------------
- **Quantizer and causal loop** — the operations of ``ContextCodec.analyse`` /
  ``_synthesise`` in torch on the device, float64 (float32 only on devices
  without float64, e.g. Apple ``mps``; :attr:`TorchContextCodec.dtype`). The side
  latents ``k_tg``, the position-0 symbols and the body symbols are the CPU
  codec's (same formulas and constants; tested equal).
- **Table indices** — ``i = clip(u_j + GAIN_STEP·k_tg)``, integers from integers
  read from the stream, so the decoder selects the encoder's tables on any device;
  a float difference in the prediction ``m_t`` between devices moves a
  reconstruction by rounding noise only and can never desynchronise the decoder.
- **Integer tables** — built once on the host, deterministically
  (:func:`integer_tables`, :func:`rdgap.codecs.coders.rans_torch.quantize_table`,
  ``2^PRECISION``): the side-latent and position-0 tables of the model, and one
  body table for *every* index ``MIN_INDEX..MAX_INDEX`` (the model's
  ``_table(i)``), plus the token-id table for ``klt-context-tokens``.

Stream layout
-------------
The container (:mod:`rdgap.codecs.coders.container`) holds codec id
``<model codec_id>-rans`` (``klt-context-laplace-rans``,
``klt-context-tokens-rans``) and a hash of the model's hash, the lanes, the
precision and :data:`LAYOUT_VERSION`, so a constriction stream of the CPU codec
and a stream of this codec can never be confused (decoding one with the other
raises :class:`~rdgap.codecs.coders.container.BitstreamError` naming the writer). The
payload of a window of ``T`` tokens, ``C`` channels, ``G`` side groups, is
(integers little-endian)::

    u32 × S        byte length of each rANS section (S = 2, or 3 with token ids)
    u32            E, the number of escaped values
    sections       each one rans_torch stream (lanes = min(lanes, symbols))
    u32 × E        excess magnitude |s| − w − 1 of each escaped value
    ⌈E/8⌉ bytes    their signs (numpy.packbits, 1 = negative)

Sections, in decoding order:

1. (``klt-context-tokens`` only) the ``T`` token ids, one table;
2. head: the ``(T−1)·G`` side latents (token-major) with their group's table,
   then the ``C`` position-0 symbols with their channel's table;
3. body: the ``(T−1)·C`` symbols (token-major), symbol ``(t, j)`` with the
   table of index ``i_tj`` — known to the decoder once section 2 is decoded.

A symbol ``s`` of a table of half-width ``w`` is coded as ``s + w``, or as the
escape ``2w + 1`` when ``|s| > w``; escaped values are listed in section order.
Each section has a fixed number of symbols given ``T``, so all windows of one
length decode in one :func:`rans_torch.decode` call per section.

Rate (THEORY.md T2): each section satisfies the bound of
:func:`rdgap.bounds.rans_length_bounds` (``start="lower"``, 63-bit state, 32-bit
words, ``P = PRECISION``): ``L ≤ I + m·ε + 64·K``, ``I`` the information under
the integer tables; an escaped value costs 33 bits (plus < 1 byte of sign
padding per window), as in the model's :meth:`estimate_bits`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from . import ans, rans_torch
from .sections import (PRECISION, SectionTables, decode_payloads,  # noqa: F401
                       encode_payloads, integer_tables)
from ..base import HiddenStateCodec
from .container import BitstreamError, Stream, pack, params_hash, unpack
from ..entropy_models.context import (GAIN_LIMIT, GAIN_STEP, MAX_INDEX, MIN_INDEX, SCALE_RESOLUTION,
                      ContextCodec, table_scale)
from ..quantizers import deadzone, uniform
from ..entropy_models.token_context import TokenContextCodec

#: Version of the payload layout above (part of the codec hash).
LAYOUT_VERSION = 1
@dataclass
class Quantized:
    """What the encoder's loop produces for a batch of ``B`` windows of ``T`` tokens
    (tensors on the codec's device)."""

    first: torch.Tensor     # (B, C) int64, position-0 symbols
    side: torch.Tensor      # (B, T-1, G) int64, side latents
    symbols: torch.Tensor   # (B, T-1, C) int64, body symbols
    ids: torch.Tensor | None  # (B, T) int64 token ids (klt-context-tokens)
    hyper: torch.Tensor | None = None  # (B, T-1, S) int64 learned latents (klt-hyperprior)


class TorchContextCodec(HiddenStateCodec):
    """A fitted ``klt-context`` / ``klt-context-tokens`` model coded with torch rANS.

    Parameters
    ----------
    model : ContextCodec or TokenContextCodec
        The fitted model (quantizer, predictor, tables).
    device : str or torch.device
        Where the causal loop and the coder run (``"cuda"`` when there is a GPU).
    lanes : int
        Interleaved rANS states per section (64 bits of flush each; more lanes,
        fewer sequential steps on a GPU).
    dtype : torch.float64 or torch.float32, optional
        Float type of the causal loop (default float64, float32 on ``mps``, which has
        no float64). Not part of the stream's hash: streams decode with either, the
        reconstruction then differing by that type's rounding only.

    Notes
    -----
    :meth:`encode_batch` / :meth:`decode_batch` code many windows at once;
    :meth:`encode` / :meth:`decode` (the :class:`HiddenStateCodec` API) one window.
    For ``klt-context-tokens`` the encoder takes ``input_ids`` and the decoder reads
    them from the stream (:meth:`decode_batch_with_ids`).
    """

    #: The model classes this coder codes (exactly these types).
    MODELS: tuple = (ContextCodec, TokenContextCodec)

    def __init__(self, model: ContextCodec, device="cpu", lanes: int = rans_torch.DEFAULT_LANES,
                 dtype: torch.dtype | None = None):
        if type(model) not in self.MODELS:  # subclasses code otherwise
            raise ValueError(f"model: expected a fitted ContextCodec or TokenContextCodec, got "
                             f"{type(model).__name__}")
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes: expected an integer ≥ 1, got {lanes!r}")
        self.model = model
        self.device = torch.device(device)
        if dtype not in (None, torch.float32, torch.float64):
            raise ValueError(f"dtype: expected torch.float64 or torch.float32, got {dtype}")
        #: float64, except on a device without it (Apple ``mps``: float32).
        self.dtype = dtype or (torch.float32 if self.device.type == "mps" else torch.float64)
        self.lanes = lanes
        self.tokens = isinstance(model, TokenContextCodec)
        self.needs_input_ids = self.tokens
        self.codec_id = model.codec_id + "-rans"
        self._digest = params_hash(self.codec_id, {
            "model": model.digest.hex(), "lanes": lanes, "precision": PRECISION,
            "layout": LAYOUT_VERSION})
        sections = [model._side_tables + model._first_tables,
                    [model._table(i) for i in range(MIN_INDEX, MAX_INDEX + 1)]]
        if self.tokens:
            sections.insert(0, [model._id_table])
        self._sections = [SectionTables.build(tables, self.device) for tables in sections]
        put = self._tensor
        self._mean, self._analysis, self._synthesis = (
            put(model.mean), put(model.analysis), put(model.synthesis))
        self._step, self._bias, self._predictor = (
            put(model.step), put(model.bias), put(model.predictor))
        self._first_mean, self._first_step = put(model.first_mean), put(model.first_step)
        self._base_index = torch.from_numpy(model.base_index).to(self.device)
        self._base_scale = put(table_scale(model.base_index))
        self._group_of = torch.from_numpy(model.group_of).to(self.device)
        ends = np.append(model.group_starts, model.channels)
        self._groups = list(zip(ends[:-1].tolist(), ends[1:].tolist()))
        self._group_sizes = put(np.diff(ends).astype(np.float64))
        self._offsets = put(model._offsets)
        if self.tokens:
            self._embedding = torch.from_numpy(model.embedding).to(self.device)
            self._token_weights = put(model.token_weights)

    def _tensor(self, array) -> torch.Tensor:
        return torch.as_tensor(np.asarray(array, dtype=np.float64)).to(self.device, self.dtype)

    @property
    def digest(self) -> bytes:
        """Hash of the model's hash, the lanes, the precision and the layout version."""
        return self._digest

    def params(self) -> dict:
        """The model's hash (hex), lanes, precision and layout version."""
        return {"model": self.model.digest.hex(), "lanes": self.lanes,
                "precision": PRECISION, "layout": LAYOUT_VERSION}

    # -- the model's API -------------------------------------------------------------
    def reconstruct(self, hidden: torch.Tensor, **input_ids) -> torch.Tensor:
        """The CPU model's reconstruction (what decoding returns, to float rounding)."""
        return self.model.reconstruct(hidden, **input_ids)

    def estimate_bits(self, hidden: torch.Tensor, **input_ids) -> float:
        """The model's ``Σ −log2 q`` (escaped values at 33 bits, as coded here)."""
        return self.model.estimate_bits(hidden, **input_ids)

    # -- inputs ----------------------------------------------------------------------
    def _batch(self, hidden) -> torch.Tensor:
        if isinstance(hidden, np.ndarray):
            hidden = torch.from_numpy(hidden)
        if not isinstance(hidden, torch.Tensor) or hidden.dim() != 3 or \
                not hidden.is_floating_point() or 0 in hidden.shape:
            raise ValueError("hidden: expected a floating (windows, tokens, channels) tensor "
                             f"with every size ≥ 1, got "
                             f"{tuple(hidden.shape) if isinstance(hidden, torch.Tensor) else type(hidden).__name__}")
        if hidden.shape[2] != self.model.channels:
            raise ValueError(f"hidden: expected {self.model.channels} channels (the codec was "
                             f"fitted on them), got {hidden.shape[2]}")
        # float32 first, as the CPU codec reads its input (check_hidden), then the loop dtype
        hidden = hidden.detach().to(self.device, torch.float32)
        if not bool(torch.isfinite(hidden).all()):
            raise ValueError("hidden: contains NaN or Inf; expected finite values")
        return hidden.to(self.dtype)

    def _ids(self, input_ids, shape) -> torch.Tensor | None:
        if not self.tokens:
            if input_ids is not None:
                raise ValueError(f"input_ids: {self.model.codec_id} does not code token ids; "
                                 f"expected None")
            return None
        if input_ids is None:
            raise ValueError("input_ids: expected the windows' token ids (klt-context-tokens "
                             "predicts from them and codes them in the stream), got None")
        ids = torch.as_tensor(input_ids)
        if tuple(ids.shape) != tuple(shape) or ids.dtype.is_floating_point or \
                ids.dtype == torch.bool:
            raise ValueError(f"input_ids: expected integer ids of shape {tuple(shape)} (one per "
                             f"token of hidden), got {ids.dtype} of shape {tuple(ids.shape)}")
        ids = ids.to(self.device, torch.int64)
        if bool((ids < 0).any()) or bool((ids >= self.model.vocabulary).any()):
            raise ValueError(f"input_ids: expected ids in [0, {self.model.vocabulary}) (the rows "
                             f"of the embedding table)")
        return ids

    # -- the causal loop on the device -----------------------------------------------
    def _predict(self, previous: torch.Tensor) -> torch.Tensor:
        """``m_t = b + W Ẑ_{t−1}`` for a batch ``(B, C)``."""
        prediction = self._bias.expand_as(previous).clone()
        p = self.model.predicted
        if p:
            prediction[:, :p] += previous[:, :p] @ self._predictor.T
        return prediction

    def _token_offsets(self, ids: torch.Tensor) -> torch.Tensor:
        """``V f_t`` for positions ``1..T−1`` of ids ``(B, T)`` (as ``model.offsets``)."""
        tokens = ids.shape[1]
        parts = []
        for lag in self.model.lags:
            looked_up = self._embedding[ids[:, max(1 - lag, 0):tokens - lag]].to(self.dtype)
            pad = looked_up.new_zeros((ids.shape[0], tokens - 1 - looked_up.shape[1],
                                       looked_up.shape[2]))
            parts.append(torch.cat([pad, looked_up], dim=1))
        return torch.cat(parts, dim=-1) @ self._token_weights.T

    def _dequantize(self, symbols: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """``x̂`` in steps: 0, or ``sign(S)(|S| − offset)`` at the cell centroid
        (:func:`rdgap.codecs.quantizers.deadzone.dequantize`)."""
        return deadzone.dequantize(symbols, self._offsets[index - MIN_INDEX])

    def _indices(self, side: torch.Tensor) -> torch.Tensor:
        """Table index of every component from side latents ``(..., G)``."""
        index = self._base_index + GAIN_STEP * side[..., self._group_of]
        return index.clamp(MIN_INDEX, MAX_INDEX)

    def quantize(self, hidden, input_ids=None) -> Quantized:
        """The encoder's symbols and side latents (the CPU codec's ``analyse``, batched, on
        the device).

        Parameters
        ----------
        hidden : torch.Tensor or numpy.ndarray
            Finite ``(B, T, C)`` windows (not modified).
        input_ids : tensor, optional
            ``(B, T)`` token ids (``klt-context-tokens`` only, else None).

        Returns
        -------
        Quantized
            Position-0 symbols, side latents, body symbols and ids, on the device.

        Raises
        ------
        ValueError
            Naming ``hidden`` or ``input_ids`` when they are not what the model codes.
        """
        x = self._batch(hidden)
        ids = self._ids(input_ids, x.shape[:2])
        model = self.model
        first = uniform.quantize(x[:, 0] - self._first_mean, self._first_step,
                                 ans.MAX_MAGNITUDE, "its position-0 mean")
        batch, tokens, channels = x.shape
        z = (x[:, 1:] - self._mean) @ self._analysis.T
        offset = self._token_offsets(ids) if ids is not None and tokens > 1 else None
        symbols = torch.empty_like(z)
        side = torch.empty((batch, tokens - 1, len(self._groups)), dtype=torch.int64,
                           device=self.device)
        previous = z.new_zeros((batch, channels))
        for t in range(tokens - 1):
            prediction = self._predict(previous)
            if offset is not None:
                prediction += offset[:, t]
            scaled = (z[:, t] - prediction) / self._step
            magnitude = scaled.abs() / self._base_scale
            gain = torch.stack([magnitude[:, a:b].sum(1) for a, b in self._groups], 1) \
                / self._group_sizes
            k = torch.round(torch.log2(gain.clamp_min(1e-300)) * SCALE_RESOLUTION / GAIN_STEP)
            side[:, t] = k.clamp(-GAIN_LIMIT, GAIN_LIMIT).to(torch.int64)
            s = deadzone.quantize(scaled, model.rounding)
            index = self._indices(side[:, t])
            if model.rdo > 0:  # encoder-only option of the CPU codec, run on the host
                host = index.cpu().numpy()
                s = torch.from_numpy(deadzone.rdo_symbols(
                    scaled.cpu().double().numpy(), s.cpu().double().numpy(), table_scale(host),
                    model._offsets[host - MIN_INDEX], model.rounding, model.rdo)
                ).to(self.device, self.dtype)
            symbols[:, t] = s
            previous = prediction + self._step * self._dequantize(s, index)
        uniform.check_range(symbols, ans.MAX_MAGNITUDE, "its prediction")
        return Quantized(first, side, symbols.to(torch.int64), ids)

    def _synthesise(self, first: torch.Tensor, side: torch.Tensor, symbols: torch.Tensor,
                    ids: torch.Tensor | None) -> torch.Tensor:
        """The decoder's loop for a batch: float32 ``(B, T, C)`` on the CPU."""
        batch, rest, channels = symbols.shape
        out = torch.empty((batch, rest + 1, channels), dtype=self.dtype, device=self.device)
        out[:, 0] = self._first_mean + uniform.dequantize(first.to(self.dtype), self._first_step)
        if rest:
            steps = self._step * self._dequantize(symbols.to(self.dtype), self._indices(side))
            offset = self._token_offsets(ids) if ids is not None else None
            decoded = torch.empty_like(steps)
            previous = steps.new_zeros((batch, channels))
            for t in range(rest):
                prediction = self._predict(previous)
                if offset is not None:
                    prediction += offset[:, t]
                previous = prediction + steps[:, t]
                decoded[:, t] = previous
            out[:, 1:] = self._mean + decoded @ self._synthesis.T
        return out.to("cpu", torch.float32)

    # -- sections ----------------------------------------------------------------------
    def sections(self, q: Quantized) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(values, table)`` of every rANS section, each ``(B, n)`` int64 (values are
        signed symbols, tables rows of that section's integer tables)."""
        batch, rest, _ = q.side.shape
        out = []
        if self.tokens:
            out.append((q.ids - self.model._id_width, torch.zeros_like(q.ids)))
        out.append((self._head_values(q), self._head_table(rest, batch)))
        out.append((q.symbols.reshape(batch, -1), self._body_rows(q.side, q.hyper)))
        return out

    # The hooks a model with other side information overrides (TorchHyperpriorCodec):
    def _head_values(self, q: Quantized) -> torch.Tensor:
        """The head section's values ``(B, n)``: side latents, then position 0."""
        return torch.cat([q.side.reshape(q.side.shape[0], -1), q.first], 1)

    def _head_count(self, rest: int) -> int:
        return rest * len(self._groups) + self.model.channels

    def _split_head(self, values: torch.Tensor, rest: int):
        """``(side (B, rest, G), hyper or None, first (B, C))`` of a decoded head; raises
        BitstreamError on a side latent no encoder writes."""
        groups = len(self._groups)
        side = values[:, :rest * groups].reshape(values.shape[0], rest, groups)
        if side.numel() and bool((side.abs() > GAIN_LIMIT).any()):
            raise BitstreamError("data: a side latent outside its range; the stream "
                                 "is corrupted")
        return side, None, values[:, rest * groups:]

    def _body_rows(self, side: torch.Tensor, hyper: torch.Tensor | None) -> torch.Tensor:
        """Table rows ``(B, (T-1)·C)`` of the body, from the decoded side information."""
        return (self._indices(side) - MIN_INDEX).reshape(side.shape[0], -1)

    def _head_table(self, rest: int, batch: int) -> torch.Tensor:
        """Tables of the head section ``(batch, rest·G + C)``: side latent ``(t, g)`` with
        row ``g``, then position-0 channel ``j`` with row ``G + j``."""
        groups = len(self._groups)
        rows = torch.cat([torch.arange(groups, device=self.device).repeat(rest),
                          torch.arange(groups, groups + self.model.channels, device=self.device)])
        return rows.expand(batch, -1)

    def encode_batch(self, hidden, input_ids=None) -> list[bytes]:
        """One stream per window of ``hidden``.

        Parameters
        ----------
        hidden : tensor (B, T, C), or a list of (T_i, C) tensors
            Windows (any device; coded on :attr:`device`). A list may mix lengths;
            windows of one length are coded together.
        input_ids : tensor (B, T) or list of (T_i,) tensors
            The windows' token ids (``klt-context-tokens`` only).
        """
        if isinstance(hidden, (list, tuple)):
            return self._by_length(hidden, input_ids, self.encode_batch)
        q = self.quantize(hidden, input_ids)
        shape = (q.first.shape[0], q.side.shape[1] + 1, self.model.channels)
        payloads = encode_payloads(self.sections(q), self._sections, self.lanes)
        return [pack(self.codec_id, self._digest, shape[1:], payload) for payload in payloads]

    @staticmethod
    def _by_length(windows, input_ids, code):
        """Apply a batch coder to windows of mixed lengths, grouped by length, in order."""
        ids = [None] * len(windows) if input_ids is None else list(input_ids)
        if len(ids) != len(windows):
            raise ValueError(f"input_ids: expected one id tensor per window ({len(windows)}), "
                             f"got {len(ids)}")
        groups: dict[int, list[int]] = {}
        for i, window in enumerate(windows):
            if not isinstance(window, torch.Tensor) or window.dim() != 2:
                raise ValueError(f"hidden: window {i} is not a (tokens, channels) tensor")
            groups.setdefault(window.shape[0], []).append(i)
        out: list = [None] * len(windows)
        for members in groups.values():
            stacked = torch.stack([windows[i] for i in members])
            group_ids = None if input_ids is None else torch.stack(
                [torch.as_tensor(ids[i]) for i in members])
            for i, stream in zip(members, code(stacked, group_ids)):
                out[i] = stream
        return out

    def encode(self, hidden: torch.Tensor, input_ids=None) -> bytes:
        """One stream holding one window.

        Parameters
        ----------
        hidden : torch.Tensor
            ``(tokens, channels)`` window.
        input_ids : tensor, optional
            Its ``(tokens,)`` token ids (``klt-context-tokens`` only).

        Returns
        -------
        bytes
            The container stream (:meth:`encode_batch` of a batch of one).
        """
        ids = None if input_ids is None else torch.as_tensor(input_ids)[None]
        return self.encode_batch(torch.as_tensor(hidden)[None], ids)[0]

    def _encode_payload(self, hidden):  # pragma: no cover - encode() is overridden
        raise NotImplementedError

    # -- decoding ----------------------------------------------------------------------
    def decode_batch_with_ids(self, data: Sequence[bytes]
                              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(hidden (B, T, C) float32 on the CPU, ids (B, T) or None)`` of streams of
        one length; raises BitstreamError on a bad stream."""
        if isinstance(data, (bytes, bytearray)):
            raise ValueError("data: expected a sequence of streams (bytes), one per window")
        streams = [unpack(d, self.codec_id, self._digest) for d in data]
        if not streams:
            raise ValueError("data: expected at least one stream")
        shapes = {s.shape for s in streams}
        if len(shapes) != 1:
            raise ValueError(f"data: streams of shapes {sorted(shapes)}; decode_batch decodes "
                             f"one length per call (decode_windows takes mixed lengths)")
        tokens, channels = _shape(streams[0], self.model.channels)
        rest = tokens - 1
        counts = [tokens] * self.tokens + [self._head_count(rest), rest * channels]
        head, body = len(counts) - 2, len(counts) - 1

        def rows_of(k: int, decoded: list[torch.Tensor]) -> torch.Tensor:
            if k == body:       # the body's tables follow from the side latents
                side, hyper, _ = self._split_head(decoded[head], rest)
                return self._body_rows(side, hyper)
            if k == head:
                return self._head_table(rest, len(streams))
            return torch.zeros((len(streams), counts[k]), dtype=torch.int64, device=self.device)

        decoded = decode_payloads([s.payload for s in streams], counts, self._sections,
                                  self.lanes, self.device, rows_of)
        side, _, first = self._split_head(decoded[head], rest)
        ids = None
        if self.tokens:
            ids = decoded[0] + self.model._id_width
            if bool((ids < 0).any()) or bool((ids >= self.model.vocabulary).any()):
                raise BitstreamError("data: a token id outside the vocabulary; the stream is "
                                     "corrupted")
        symbols = decoded[-1].reshape(len(streams), rest, channels)
        hidden = self._synthesise(first, side, symbols, ids if tokens > 1 else None)
        return hidden, None if ids is None else ids.cpu()

    def decode_batch(self, data: Sequence[bytes]) -> torch.Tensor:
        """Float32 ``(B, T, C)`` tensor of streams of one length (on the CPU)."""
        return self.decode_batch_with_ids(data)[0]

    def decode_windows(self, data: Sequence[bytes]) -> list[torch.Tensor]:
        """One float32 ``(T_i, C)`` tensor per stream; streams may differ in length
        (those of one length are decoded together)."""
        data = list(data)
        lengths: dict[tuple, list[int]] = {}
        for i, d in enumerate(data):
            lengths.setdefault(unpack(d, self.codec_id, self._digest).shape, []).append(i)
        out: list = [None] * len(data)
        for members in lengths.values():
            for i, window in zip(members, self.decode_batch([data[i] for i in members])):
                out[i] = window
        return out

    def decode(self, data: bytes) -> torch.Tensor:
        """The float32 tensor one stream holds; raises BitstreamError on a bad stream."""
        return self.decode_batch([data])[0]

    def decode_with_ids(self, data: bytes) -> tuple[torch.Tensor, torch.Tensor]:
        """``(hidden, input_ids)`` of one ``klt-context-tokens`` stream."""
        hidden, ids = self.decode_batch_with_ids([data])
        if ids is None:
            raise ValueError(f"data: {self.codec_id} streams hold no token ids")
        return hidden[0], ids[0]

    def _decode_payload(self, stream: Stream):  # pragma: no cover - decode() is overridden
        raise NotImplementedError


def _shape(stream: Stream, channels: int) -> tuple[int, int]:
    if len(stream.shape) != 2 or stream.shape[1] != channels or stream.shape[0] < 1:
        raise BitstreamError(f"data: expected a (tokens ≥ 1, {channels}) stream, got shape "
                             f"{stream.shape}")
    return stream.shape
