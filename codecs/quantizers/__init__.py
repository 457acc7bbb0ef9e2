"""Quantizers: steps, their calibration to a ΔCE level, straight-through rounding and learned steps."""
