"""The context codec with token-aided prediction: ``klt-context-tokens``.

Assumption (split inference of a language model): the receiver (the suffix
device) holds the model's token-embedding table — it does for any LM whose
suffix computes logits with tied input/output embeddings, such as SmolLM2 —
and the token ids travel **inside the stream**, so the rate is an honest total.

The mean of token ``t ≥ 1`` in the KLT domain of :mod:`rdgap.codecs.entropy_models.context` is

``m_t = b + W Ẑ_{t−1} + V f_t``,  ``f_t = [e(x_{t−l}) for l in lags]``

(``e`` the embedding table; lags beyond the window start read zeros). The
residual stream of a transformer *contains* ``e(x_t)`` plus what the layers
added, so ``V f_t`` removes a part of every token that no amount of context
over decoded states can predict. ``V`` is a ridge regression fitted with
``W`` (:func:`rdgap.codecs.entropy_models.context_fit.fit_context_model`).

Stream: the window's ``T`` token ids first, coded with a unigram table (counts
on fit windows mixed with a Zipf law over the id, :func:`token_probabilities`;
every id has a non-zero probability), then the stream of
:class:`rdgap.codecs.entropy_models.context.ContextCodec`. The decoder reads the ids from the
stream — never from the caller — forms the same offsets ``V f_t`` and runs the
same causal loop. Encoding needs the ids: ``codec.encode(hidden,
input_ids=ids)`` (:attr:`TokenContextCodec.needs_input_ids`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import torch

from ..coders import ans

from .. import persist
from ..base import check_hidden
from ..coders.container import BitstreamError, pack
from ..coders.sections import grouped_columns
from .context import _FLOAT_ARRAYS, _INT_ARRAYS, FORMAT_VERSION, ContextCodec
from .context_fit import fit_context_model

#: Weight of the fit-window counts against the Zipf law in :func:`token_probabilities`.
UNIGRAM_WEIGHT = 0.7
#: Zipf law over the id: ``p(i) ∝ (i + ZIPF_OFFSET)^-ZIPF_EXPONENT`` (BPE ids are
#: roughly in merge order, so small ids are frequent).
ZIPF_EXPONENT, ZIPF_OFFSET = 0.8, 10.0
#: Floor of every table entry (before normalisation).
ID_FLOOR = 2.0 ** -30
#: Leading KLT components of the lag-1 prediction ``W`` (klt-context uses 128). Measured
#: on SmolLM2 split 15 at equal error: 256 saves 2 % more bits than 128 (576: 4 %, but its
#: sequential loop costs ~0.1 s per window and direction, more than the prefix pass).
TOKEN_PREDICTED = 256


def token_probabilities(ids: np.ndarray, vocabulary: int) -> np.ndarray:
    """Unigram law of token ids: ``UNIGRAM_WEIGHT ·`` counts of ``ids`` (fit windows)
    ``+ (1 − UNIGRAM_WEIGHT) ·`` a Zipf law over the id; every id ≥ :data:`ID_FLOOR`.

    Measured on SmolLM2 (32 fit windows × 256, 32 evaluation windows): 10.9 bits per
    id on evaluation windows (16 fit windows: 11.1; uniform: 15.6).
    """
    ids = np.asarray(ids).ravel()
    if ids.size == 0 or ids.min() < 0 or ids.max() >= vocabulary:
        raise ValueError(f"ids: expected ≥ 1 token id in [0, {vocabulary}), got "
                         f"{ids.size} ids" + (f" in [{ids.min()}, {ids.max()}]" if ids.size else ""))
    counts = np.bincount(ids, minlength=vocabulary) / ids.size
    zipf = (np.arange(vocabulary) + ZIPF_OFFSET) ** -ZIPF_EXPONENT
    p = UNIGRAM_WEIGHT * counts + (1 - UNIGRAM_WEIGHT) * zipf / zipf.sum() + ID_FLOOR
    return p / p.sum()


def token_features(embedding: np.ndarray, ids: np.ndarray, lags: tuple[int, ...]) -> np.ndarray:
    """``f_t = [e(x_{t−l}) for l in lags]`` for positions ``1..T−1`` of windows of ids
    ``(..., T)``: ``(..., T − 1, len(lags)·D)`` (zeros before the window start)."""
    ids = np.asarray(ids)
    tokens = ids.shape[-1]
    parts = []
    for lag in lags:
        looked_up = embedding[ids[..., max(1 - lag, 0):tokens - lag]].astype(np.float64)
        missing = tokens - 1 - looked_up.shape[-2]
        pad = np.zeros(looked_up.shape[:-2] + (missing, embedding.shape[1]))
        parts.append(np.concatenate([pad, looked_up], axis=-2))
    return np.concatenate(parts, axis=-1)


def embedding_digest(embedding: np.ndarray) -> str:
    """Hex digest of a token-embedding table (its float32 bytes and shape)."""
    table = np.ascontiguousarray(embedding, dtype=np.float32)
    h = hashlib.blake2b(digest_size=8)
    h.update(repr(table.shape).encode())
    h.update(table.tobytes())
    return h.hexdigest()


class TokenContextCodec(ContextCodec):
    """:class:`rdgap.codecs.entropy_models.context.ContextCodec` whose prediction also uses the
    embeddings of the window's token ids, which are coded in the stream.

    Parameters
    ----------
    embedding : (V, D) array
        The LM's token-embedding table (not saved with the codec; its digest is, and
        enters the codec's hash, so a different table cannot decode a stream).
    token_weights : (C, len(lags)·D) array
        ``V`` of ``m_t = b + W Ẑ_{t−1} + V f_t``.
    token_probabilities : (V,) array
        Law of the token ids in the stream (:func:`token_probabilities`).
    lags : tuple of int
        Token offsets whose embeddings form ``f_t`` (``0`` = the token itself).
    **context
        Every argument of :class:`rdgap.codecs.entropy_models.context.ContextCodec`.
    """

    codec_id = "klt-context-tokens"
    #: The ``rdgap_codec`` kind :meth:`save` writes, and the arrays beyond the context
    #: model's it saves (a subclass with more arrays extends both).
    saved_kind = "context-tokens"
    saved_arrays = ("token_weights", "token_probabilities", "lags")
    #: ``encode``, ``estimate_bits`` and ``reconstruct`` take ``input_ids=``.
    needs_input_ids = True

    def __init__(self, embedding, token_weights, token_probabilities, lags=(0,), **context):
        table = np.asarray(embedding, dtype=np.float32)
        if table.ndim != 2 or table.shape[0] < 2:
            raise ValueError(f"embedding: expected a (vocabulary, width) table, got shape "
                             f"{table.shape}")
        self.embedding = table
        self.vocabulary = table.shape[0]
        self.lags = tuple(int(lag) for lag in lags)
        if not self.lags or min(self.lags) < 0 or len(set(self.lags)) != len(self.lags):
            raise ValueError(f"lags: expected distinct token offsets ≥ 0, got {lags}")
        self.embedding_hash = embedding_digest(table)
        probabilities = np.asarray(token_probabilities, dtype=np.float64)
        if probabilities.shape != (self.vocabulary,) or not np.all(probabilities > 0) or \
                abs(probabilities.sum() - 1) > 1e-9:
            raise ValueError(f"token_probabilities: expected {self.vocabulary} positive "
                             f"probabilities summing to 1 (one per row of embedding)")
        self.token_probabilities = probabilities
        self._id_width = self.vocabulary // 2  # ids 0..V−1 are symbols −w..V−1−w ≤ w
        padded = np.full(2 * self._id_width + 2, ID_FLOOR)
        padded[:self.vocabulary] = probabilities
        self._id_table = ans.ChannelTable(padded / padded.sum(), self._id_width)
        channels = np.shape(context.get("mean"))[0]
        self.token_weights = np.asarray(token_weights, dtype=np.float64)
        expected = (channels, len(self.lags) * table.shape[1])
        if self.token_weights.shape != expected or not np.all(np.isfinite(self.token_weights)):
            raise ValueError(f"token_weights: expected finite values of shape {expected}, got "
                             f"{self.token_weights.shape}")
        super().__init__(**context)

    # -- identity ----------------------------------------------------------------
    def _arrays(self) -> dict[str, np.ndarray]:
        return {**super()._arrays(), "token_weights": self.token_weights,
                "token_probabilities": self.token_probabilities,
                "lags": np.array(self.lags, dtype=np.int64)}

    def _hash(self) -> bytes:
        h = hashlib.blake2b(super()._hash(), digest_size=8)
        h.update(self.embedding_hash.encode())
        return h.digest()

    def params(self) -> dict:
        return {**super().params(), "lags": list(self.lags), "embedding": self.embedding_hash}

    def _constructor_arguments(self) -> dict:
        arguments = super()._constructor_arguments()
        arguments["lags"] = self.lags
        return {**arguments, "embedding": self.embedding}

    # -- ids and offsets ---------------------------------------------------------
    def check_ids(self, input_ids, tokens: int) -> np.ndarray:
        """``input_ids`` as ``(tokens,)`` int64 ids of the embedding table's rows.

        Raises
        ------
        ValueError
            Naming ``input_ids`` when they are missing, of another shape or kind, or
            outside the vocabulary.
        """
        return self._ids(input_ids, tokens)

    def _ids(self, input_ids, tokens: int) -> np.ndarray:
        if input_ids is None:
            raise ValueError("input_ids: expected the window's token ids (klt-context-tokens "
                             "predicts from them and codes them in the stream), got None")
        ids = input_ids.numpy() if isinstance(input_ids, torch.Tensor) else np.asarray(input_ids)
        if ids.shape != (tokens,) or ids.dtype.kind not in "iu":
            raise ValueError(f"input_ids: expected {tokens} integer token ids (one per row of "
                             f"hidden), got {ids.dtype} of shape {ids.shape}")
        if ids.min() < 0 or ids.max() >= self.vocabulary:
            raise ValueError(f"input_ids: expected ids in [0, {self.vocabulary}) (the rows of "
                             f"the embedding table), got [{ids.min()}, {ids.max()}]")
        return ids.astype(np.int64)

    def offsets(self, ids: np.ndarray) -> np.ndarray | None:
        """``V f_t`` for positions ``1..T−1`` of one window's ids ``(T,)`` (None if T = 1;
        the causal loop's :meth:`~rdgap.codecs.entropy_models.context_loop.CausalLoop.token_offsets`,
        which the torch coder runs too)."""
        if ids.shape[-1] < 2:
            return None
        return self.loop().token_offsets(torch.from_numpy(np.asarray(ids, np.int64))[None])[0].numpy()

    # -- sections: the token ids first, then the context model's --------------------
    def section_tables(self) -> list:
        """The ids' table, then :meth:`ContextCodec.section_tables`."""
        return [[self._id_table]] + super().section_tables()

    def section_counts(self, tokens: int) -> list[int]:
        return [tokens] + super().section_counts(tokens)

    def sections(self, first, side, symbols, ids=None) -> list:
        """The ids ``(B, T)`` (one table, as ``id − w``), then the context model's."""
        return [self.id_section(ids)] + super().sections(first, side, symbols)

    def id_section(self, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(values, rows)`` of the ids ``(B, T)``: ``id − w``, all with row 0."""
        if ids is None:
            raise ValueError("ids: klt-context-tokens codes the windows' token ids; got None")
        return ids - self._id_width, torch.zeros_like(ids)

    def section_rows(self, k: int, decoded: list, tokens: int) -> torch.Tensor:
        if k == 0:
            return torch.zeros((1, tokens), dtype=torch.int64)
        return super().section_rows(k - 1, decoded[1:], tokens)

    def symbols_of(self, decoded: list, tokens: int):
        """As :meth:`ContextCodec.symbols_of`, with the ids (checked against the
        vocabulary)."""
        ids = decoded[0] + self._id_width
        if bool((ids < 0).any()) or bool((ids >= self.vocabulary).any()):
            raise BitstreamError("data: a token id outside the vocabulary; the stream is "
                                 "corrupted")
        return super().symbols_of(decoded[1:], tokens)[:3] + (ids,)

    def _decoder_offsets(self, ids, tokens: int):
        return self.loop().token_offsets(ids) if tokens > 1 else None

    # -- coding (constriction, one window) ---------------------------------------------
    def _prepared(self, hidden, input_ids):
        hidden = check_hidden(hidden)
        ids = self._ids(input_ids, hidden.shape[0])
        first, result, recon = self._code(hidden, self.offsets(ids))
        columns, tables = grouped_columns(self._sections_of(first, result, ids),
                                          self.section_tables())
        return hidden, recon, columns, tables

    def encode(self, hidden: torch.Tensor, input_ids=None) -> bytes:
        """One stream holding ``hidden`` (tokens × channels) and its ``input_ids`` (tokens,)."""
        hidden, _, columns, tables = self._prepared(hidden, input_ids)
        return pack(self.codec_id, self.digest, tuple(hidden.shape), ans.encode(columns, tables))

    def _encode_payload(self, hidden, input_ids=None) -> bytes:
        """The payload of :meth:`encode` (ids included; a wrapper such as the shift guard
        puts it behind its own header). Without ``input_ids``: ValueError naming them."""
        return ans.encode(*self._prepared(hidden, input_ids)[2:])

    def estimate_bits(self, hidden: torch.Tensor, input_ids=None) -> float:
        """``Σ −log2 q`` of the payload, token ids included (see :meth:`id_bits`)."""
        return ans.estimate_bits(*self._prepared(hidden, input_ids)[2:])

    def id_bits(self, input_ids) -> float:
        """``Σ −log2 q`` of the token ids alone (part of :meth:`estimate_bits`)."""
        ids = self._ids(input_ids, len(input_ids))
        return ans.estimate_bits([ids - self._id_width], [self._id_table])

    def reconstruct(self, hidden: torch.Tensor, input_ids=None) -> torch.Tensor:
        """What decoding the stream of ``hidden`` (with ``input_ids``) returns."""
        return self._prepared(hidden, input_ids)[1]

    def decode(self, data: bytes) -> torch.Tensor:
        """The float32 tensor a stream holds (its ids are read from the stream)."""
        return self.decode_with_ids(data)[0]

    def decode_with_ids(self, data: bytes) -> tuple[torch.Tensor, torch.Tensor]:
        """``(hidden, input_ids)`` of a stream; raises BitstreamError on a bad stream."""
        stream = self._unpack_tokens(data)
        self._check_stream(stream)
        hidden, ids = self._decode_body(stream)
        return hidden, ids[0]

    # -- persistence -------------------------------------------------------------
    def save(self, folder: str | Path) -> Path:
        """Write ``config.json`` and ``tensors.safetensors`` (not the embedding table:
        its digest) into ``folder``."""
        return persist.write(folder, self._arrays(), {
            "rdgap_codec": self.saved_kind, "format_version": FORMAT_VERSION,
            "rounding": self.rounding, "label": self.label, "channels": self.channels,
            "rdo": self.rdo, "embedding_hash": self.embedding_hash,
            "hash": self._digest.hex()})

    @classmethod
    def load(cls, folder: str | Path, embedding=None) -> "TokenContextCodec":
        """Load a codec written by :meth:`save`, with the LM's ``embedding`` table;
        checks version, the embedding's digest and the hash."""
        names = _FLOAT_ARRAYS + _INT_ARRAYS + cls.saved_arrays
        config, arrays = persist.read(folder, cls.saved_kind, FORMAT_VERSION, names,
                                      cls.__name__)
        if embedding is None or embedding_digest(embedding) != config.get("embedding_hash"):
            raise ValueError(f"embedding: expected the token-embedding table the codec in "
                             f"{folder} was fitted with (digest {config.get('embedding_hash')})")
        lags = tuple(int(v) for v in arrays.pop("lags"))
        codec = cls(embedding=embedding, lags=lags, rounding=config["rounding"],
                    label=config.get("label", ""), rdo=config.get("rdo", 0.0), **arrays)
        persist.check_hash(codec, config, folder)
        return codec


def fit_token_context_codec(hidden: torch.Tensor, input_ids: torch.Tensor, embedding,
                            mean, analysis, synthesis, step, first_mean, first_scale,
                            first_step, lags=(0,), groups: int = 1, rounding: float = 0.4,
                            predicted: int = TOKEN_PREDICTED, label: str = "",
                            side_density: str = "histogram", refine=None,
                            make_class=None) -> TokenContextCodec:
    """Fit :class:`TokenContextCodec` on fit windows (closed form, seconds).

    Parameters
    ----------
    hidden : torch.Tensor
        ``(windows, tokens ≥ 2, channels)`` hidden states of fit windows.
    input_ids : torch.Tensor
        ``(windows, tokens)`` their token ids.
    embedding : (V, D) array or tensor
        The LM's token-embedding table.
    lags : tuple of int
        Token offsets whose embeddings predict the mean (``0``: the token itself).
    predicted : int
        Leading components of the lag-1 prediction (default :data:`TOKEN_PREDICTED`).
    refine, make_class
        A further offset fitted on the ridge's residual and the codec class that carries
        it (:func:`rdgap.codecs.entropy_models.context_fit.fit_context_model`'s
        ``refine``; default none, :class:`TokenContextCodec`).
    Other parameters
        As :func:`rdgap.codecs.entropy_models.context_fit.fit_context_codec`.
    """
    table = embedding.detach().float().numpy() if isinstance(embedding, torch.Tensor) \
        else np.asarray(embedding, dtype=np.float32)
    ids = input_ids.numpy() if isinstance(input_ids, torch.Tensor) else np.asarray(input_ids)
    if ids.shape != tuple(hidden.shape[:2]):
        raise ValueError(f"input_ids: expected shape {tuple(hidden.shape[:2])} (windows, "
                         f"tokens of hidden), got {ids.shape}")
    probabilities = token_probabilities(ids, table.shape[0])

    def make(**arguments):
        return (make_class or TokenContextCodec)(table, token_probabilities=probabilities,
                                                 lags=lags, **arguments)

    return fit_context_model(hidden, mean, analysis, synthesis, step, first_mean, first_scale,
                             first_step, groups=groups, rounding=rounding, predicted=predicted,
                             label=label, side_density=side_density,
                             features=token_features(table, ids, tuple(lags)), make=make,
                             refine=refine)
