"""Split inference across two processes with ``torch.distributed``.

Rank 0 runs the prefix of a model and encodes each window with a codec; rank 1
receives the streams, decodes them and runs the suffix. Modules:

``config``      :class:`SplitRunConfig`, the settings of a run
``codec_spec``  which codec (a baseline or a saved fitted codec), model fingerprint
``framing``     the wire format: frame header, stream-length table, streams
``transport``   bounded non-blocking sends, a receiving thread, clear link errors
``worker``      one rank's work (:func:`run_rank`), start-up check, verification
``summary``     merged report, link-rate predictions, break-even bandwidth
``launch``      two local processes, or one rank under torchrun
``cli``         the ``rdgap split-run`` subcommand
"""
