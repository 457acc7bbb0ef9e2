"""Entropy models: the probability tables of the quantized symbols (factorized, deep factorized, context, token context, hyperprior), each with its fit."""
