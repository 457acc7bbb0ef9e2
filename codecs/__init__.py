"""rdgap.codecs: split harness and codecs with real bitstreams."""
