"""More fit text for the token-id table (issue 20): windows the model writes from the
statistics windows' prompts. Seeded and reproducible, chunked as cached, kept on disk,
read from nothing but the statistics windows' prompts and the model (the probe never
enters), and fitted into the table by the ``-gen`` recipe."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rdgap.codecs.entropy_models import generated_text, token_table
from rdgap.codecs.entropy_models.generated_text import (CHUNK, chunk_seed, generated_ids,
                                                        with_generated_text)
from rdgap.codecs.fit import FitContext
from rdgap.codecs.transforms.generated_fit import sample_continuations
from rdgap.split import SplitModel

PROMPT, LENGTH = 6, 48


@pytest.fixture(scope="module")
def windows(tiny_model):
    """``(split, ids, hidden)``: 12 random windows of 48 ids at split 2."""
    ids = torch.randint(0, 128, (12, LENGTH), generator=torch.Generator().manual_seed(0))
    split = SplitModel(tiny_model.eval(), 2)
    with torch.no_grad():
        return split, ids, split.prefix(ids)


def test_same_seed_same_windows_other_seed_other_windows(tiny_model, windows):
    _, ids, _ = windows
    first = generated_ids(tiny_model, ids[:5], 10, seed=1, prompt_tokens=PROMPT, cache=False)
    assert first.shape == (10, LENGTH) and first.dtype == torch.int64
    assert torch.equal(first, generated_ids(tiny_model, ids[:5], 10, seed=1,
                                            prompt_tokens=PROMPT, cache=False))
    assert not torch.equal(first, generated_ids(tiny_model, ids[:5], 10, seed=2,
                                                prompt_tokens=PROMPT, cache=False))
    # window i continues statistics window i mod 5's prompt; nothing after it is read
    assert torch.equal(first[:, :PROMPT], ids[torch.arange(10) % 5, :PROMPT])
    other_tail = ids[:5].clone()
    other_tail[:, PROMPT:] = (other_tail[:, PROMPT:] + 1) % 128
    assert torch.equal(first, generated_ids(tiny_model, other_tail, 10, seed=1,
                                            prompt_tokens=PROMPT, cache=False))


def test_windows_are_sampled_in_seeded_chunks_that_a_larger_count_extends(tiny_model, windows):
    """Chunk ``s`` is sample_continuations of its prompts with seed 100003·seed + s (as
    benchmarks/robust_generated.py caches them), so 2·CHUNK windows start with CHUNK."""
    _, ids, _ = windows
    two = generated_ids(tiny_model, ids, 2 * CHUNK, seed=3, prompt_tokens=PROMPT, cache=False)
    one = generated_ids(tiny_model, ids, CHUNK, seed=3, prompt_tokens=PROMPT, cache=False)
    assert torch.equal(two[:CHUNK], one)
    rows = torch.arange(CHUNK, 2 * CHUNK) % ids.shape[0]
    second = sample_continuations(tiny_model, ids[rows, :PROMPT], LENGTH - PROMPT,
                                  seed=chunk_seed(3, CHUNK), batch_size=CHUNK)
    assert torch.equal(two[CHUNK:], second)


def test_the_ids_are_kept_on_disk_and_read_back(tiny_model, windows, tmp_path, monkeypatch):
    _, ids, _ = windows
    first = generated_ids(tiny_model, ids, 4, prompt_tokens=PROMPT, cache=tmp_path)
    assert len(list(tmp_path.glob("windows-*.pt"))) == 1

    def refuse(*_, **__):
        raise AssertionError("sampled again although the ids are on disk")

    monkeypatch.setattr(generated_text, "sample_continuations", refuse)
    assert torch.equal(generated_ids(tiny_model, ids, 4, prompt_tokens=PROMPT,
                                     cache=tmp_path), first)
    with pytest.raises(AssertionError, match="sampled again"):  # another seed is not kept
        generated_ids(tiny_model, ids, 4, seed=5, prompt_tokens=PROMPT, cache=tmp_path)


def test_refusals_name_the_argument(tiny_model, windows):
    split, ids, hidden = windows
    with pytest.raises(ValueError, match="count"):
        generated_ids(tiny_model, ids, 0, cache=False)
    with pytest.raises(ValueError, match="prompt_tokens"):
        generated_ids(tiny_model, ids, 2, prompt_tokens=LENGTH, cache=False)
    context = FitContext.build(split, ids, hidden)
    with pytest.raises(ValueError, match="input_ids"):
        with_generated_text(context, ids, 2, cache=False)  # all windows, not the statistics


def _start(context):
    from rdgap.codecs.entropy_models.model_fit import FitStart
    from rdgap.codecs.entropy_models.token_fit import t7_start

    stats, base, first_base, klt, _, alpha = t7_start(context, 0.02)
    return FitStart("klt-context-tokens-table", stats, base, first_base, klt, "laplace",
                    alpha, "table")


def test_the_fit_text_is_the_statistics_windows_and_generated_ones_never_the_probe(
        tiny_model, windows, tmp_path, monkeypatch):
    """The table fitted with ``generated`` windows has a row for every id of the statistics
    and generated windows (positions ≥ 1) and no other; another probe (other windows, other
    ids) gives the same entropy model, byte for byte."""
    monkeypatch.setenv("RDGAP_CACHE_DIR", str(tmp_path))
    split, ids, hidden = windows
    context = FitContext.build(split, ids, hidden)
    half = context.hidden.shape[0]
    start = _start(context)
    model = token_table.fit_model(start, context, ids[:half], generated=8)
    codec = model.at(start.scale)
    extra = generated_ids(tiny_model, ids[:half], 8)
    seen = np.union1d(ids[:half, 1:].numpy(), extra[:, 1:].numpy())
    assert np.array_equal(codec.table_ids, seen)
    assert not np.array_equal(codec.table_ids, np.unique(ids[:half, 1:].numpy()))
    # a context whose probe holds other windows: the fit text, hence the codec, is the same
    other = torch.randint(0, 128, ids[half:].shape, generator=torch.Generator().manual_seed(7))
    with torch.no_grad():
        other_hidden = split.prefix(other)
    swapped = FitContext.build(split, torch.cat([ids[:half], other]),
                               torch.cat([hidden[:half], other_hidden]),
                               fisher=context.fisher)
    again = token_table.fit_model(start, swapped, ids[:half], generated=8).at(start.scale)
    assert again.digest == codec.digest
    # and the same seed gives the same codec, another seed another one
    assert token_table.fit_model(start, context, ids[:half], generated=8,
                                 seed=1).at(start.scale).digest != codec.digest


def test_the_gen_recipe_fits_and_codes_with_its_generated_windows(tiny_model, windows,
                                                                  tmp_path, monkeypatch):
    from rdgap.codecs.recipes import recipe

    monkeypatch.setenv("RDGAP_CACHE_DIR", str(tmp_path))
    split, ids, hidden = windows
    context = FitContext.build(split, ids, hidden)
    half = context.hidden.shape[0]
    gen = recipe("klt-context-tokens-table-gen")
    assert gen.parent == "klt-context-tokens-table" and gen.options["generated"] >= 1
    fitted = gen.fit(context, ids[:half], 0.02, generated=CHUNK)
    codec = fitted.codec
    extra = generated_ids(tiny_model, ids[:half], CHUNK)
    assert np.array_equal(codec.table_ids,
                          np.union1d(ids[:half, 1:].numpy(), extra[:, 1:].numpy()))
    window, window_ids = hidden[-1], ids[-1]
    assert torch.equal(codec.decode(codec.encode(window, input_ids=window_ids)),
                       codec.reconstruct(window, input_ids=window_ids))
