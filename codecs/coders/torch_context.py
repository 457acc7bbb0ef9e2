r"""The joint codecs on the batched torch rANS coder (the "GPU codec" of ``klt-context``).

Length (≈420 lines, a quarter of it the stream layout below): batching, input
checks and the bytes. Everything else is the model's, shared with the CPU codec:
the causal loop (:class:`rdgap.codecs.entropy_models.context_loop.CausalLoop`) and
the sections of ``(values, table rows)`` (``ContextCodec.sections``).

:class:`TorchContextCodec` wraps a fitted :class:`~rdgap.codecs.entropy_models.context.ContextCodec`
(``klt-context``) or :class:`~rdgap.codecs.entropy_models.token_context.TokenContextCodec`
(``klt-context-tokens``) and codes many windows at once on any torch device: the
model's causal loop runs for all windows of a batch together on the device, and
the symbols are coded by :mod:`rdgap.codecs.coders.rans_torch`.

What is computed where
----------------------
- **Quantizer and causal loop** — the model's :meth:`~rdgap.codecs.entropy_models.
  context_loop.CausalLoop.analyse` / ``synthesise`` (``model.loop(device, dtype)``),
  the very code the CPU codec runs with a batch of one: float64 (float32 only on
  devices without float64, e.g. Apple ``mps``; :attr:`TorchContextCodec.dtype`).
  On the CPU the two coders' reconstructions are equal bit for bit.
- **Table indices** — the model's rule ``i = clip(u_j + GAIN_STEP·k_tg)``
  (:func:`~rdgap.codecs.entropy_models.context_loop.table_indices`), integers from
  integers read from the stream, so the decoder selects the encoder's tables on any
  device; a float difference in the prediction ``m_t`` between devices moves a
  reconstruction by rounding noise only and can never desynchronise the decoder.
- **Integer tables** — built once on the host, deterministically
  (:func:`integer_tables`, :func:`rdgap.codecs.coders.rans_torch.quantize_table`,
  ``2^PRECISION``) from the model's ``section_tables()``: the token-id table
  (``klt-context-tokens``), the side-latent and position-0 tables, and one body
  table for *every* index ``MIN_INDEX..MAX_INDEX``.

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

from . import rans_torch
from .sections import (PRECISION, SectionTables, decode_payloads,  # noqa: F401
                       encode_payloads, integer_tables)
from ..base import HiddenStateCodec
from .container import BitstreamError, Stream, pack, params_hash, unpack
from ..entropy_models.context import ContextCodec
from ..entropy_models.token_context import TokenContextCodec
from ..entropy_models.token_table import TokenTableCodec

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
    body : SectionTables, optional
        The integer body tables (:attr:`body_tables`) of a coder, on this device, of a
        model that differs from ``model`` only by its steps (``model.rescaled``, the
        same rounding): the body tables depend on the table index and the rounding
        only, so they are shared instead of rebuilt (the ladder of
        :class:`~rdgap.codecs.coders.torch_window.TorchWindowCodec`; building them is
        most of this constructor's time).

    Notes
    -----
    :meth:`encode_batch` / :meth:`decode_batch` code many windows at once;
    :meth:`encode` / :meth:`decode` (the :class:`HiddenStateCodec` API) one window.
    For ``klt-context-tokens`` the encoder takes ``input_ids`` and the decoder reads
    them from the stream (:meth:`decode_batch_with_ids`).
    """

    #: The model classes this coder codes (exactly these types).
    MODELS: tuple = (ContextCodec, TokenContextCodec, TokenTableCodec)

    def __init__(self, model: ContextCodec, device="cpu", lanes: int = rans_torch.DEFAULT_LANES,
                 dtype: torch.dtype | None = None, body: SectionTables | None = None):
        if type(model) not in self.MODELS:  # subclasses code otherwise
            raise ValueError(f"model: expected a fitted ContextCodec or TokenContextCodec, got "
                             f"{type(model).__name__}")
        if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
            raise ValueError(f"lanes: expected an integer ≥ 1, got {lanes!r}")
        self.model = model
        self.channels = model.channels
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
        #: Each section's integer tables, built once from the model's float tables.
        tables = model.section_tables()
        self._sections = [SectionTables.build(list(t), self.device) for t in tables[:-1]]
        self._sections.append(SectionTables.build(list(tables[-1]), self.device)
                              if body is None else body)
        #: The model's causal loop on this device (the CPU codec runs the same code).
        self.loop = model.loop(self.device, self.dtype)
        self._groups = self.loop.groups
        # the model's integers, for subclasses' table rules (TorchHyperpriorCodec)
        self._base_index, self._group_of = self.loop.base_index, self.loop.group_of

    @property
    def body_tables(self) -> SectionTables:
        """The integer tables of the body section (one per table index in range)."""
        return self._sections[-1]

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

    # -- the model's causal loop on the device ---------------------------------------
    def _indices(self, side: torch.Tensor) -> torch.Tensor:
        """Table index of every component from side latents ``(..., G)`` (the model's
        rule, :func:`rdgap.codecs.entropy_models.context_loop.table_indices`)."""
        return self.loop.indices(side)

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
        loop = self.loop
        first = loop.first_symbols(x[:, 0])
        offset = loop.token_offsets(ids) if ids is not None and x.shape[1] > 1 else None
        result = loop.analyse(loop.to_klt(x[:, 1:]), offset)
        return Quantized(first, result.side, result.symbols, ids)

    def _synthesise(self, first: torch.Tensor, side: torch.Tensor, symbols: torch.Tensor,
                    ids: torch.Tensor | None) -> torch.Tensor:
        """The decoder's loop for a batch (the model's): float32 ``(B, T, C)`` on the CPU."""
        offset = self.loop.token_offsets(ids) if ids is not None else None
        return self.loop.output(first, self.loop.synthesise(symbols, side, offset))

    # -- sections ----------------------------------------------------------------------
    def sections(self, q: Quantized) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``(values, rows)`` of every rANS section, each ``(B, n)`` int64: the model's
        (:meth:`ContextCodec.sections <rdgap.codecs.entropy_models.context.ContextCodec.sections>`),
        through the head / body hooks below."""
        batch, rest, _ = q.side.shape
        out = [self.model.id_section(q.ids)] if self.tokens else []
        out.append((self._head_values(q), self._head_table(rest, batch)))
        out.append((q.symbols.reshape(batch, -1), self._body_rows(q.side, q.hyper)))
        return out

    # Head / body hooks: the model's layout, one call each. They exist for
    # TorchHyperpriorCodec, whose torch head holds its learned latents apart.
    def _head_values(self, q: Quantized) -> torch.Tensor:
        """The head section's values ``(B, n)``: side latents, then position 0."""
        return self.model.head_values(q.first, q.side)

    def _head_count(self, rest: int) -> int:
        return self.model.section_counts(rest + 1)[-2]

    def _split_head(self, values: torch.Tensor, rest: int):
        """``(side (B, rest, G), hyper or None, first (B, C))`` of a decoded head; raises
        BitstreamError on a side latent no encoder writes."""
        side, first = self.model.split_head(values, rest, len(self._groups))
        return side, None, first

    def _body_rows(self, side: torch.Tensor, hyper: torch.Tensor | None) -> torch.Tensor:
        """Table rows ``(B, (T-1)·C)`` of the body, from the decoded side information."""
        return self.model.body_rows(side)

    def _head_table(self, rest: int, batch: int) -> torch.Tensor:
        """Rows of the head section ``(batch, rest·G + C)`` (the model's ``head_rows``)."""
        return self.model.head_rows(rest, batch, self.device)

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
        ids = self.model.symbols_of(decoded, tokens)[3] if self.tokens else None
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
