"""Task adapters: the interface, the causal-LM task, load_task and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rdgap.codecs.capture import logits_and_hidden
from rdgap.codecs.fit import fit_codec
from rdgap.codecs.split import SplitModel
from rdgap.validation.corpus import load_documents, split_documents, token_windows
from rdgap.validation.distortion import per_window_metrics
from rdgap.validation.models import load_model
from rdgap.validation.tasks import TASKS, CausalLMTask, SplitTask, TaskWindows, load_task


@pytest.fixture(scope="module")
def lm_task(tiny_model_folder):
    return CausalLMTask(load_model(tiny_model_folder))


def test_task_windows_select_keeps_inputs_and_groups_aligned():
    windows = TaskWindows({"input_ids": torch.arange(12).reshape(4, 3)},
                          torch.tensor([7, 7, 8, 9]), skipped_documents=2)
    part = windows.select(slice(1, 3))
    assert len(part) == 2 and part.skipped_documents == 2
    assert part.inputs["input_ids"].tolist() == [[3, 4, 5], [6, 7, 8]]
    assert part.document.tolist() == [7, 8]
    masked = windows.select(torch.tensor([True, False, False, True]))
    assert masked.document.tolist() == [7, 9]
    with pytest.raises(TypeError, match="index: expected a slice or a tensor"):
        windows.select([0, 1])


def test_causal_lm_task_is_a_split_task(lm_task):
    assert isinstance(lm_task, SplitTask)
    assert (lm_task.num_layers, lm_task.width, lm_task.model_type) == (4, 32, "llama")
    assert lm_task.metrics_names[0] == "delta_ce_nats"


def test_causal_lm_windows_are_the_runner_windows(lm_task):
    """Same documents, same split, same windows as validate used before tasks."""
    documents = load_documents("lee_background")
    fit, evaluation = split_documents(len(documents), seed=0)
    for part, indices in (("fit", fit), ("eval", evaluation)):
        windows = lm_task.windows(part, 6, 64)
        expected = token_windows(documents, indices, lm_task.tokenizer, 64, max_windows=6)
        assert torch.equal(windows.inputs["input_ids"], expected.input_ids)
        assert torch.equal(windows.document, expected.document)
    fit_docs = set(lm_task.windows("fit", 40, 32).document.tolist())
    eval_docs = set(lm_task.windows("eval", 40, 32).document.tolist())
    assert fit_docs and eval_docs and not fit_docs & eval_docs
    again = lm_task.windows("eval", 6, 64)
    assert torch.equal(again.inputs["input_ids"], lm_task.windows("eval", 6, 64).inputs["input_ids"])


def test_causal_lm_forward_suffix_metrics_match_the_split_harness(lm_task):
    windows = lm_task.windows("eval", 3, 32)
    ids = windows.inputs["input_ids"]
    splits = list(range(1, lm_task.num_layers))
    reference, hidden = lm_task.forward(windows.inputs, splits)
    exact, expected_hidden = logits_and_hidden(lm_task.model, ids, None, splits)
    assert torch.equal(reference, exact)
    for k in splits:
        assert torch.equal(hidden[k], expected_hidden[k])
        assert torch.equal(lm_task.suffix(k, windows.inputs, hidden[k]), reference)  # bit-exact
        same = lm_task.metrics(reference, lm_task.suffix(k, windows.inputs, hidden[k]),
                               windows.inputs)
        assert set(same) == set(lm_task.metrics_names)
        assert np.all(same["delta_ce_nats"] == 0) and np.all(same["kl_nats"] == 0)
        assert np.all(same["top1_agreement"] == 1)
        noisy_hidden = hidden[k] + 0.5 * hidden[k].std() * torch.randn(
            hidden[k].shape, generator=torch.Generator().manual_seed(k))
        noisy = lm_task.suffix(k, windows.inputs, noisy_hidden)
        values = lm_task.metrics(reference, noisy, windows.inputs)
        assert np.all(values["kl_nats"] > 0)
        direct = per_window_metrics(exact, SplitModel(lm_task.model, k).suffix(noisy_hidden), ids)
        for name in lm_task.metrics_names:
            np.testing.assert_array_equal(values[name], direct[name].numpy())
    assert lm_task.corpus_metrics(reference, reference) == {}


def test_causal_lm_fit_context_calibrates_a_codec(lm_task):
    fit = lm_task.windows("fit", 4, 32)
    _, hidden = lm_task.forward(fit.inputs, [2])
    context = lm_task.fit_context(2, fit, hidden[2])
    fitted = fit_codec("gaussian-std", context, 0.02)
    assert fitted.calibration.met
    assert context.probe.delta_ce(fitted.codec.reconstruct) <= 0.02
    window = hidden[2][0]
    assert torch.equal(fitted.codec.decode(fitted.codec.encode(window)),
                       fitted.codec.reconstruct(window))


def test_load_task_errors_name_the_argument(tmp_path):
    assert TASKS == ("smollm2-135m", "all-minilm-l6-v2", "digits-vit")
    with pytest.raises(FileNotFoundError, match="name_or_path: expected one of"):
        load_task("no-such-model")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_task(tmp_path)


def test_bad_part_is_a_clear_error(lm_task):
    with pytest.raises(ValueError, match="part: expected one of"):
        lm_task.windows("train", 2, 32)
