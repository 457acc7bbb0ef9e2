"""Quantizers: the uniform and dead-zone quantizers (``uniform.py``, ``deadzone.py``),
encoder-only RDOQ (``rdoq.py``), their steps' calibration to a ΔCE level, straight-through
rounding and learned steps."""
