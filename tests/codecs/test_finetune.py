"""The LM fine-tuning path on a tiny random Llama on the CPU: the objective decreases, the
original model is untouched, the saved state reloads to identical logits, the frozen-LM case
equals learned steps, and the fitted codec's ΔCE is against the original model."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from rdgap.codecs.quantizers.finetune import (finetune, finetuned_context, fit_finetuned_codec,
                                   load_state, trainable_parameters)
from rdgap.codecs.quantizers.learned_steps import learn_steps
from rdgap.split import SplitModel
from rdgap.validation.distortion import document_estimate
from rdgap.validation.models import tiny_llama

from codec_data import tiny_fit_context

WINDOWS, TOKENS, STATISTICS, LEVEL = 9, 40, 7, 0.02
SETTINGS = {"iterations": 12, "crop": 24, "windows_per_step": STATISTICS, "lr": 0.02,
            "progress": False}


@pytest.fixture(scope="module")
def problem():
    return tiny_fit_context(WINDOWS, TOKENS, STATISTICS, model_seed=4, ids_seed=6)


@pytest.fixture(scope="module")
def tuned(problem):
    model, ids, _, context = problem
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    hidden = context.hidden.clone()
    result = finetune(context, ids[:STATISTICS], LEVEL, trainable="suffix", parameter_lr=3e-3,
                      **SETTINGS)
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # the original is untouched
    assert [p.requires_grad for p in model.parameters()] == flags
    assert torch.equal(context.hidden, hidden) and result.model is not model
    return result


def test_suffix_parameters_only(problem, tuned):
    model, *_ = problem
    names = tuned.names
    assert names and all(n.startswith(("model.layers.2.", "model.layers.3.", "model.norm."))
                         for n in names)
    assert not any("embed" in n or "lm_head" in n for n in names)
    assert trainable_parameters(SplitModel(model, 2), "none") == {}
    with pytest.raises(ValueError, match="^trainable:"):
        trainable_parameters(SplitModel(model, 2), "prefix")
    changed = [n for n in names if not torch.equal(dict(model.named_parameters())[n],
                                                   dict(tuned.model.named_parameters())[n])]
    assert changed == names


def test_loss_decreases(tuned):
    objective = [r["objective"] for r in tuned.learned.trace]
    # full-batch steps: the last three are below the first three
    assert np.mean(objective[-3:]) < np.mean(objective[:3])


def test_saved_state_reloads_to_identical_logits(problem, tuned, tmp_path):
    _, ids, hidden, _ = problem
    path = tuned.save_state(tmp_path / "suffix.safetensors")
    fresh = tiny_llama(num_layers=4, hidden_size=64, vocab_size=128, seed=4)
    load_state(fresh, path)
    ours = SplitModel(tuned.model, 2).suffix(hidden[:2])
    theirs = SplitModel(fresh, 2).suffix(hidden[:2])
    assert torch.equal(ours, theirs)
    assert not torch.equal(theirs, SplitModel(problem[0], 2).suffix(hidden[:2]))
    other = tiny_llama(num_layers=4, hidden_size=32, vocab_size=128, seed=4)
    with pytest.raises(ValueError, match="^path:"):
        load_state(other, path)


def test_frozen_lm_equals_learned_steps(problem):
    _, ids, _, context = problem
    frozen = finetune(context, ids[:STATISTICS], LEVEL, trainable="none", distortion="kl",
                      **SETTINGS)
    learned = learn_steps(context, ids[:STATISTICS], LEVEL, distortion="kl", **SETTINGS)
    assert frozen.names == []
    np.testing.assert_array_equal(frozen.learned.step, learned.step)
    assert frozen.learned.trace == learned.trace


def test_codec_delta_ce_is_against_the_original_model(problem, tuned):
    model, ids, hidden, context = problem
    tuned_context, offset = finetuned_context(context, tuned)
    original = context.probe
    # the offset is the fine-tuned model's own ΔCE on the exact states against the original,
    # recomputed here from both models' logits
    def cross_entropy(model):
        with torch.no_grad():
            logits = SplitModel(model, 2).suffix(original.hidden).double()
        log_q = torch.log_softmax(logits, -1)[:, :-1]
        return -log_q.gather(-1, original.input_ids[:, 1:, None]).squeeze(-1)

    assert offset == pytest.approx(float((cross_entropy(tuned.model)
                                          - cross_entropy(model)).mean()), abs=1e-6)
    assert tuned_context.split.model is tuned.model  # on the CPU already: not copied
    assert offset != 0.0 and tuned_context.probe.delta_ce(lambda window: window) == 0.0
    fitted = fit_finetuned_codec(context, tuned, LEVEL)
    assert fitted.variant == "klt-context-learned-finetuned-suffix"
    codec, calibration = fitted.codec, fitted.calibration
    assert calibration.target == LEVEL
    # the reported ΔCE: the fine-tuned suffix on the codec's output against the ORIGINAL CE
    recon = torch.stack([codec.reconstruct(w) for w in original.hidden])
    log_q = torch.log_softmax(tuned_context.split.suffix(recon).double(), -1)[:, :-1]
    ce = -log_q.gather(-1, original.input_ids[:, 1:, None]).squeeze(-1)
    assert calibration.delta_ce == pytest.approx(float((ce - original.exact_ce).mean()),
                                                 abs=1e-6)
    assert calibration.met == (calibration.delta_ce <= LEVEL)
    # its standard error: over documents of ΔCE against the ORIGINAL model
    per_window = (ce - original.exact_ce).mean(1).numpy()
    expected = document_estimate(per_window, original.documents).stderr
    assert calibration.stderr == pytest.approx(expected, rel=1e-9)
    # a margin bounds ΔCE against the original: its mean + z·(that standard error) ≤ level
    cautious = fit_finetuned_codec(context, tuned, LEVEL, margin=1.0).calibration
    assert cautious.upper == pytest.approx(cautious.delta_ce + cautious.stderr)
    assert cautious.met and cautious.upper <= LEVEL and cautious.scale < calibration.scale
    window = hidden[-1]
    assert torch.equal(codec.decode(codec.encode(window)), codec.reconstruct(window))


def test_a_fine_tuned_model_worse_than_the_level_is_refused(problem, tuned):
    _, _, _, context = problem
    broken = copy.deepcopy(tuned)
    broken.split = SplitModel(broken.model, 2)
    with torch.no_grad():
        broken.model.model.norm.weight.mul_(50.0)  # confident, wrong predictions: CE ≫
    with pytest.raises(ValueError, match="^finetuned:"):
        fit_finetuned_codec(context, broken, LEVEL)
    with pytest.raises(ValueError, match="^target_delta_ce:"):
        fit_finetuned_codec(context, tuned, 0.0)
