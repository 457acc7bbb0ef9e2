"""rdgap.codecs: the reference codec, stage by stage, with real bitstreams.

- :mod:`rdgap.codecs.transforms` — where the hidden state is quantized (identity, the
  Fisher-whitened KLT) and the Fisher it is built from;
- :mod:`rdgap.codecs.quantizers` — steps, their calibration to a ΔCE level, learned steps;
- :mod:`rdgap.codecs.entropy_models` — the probability tables of the symbols, each model
  with its fit;
- :mod:`rdgap.codecs.coders` — the bytes: constriction's ANS (CPU), the batched torch
  rANS (any device), the stream container;
- :mod:`rdgap.codecs.recipes` — every variant as a named recipe of those parts, the one
  registry; :mod:`rdgap.codecs.fit` fits and calibrates them;
- :mod:`rdgap.codecs.baselines`, :mod:`rdgap.codecs.symbol_zstd` — fixed baselines.

The split harness the codecs are measured through is no codec: :mod:`rdgap.split`.

The old flat module names (``rdgap.codecs.context``, ...) are deprecation aliases of the
moved modules for one release: one table, :mod:`rdgap.codecs._moved`, and an import hook.
"""

from ._moved import install as _install_moved_names

_install_moved_names()
