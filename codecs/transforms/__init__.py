"""Transforms: the hidden state mapped to where it is quantized (identity, the Fisher-whitened KLT) and the Fisher they are built from."""
