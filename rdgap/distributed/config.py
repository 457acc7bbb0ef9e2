"""The settings of one split run, shared by both ranks."""

from __future__ import annotations

from dataclasses import asdict, dataclass

# The defaults of rdgap.validation (not imported: the CLI parser must not load torch).
DEFAULT_MODEL = "smollm2-135m"
DEFAULT_CORPUS = "lee_background"

#: Faults that :attr:`SplitRunConfig.fault` can inject, to exercise failure handling.
FAULTS = {
    "kill-sender": "rank 0 is killed (SIGKILL) before it sends batch N",
    "cut": "rank 0 sends batch N's header, then dies before the body (a cut stream)",
    "stall": "rank 0 stops sending before batch N, alive but silent",
    "corrupt": "rank 0 flips one bit in batch N's first stream",
    "kill-receiver": "rank 1 is killed (SIGKILL) after it receives batch N",
    "forge-shape": "rank 0 replaces batch N's first stream by a valid stream of the codec "
                   "declaring 64× the agreed tokens",
    "short-frame": "rank 0 declares batch N's body 4 bytes shorter than it sends (header "
                   "checksum recomputed)",
    "huge-frame": "rank 0 declares batch N's body 2^31 bytes longer than it sends (header "
                  "checksum recomputed)",
}


@dataclass
class SplitRunConfig:
    """What ``rdgap split-run`` runs.

    Attributes
    ----------
    model : str
        ``"smollm2-135m"`` or a transformers causal-LM folder (each rank loads it).
    split : int
        Decoder layers in the prefix (rank 0); the rest run on rank 1.
    codec : str
        A baseline name or a saved FactorizedCodec folder
        (:func:`rdgap.distributed.codec_spec.resolve_codec`).
    batches, batch_size, window_length : int
        Batches streamed, windows per batch, tokens per window. Windows come
        from the evaluation documents of ``corpus``.
    corpus : str
        ``"lee_background"`` or a text file / folder.
    backend : str
        ``"gloo"``, ``"nccl"`` or ``"auto"`` (NCCL when CUDA is available, else gloo).
    timeout : float
        Seconds a rank waits on the other (start-up, any send or receive)
        before it stops with an error.
    queue : int
        Batches in flight: rank 0 runs ahead of rank 1 by at most this many.
    verify : bool
        Rank 1 keeps the logits and checks them, after the timed run, against
        the one-process path ``suffix(decode(encode(prefix(x))))``.
    threads : int or None
        torch threads per rank (None: CPU cores / 2, at least 1).
    cache_dir : str or None
        rdgap cache folder for the embedded model.
    fault : str or None
        ``"NAME:N"`` with NAME in :data:`FAULTS`: inject a failure at batch N.
    progress : bool
        Show a progress bar of the batches rank 1 has finished.
    max_frame_bytes : int or None
        Largest frame body rank 1 accepts (bytes); a header declaring more is
        refused before anything is allocated. None: twice the float32 bytes of
        a batch plus 64 KiB per window
        (:func:`rdgap.distributed.framing.body_limit`).
    """

    split: int
    codec: str
    model: str = DEFAULT_MODEL
    batches: int = 4
    batch_size: int = 2
    window_length: int = 128
    corpus: str = DEFAULT_CORPUS
    backend: str = "auto"
    timeout: float = 60.0
    queue: int = 2
    verify: bool = True
    threads: int | None = None
    cache_dir: str | None = None
    fault: str | None = None
    progress: bool = True
    max_frame_bytes: int | None = None

    def __post_init__(self):
        for name in ("batches", "batch_size", "queue"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name.replace('_', '-')}: expected an integer ≥ 1, "
                                 f"got {value!r}")
        if not isinstance(self.window_length, int) or self.window_length < 2:
            raise ValueError(f"window-length: expected an integer ≥ 2, got "
                             f"{self.window_length!r}")
        if not self.timeout > 0:
            raise ValueError(f"timeout: expected seconds > 0, got {self.timeout!r}")
        if self.backend not in ("auto", "gloo", "nccl"):
            raise ValueError(f"backend: expected gloo, nccl or auto, got {self.backend!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads: expected ≥ 1, got {self.threads!r}")
        if self.max_frame_bytes is not None and (
                isinstance(self.max_frame_bytes, bool) or not isinstance(self.max_frame_bytes, int)
                or self.max_frame_bytes < 1):
            raise ValueError(f"max-frame-bytes: expected an integer ≥ 1 (bytes), got "
                             f"{self.max_frame_bytes!r}")
        self.fault_at()  # validates

    def fault_at(self) -> tuple[str, int] | None:
        """The injected fault as ``(name, batch)``, or None."""
        if self.fault is None:
            return None
        name, _, batch = str(self.fault).partition(":")
        if name not in FAULTS or not batch.isdigit():
            raise ValueError(f"fault: expected NAME:BATCH with NAME in {sorted(FAULTS)}, "
                             f"got {self.fault!r}")
        return name, int(batch)

    def identity(self) -> dict:
        """The settings both ranks must share (compared at start-up)."""
        settings = asdict(self)
        # Paths may differ between machines: the codec and model are compared by
        # their hashes instead (see rdgap.distributed.worker).
        for local in ("threads", "cache_dir", "fault", "timeout", "verify", "codec", "model",
                      "corpus", "progress", "max_frame_bytes"):
            settings.pop(local)
        return settings
