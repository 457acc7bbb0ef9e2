"""Frames over ``torch.distributed``: bounded non-blocking sends, a receiving thread.

Rank 0 hands each frame to :class:`Sender`, which posts ``isend`` for the
header and the body and keeps at most ``queue`` frames in flight, so the
caller encodes the next batch while earlier ones travel. Rank 1 runs
:class:`Receiver`, a thread that receives frames into a bounded queue while the
main thread decodes and runs the suffix. Every wait is bounded by the process
group's timeout; a peer that dies closes the connection and fails the pending
operation at once. Failures surface as :class:`TransportError` naming the batch.

Every body travels in messages of at most :data:`~rdgap.distributed.framing.CHUNK_BYTES`.
Under gloo the receiver posts one buffer of that size for every message (the
header included): gloo accepts a shorter message into a longer buffer but
aborts the process (``SIGABRT``) on a longer one, so a header whose
``body_len`` lies — forged, or from a sender with a bug — can no longer kill
rank 1; the frame's body CRC and lengths table then name the damage. NCCL
needs equal sizes on both sides, so under NCCL the receiver posts the declared
sizes (a lying ``body_len`` there ends in the process group's timeout).
Memory on rank 1 grows with the bytes that arrive, never with what a header
declares beyond its limit.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque

import numpy as np
import torch
import torch.distributed as dist

from .framing import (CHUNK_BYTES, END, END_BODY_BYTES, HEADER_BYTES, MAX_BODY_BYTES,
                      FrameHeader, unpack_header)

DATA_TAG = 7


class TransportError(RuntimeError):
    """The link to the other rank failed: it died, was cut, or went silent."""


def as_tensor(data: bytes, device: torch.device) -> torch.Tensor:
    """Bytes as a uint8 tensor on ``device`` (what send/recv move)."""
    return torch.frombuffer(bytearray(data), dtype=torch.uint8).to(device)


def _explain(error: Exception, action: str, peer: int) -> TransportError:
    text = str(error).splitlines()[0] if str(error) else type(error).__name__
    if "timed out" in text.lower() or "timeout" in text.lower():
        cause = f"rank {peer} sent nothing within the timeout (alive but silent, or stalled)"
    elif "closed" in text.lower() or "reset" in text.lower() or "broken pipe" in text.lower():
        cause = f"rank {peer} closed the connection (it crashed, was killed, or stopped)"
    else:
        cause = f"the link to rank {peer} failed"
    return TransportError(f"{action}: {cause} [{text}]")


class Sender:
    """Non-blocking sends of frames with at most ``depth`` frames in flight."""

    def __init__(self, peer: int, device: torch.device, depth: int):
        self.peer, self.device, self.depth = peer, device, depth
        self.pending: deque = deque()
        self.bytes_sent = 0

    def send(self, label: str, header: bytes, body: bytes, cut: bool = False) -> float:
        """Post one frame; returns the seconds spent waiting for room in the queue.

        With ``cut`` the header is sent and the body never is (fault injection):
        the caller then dies.
        """
        waited = self._wait_for_room(self.depth - 1)
        tensors = [as_tensor(header, self.device)]
        if body and not cut:
            tensors += [as_tensor(body[at:at + CHUNK_BYTES], self.device)
                        for at in range(0, len(body), CHUNK_BYTES)]
        try:
            works = [dist.isend(t, self.peer, tag=DATA_TAG) for t in tensors]
        except RuntimeError as error:
            raise _explain(error, f"{label}: sending to rank {self.peer}", self.peer) from None
        self.bytes_sent += sum(t.numel() for t in tensors)
        self.pending.append((label, works, tensors))
        return waited

    def drain(self) -> float:
        """Wait until every posted frame has been received."""
        return self._wait_for_room(0)

    def _wait_for_room(self, allowed: int) -> float:
        start = time.perf_counter()
        while len(self.pending) > allowed:
            label, works, _ = self.pending.popleft()
            try:
                for work in works:
                    work.wait()
            except RuntimeError as error:
                raise _explain(error, f"{label}: waiting for rank {self.peer} to receive it",
                               self.peer) from None
        return time.perf_counter() - start


class Receiver(threading.Thread):
    """Receives frames from ``peer`` into a bounded queue until an END frame.

    Items put on :attr:`frames` are ``(header, body bytes, received_at)``
    tuples, or the exception that stopped the thread.

    Parameters
    ----------
    peer, device, depth
        The sending rank, where buffers live, frames queued at most.
    max_body, max_end_body : int
        Largest BATCH / END body accepted; a header declaring more is refused
        before anything is allocated for its body.
    exact_sizes : bool
        Post each message's declared size (NCCL) instead of one
        :data:`CHUNK_BYTES` buffer for every message (gloo).
    """

    def __init__(self, peer: int, device: torch.device, depth: int,
                 max_body: int = MAX_BODY_BYTES, max_end_body: int = END_BODY_BYTES,
                 exact_sizes: bool = False):
        super().__init__(name="rdgap-split-run-receiver", daemon=True)
        self.peer, self.device = peer, device
        self.max_body, self.max_end_body = max_body, max_end_body
        self.frames: queue.Queue = queue.Queue(maxsize=depth)
        self.bytes_received = 0
        self.exact_sizes = exact_sizes
        self._buffer = None if exact_sizes else torch.empty(CHUNK_BYTES, dtype=torch.uint8,
                                                            device=device)

    def _recv(self, size: int, label: str) -> bytes:
        buffer = (torch.empty(size, dtype=torch.uint8, device=self.device)
                  if self.exact_sizes else self._buffer)
        try:
            dist.recv(buffer, self.peer, tag=DATA_TAG)
        except RuntimeError as error:
            raise _explain(error, f"{label}: receiving from rank {self.peer}", self.peer) \
                from None
        self.bytes_received += size
        return np.asarray(buffer[:size].cpu()).tobytes()

    def _recv_body(self, size: int, label: str) -> bytes:
        body = bytearray()
        while len(body) < size:
            body += self._recv(min(CHUNK_BYTES, size - len(body)), label)
        return bytes(body)

    def run(self) -> None:
        batch = 0
        try:
            while True:
                header: FrameHeader = unpack_header(
                    self._recv(HEADER_BYTES, f"batch {batch}: frame header"), batch,
                    self.max_body, self.max_end_body)
                body = self._recv_body(header.body_len, f"batch {batch}: frame body "
                                       f"({header.body_len} bytes)")
                self.frames.put((header, body, time.perf_counter()))
                if header.kind == END:
                    return
                batch += 1
        except BaseException as error:  # handed to the main thread, which raises it
            self.frames.put(error)

    def next_frame(self, batch: int, timeout: float):
        """The next frame; raises what stopped the receiver, or TransportError on timeout."""
        try:
            item = self.frames.get(timeout=timeout)
        except queue.Empty:
            raise TransportError(f"batch {batch}: nothing arrived from rank {self.peer} within "
                                 f"{timeout:.0f} s") from None
        if isinstance(item, BaseException):
            raise item
        return item
