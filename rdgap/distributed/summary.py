"""Merge the two ranks' reports into the split-run summary, and print it.

Summary JSON (``schema`` ``"rdgap.split-run/1"``)::

    complete        true only when both ranks finished every batch and the bytes
                    counted on both sides equal the streams plus the framing
    exact           rank 1's logits equal the one-process path (torch.equal) for
                    every batch; null when verification was off or incomplete
    errors          {rank: message} of every rank that failed
    error_after_s   {rank: seconds from the start of streaming to its failure}
    config, identity, framing (bytes per frame header and per stream, of the END
                    frame, and the largest frame body rank 1 accepted)
    batches         per batch: windows, tokens, stream_bytes, wire_bytes, prefix_s,
                    encode_s, queue_wait_s, recv_wait_s, decode_s, suffix_s, and the
                    times (s since the start barrier) rank 0 finished encoding it and
                    rank 1 received and finished it; logits_equal, streams_equal
    totals          tokens, stream_bytes, framing_bytes, wire_bytes_sent/received,
                    bytes_check, wire_bytes_per_token, stream_bits_per_token, wall_s,
                    tokens_per_s, stage sums, overlap
    fp16_reference  wire bytes and encode/decode seconds per token of the fp16 cast
    links           per link rate: predicted end-to-end seconds and tokens/s of this
                    codec and of fp16 transfer, and whether the codec pays off
    break_even      link rate below which the codec beats fp16 transfer

The link model replays the measured per-batch stage times through a three-stage
pipeline (rank 0 compute → link → rank 1 compute), each stage starting a
batch when it has finished the previous one and the batch has left the stage
before: ``f_s(i) = max(f_s(i-1), f_{s-1}(i)) + t_s(i)``. The link stage of a
batch lasts ``8 · wire_bytes / rate``; fp16 transfer replaces the codec's
encode/decode time and bytes by the fp16 cast's, measured on the same windows.
Latency and protocol overheads of a real network are not modelled.
"""

from __future__ import annotations

import math

from .framing import HEADER_BYTES, LENGTH_BYTES, framing_bytes

SCHEMA = "rdgap.split-run/1"
LINKS = {"1 Gbit/s": 1e9, "100 Mbit/s": 1e8, "10 Mbit/s": 1e7}


def pipeline_seconds(*stages: list[float]) -> float:
    """End-to-end time of batches through stages run one after another per batch,
    different stages concurrently (finish-time recursion of a flow shop)."""
    finish = [0.0] * len(stages)
    for i in range(len(stages[0])):
        previous = 0.0
        for s, times in enumerate(stages):
            finish[s] = max(finish[s], previous) + times[i]
            previous = finish[s]
    return finish[-1]


def _link_times(batches: list[dict], fp16: dict, rate: float) -> tuple[float, float]:
    """Predicted end-to-end seconds with the codec and with fp16 transfer."""
    send = [b["prefix_s"] + b["encode_s"] for b in batches]
    link = [8 * b["wire_bytes"] / rate for b in batches]
    receive = [b["decode_s"] + b["suffix_s"] for b in batches]
    codec = pipeline_seconds(send, link, receive)
    send16 = [b["prefix_s"] + b["tokens"] * fp16["encode_s_per_token"] for b in batches]
    link16 = [8 * b["tokens"] * fp16["wire_bytes_per_token"] / rate for b in batches]
    receive16 = [b["tokens"] * fp16["decode_s_per_token"] + b["suffix_s"] for b in batches]
    return codec, pipeline_seconds(send16, link16, receive16)


def break_even(batches: list[dict], fp16: dict) -> dict:
    """Link rate (bit/s) below which the codec is faster end to end than fp16 transfer.

    ``serial_bit_per_s`` compares one token's encode + transfer + decode
    (``8 Δbytes / (Δ coding seconds)``); ``pipelined_bit_per_s`` solves the
    pipeline model of :func:`pipeline_seconds` by bisection on log-rate.
    """
    tokens = sum(b["tokens"] for b in batches)
    coding = sum(b["encode_s"] + b["decode_s"] for b in batches) / tokens
    coding16 = fp16["encode_s_per_token"] + fp16["decode_s_per_token"]
    saved_bits = 8 * (fp16["wire_bytes_per_token"]
                      - sum(b["wire_bytes"] for b in batches) / tokens)
    result = {"saved_bits_per_token": saved_bits,
              "extra_coding_s_per_token": coding - coding16}
    if saved_bits <= 0:
        result |= {"serial_bit_per_s": None, "pipelined_bit_per_s": None,
                   "note": "never: the codec sends no fewer bytes than fp16"}
        return result
    if coding <= coding16:
        result["serial_bit_per_s"] = None
        result["note"] = "at every link rate: fewer bytes and no more coding time than fp16"
    else:
        result["serial_bit_per_s"] = saved_bits / (coding - coding16)
    def gain(rate: float) -> float:  # > 0 where the codec is faster than fp16 transfer
        codec_s, fp16_s = _link_times(batches, fp16, rate)
        return fp16_s - codec_s

    low, high = 1e3, 1e13
    if gain(high) > 0:
        result["pipelined_bit_per_s"] = None
        result.setdefault("note", "pipelined: pays off at every link rate up to 10 Tbit/s")
    elif gain(low) <= 0:
        result["pipelined_bit_per_s"] = 0.0
    else:
        for _ in range(60):
            middle = math.sqrt(low * high)
            low, high = (middle, high) if gain(middle) > 0 else (low, middle)
        result["pipelined_bit_per_s"] = low
    return result


def _merge_batches(sent: list[dict], received: list[dict], checks: list[dict]) -> list[dict]:
    by_index: dict[int, dict] = {}
    for source in (sent, received, checks):
        for row in source:
            by_index.setdefault(row["batch"], {}).update(row)
    return [by_index[i] for i in sorted(by_index)]


def summarize(reports: dict[int, dict], config: dict) -> dict:
    """The summary of a split run from the reports of rank 0 and rank 1.

    Parameters
    ----------
    reports : {rank: report}
        What :func:`rdgap.distributed.worker.run_rank` returned on each rank (a
        rank that died is given as ``{"status": "error", "error": ...}``). When
        rank 0's report is missing, the copy that rank 1 received with the
        end-of-stream frame is used.
    config : dict
        The run's settings (``dataclasses.asdict`` of the config).
    """
    receiver = reports.get(1) or {}
    sender = reports.get(0) or receiver.get("peer") or {}
    errors = {str(rank): r.get("error") for rank, r in sorted(reports.items())
              if r.get("status") != "ok"}
    error_after = {str(rank): r["error_after_s"] for rank, r in sorted(reports.items())
                   if "error_after_s" in r}
    for rank, report in ((0, sender), (1, receiver)):
        if not report and str(rank) not in errors:
            errors[str(rank)] = (f"no report from rank {rank} (it failed, or the run stopped "
                                 f"before its report arrived)")
    received = receiver.get("batches", [])
    batches = _merge_batches(sender.get("batches", []), received,
                             receiver.get("verification", []))
    stream_bytes = sum(b["stream_bytes"] for b in received)
    framing = sum(framing_bytes(b["windows"]) for b in received)
    sent_bytes = sender.get("wire_bytes_sent")
    received_bytes = receiver.get("wire_bytes_received")
    bytes_check = sent_bytes is not None and sent_bytes == received_bytes == \
        stream_bytes + framing
    complete = (not errors and len(received) == config["batches"] and bytes_check
                and all("prefix_s" in b and "suffix_s" in b for b in batches))
    checks = receiver.get("verification")
    exact = None
    if complete and checks is not None and len(checks) == config["batches"]:
        exact = all(c["logits_equal"] and c["streams_equal"] for c in checks)
    summary = {
        "schema": SCHEMA, "complete": complete, "exact": exact, "errors": errors,
        "error_after_s": error_after,
        "config": config, "identity": receiver.get("identity") or sender.get("identity"),
        "backend": receiver.get("backend") or sender.get("backend"),
        "framing": {"frame_header_bytes": HEADER_BYTES, "per_stream_bytes": LENGTH_BYTES,
                    "end_frame_bytes": receiver.get("end_frame_bytes"),
                    "max_frame_bytes": receiver.get("max_frame_bytes")},
        "batches": batches, "fp16_reference": sender.get("fp16_reference"),
    }
    tokens = sum(b["tokens"] for b in received)
    if not complete or not tokens:
        return summary
    wall = receiver["wall_s"]
    stages = {name: sum(b[name] for b in batches)
              for name in ("prefix_s", "encode_s", "decode_s", "suffix_s")}
    stage_sum = sum(stages.values())
    pipelined = sum(1 for previous, current in zip(batches, batches[1:])
                    if current["encoded_at_s"] < previous["done_at_s"])
    summary["totals"] = {
        "tokens": tokens, "stream_bytes": stream_bytes, "framing_bytes": framing,
        "wire_bytes_sent": sent_bytes, "wire_bytes_received": received_bytes,
        "bytes_check": bytes_check, "wire_bytes_per_token": (stream_bytes + framing) / tokens,
        "stream_bits_per_token": 8 * stream_bytes / tokens, "wall_s": wall,
        "tokens_per_s": tokens / wall, **stages, "stage_sum_s": stage_sum,
        "overlap_s": stage_sum - wall,
        "batches_encoded_before_previous_done": pipelined}
    fp16 = summary["fp16_reference"]
    if fp16 and "error" not in fp16:
        summary["links"] = {}
        for name, rate in LINKS.items():
            codec_s, fp16_s = _link_times(batches, fp16, rate)
            summary["links"][name] = {
                "bit_per_s": rate, "predicted_s": codec_s, "tokens_per_s": tokens / codec_s,
                "fp16_predicted_s": fp16_s, "fp16_tokens_per_s": tokens / fp16_s,
                "pays_off": codec_s < fp16_s}
        summary["break_even"] = break_even(batches, fp16)
    return summary


def _rate(value: float | None) -> str:
    if value is None:  # where bytes are saved: no rate up to which fp16 is faster
        return "any rate"
    for unit, scale in (("Gbit/s", 1e9), ("Mbit/s", 1e6), ("kbit/s", 1e3)):
        if value >= scale:
            return f"{value / scale:.3g} {unit}"
    return f"{value:.3g} bit/s"


def format_summary(summary: dict) -> str:
    """A readable table of a summary: batches, totals, links, break-even, status."""
    config = summary["config"]
    identity = summary.get("identity") or {}
    lines = [f"split-run: model {config['model']} split {config['split']} codec "
             f"{identity.get('codec_id', config['codec'])} backend {summary.get('backend')}"]
    lines.append(f"{'batch':>5} {'tokens':>6} {'wire B':>9} {'prefix s':>8} {'enc s':>7} "
                 f"{'dec s':>7} {'suffix s':>8} {'encoded@':>8} {'done@':>7} {'exact':>5}")
    for b in summary["batches"]:
        def cell(key, width, fmt=".3f"):
            return f"{b[key]:>{width}{fmt}}" if key in b else f"{'—':>{width}}"
        exact = {True: "yes", False: "NO"}.get(b.get("logits_equal"), "—")
        lines.append(f"{b['batch']:>5} {cell('tokens', 6, 'd')} {cell('wire_bytes', 9, 'd')} "
                     f"{cell('prefix_s', 8)} {cell('encode_s', 7)} {cell('decode_s', 7)} "
                     f"{cell('suffix_s', 8)} {cell('encoded_at_s', 8, '.2f')} "
                     f"{cell('done_at_s', 7, '.2f')} {exact:>5}")
    totals = summary.get("totals")
    if totals:
        lines.append(f"tokens {totals['tokens']}  wall {totals['wall_s']:.2f} s  "
                     f"{totals['tokens_per_s']:.1f} tokens/s  "
                     f"{totals['wire_bytes_per_token']:.1f} wire bytes/token "
                     f"({totals['stream_bits_per_token']:.0f} stream bits/token)  "
                     f"bytes sent = received = streams + framing: {totals['bytes_check']}")
        lines.append(f"stages sum {totals['stage_sum_s']:.2f} s vs wall {totals['wall_s']:.2f} s"
                     f" (overlap {totals['overlap_s']:.2f} s; "
                     f"{totals['batches_encoded_before_previous_done']} batches encoded on "
                     f"rank 0 before rank 1 finished the previous one)")
    for name, link in summary.get("links", {}).items():
        lines.append(f"  at {name:>10}: {link['tokens_per_s']:8.1f} tokens/s "
                     f"(fp16 transfer {link['fp16_tokens_per_s']:8.1f})  "
                     f"{'pays off' if link['pays_off'] else 'does not pay off'}")
    if "break_even" in summary:
        even = summary["break_even"]
        if even["saved_bits_per_token"] <= 0:
            lines.append("  never pays off vs fp16: it sends no fewer bytes")
        else:
            lines.append(f"  pays off vs fp16 below: {_rate(even['serial_bit_per_s'])} "
                         f"(serial), {_rate(even['pipelined_bit_per_s'])} (pipelined)"
                         + (f"; {even['note']}" if even.get("note") else ""))
    status = "complete" if summary["complete"] else "INCOMPLETE"
    exact = {True: "logits equal the one-process path", False: "LOGITS DIFFER from the "
             "one-process path", None: "logits not verified"}[summary["exact"]]
    lines.append(f"status: {status}; {exact}")
    for rank, error in summary["errors"].items():
        lines.append(f"  rank {rank} error: {error}")
    return "\n".join(lines)
