"""Synthetic, LM-like hidden states and fitted reference codecs shared by codec tests."""

from __future__ import annotations

import numpy as np
import torch

from rdgap.codecs.entropy_models.factorized import ChannelStatistics, FactorizedCodec
from rdgap.codecs.transforms.klt import fisher_klt


def lm_like(windows: int, tokens: int, channels: int, seed: int = 0) -> torch.Tensor:
    """Heavy-tailed states with per-channel spreads over ~80× and a massive first token."""
    # The law (which channel has which spread) is fixed; ``seed`` only draws samples.
    spread = np.exp(np.linspace(0, 4.4, channels))[np.random.default_rng(0).permutation(channels)]
    rng = np.random.default_rng(seed)  # seeded here: no dependence on other tests
    x = rng.standard_t(4.0, (windows, tokens, channels)) * spread
    x[:, 0, 0] = 2.5e4 + rng.standard_normal(windows)
    return torch.from_numpy(x).float()


def ar_laplace_states(windows: int, seed: int, memory: float = 0.7, channels: int = 16,
                      tokens: int = 40) -> torch.Tensor:
    """AR(1) Laplace channels, spreads e^-2.5 … e^2.5 (one law for every window of one
    call), a large first token: the source of the window-control and shift-guard tests."""
    rng = np.random.default_rng(seed)
    spread = np.exp(np.linspace(-2.5, 2.5, channels))[rng.permutation(channels)]
    noise = rng.laplace(0.0, 1.0, (windows, tokens, channels)) * spread
    x = np.empty_like(noise)
    x[:, 0] = noise[:, 0]
    for t in range(1, tokens):
        x[:, t] = memory * x[:, t - 1] + noise[:, t]
    x[:, 0, 0] += 20.0
    return torch.from_numpy(x).float()


def make_codec(family="gaussian", transform=False, scale=0.5, seed=0, channels=24):
    fit = lm_like(8, 64, channels, seed)
    analysis = synthesis = None
    if transform:
        rest = fit[:, 1:].reshape(-1, channels).double().numpy()
        fisher = np.diag(np.linspace(0.5, 2.0, channels))
        t = fisher_klt(np.cov(rest.T), fisher)
        analysis, synthesis = t.analysis, t.synthesis
    stats = ChannelStatistics.fit(fit, family, analysis=analysis)
    step = scale * (np.ones(channels) * np.median(stats.scale) if transform else stats.scale)
    return FactorizedCodec(stats, step, scale * stats.first_scale, family,
                           analysis=analysis, synthesis=synthesis)


VARIANTS = [("gaussian", False), ("laplace", False), ("gaussian", True), ("laplace", True)]


def assert_damage_is_detected(codec, data: bytes, cut_every: int = 3, flips: int = 60,
                              seed: int = 1) -> None:
    """Every truncation (every ``cut_every`` bytes) and ``flips`` random single-bit flips of
    ``data`` make ``codec.decode`` raise BitstreamError (the container's CRC32 catches
    every single-bit error)."""
    import pytest

    from rdgap.codecs.coders.container import BitstreamError

    for cut in range(0, len(data), cut_every):
        with pytest.raises(BitstreamError):
            codec.decode(data[:cut])
    rng = np.random.default_rng(seed)
    for position in rng.integers(0, len(data), flips):
        broken = bytearray(data)
        broken[position] ^= 1 << int(rng.integers(0, 8))
        with pytest.raises(BitstreamError):
            codec.decode(bytes(broken))


def tiny_fit_context(windows: int, tokens: int, statistics: int, model_seed: int,
                     ids_seed: int):
    """A tiny random Llama (4 layers, width 64, 128 tokens) split after layer 2, random ids,
    their hidden states and the FitContext of the first ``statistics`` windows:
    ``(model, ids, hidden, context)``."""
    from rdgap.codecs.fit import FitContext
    from rdgap.split import SplitModel
    from rdgap.validation.models import tiny_llama

    model = tiny_llama(num_layers=4, hidden_size=64, vocab_size=128, seed=model_seed)
    split = SplitModel(model, 2)
    ids = torch.randint(3, 128, (windows, tokens),
                        generator=torch.Generator().manual_seed(ids_seed))
    hidden = split.prefix(ids)
    return model, ids, hidden, FitContext.build(split, ids, hidden, statistics_windows=statistics)


def codec_test_module(name: str):
    """The test module ``tests/codecs/<name>.py``, loaded under a private name (the suite
    imports in importlib mode: test folders are no packages), to reuse its fixtures and
    data."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).parent / "codecs" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"_codec_test_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
