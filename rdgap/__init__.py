"""rdgap: rate–entropy gap verification for compressing transformer hidden states."""
__version__ = "0.1.0"
