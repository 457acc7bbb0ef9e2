"""rdgap split-run: two local processes over gloo, exact logits, counted bytes, failures.

The two-process tests spawn real ranks on a tiny random Llama that reads real
text with the SmolLM2 tokenizer (the ``tiny_model_folder`` fixture); the rest
test the framing, the summary and the link model without processes.
"""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import pytest

from rdgap.cli import main
from rdgap.codecs.coders.container import BitstreamError
from rdgap.codecs.entropy_models.factorized import ChannelStatistics, FactorizedCodec
from rdgap.split import SplitModel
from rdgap.distributed.codec_spec import describe_mismatch, resolve_codec
from rdgap.distributed.config import SplitRunConfig
from rdgap.distributed.framing import (BATCH, END, HEADER_BYTES, body_limit, framing_bytes,
                                       pack_body, pack_header, unpack_body, unpack_header)
from rdgap.distributed.launch import free_port, run_local, run_torchrun, under_torchrun
from rdgap.distributed.summary import (break_even, format_summary, pipeline_seconds,
                                      summarize)
from rdgap.distributed.worker import evaluation_windows
from rdgap.validation.corpus import load_documents, split_documents, token_windows
from rdgap.validation.models import load_model_folder

BATCHES, BATCH_SIZE, LENGTH, SPLIT = 3, 2, 32, 2
#: A failure must surface on the surviving rank within this many seconds.
BOUND_S = 20.0


def _config(folder, codec, **overrides) -> SplitRunConfig:
    settings = dict(split=SPLIT, codec=str(codec), model=str(folder), batches=BATCHES,
                    batch_size=BATCH_SIZE, window_length=LENGTH, timeout=5.0, threads=1,
                    progress=False)
    settings.update(overrides)
    return SplitRunConfig(**settings)


@pytest.fixture(scope="module")
def tiny(tiny_model_folder):
    return load_model_folder(tiny_model_folder)


@pytest.fixture(scope="module")
def fitted_codec_folder(tiny, tmp_path_factory):
    """A FactorizedCodec fitted on the tiny model's states of fit documents, saved."""
    documents = load_documents()
    fit, _ = split_documents(len(documents))
    ids = token_windows(documents, fit, tiny.tokenizer, LENGTH, max_windows=8).input_ids
    hidden = SplitModel(tiny.model, SPLIT).prefix(ids)
    stats = ChannelStatistics.fit(hidden, "gaussian")
    codec = FactorizedCodec(stats, 0.5 * stats.scale, 0.5 * stats.first_scale, "gaussian")
    return codec.save(tmp_path_factory.mktemp("fitted-codec"))


def _expected_stream_bytes(tiny, config) -> int:
    """Stream bytes of the run, computed in this process (one-process path)."""
    codec = resolve_codec(config.codec)
    split = SplitModel(tiny.model, config.split)
    windows = evaluation_windows(config, tiny.tokenizer)
    return sum(len(codec.encode(h)) for batch in windows for h in split.prefix(batch))


def _assert_exact_and_counted(summary, tiny, config):
    assert summary["complete"], summary["errors"]
    assert summary["exact"] is True
    assert [b["batch"] for b in summary["batches"]] == list(range(BATCHES))
    assert all(b["logits_equal"] and b["streams_equal"] for b in summary["batches"])
    totals = summary["totals"]
    streams = _expected_stream_bytes(tiny, config)
    framing = BATCHES * HEADER_BYTES + 4 * BATCHES * BATCH_SIZE
    assert totals["stream_bytes"] == streams
    assert totals["wire_bytes_sent"] == totals["wire_bytes_received"] == streams + framing
    assert sum(b["wire_bytes"] for b in summary["batches"]) == streams + framing
    assert totals["tokens"] == BATCHES * BATCH_SIZE * LENGTH
    width = tiny.model.config.hidden_size  # the default frame limit follows the agreed shape
    assert summary["framing"]["max_frame_bytes"] == body_limit(BATCH_SIZE, LENGTH, width)


def test_int8_through_the_cli_streams_exact_logits_and_counts_bytes(tiny_model_folder, tiny,
                                                                    tmp_path, capsys):
    out = tmp_path / "run.json"
    code = main(["split-run", "--model", str(tiny_model_folder), "--split", str(SPLIT),
                 "--codec", "int8", "--batches", str(BATCHES), "--batch-size",
                 str(BATCH_SIZE), "--window-length", str(LENGTH), "--timeout", "10",
                 "--threads", "1", "--out", str(out)])
    printed = capsys.readouterr().out
    assert code == 0, printed
    summary = json.loads(out.read_text())
    _assert_exact_and_counted(summary, tiny, _config(tiny_model_folder, "int8"))
    assert summary["identity"]["codec_id"] == "int8-absmax"
    assert set(summary["links"]) == {"1 Gbit/s", "100 Mbit/s", "10 Mbit/s"}
    assert "logits equal the one-process path" in printed


def test_fitted_codec_folder_streams_exact_logits(tiny_model_folder, tiny, fitted_codec_folder):
    config = _config(tiny_model_folder, fitted_codec_folder, timeout=10.0)
    summary = run_local(config, start_method="fork")
    _assert_exact_and_counted(summary, tiny, config)
    assert summary["identity"]["codec_hash"] == FactorizedCodec.load(
        fitted_codec_folder).digest.hex()
    # A lossy codec far below fp16: the comparison the link table is about.
    assert summary["totals"]["wire_bytes_per_token"] < \
        summary["fp16_reference"]["wire_bytes_per_token"]


@pytest.mark.parametrize("fault, dead_rank, message", [
    ("kill-sender:1", "0", "rank 0 closed the connection"),
    ("cut:1", "0", "batch 1: frame body"),
    ("stall:0", None, "rank 0 sent nothing within the timeout"),
    ("kill-receiver:0", "1", "rank 1 closed the connection"),
])
def test_a_dead_cut_or_silent_rank_fails_clearly_in_bounded_time(tiny_model_folder, fault,
                                                                 dead_rank, message):
    summary = run_local(_config(tiny_model_folder, "int8", fault=fault, timeout=4.0),
                        start_method="fork")
    assert summary["complete"] is False and summary["exact"] is None
    assert "totals" not in summary
    errors = summary["errors"]
    if dead_rank is not None:
        assert "killed by signal SIGKILL before reporting" in errors[dead_rank]
    survivor = "1" if dead_rank != "1" else "0"
    assert message in errors[survivor]
    # measured on the survivor from the start of streaming; a silent rank costs the timeout
    assert summary["error_after_s"][survivor] < BOUND_S
    if fault.startswith("stall"):
        assert summary["error_after_s"][survivor] >= 4.0


def test_a_corrupted_stream_names_its_batch_and_the_cli_fails(tiny_model_folder, tmp_path,
                                                              monkeypatch):
    from rdgap.distributed import launch

    forked = lambda config: run_local(config, start_method="fork")  # noqa: E731 (fast start)
    monkeypatch.setattr(launch, "run_local", forked)
    out = tmp_path / "run.json"
    code = main(["split-run", "--model", str(tiny_model_folder), "--split", str(SPLIT),
                 "--codec", "int8", "--batches", str(BATCHES), "--window-length", str(LENGTH),
                 "--timeout", "10", "--threads", "1", "--inject-fault", "corrupt:1",
                 "--out", str(out)])
    summary = json.loads(out.read_text())
    assert code == 1
    assert summary["complete"] is False
    assert "BitstreamError: batch 1, window 0" in summary["errors"]["1"]


@pytest.mark.parametrize("fault, message", [
    ("short-frame:1", "BitstreamError: batch 1: frame body of"),
    ("huge-frame:1", "BitstreamError: batch 1: frame header: body of"),
    ("forge-shape:1", "BitstreamError: batch 1, window 0: stream declares shape (2048,"),
])
def test_a_lying_peer_is_refused_by_name_and_never_ends_complete(tiny_model_folder, tmp_path,
                                                                  monkeypatch, fault, message):
    """Issue 17: headers whose checksum is valid but whose body length lies (−4 bytes aborted
    rank 1 inside gloo; +2³¹ cost 2.5 GB and a 26 s stall), and a valid stream declaring
    64× the agreed tokens (it was decoded, and with --no-verify the run ended complete)."""
    from rdgap.distributed import launch

    forked = lambda config: run_local(config, start_method="fork")  # noqa: E731 (fast start)
    monkeypatch.setattr(launch, "run_local", forked)
    out = tmp_path / "run.json"
    code = main(["split-run", "--model", str(tiny_model_folder), "--split", str(SPLIT),
                 "--codec", "int8", "--batches", str(BATCHES), "--window-length", str(LENGTH),
                 "--timeout", "4", "--threads", "1", "--inject-fault", fault, "--no-verify",
                 "--out", str(out)])
    summary = json.loads(out.read_text())
    assert code == 1 and summary["complete"] is False
    assert message in summary["errors"]["1"]  # rank 1 reported: it was not killed by gloo
    assert "signal" not in summary["errors"]["1"]
    assert summary["error_after_s"]["1"] < BOUND_S


def test_ranks_with_different_codecs_refuse_to_start(tiny_model_folder):
    config = _config(tiny_model_folder, "int8")
    other = _config(tiny_model_folder, "fp16")
    summary = run_local(config, configs={0: config, 1: other}, start_method="fork")
    assert summary["complete"] is False
    for rank in ("0", "1"):
        assert "HandshakeError" in summary["errors"][rank]
        assert "codec_id" in summary["errors"][rank] and "codec_hash" in summary["errors"][rank]


def _torchrun_rank(rank: int, port: int, config: SplitRunConfig, path: str) -> None:
    os.environ.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    assert under_torchrun()
    report, summary = run_torchrun(config)
    Path(path).write_text(json.dumps({"report": report, "summary": summary}))
    os._exit(0)


def test_under_torchrun_rank_1_holds_the_whole_run(tiny_model_folder, tiny, tmp_path):
    """The env:// rendezvous torchrun sets up; rank 0's timings arrive in the END frame."""
    assert not under_torchrun()
    config = _config(tiny_model_folder, "int8")
    port, context = free_port(), multiprocessing.get_context("fork")
    paths = [str(tmp_path / f"rank{rank}.json") for rank in (0, 1)]
    processes = [context.Process(target=_torchrun_rank, args=(rank, port, config, paths[rank]))
                 for rank in (0, 1)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(60)
    rank0, rank1 = (json.loads(Path(path).read_text()) for path in paths)
    assert rank0["report"]["status"] == "ok"
    assert rank0["summary"]["complete"] is False  # rank 0 alone saw half the run
    _assert_exact_and_counted(rank1["summary"], tiny, config)
    assert rank1["summary"]["fp16_reference"]["wire_bytes_per_token"] > 0


# -- without processes --------------------------------------------------------------------

def test_frames_round_trip_and_damage_is_named():
    streams = [b"abc", b"", b"defgh"]
    body = pack_body(streams)
    header = unpack_header(pack_header(BATCH, 4, len(streams), body), 4)
    assert unpack_body(body, header) == streams
    assert len(pack_header(END, 0, 0, b"")) == HEADER_BYTES == 32
    assert framing_bytes(3) == 32 + 12 == HEADER_BYTES + len(body) - sum(map(len, streams))
    with pytest.raises(BitstreamError, match="batch 5: .* carries batch 4"):
        unpack_header(pack_header(BATCH, 4, 3, body), 5)
    with pytest.raises(BitstreamError, match="body of 19 bytes: its header declares 20; the frame is cut"):
        unpack_body(body[:-1], header)
    with pytest.raises(BitstreamError, match="magic"):
        unpack_header(b"XXXX" + pack_header(BATCH, 4, 3, body)[4:], 4)
    with pytest.raises(BitstreamError, match="is 31 bytes"):
        unpack_header(pack_header(BATCH, 4, 3, body)[:-1], 4)
    with pytest.raises(BitstreamError, match="implausible body length"):
        unpack_header(pack_header(BATCH, 4, 3, b"xy"), 4)


def test_pipeline_model_overlaps_stages():
    # Two stages of 1 s per batch, three batches: 4 s pipelined, 6 s serial.
    assert pipeline_seconds([1, 1, 1], [1, 1, 1]) == 4
    assert pipeline_seconds([1, 1, 1], [0, 0, 0], [1, 1, 1]) == 4
    assert pipeline_seconds([3], [1], [2]) == 6


def _batch(i, wire, encode=0.01, decode=0.01):
    return {"batch": i, "tokens": 100, "windows": 1, "wire_bytes": wire, "prefix_s": 0.1,
            "encode_s": encode, "decode_s": decode, "suffix_s": 0.1}


def test_break_even_from_measured_times():
    fp16 = {"wire_bytes_per_token": 1000.0, "encode_s_per_token": 0.0,
            "decode_s_per_token": 0.0}
    batches = [_batch(i, 100 * 100) for i in range(4)]  # 100 B/token, 0.2 ms/token coding
    even = break_even(batches, fp16)
    assert even["saved_bits_per_token"] == pytest.approx(8 * 900)
    assert even["serial_bit_per_s"] == pytest.approx(8 * 900 / 2e-4)
    assert 0 < even["pipelined_bit_per_s"]
    never = break_even([_batch(0, 2000 * 100)], fp16)
    assert never["serial_bit_per_s"] is None and "never" in never["note"]
    free = break_even([_batch(0, 100 * 100, 0.0, 0.0)], fp16)
    assert free["serial_bit_per_s"] is None and "every link rate" in free["note"]


def test_summary_of_a_dead_rank_is_incomplete():
    summary = summarize({0: {"rank": 0, "status": "ok", "batches": [], "error": None},
                         1: {"rank": 1, "status": "error", "error": "rank 1 was killed"}},
                        {"batches": 3, "model": "m", "split": 1, "codec": "fp16"})
    assert summary["complete"] is False and summary["errors"] == {"1": "rank 1 was killed"}
    assert "totals" not in summary
    printed = format_summary(summary)
    assert "status: INCOMPLETE" in printed and "rank 1 error: rank 1 was killed" in printed


def test_logits_that_differ_make_the_run_inexact():
    rows = [{"batch": 0, "tokens": 4, "windows": 1, "stream_bytes": 10}]
    sender = {"status": "ok", "wire_bytes_sent": 10 + framing_bytes(1),
              "batches": [_batch(0, 10 + framing_bytes(1)) | {"encoded_at_s": 0.1}]}
    receiver = {"status": "ok", "wire_bytes_received": 10 + framing_bytes(1), "wall_s": 1.0,
                "batches": [rows[0] | {"done_at_s": 0.5}],
                "verification": [{"batch": 0, "streams_equal": True, "logits_equal": False}]}
    config = {"batches": 1, "model": "m", "split": 1, "codec": "fp16"}
    summary = summarize({0: sender, 1: receiver}, config)
    assert summary["complete"] is True and summary["exact"] is False
    assert "LOGITS DIFFER" in format_summary(summary)
    receiver["verification"][0]["logits_equal"] = True
    assert summarize({0: sender, 1: receiver}, config)["exact"] is True


def test_settings_and_codec_names_are_checked():
    assert resolve_codec("int4").codec_id == "int4-absmax"
    assert resolve_codec("zstd-fp16").codec_id == "zstd-fp16"
    with pytest.raises(ValueError, match="codec: expected a baseline name"):
        resolve_codec("no-such-codec")
    with pytest.raises(ValueError, match="batch-size: expected an integer ≥ 1"):
        SplitRunConfig(split=1, codec="fp16", batch_size=0)
    with pytest.raises(ValueError, match="fault: expected NAME:BATCH"):
        SplitRunConfig(split=1, codec="fp16", fault="explode:1")
    assert describe_mismatch({"a": 1}, {"a": 1}, 0, 1) is None
    assert "a: rank 0 has 1, rank 1 has 2" in describe_mismatch({"a": 1}, {"a": 2}, 0, 1)
    assert main(["split-run", "--split", "1", "--codec", "fp16", "--world", "3"]) == 2


def test_defaults_match_validation():
    from rdgap.distributed import config
    from rdgap.validation.corpus import DEFAULT_CORPUS
    from rdgap.validation.models import DEFAULT_MODEL

    assert (config.DEFAULT_MODEL, config.DEFAULT_CORPUS) == (DEFAULT_MODEL, DEFAULT_CORPUS)
