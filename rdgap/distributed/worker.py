"""One rank of a split run: rank 0 runs the prefix and encodes, rank 1 decodes and
runs the suffix.

:func:`run_rank` never raises: it returns the rank's report (a JSON-ready
dict) with ``status`` ``"ok"`` or ``"error"`` and the error message, so that a
failed run is always reported as incomplete, never lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import time
import zlib
from datetime import timedelta

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from rdgap.codecs.baselines import Float16Cast
from rdgap.codecs.coders.container import BitstreamError, unpack
from rdgap.split import SplitModel
from rdgap.validation.corpus import load_documents, split_documents, token_windows
from rdgap.validation.models import load_model

from .codec_spec import describe_mismatch, model_fingerprint, resolve_codec
from .config import SplitRunConfig
from .framing import (BATCH, END, HEADER_BYTES, MAX_BODY_BYTES, body_limit, check_body,
                      framing_bytes, header_fields, pack_body, pack_header, unpack_body)
from .transport import Receiver, Sender, TransportError

WORLD_SIZE = 2


class HandshakeError(ValueError):
    """The two ranks hold different codecs, models or settings."""


def resolve_backend(backend: str) -> str:
    """``auto`` → NCCL when CUDA and NCCL are available, else gloo."""
    if backend == "auto":
        return "nccl" if torch.cuda.is_available() and dist.is_nccl_available() else "gloo"
    return backend


def evaluation_windows(config: SplitRunConfig, tokenizer) -> torch.Tensor:
    """``(batches, batch_size, window_length)`` token ids from evaluation documents.

    Raises
    ------
    ValueError
        If the corpus holds fewer windows than ``batches × batch_size``.
    """
    documents = load_documents(config.corpus)
    _, evaluation = split_documents(len(documents))
    needed = config.batches * config.batch_size
    windows = token_windows(documents, evaluation, tokenizer, config.window_length,
                            max_windows=needed, per_document=8)
    if len(windows) < needed:
        raise ValueError(f"batches: {config.batches} batches × {config.batch_size} windows need "
                         f"{needed} windows of {config.window_length} tokens; the evaluation "
                         f"documents of {config.corpus!r} give {len(windows)}")
    return windows.input_ids.reshape(config.batches, config.batch_size, config.window_length)


def _handshake(identity: dict, rank: int) -> None:
    """Exchange identities (codec id + hash, model fingerprint, settings); fail on mismatch."""
    gathered: list = [None] * WORLD_SIZE
    dist.all_gather_object(gathered, identity)
    other = 1 - rank
    problem = describe_mismatch(identity, gathered[other], rank, other)
    if problem:
        raise HandshakeError(f"start-up: {problem}")


def _digest(data: bytes) -> str:
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def _kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _fp16_reference(hidden: torch.Tensor) -> dict | None:
    """Bytes and coding time of the fp16 cast on the same windows (the comparison)."""
    codec = Float16Cast()
    try:
        start = time.perf_counter()
        streams = [codec.encode(window) for window in hidden]
        middle = time.perf_counter()
        for stream in streams:
            codec.decode(stream)
        end = time.perf_counter()
    except ValueError as error:  # e.g. values outside the float16 range
        return {"error": str(error)}
    tokens = hidden.shape[0] * hidden.shape[1]
    wire = sum(len(s) for s in streams) + framing_bytes(len(streams))
    return {"tokens": tokens, "wire_bytes_per_token": wire / tokens,
            "encode_s_per_token": (middle - start) / tokens,
            "decode_s_per_token": (end - middle) / tokens}


def _run_sender(split, codec, windows, config, device, t0, report) -> None:
    sender = Sender(peer=1, device=device, depth=config.queue)
    fault = config.fault_at()
    hidden = None
    for i in range(config.batches):
        if fault == ("kill-sender", i):
            _kill_self()
        if fault == ("stall", i):
            time.sleep(config.timeout + 2)
            raise RuntimeError(f"batch {i}: injected fault 'stall' (rank 0 stayed silent)")
        start = time.perf_counter()
        hidden = split.prefix(windows[i].to(device))
        middle = time.perf_counter()
        streams = [codec.encode(window) for window in hidden]
        encoded = time.perf_counter()
        if fault == ("corrupt", i):
            broken = bytearray(streams[0])
            broken[len(broken) // 2] ^= 0x10
            streams[0] = bytes(broken)
        if fault == ("forge-shape", i):
            streams[0] = codec.encode(hidden[0].repeat(64, 1))
        body = pack_body(streams)
        header = pack_header(BATCH, i, len(streams), body)
        lie = {("short-frame", i): -4, ("huge-frame", i): 1 << 31}.get(fault)
        if lie is not None:
            header = header_fields(BATCH, i, len(streams), len(body) + lie, zlib.crc32(body))
        waited = sender.send(f"batch {i}", header, body, cut=fault == ("cut", i))
        if fault == ("cut", i):
            sender.drain()  # the header is through; now the stream is cut
            _kill_self()
        report["batches"].append({
            "batch": i, "windows": len(streams), "tokens": hidden.shape[0] * hidden.shape[1],
            "stream_bytes": sum(len(s) for s in streams),
            "wire_bytes": len(header) + len(body),
            "prefix_s": middle - start, "encode_s": encoded - middle, "queue_wait_s": waited,
            "encoded_at_s": encoded - t0, "posted_at_s": time.perf_counter() - t0})
    report["fp16_reference"] = _fp16_reference(hidden.cpu())
    report["posted_all_at_s"] = time.perf_counter() - t0
    report["wire_bytes_sent"] = sender.bytes_sent
    report["status"] = "ok"  # as rank 1 will read it: every batch was posted
    end_body = json.dumps(report).encode()
    sender.send("end of stream", pack_header(END, config.batches, 0, end_body), end_body)
    sender.drain()
    report["end_frame_bytes"] = sender.bytes_sent - report["wire_bytes_sent"]


def state_width(model) -> int | None:
    """Channels of the hidden state at the split (the model config's hidden size), or None."""
    settings = getattr(model, "config", None)
    for name in ("hidden_size", "d_model", "n_embd", "dim"):
        value = getattr(settings, name, None)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _decode_batch(codec, streams: list[bytes], batch: int, window: tuple) -> torch.Tensor:
    """Decode a batch's streams, each checked against the agreed ``window`` shape first.

    ``window`` is ``(tokens, width)``; ``width`` may be None (not known). The
    declared shape is read from the checked container header before the codec
    allocates anything, and the decoded tensor is checked again.
    """
    decoded = []
    for w, stream in enumerate(streams):
        try:
            declared = unpack(stream, codec.codec_id, codec.digest).shape
            if not _agrees(declared, window):
                raise BitstreamError(f"stream declares shape {declared}, the ranks agreed on "
                                     f"{_shape_text(window)}")
            hidden = codec.decode(stream)
            if not _agrees(tuple(hidden.shape), window):
                raise BitstreamError(f"decoded shape {tuple(hidden.shape)}, the ranks agreed "
                                     f"on {_shape_text(window)}")
        except BitstreamError as error:
            raise BitstreamError(f"batch {batch}, window {w}: {error}") from None
        decoded.append(hidden)
    return torch.stack(decoded)


def _agrees(shape: tuple, window: tuple) -> bool:
    return len(shape) == 2 and shape[0] == window[0] and window[1] in (None, shape[1])


def _shape_text(window: tuple) -> str:
    return f"({window[0]}, {window[1] if window[1] is not None else 'width'})"


def _run_receiver(split, codec, config, device, t0, report,
                  width: int | None = None, backend: str = "gloo") -> list[torch.Tensor]:
    max_body = config.max_frame_bytes or (
        body_limit(config.batch_size, config.window_length, width) if width else MAX_BODY_BYTES)
    report["max_frame_bytes"] = max_body
    receiver = Receiver(peer=0, device=device, depth=config.queue, max_body=max_body,
                        exact_sizes=backend == "nccl")
    receiver.start()
    fault = config.fault_at()
    kept, report["stream_digests"] = [], []
    bar = tqdm(total=config.batches, desc="split-run batches", unit="batch",
               disable=not config.progress)
    for i in range(config.batches):
        start = time.perf_counter()
        header, body, received_at = receiver.next_frame(i, config.timeout + 5)
        got = time.perf_counter()
        if header.kind == END:
            raise TransportError(f"batch {i}: rank 0 ended the stream after {i} batches; "
                                 f"{config.batches} were expected")
        streams = unpack_body(body, header)
        if len(streams) != config.batch_size:
            raise BitstreamError(f"batch {i}: frame holds {len(streams)} streams, the ranks "
                                 f"agreed on {config.batch_size} windows per batch")
        if fault == ("kill-receiver", i):
            _kill_self()
        hidden = _decode_batch(codec, streams, i, (config.window_length, width)).to(device)
        decoded = time.perf_counter()
        mask = torch.ones(hidden.shape[:2], dtype=torch.long, device=device)
        logits = split.suffix(hidden, mask)
        done = time.perf_counter()
        if config.verify:
            kept.append(logits)
        report["stream_digests"].append([_digest(s) for s in streams])
        report["batches"].append({
            "batch": i, "windows": len(streams), "tokens": hidden.shape[0] * hidden.shape[1],
            "stream_bytes": sum(len(s) for s in streams),
            "wire_bytes": HEADER_BYTES + len(body),
            "recv_wait_s": got - start, "decode_s": decoded - got, "suffix_s": done - decoded,
            "received_at_s": received_at - t0, "done_at_s": done - t0})
        bar.update()
    report["wall_s"] = time.perf_counter() - t0
    bar.close()
    header, body, _ = receiver.next_frame(config.batches, config.timeout + 5)
    if header.kind != END:
        raise TransportError(f"end of stream: rank 0 sent batch {header.batch} after the "
                             f"{config.batches} batches expected")
    check_body(body, header)
    report["end_frame_bytes"] = HEADER_BYTES + len(body)
    report["wire_bytes_received"] = receiver.bytes_received - report["end_frame_bytes"]
    report["peer"] = json.loads(body)
    receiver.join(timeout=config.timeout)
    return kept


def _verify(split, codec, windows, kept, device, report) -> None:
    """Rank 1's logits against the one-process path with the same codec."""
    results = []
    for i, logits in enumerate(kept):
        hidden = split.prefix(windows[i].to(device))
        streams = [codec.encode(window) for window in hidden]
        same_streams = [_digest(s) for s in streams] == report["stream_digests"][i]
        decoded = torch.stack([codec.decode(s) for s in streams]).to(device)
        mask = torch.ones(decoded.shape[:2], dtype=torch.long, device=device)
        reference = split.suffix(decoded, mask)
        results.append({"batch": i, "streams_equal": same_streams,
                        "logits_equal": bool(torch.equal(reference, logits))})
    report["verification"] = results


def run_rank(config: SplitRunConfig, rank: int, init_method: str = "env://",
             world_size: int = WORLD_SIZE) -> dict:
    """Run one rank of a split run and return its report (never raises).

    Parameters
    ----------
    config : SplitRunConfig
        The run; both ranks must be given equal settings and codecs.
    rank : {0, 1}
        0 runs the prefix and encodes; 1 decodes and runs the suffix.
    init_method : str
        ``torch.distributed`` rendezvous (``env://`` under torchrun, or
        ``tcp://host:port``).
    """
    report: dict = {"rank": rank, "role": "prefix+encode" if rank == 0 else "decode+suffix",
                    "status": "error", "error": None, "batches": []}
    started, t0 = False, None
    try:
        if world_size != WORLD_SIZE:
            raise ValueError(f"world: split-run runs on exactly {WORLD_SIZE} ranks (prefix, "
                             f"suffix), got {world_size}")
        torch.set_num_threads(config.threads or max(1, (os.cpu_count() or 2) // 2))
        backend = resolve_backend(config.backend)
        device = torch.device(f"cuda:{int(os.environ.get('LOCAL_RANK', rank))}"
                              if backend == "nccl" else "cpu")
        report["backend"], report["device"] = backend, str(device)
        dist.init_process_group(backend, init_method=init_method, rank=rank,
                                world_size=world_size,
                                timeout=timedelta(seconds=config.timeout))
        started = True
        from transformers.utils import logging as transformers_logging

        transformers_logging.disable_progress_bar()  # one bar per rank would garble the output
        loaded = load_model(config.model, config.cache_dir)
        split = SplitModel(loaded.model.to(device), config.split)
        codec = resolve_codec(config.codec)
        windows = evaluation_windows(config, loaded.tokenizer)
        identity = config.identity() | {"backend": backend, "codec_id": codec.codec_id,
                                        "codec_hash": codec.digest.hex(),
                                        "model_fingerprint": model_fingerprint(loaded.model)}
        report["identity"] = identity
        _handshake(identity, rank)
        dist.barrier()
        t0 = time.perf_counter()
        if rank == 0:
            _run_sender(split, codec, windows, config, device, t0, report)
        else:
            kept = _run_receiver(split, codec, config, device, t0, report,
                                 width=state_width(loaded.model), backend=backend)
            if config.verify:
                _verify(split, codec, windows, kept, device, report)
        report["status"] = "ok"
    except BaseException as error:  # reported, never lost: the run is then incomplete
        report["status"] = "error"
        report["error"] = f"rank {rank}: {type(error).__name__}: {error}"
        if t0 is not None:  # how long after the start of streaming the failure surfaced
            report["error_after_s"] = time.perf_counter() - t0
    if started and report["status"] == "ok":
        dist.destroy_process_group()
    return report
