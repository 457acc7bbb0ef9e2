"""The digits ViT: the model, its training and cache, and its task adapter."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import torch

from rdgap.validation.tasks import load_task
from rdgap.validation.vit import (VIT_VERSION, DigitsViT, ViTConfig, data_split, digits_data,
                                  load_digits_vit)
from rdgap.validation.vit_task import DigitsViTTask, load_digits_vit_task
from task_checks import (check_fit_context, check_prefix_map, check_split_is_exact,
                         check_windows)

QUICK = ViTConfig(width=32, blocks=2, heads=2, epochs=6)


@pytest.fixture(scope="module")
def quick_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("vit-cache")


@pytest.fixture(scope="module")
def tiny_task():
    """An untrained 4-block ViT of width 16 (fast), with the real data split."""
    torch.manual_seed(0)
    model = DigitsViT(ViTConfig(width=16, blocks=4, heads=2)).eval()
    return DigitsViTTask(model, data_split(len(digits_data()[0]))[0])


def test_vit_split_is_bit_exact_at_every_block(tiny_task):
    windows = tiny_task.windows("eval", 3, None)
    assert windows.inputs["images"].shape == (3, 16, 8, 8)
    reference, hidden = check_split_is_exact(tiny_task, windows, "kl_nats")
    assert hidden[1].shape == (3, 16 * 5, 16)
    images = windows.inputs["images"].reshape(-1, 8, 8)
    with torch.no_grad():
        direct = tiny_task.model(images).reshape(3, 16, 10)
        state = tiny_task.model.run_blocks(tiny_task.model.embed(images), 0, 2)
    assert torch.equal(reference, direct)
    assert torch.equal(hidden[2], state.reshape(3, 80, 16))


def test_vit_windows_never_use_training_images(tiny_task):
    check_windows(tiny_task, 4, None)
    train = set(data_split(len(tiny_task.images))[0].tolist())
    images, labels = digits_data()
    for part in ("fit", "eval"):
        used = tiny_task.parts[part]
        assert not train & set(used.tolist())
        windows = tiny_task.windows(part, None, 8 * 5)  # 8 images per window
        assert windows.inputs["images"].shape[1] == 8
        assert torch.equal(windows.inputs["labels"][0], labels[used[:8]])
        assert torch.equal(windows.inputs["images"][0], images[used[:8]])
    assert not set(tiny_task.parts["fit"].tolist()) & set(tiny_task.parts["eval"].tolist())
    assert tiny_task.windows("eval", 2, 256).inputs["images"].shape[1] == 16  # at most 16
    with pytest.raises(ValueError, match="length: expected ≥ 5 positions"):
        tiny_task.windows("fit", 2, 4)
    with pytest.raises(ValueError, match="part: expected one of"):
        tiny_task.windows("train", 2, None)


def test_vit_metrics_measure_against_true_labels(tiny_task):
    windows = tiny_task.windows("eval", 2, 2 * 5)
    labels = windows.inputs["labels"]
    reference = torch.zeros(2, 2, 10)
    reference[..., 0] = 5.0
    output = reference.clone()
    output[0, 0] = 0.0  # window 0, image 0: a uniform prediction instead
    values = tiny_task.metrics(reference, output, windows.inputs)
    log_p = torch.log_softmax(reference[0, 0].double(), -1)
    ce_change = -np.log(0.1) + float(log_p[labels[0, 0]])
    assert values["delta_ce_nats"][0] == pytest.approx(ce_change / 2)
    assert values["delta_ce_nats"][1] == 0
    assert values["kl_nats"][0] == pytest.approx(
        float((log_p.exp() * (log_p - np.log(0.1))).sum()) / 2)
    assert values["top1_agreement"].tolist() == [1.0, 1.0]  # argmax of a tie is class 0
    with pytest.raises(ValueError, match="output: expected logits of shape"):
        tiny_task.metrics(reference, output[:1], windows.inputs)


def test_vit_fit_context_calibrates_and_predicts_kl(tiny_task):
    check_fit_context(tiny_task, 2, tiny_task.windows("fit", 8, None), 0.01,
                      second_order="kl_nats")


def test_vit_errors_name_the_argument(tiny_task):
    windows = tiny_task.windows("eval", 1, None)
    _, hidden = tiny_task.forward(windows.inputs, [1])
    with pytest.raises(ValueError, match="split: expected 0 < split < 4"):
        tiny_task.forward(windows.inputs, [4])
    with pytest.raises(ValueError, match="hidden: expected"):
        tiny_task.suffix(1, windows.inputs, hidden[1][:, :7])
    with pytest.raises(ValueError, match="config: expected patch"):
        DigitsViT(ViTConfig(patch=3))


def test_vit_trains_caches_and_reloads(quick_cache):
    start = time.perf_counter()
    model, info = load_digits_vit(quick_cache, progress=False, config=QUICK)
    print(f"quick ViT training: {time.perf_counter() - start:.1f} s")  # a figure
    assert not info["loaded_from_cache"]
    assert info["heldout_accuracy"] > 0.5  # ten classes: chance is 0.1
    record = json.loads(next(quick_cache.glob("models/digits-vit-v*/config.json")).read_text())
    assert record["version"] == VIT_VERSION
    assert record["train_indices"] == data_split(1797)[0].tolist()
    again, info = load_digits_vit(quick_cache, progress=False, config=QUICK)
    assert info["loaded_from_cache"]
    images = digits_data()[0][:5]
    with torch.no_grad():
        assert torch.equal(again(images), model(images))
    task = load_digits_vit_task(quick_cache, progress=False, config=QUICK)
    assert (task.num_layers, task.width, task.name) == (2, 32, "digits-vit")
    windows = task.windows("eval", None, None)
    reference, _ = task.forward(windows.inputs, [1])
    accuracy = float((reference.argmax(-1) == windows.inputs["labels"]).double().mean())
    assert accuracy > 0.5


def test_load_task_knows_the_vit(quick_cache, monkeypatch):
    import rdgap.validation.vit as vit

    monkeypatch.setattr(vit, "DEFAULT_CONFIG", QUICK)  # the default, made quick
    task = load_task("digits-vit", cache_dir=quick_cache)
    assert isinstance(task, DigitsViTTask) and task.num_layers == 2


def test_prefix_map_is_differentiable_both_ways(tiny_task):
    check_prefix_map(tiny_task, tiny_task.windows("eval", 2, None), 2)


def test_vit_probe_measures_every_fit_window_and_statistics_the_first_half(tiny_task):
    # the ViT's ΔCE is carried by a few boundary images: the calibration probe uses all
    # fit windows (twice the images of the half the LM uses), statistics the first half
    fit = tiny_task.windows("fit", 6, None)
    _, hidden = tiny_task.forward(fit.inputs, [2])
    context = tiny_task.fit_context(2, fit, hidden[2])
    assert context.probe.hidden.shape[0] == 6 and torch.equal(context.probe.hidden, hidden[2])
    assert torch.equal(context.hidden, hidden[2][:3])
    # the probe's mean is the mean of the task's own metric over all six windows
    noisy = lambda h: h + 0.05 * torch.randn(h.shape, generator=torch.Generator().manual_seed(0))  # noqa: E731
    recon = torch.stack([noisy(w) for w in hidden[2]])
    with torch.no_grad():
        reference = tiny_task.suffix(2, fit.inputs, hidden[2])
        output = tiny_task.suffix(2, fit.inputs, recon)
    direct = tiny_task.metrics(reference, output, fit.inputs)["delta_ce_nats"].mean()
    assert context.probe.delta_ce(noisy) == pytest.approx(float(direct), rel=1e-9, abs=1e-12)
