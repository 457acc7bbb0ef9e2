"""Coders: the bytes. constriction's ANS on the CPU, the batched torch rANS on any device, and the stream container."""
