"""Split any model whose forward runs a list of layers in order, without editing it.

The mechanism lives in :mod:`rdgap.split` (:class:`LayerSplit`, used by
:class:`rdgap.split.SplitModel` for every transformers model); this
module keeps the name where the validation tasks import it from.
"""

from rdgap.split import LayerSplit

__all__ = ["LayerSplit"]
