"""The prepared check for a lent GPU (issue 4, ``benchmarks/gpu_check``): the torch rANS
coder and the joint codecs' torch path on CUDA against the CPU, and CUDA throughput.

    python benchmarks/gpu_check.py [--model auto|tiny|smollm2] [--device cuda|cpu]
                                   [--windows 64] [--out DIR]
                                   [--rans-only | --joint-only | --wrappers-only]

Checks, each printed and written to ``gpu_check.json`` under ``--out`` (default: ``$OUT``
when set):

1. :mod:`rdgap.codecs.coders.rans_torch` (what ``gpu_check_rans.py`` checked): identical bytes
   encoded on the device and on the CPU, each decoding the other's streams exactly,
   lanes 1/16/256; device throughput for 8 and 64 streams.
2. The joint codecs ``klt-context`` and ``klt-context-tokens``
   (:class:`rdgap.codecs.coders.torch_context.TorchContextCodec`), fitted at THEORY.md T7's step
   scale for ΔCE 0.05 (no calibration) on SmolLM2-135M split 15 when its rdgap cache is
   present (``auto``), else on split 2 of a tiny random Llama: the symbols and side
   latents of the device's causal loop against the CPU's and the constriction codec's;
   whether the device and the CPU write identical bytes; each side's streams decoded on
   the other side (the same symbols, read from the stream, and a reconstruction within the
   tests' tolerance of the CPU codec's ``reconstruct``); device throughput of
   ``encode_batch`` / ``decode_batch`` for ``--windows`` windows at lanes 16/64/256.
3. The window wrappers of ``klt-context`` on the torch coder
   (:class:`rdgap.codecs.coders.torch_window.TorchWindowCodec`): the rate-capped format
   (``Recipe.fit``'s default) at a cap that binds on some windows, and a window-controlled
   codec (a stand-in Fisher, the identity, at a level near the base's own): the same
   ladder index and bytes on the device and the CPU, each side's streams decoded on the
   other side within tolerance of the CPU wrapper's reconstruction.

4. The shift guard on the torch coder (:class:`rdgap.codecs.coders.torch_guard.
   TorchShiftGuardedCodec`, issue 19): ``klt-context`` rate-capped at two caps as the
   primary and the fallback behind a detector on four channels whose threshold sends
   about half the windows to the fallback: the same header byte (the chosen sub-codec)
   and bytes on the device and the CPU, each side's streams decoded on the other side
   within tolerance of the CPU guard's reconstruction.

Exits 0 with a message when CUDA is not available (``--device cuda``); ``--device cpu``
runs every check with the CPU as the "device" (a self-check of this script's logic).
Exits non-zero (AssertionError) when a stream does not decode on the other side to the
same symbols or within tolerance. Budget: well under 5 minutes on an H200.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

from codec_throughput import joint_codecs, smollm2_windows   # sibling benchmark scripts
from rans_torch_throughput import TOKENS, workload
from rdgap.codecs.coders import rans_torch as rt
from rdgap.codecs.coders.torch_context import TorchContextCodec

#: Decoded values may differ between devices by float64 rounding of the prediction m_t,
#: which can move the last float32 bit (tests/codecs/test_torch_context.py): 4 float32
#: ulps of each value plus 1e-6 of the window's largest magnitude.
RTOL, ATOL_FRACTION = 4 * 2.0 ** -24, 1e-6


def require(condition: bool, message: str) -> None:
    """Raise RuntimeError with ``message`` unless ``condition`` (a check that ``python -O``
    cannot strip, unlike ``assert``)."""
    if not condition:
        raise RuntimeError(f"gpu_check failed: {message}")


def timed(function, device: torch.device, repeat: int = 3):
    """The result and the best wall time of ``repeat`` runs (synchronising CUDA)."""
    best = float("inf")
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = function()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - start)
    return result, best


def check_rans(device: torch.device) -> dict:
    """Identical bytes on ``device`` and the CPU, cross-device decoding, throughput."""
    report = {"cross_device": [], "throughput": []}
    _, freq, full, full_table = workload(streams=4, seed=1)
    for lanes in (1, 16, 256):
        n = 8192 if lanes == 1 else full.shape[1]  # one lane: one sequential step per symbol
        symbols, table = full[:, :n], full_table[:n]
        on_cpu = rt.encode(symbols, table, freq, lanes=lanes)
        on_device = rt.encode(symbols.to(device), table.to(device), freq.to(device), lanes=lanes)
        require(on_cpu == on_device, f"rans lanes={lanes}: device and CPU bytes differ")
        back_cpu = rt.decode(on_device, n, table, freq, lanes=lanes, device="cpu")
        back_device = rt.decode(on_cpu, n, table.to(device), freq.to(device), lanes=lanes,
                                device=device)
        require(torch.equal(back_cpu, symbols), f"rans lanes={lanes}: CPU decode of device bytes")
        require(torch.equal(back_device.cpu(), symbols),
                f"rans lanes={lanes}: device decode of CPU bytes")
        report["cross_device"].append({"lanes": lanes, "symbols": symbols.numel(),
                                       "identical_bytes": True, "cross_decode_exact": True})
        print(f"rans lanes={lanes:4d}: identical bytes on {device.type} and CPU; cross-device "
              f"decode exact")
    for streams in (8, 64):
        _, freq, symbols, table = workload(streams=streams, seed=2)
        s, t, f = symbols.to(device), table.to(device), freq.to(device)
        count = symbols.numel()
        for lanes in (16, 64, 256):
            data, t_enc = timed(lambda: rt.encode(s, t, f, lanes=lanes), device)
            out, t_dec = timed(lambda: rt.decode(data, symbols.shape[1], t, f, lanes=lanes,
                                                 device=device), device)
            require(torch.equal(out.cpu(), symbols), f"rans lanes={lanes}: device round trip")
            row = {"streams": streams, "lanes": lanes, "encode_msym_s": count / t_enc / 1e6,
                   "decode_msym_s": count / t_dec / 1e6,
                   "flush_bits_per_token": 64 * lanes / TOKENS}
            report["throughput"].append(row)
            print(f"rans {device.type} streams={streams:3d} lanes={lanes:4d}: encode "
                  f"{row['encode_msym_s']:7.2f} M symbols/s, decode {row['decode_msym_s']:7.2f} "
                  f"M symbols/s, flush <= {row['flush_bits_per_token']:.1f} bits/token")
    return report


def joint_models(choice: str, windows: int):
    """``(description, [klt-context, klt-context-tokens], hidden, ids)``: the fitted joint
    codecs and ``windows`` evaluation windows (CPU tensors)."""
    from rdgap.split import SplitModel
    from rdgap.paths import cache_dir
    from rdgap.validation.models import CACHE_FORMAT, DEFAULT_MODEL, tiny_llama

    cached = (cache_dir() / "models" / f"{DEFAULT_MODEL}-v{CACHE_FORMAT}" /
              "rdgap_cache.json").is_file()
    if choice == "smollm2" or (choice == "auto" and cached):
        split, fit_ids, fit_hidden, ids = smollm2_windows(15, 10, min(windows, 16))
        hidden = split.prefix(ids)
        name = f"SmolLM2-135M split 15, {len(ids)} evaluation windows × 256"
    else:
        split = SplitModel(tiny_llama(num_layers=4, hidden_size=64, vocab_size=128, seed=0), 2)
        generator = torch.Generator().manual_seed(0)
        fit_ids = torch.randint(0, 128, (16, 128), generator=generator)
        ids = torch.randint(0, 128, (min(windows, 32), 128), generator=generator)
        with torch.no_grad():
            fit_hidden, hidden = split.prefix(fit_ids), split.prefix(ids)
        name = f"tiny Llama (64 channels) split 2, {len(ids)} windows × 128"
    models = joint_codecs(split, fit_hidden, fit_ids, 0.05)
    return name, models, hidden.detach(), ids


def _max_excess(decoded: torch.Tensor, expected: torch.Tensor) -> float:
    """Largest ``|a − b| / (atol + rtol·|b|)`` over a batch (≤ 1: within tolerance)."""
    atol = ATOL_FRACTION * expected.abs().flatten(1).amax(1)[:, None, None]
    return float(((decoded - expected).abs() / (atol + RTOL * expected.abs())).max())


def check_joint(model, hidden: torch.Tensor, ids, device: torch.device, windows: int) -> dict:
    """Device against CPU for one fitted joint codec (see the module docstring)."""
    tokens_codec = model.codec_id == "klt-context-tokens"
    ids = ids if tokens_codec else None
    cpu, dev = TorchContextCodec(model, "cpu"), TorchContextCodec(model, device)
    name = model.codec_id.replace("-laplace", "")
    q_cpu, q_dev = cpu.quantize(hidden, ids), dev.quantize(hidden.to(device), ids)
    differing = {part: int((getattr(q_cpu, part) != getattr(q_dev, part).cpu()).sum())
                 for part in ("first", "side", "symbols")}
    constriction = 0
    for b in range(min(4, len(hidden))):        # the CPU (constriction) codec's quantizer
        offset = model.offsets(ids[b].numpy()) if tokens_codec else None
        first, result, _ = model._code(hidden[b], offset)
        constriction += int((q_dev.symbols[b].cpu().numpy() != result.symbols[0]).sum()
                            + (q_dev.side[b].cpu().numpy() != result.side[0]).sum()
                            + (q_dev.first[b].cpu().numpy() != first).sum())
    on_cpu, on_device = cpu.encode_batch(hidden, ids), dev.encode_batch(hidden, ids)
    identical = sum(a == b for a, b in zip(on_cpu, on_device))
    extra = (lambda b: {"input_ids": ids[b]}) if tokens_codec else (lambda b: {})
    reference = torch.stack([model.reconstruct(hidden[b], **extra(b))
                             for b in range(len(hidden))])
    excess = {}
    for label, codec, streams in (("cpu_decodes_device", cpu, on_device),
                                  ("device_decodes_cpu", dev, on_cpu),
                                  ("device_decodes_device", dev, on_device)):
        decoded, decoded_ids = codec.decode_batch_with_ids(streams)
        if tokens_codec:
            require(torch.equal(decoded_ids, ids), f"{name} {label}: token ids differ")
        excess[label] = _max_excess(decoded, reference)
        require(excess[label] <= 1.0, f"{name} {label}: reconstruction beyond tolerance")
    holds = ("bit-identical bytes on both devices" if identical == len(hidden) else
             f"bytes differ in {len(hidden) - identical} of {len(hidden)} windows; each "
             f"decodes on the other device within tolerance")
    print(f"{name}: symbols differing device vs CPU {differing}, vs constriction codec "
          f"{constriction}; {holds}; max error / tolerance {max(excess.values()):.3g}")
    report = {"codec": name, "windows": len(hidden), "symbols_differing": differing,
              "symbols_differing_from_constriction_codec": constriction,
              "identical_streams": identical, "holds": holds, "error_over_tolerance": excess,
              "throughput": []}
    repeat = -(-windows // len(hidden))
    batch = hidden.repeat(repeat, 1, 1)[:windows].to(device)
    batch_ids = None if ids is None else ids.repeat(repeat, 1)[:windows].to(device)
    symbols = batch.numel()
    for lanes in (16, 64, 256):
        codec = TorchContextCodec(model, device, lanes=lanes)
        streams, t_enc = timed(lambda: codec.encode_batch(batch, batch_ids), device, 2)
        _, t_dec = timed(lambda: codec.decode_batch(streams), device, 2)
        row = {"lanes": lanes, "windows": windows, "encode_s": t_enc, "decode_s": t_dec,
               "encode_msym_s": symbols / t_enc / 1e6, "decode_msym_s": symbols / t_dec / 1e6,
               "encode_ktok_s": batch.shape[0] * batch.shape[1] / t_enc / 1e3,
               "decode_ktok_s": batch.shape[0] * batch.shape[1] / t_dec / 1e3,
               "bits_per_token": 8 * sum(map(len, streams)) / (batch.shape[0] * batch.shape[1])}
        report["throughput"].append(row)
        print(f"{name} {device.type} {windows} windows lanes={lanes:4d}: encode "
              f"{row['encode_msym_s']:6.2f} M symbols/s ({row['encode_ktok_s']:.1f} k tokens/s), "
              f"decode {row['decode_msym_s']:6.2f} M symbols/s ({row['decode_ktok_s']:.1f} "
              f"k tokens/s), {row['bits_per_token']:.0f} bits/token")
    return report


def _cross_decode(cpu, dev, on_cpu, on_device, reference: torch.Tensor) -> dict:
    """Each side's streams decoded on the other side: the largest error over tolerance
    against ``reference`` per direction (required ≤ 1)."""
    excess = {}
    for label, codec, streams in (("cpu_decodes_device", cpu, on_device),
                                  ("device_decodes_cpu", dev, on_cpu)):
        decoded = torch.stack([codec.decode(d) for d in streams])
        excess[label] = _max_excess(decoded, reference)
        require(excess[label] <= 1.0, f"{cpu.codec_id} {label}: beyond tolerance")
    return excess


def check_wrappers(model, hidden: torch.Tensor, device: torch.device) -> list[dict]:
    """Device against CPU for the rate-capped and window-controlled formats of ``model``
    (klt-context) on the torch coder (see the module docstring)."""
    import numpy as np

    from rdgap.codecs.coders.torch_window import TorchWindowCodec
    from rdgap.codecs.quantizers.rate_cap import RateCappedCodec
    from rdgap.codecs.quantizers.window_control import WindowControlledCodec
    from rdgap.codecs.quantizers.window_ladder import window_header

    windows = hidden[:8]
    tokens = windows.shape[1]
    rates = [8 * len(TorchContextCodec(model).encode(w)) / tokens for w in windows]
    eye = np.eye(model.channels)
    probe = WindowControlledCodec(model, eye, np.ones(model.channels), 1.0, 1.0, 1e9)
    level = float(np.median([probe.predicted_delta_ce(w, model.reconstruct(w))
                             for w in windows]))
    wrappers = [RateCappedCodec(model, float(np.median(rates))),
                WindowControlledCodec(model, eye, np.ones(model.channels), level, 1.0,
                                      1.2 * float(np.median(rates)))]
    reports = []
    for wrapper in wrappers:
        cpu, dev = TorchWindowCodec(wrapper, "cpu"), TorchWindowCodec(wrapper, device)
        on_cpu = [cpu.encode(w) for w in windows]
        on_device = [dev.encode(w) for w in windows]   # coded on the device
        headers = [window_header(d) for d in on_cpu]
        require(headers == [window_header(d) for d in on_device],
                f"{cpu.codec_id}: ladder indices differ between the device and the CPU")
        identical = sum(a == b for a, b in zip(on_cpu, on_device))
        # what decoding returns: the CPU model's reconstruction at the torch stream's
        # factor (the cap is decided on the torch coder's own bytes)
        reference = torch.stack([cpu.reconstruct(w) for w in windows])
        decided = [wrapper.decide(w) for w in windows]
        as_cpu = sum((d[:2] if isinstance(d, tuple) else (d.index, d.flags)) == h[::-1]
                     for d, h in zip(decided, headers))
        excess = _cross_decode(cpu, dev, on_cpu, on_device, reference)
        binds = sum(bool(flags & 1) for flags, _ in headers)
        print(f"{cpu.codec_id}: cap binds on {binds} of {len(windows)} windows; the "
              f"constriction coder's factor on {as_cpu}; identical bytes on both devices in "
              f"{identical} of {len(windows)}; max error / tolerance "
              f"{max(excess.values()):.3g}")
        require(identical == len(windows), f"{cpu.codec_id}: device and CPU bytes differ")
        reports.append({"codec": cpu.codec_id, "windows": len(windows), "cap_binds": binds,
                        "factor_as_constriction_coder": as_cpu,
                        "identical_streams": identical, "error_over_tolerance": excess})
    return reports


def check_guard(model, hidden: torch.Tensor, device: torch.device) -> dict:
    """Device against CPU for a shift-guarded ``model`` (klt-context) on the torch coder
    (see the module docstring, item 4)."""
    import numpy as np

    from rdgap.codecs.coders.container import unpack
    from rdgap.codecs.coders.torch_guard import TorchShiftGuardedCodec
    from rdgap.codecs.quantizers.rate_cap import RateCappedCodec
    from rdgap.codecs.quantizers.shift_guard import ShiftDetector, ShiftGuardedCodec

    windows = hidden[:8].cpu()
    rest = windows[:, 1:].reshape(-1, model.channels).double().numpy()
    quiet = min(4, model.channels)
    detector = ShiftDetector(rest.mean(0), np.eye(model.channels)[:quiet], rest.var(0)[:quiet],
                             0.25, 1.0)
    scores = [detector.score(w) for w in windows]
    detector.threshold = float(np.median(scores))       # about half go to the fallback
    rate = float(np.median([8 * len(TorchContextCodec(model).encode(w)) / w.shape[0]
                            for w in windows]))
    guard = ShiftGuardedCodec(RateCappedCodec(model, 1.5 * rate), RateCappedCodec(model, rate),
                              detector)
    cpu, dev = TorchShiftGuardedCodec(guard, "cpu"), TorchShiftGuardedCodec(guard, device)
    on_cpu = [cpu.encode(w) for w in windows]
    on_device = [dev.encode(w.to(device)) for w in windows]
    which = [unpack(d, cpu.codec_id, cpu.digest).payload[0] for d in on_cpu]
    require(which == [unpack(d, dev.codec_id, dev.digest).payload[0] for d in on_device],
            f"{cpu.codec_id}: the chosen sub-codec differs between the device and the CPU")
    identical = sum(a == b for a, b in zip(on_cpu, on_device))
    reference = torch.stack([cpu.reconstruct(w) for w in windows])
    excess = _cross_decode(cpu, dev, on_cpu, on_device, reference)
    flagged = int(sum(which))
    print(f"{cpu.codec_id}: fallback on {flagged} of {len(windows)} windows; identical bytes "
          f"on both devices in {identical}; max error / tolerance {max(excess.values()):.3g}")
    require(0 < flagged < len(windows), f"{cpu.codec_id}: one path only ({flagged} flagged)")
    require(identical == len(windows), f"{cpu.codec_id}: device and CPU bytes differ")
    return {"codec": cpu.codec_id, "windows": len(windows), "fallback_windows": flagged,
            "identical_streams": identical, "error_over_tolerance": excess}


def main(argv=None) -> int:
    """Run the checks the arguments ask for (see the module) and write ``gpu_check.json``.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (default: ``sys.argv``).

    Returns
    -------
    int
        0 when every check passed (a failed check raises RuntimeError), or when there
        is no CUDA device to check.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"),
                        help="the device checked against the CPU (cpu: a self-check)")
    parser.add_argument("--model", default="auto", choices=("auto", "tiny", "smollm2"))
    parser.add_argument("--windows", type=int, default=64,
                        help="windows per batch in the throughput rows")
    parts = parser.add_mutually_exclusive_group()
    parts.add_argument("--rans-only", action="store_true",
                       help="only the rans_torch checks (what gpu_check_rans.py ran)")
    parts.add_argument("--joint-only", action="store_true",
                       help="only the joint codecs' checks")
    parts.add_argument("--wrappers-only", action="store_true",
                       help="only the rate-capped / window-controlled / shift-guarded "
                            "formats' checks")
    parser.add_argument("--out", default=os.environ.get("OUT"),
                        help="folder for gpu_check.json (default: $OUT)")
    args = parser.parse_args(argv)
    report = {"device": args.device, "torch": torch.__version__}
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu_check: no CUDA device available; nothing to check.")
        report["cuda"] = False
        _write(report, args.out)
        return 0
    device = torch.device(args.device)
    if device.type == "cuda":
        report["device_name"] = torch.cuda.get_device_name(0)
    print(f"device: {report.get('device_name', 'cpu (self-check)')}, torch {torch.__version__}")
    start = time.perf_counter()
    if not (args.joint_only or args.wrappers_only):
        report["rans"] = check_rans(device)
    if not args.rans_only:
        name, models, hidden, ids = joint_models(args.model, args.windows)
        print(f"joint codecs: {name}")
        if not args.wrappers_only:
            report["joint"] = {"data": name,
                               "codecs": [check_joint(m, hidden, ids, device, args.windows)
                                          for m in models]}
        if not args.joint_only:
            report["wrappers"] = {"data": name, "codecs": check_wrappers(models[0], hidden,
                                                                         device)}
            report["shift_guard"] = {"data": name, "codec": check_guard(models[0], hidden,
                                                                        device)}
    report["seconds"] = time.perf_counter() - start
    _write(report, args.out)
    print(f"gpu_check: OK ({report['seconds']:.0f} s)")
    return 0


def _write(report: dict, folder) -> None:
    if folder:
        path = Path(folder) / "gpu_check.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
