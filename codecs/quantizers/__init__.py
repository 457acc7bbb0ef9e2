"""Quantizers: the uniform and dead-zone quantizers (``uniform.py``, ``deadzone.py``), their steps' calibration to a ΔCE level, straight-through rounding and learned steps."""
