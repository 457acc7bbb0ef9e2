"""Candidate causal predictors of a token's KLT coefficients, for ``context_screen.py``.

Every predictor maps what a decoder holds to the predicted mean ``m`` of the KLT
components ``Z`` of positions ``1..T−1`` of a window:

- ``zhat`` ``(B, T−1, C)``: the *decoded* components of positions ``1..T−1`` (the
  prediction of index ``i`` may read ``zhat[:, :i]`` only: positions before it);
- ``ids`` ``(B, T)``: the window's token ids (index ``i`` is position ``i + 1``; it may
  read ``ids[:, :i + 2]``: every token up to and including its own).

``predict(zhat, ids)`` returns ``(B, T−1, C)``; the causality of each family is tested
(``tests/test_context_screen.py``: changing a later state or token never changes an
earlier prediction). Networks learn a correction on top of a ridge prediction
(``base``), with a Laplace negative log-likelihood in steps as their loss.
"""

from __future__ import annotations

import copy
import math
import time

import numpy as np
import torch

from rdgap.codecs.entropy_models.context import scale_index, table_scale
from rdgap.codecs.entropy_models.context_fit import _ridge_solutions, laplace_bits
from rdgap.codecs.quantizers import deadzone

#: Relative ridge strengths tried (``context_fit.RIDGES`` without "no predictor").
RIDGES = (1e-3, 1e-2, 1e-1, 1.0, 10.0)


def decoded_states(z: np.ndarray, step: np.ndarray, rounding: float,
                   index: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """What a decoder holds of ``z`` ``(..., C)`` without prediction: dead-zone symbols
    at ``step`` reconstructed at the Laplace centroid of table ``index`` per component
    (default: the scale index of ``z``'s own mean ``|z|/step``; pass the fit windows'
    index for other windows). Returns ``(ẑ, index)``."""
    x = z / step
    if index is None:
        index = scale_index(np.abs(x).reshape(-1, x.shape[-1]).mean(0))
    offset = deadzone.centroid_offset(table_scale(index), rounding)
    symbols = deadzone.quantize(x, rounding)
    return step * deadzone.dequantize(symbols, np.broadcast_to(offset, x.shape)), index


def lagged(values: np.ndarray, lag: int) -> np.ndarray:
    """``values`` ``(B, N, F)`` moved ``lag ≥ 0`` places later along axis 1 (zeros
    first): row ``i`` of the result is row ``i − lag`` of ``values``."""
    if lag < 0:
        raise ValueError(f"lag: expected ≥ 0, got {lag}")
    out = np.zeros_like(values)
    if lag < values.shape[1]:
        out[:, lag:] = values[:, :values.shape[1] - lag]
    return out


class Features:
    """Causal regressors of index ``i``: decoded states ``ẑ`` of ``state_lags`` (each
    ``≥ 1``, first ``components`` components) and embeddings ``e(x)`` of ``token_lags``
    (each ``≥ 0``; lag ``l`` is the token ``l`` places before position ``i + 1``);
    ``components`` None: every component."""

    def __init__(self, embedding: np.ndarray, state_lags=(1,), token_lags=(),
                 components: int | None = 256):
        if any(lag < 1 for lag in state_lags) or any(lag < 0 for lag in token_lags):
            raise ValueError(f"state_lags, token_lags: expected state lags ≥ 1 (the state "
                             f"being predicted is not decoded yet) and token lags ≥ 0, got "
                             f"{state_lags}, {token_lags}")
        self.embedding = embedding
        self.state_lags, self.token_lags = tuple(state_lags), tuple(token_lags)
        self.components = components
        self.context = max(self.state_lags + self.token_lags + (1,))

    def __call__(self, zhat: np.ndarray, ids: np.ndarray) -> np.ndarray:
        states = zhat if self.components is None else zhat[..., :self.components]
        parts = [lagged(states, lag) for lag in self.state_lags]
        own = self.embedding[ids[:, 1:]].astype(np.float64)  # e(x) of position i + 1
        parts += [lagged(own, lag) for lag in self.token_lags]
        return np.concatenate(parts, -1) if parts else np.zeros(zhat.shape[:-1] + (0,))


def residual_bits(residual: np.ndarray, step: np.ndarray, rounding: float,
                  scale: np.ndarray) -> float:
    """Laplace code length of a residual ``(..., C)`` dead-zone quantized at ``step``,
    each component's table from ``scale`` (steps; the codec's table index rule)."""
    symbols = deadzone.quantize(residual.reshape(-1, residual.shape[-1]) / step, rounding)
    return laplace_bits(symbols, table_scale(scale_index(scale)), rounding)


class Ridge:
    """``m = b + W f`` over :class:`Features` ``f`` for the first ``outputs`` components
    (the rest: their mean), the ridge chosen by the Laplace bits of validation windows."""

    kind = "ridge"

    def __init__(self, features: Features, outputs: int | None = None,
                 standardize: bool = True, windows: int | None = None):
        self.features, self.outputs = features, outputs
        self.standardize, self.windows = standardize, windows
        self.context = features.context

    def fit(self, train, valid, step, rounding):
        """Fit on ``train`` (its first ``windows`` windows, if set) / choose on ``valid``
        (each ``(z, zhat, ids)``); features scaled to unit variance first if
        ``standardize`` (one relative ridge then suits blocks of unlike scale)."""
        z, zhat, ids = (a[:self.windows] for a in train)
        channels = z.shape[-1]
        p = channels if self.outputs is None else self.outputs
        x = self.features(zhat, ids)
        x = x.reshape(x.shape[0] * x.shape[1], x.shape[-1])
        y = z.reshape(-1, channels)
        vx = self.features(valid[1], valid[2])
        vx = vx.reshape(vx.shape[0] * vx.shape[1], vx.shape[-1])
        vy = valid[0].reshape(-1, channels)
        if p == 0 or x.shape[-1] == 0:  # no regression: every component predicted by its mean
            self.ridge, self.weights, self.bias = None, np.zeros((0, x.shape[-1])), y.mean(0)
            return self
        spread = np.maximum(x.std(0), 1e-12) if self.standardize else np.ones(x.shape[-1])
        x, vx = x / spread, vx / spread
        best = None
        for ridge, weights, bias in _ridge_solutions(x, y[:, :p], RIDGES):
            scale = np.abs(y[:, :p] - bias - x @ weights.T).mean(0) / step[:p]
            bits = residual_bits(vy[:, :p] - bias - vx @ weights.T, step[:p], rounding, scale)
            if best is None or bits < best[0]:
                best = (bits, ridge, weights / spread, bias)
        _, self.ridge, self.weights, bias = best
        self.bias = np.concatenate([bias, y[:, p:].mean(0)])
        return self

    def predict(self, zhat, ids):
        f = self.features(zhat, ids)
        out = np.broadcast_to(self.bias, zhat.shape).copy()
        out[..., :self.weights.shape[0]] += f @ self.weights.T
        return out

    @property
    def parameters(self) -> int:
        return int(self.weights.size + self.bias.size)


class IdTable:
    """``base`` plus a per-token-id mean of ``base``'s residual, shrunk toward 0 by
    ``n / (n + λ)`` (``n`` the id's count in the training windows), ``λ`` chosen on the
    validation windows; only ids seen in training have a row."""

    kind = "table"
    LAMBDAS = (1.0, 3.0, 10.0, 30.0, 100.0)

    def __init__(self, base):
        self.base = base
        self.context = base.context

    def fit(self, train, valid, step, rounding):
        z, zhat, ids = train
        residual = (z - self.base.predict(zhat, ids)).reshape(-1, z.shape[-1])
        own = ids[:, 1:].ravel()
        self.ids, inverse, counts = np.unique(own, return_inverse=True, return_counts=True)
        sums = np.zeros((self.ids.size, z.shape[-1]))
        np.add.at(sums, inverse, residual)
        self.means, self.counts = sums / counts[:, None], counts
        scale = np.abs(residual).mean(0) / step
        best = None
        for lam in self.LAMBDAS:
            self.lam = lam
            bits = residual_bits(valid[0] - self.predict(valid[1], valid[2]), step, rounding,
                                 scale)
            if best is None or bits < best[0]:
                best = (bits, lam)
        self.lam = best[1]
        return self

    def predict(self, zhat, ids):
        out = self.base.predict(zhat, ids)
        own = ids[:, 1:]
        row = np.searchsorted(self.ids, own).clip(0, self.ids.size - 1)
        known = self.ids[row] == own
        shrink = (self.counts / (self.counts + self.lam))[row] * known
        return out + shrink[..., None] * self.means[row]

    @property
    def parameters(self) -> int:
        return int(self.means.size + self.ids.size + self.base.parameters)


class _Network:
    """A torch correction on top of a fitted ridge ``base``, trained with a Laplace
    negative log-likelihood in steps (per component ``|r| / b_j``, ``b_j`` the base's
    training residual scale, floored at half a step) and early stopping on the
    validation windows."""

    kind = "network"
    EPOCHS, PATIENCE, LR, WEIGHT_DECAY = 60, 6, 1e-3, 1e-4

    def __init__(self, base, seed: int = 0):
        self.base, self.seed = base, seed

    def _inputs(self, zhat, ids) -> torch.Tensor:
        raise NotImplementedError

    def fit(self, train, valid, step, rounding, budget_s: float = 600.0):
        torch.manual_seed(self.seed)
        z, zhat, ids = train
        base = self.base.predict(zhat, ids)
        inputs = self._inputs(zhat, ids)
        flat = inputs.reshape(-1, inputs.shape[-1])
        self.centre, self.spread = flat.mean(0), flat.std(0).clamp_min(1e-6)
        scale = np.maximum(np.abs(z - base).reshape(-1, z.shape[-1]).mean(0) / step, 0.5)
        weight = torch.from_numpy(1.0 / (step * scale)).float()
        self.net = self._build(inputs.shape[-1], z.shape[-1])
        target = torch.from_numpy(z - base).float()
        vbase = self.base.predict(valid[1], valid[2])
        vinputs = self._inputs(valid[1], valid[2])
        vtarget = torch.from_numpy(valid[0] - vbase).float()
        optimiser = torch.optim.AdamW(self.net.parameters(), lr=self.LR,
                                      weight_decay=self.WEIGHT_DECAY)
        best, waited, started, self.epochs = math.inf, 0, time.perf_counter(), 0
        state = copy.deepcopy(self.net.state_dict())
        for epoch in range(self.EPOCHS):
            self.net.train()
            for batch in self._batches(inputs.shape[0], inputs.shape[1]):
                out = self._forward(self._normal(inputs), batch)
                loss = ((out - self._take(target, batch)).abs() * weight).mean()
                optimiser.zero_grad()
                loss.backward()
                optimiser.step()
            self.net.eval()
            with torch.no_grad():
                loss = float(((self._forward(self._normal(vinputs), None) - vtarget).abs()
                              * weight).mean())
            self.epochs = epoch + 1
            if loss < best - 1e-5:
                best, waited, state = loss, 0, copy.deepcopy(self.net.state_dict())
            else:
                waited += 1
            if waited >= self.PATIENCE or time.perf_counter() - started > budget_s:
                break
        self.net.load_state_dict(state)
        self.net.eval()
        self.validation_loss = best
        return self

    def _normal(self, inputs):
        return (inputs - self.centre) / self.spread

    def predict(self, zhat, ids):
        with torch.no_grad():
            out = self._forward(self._normal(self._inputs(zhat, ids)), None)
        return self.base.predict(zhat, ids) + out.double().numpy()

    @property
    def parameters(self) -> int:
        return int(sum(p.numel() for p in self.net.parameters())) + self.base.parameters


class MLP(_Network):
    """A one-hidden-layer MLP on ``[ẑ_{i−1}, ẑ_{i−2}, e(x_i), e(x_{i−1})]`` (positions),
    token-wise (a bounded context of two states and two tokens)."""

    def __init__(self, base, embedding, hidden: int = 512, seed: int = 0):
        super().__init__(base, seed)
        self.features = Features(embedding, state_lags=(1, 2), token_lags=(0, 1),
                                 components=None)
        self.hidden = hidden
        self.context = max(base.context, self.features.context)

    def _inputs(self, zhat, ids):
        return torch.from_numpy(self.features(zhat, ids)).float()

    def _build(self, width, channels):
        last = torch.nn.Linear(self.hidden, channels)
        torch.nn.init.zeros_(last.weight)
        torch.nn.init.zeros_(last.bias)
        return torch.nn.Sequential(torch.nn.Linear(width, self.hidden), torch.nn.GELU(), last)

    def _batches(self, windows, tokens, size: int = 512):
        order = torch.randperm(windows * tokens)
        return [order[s:s + size] for s in range(0, order.numel(), size)]

    def _take(self, values, batch):
        return values.reshape(-1, values.shape[-1])[batch]

    def _forward(self, inputs, batch):
        if batch is None:
            return self.net(inputs)
        return self.net(inputs.reshape(-1, inputs.shape[-1])[batch])


class _CausalAttention(torch.nn.Module):
    def __init__(self, width, channels, dim, layers, heads, positions):
        super().__init__()
        self.inp = torch.nn.Linear(width, dim)
        self.position = torch.nn.Parameter(torch.zeros(positions, dim))
        layer = torch.nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout=0.1,
                                                 batch_first=True, norm_first=True)
        self.body = torch.nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = torch.nn.Linear(dim, channels)
        torch.nn.init.zeros_(self.out.weight)
        torch.nn.init.zeros_(self.out.bias)

    def forward(self, x):
        n = x.shape[1]
        mask = torch.nn.Transformer.generate_square_subsequent_mask(n)
        h = self.inp(x) + self.position[:n]
        return self.out(self.body(h, mask=mask, is_causal=True))


class Attention(_Network):
    """A small causal transformer over every earlier position: the input of index ``i``
    is ``[ẑ_{i−1}, e(x_i)]`` (the last decoded state and the token being predicted),
    attention reaches every earlier index (the paper's direct-access idea)."""

    EPOCHS, PATIENCE = 80, 8

    def __init__(self, base, embedding, dim: int = 128, layers: int = 2, heads: int = 4,
                 positions: int = 512, seed: int = 0):
        super().__init__(base, seed)
        self.features = Features(embedding, state_lags=(1,), token_lags=(0,),
                                 components=None)
        self.shape = (dim, layers, heads, positions)
        self.context = None  # unbounded: every earlier position

    def _inputs(self, zhat, ids):
        return torch.from_numpy(self.features(zhat, ids)).float()

    def _build(self, width, channels):
        return _CausalAttention(width, channels, *self.shape)

    def _batches(self, windows, tokens, size: int = 4):
        order = torch.randperm(windows)
        return [order[s:s + size] for s in range(0, windows, size)]

    def _take(self, values, batch):
        return values[batch]

    def _forward(self, inputs, batch):
        return self.net(inputs if batch is None else inputs[batch])


def sequential_seconds(predictor, zhat: np.ndarray, ids: np.ndarray) -> float:
    """Seconds per token to predict one window ``(1, T−1, C)`` one index at a time, as a
    decoder must (each index waits for the previous decoded state): a bounded-context
    predictor sees only its context; an unbounded one recomputes its whole past (no key
    cache: an upper bound)."""
    tokens = zhat.shape[1]
    context = getattr(predictor, "context", None)
    started = time.perf_counter()
    for i in range(tokens):
        first = 0 if context is None else max(0, i - context)
        predictor.predict(zhat[:, first:i + 1], ids[:, first:i + 2])
    return (time.perf_counter() - started) / tokens
