"""Checks every task adapter (rdgap.validation.tasks.SplitTask) must pass, shared by its tests."""

from __future__ import annotations

import numpy as np
import torch

from rdgap.codecs.fit import fit_codec
from rdgap.validation.tasks import SplitTask, TaskWindows


def check_split_is_exact(task: SplitTask, windows: TaskWindows, positive: str) -> tuple:
    """At every split: suffix(forward) is bit-exact, metrics are 0 at identity and
    ``positive`` is > 0 for every window under noise. Returns (reference, hidden)."""
    assert isinstance(task, SplitTask)
    splits = list(range(1, task.num_layers))
    reference, hidden = task.forward(windows.inputs, splits)
    assert sorted(hidden) == splits
    for k in splits:
        assert hidden[k].shape[0] == len(windows) and hidden[k].shape[2] == task.width
        output = task.suffix(k, windows.inputs, hidden[k])
        assert torch.equal(output, reference), f"split {k} is not bit-exact"
        same = task.metrics(reference, output, windows.inputs)
        assert tuple(same) == task.metrics_names
        for name, values in same.items():
            assert values.shape == (len(windows),)
            if name not in ("top1_agreement", "accuracy_change"):
                assert np.all(values == 0), f"{name} is not 0 at identity"
        assert np.all(same.get("top1_agreement", np.ones(1)) == 1)
        noise = torch.randn(hidden[k].shape, generator=torch.Generator().manual_seed(k))
        noisy = task.suffix(k, windows.inputs, hidden[k] + 0.5 * hidden[k].std() * noise)
        values = task.metrics(reference, noisy, windows.inputs)
        assert np.all(values[positive] > 0), f"{positive} is not positive under noise at {k}"
    return reference, hidden


def check_windows(task: SplitTask, count: int, length: int | None) -> None:
    """Windows are deterministic, honour ``count`` and never share a group across parts."""
    fit, evaluation = task.windows("fit", count, length), task.windows("eval", count, length)
    assert len(fit) == len(evaluation) == count
    again = task.windows("eval", count, length)
    for name, value in evaluation.inputs.items():
        assert torch.equal(value, again.inputs[name])
        assert value.shape[0] == count
    assert torch.equal(evaluation.document, again.document)
    assert evaluation.document.dtype == torch.int64
    everything = task.windows("fit", None, length), task.windows("eval", None, length)
    assert not set(everything[0].document.tolist()) & set(everything[1].document.tolist())


def check_fit_context(task: SplitTask, k: int, fit: TaskWindows, level: float,
                      second_order: str) -> None:
    """fit_codec("gaussian-std") meets ``level`` on the probe and round-trips; the
    context's Fisher predicts the ``second_order`` metric of small uniform noise (T7)
    within a factor of 2."""
    _, hidden = task.forward(fit.inputs, [k])
    context = task.fit_context(k, fit, hidden[k])
    fitted = fit_codec("gaussian-std", context, level)
    assert fitted.calibration.met
    assert context.probe.delta_ce(fitted.codec.reconstruct) <= level
    for window in hidden[k][:2]:
        assert torch.equal(fitted.codec.decode(fitted.codec.encode(window)),
                           fitted.codec.reconstruct(window))

    fisher = context.fisher
    step, first = 1e-2 / np.sqrt(fisher.rest), 1e-2 / np.sqrt(fisher.first)
    predicted = fisher.predicted_delta_ce(step, first)
    steps = torch.tensor(np.vstack([first, np.tile(step, (hidden[k].shape[1] - 1, 1))]),
                         dtype=hidden[k].dtype)
    noise = (torch.rand(hidden[k].shape, generator=torch.Generator().manual_seed(0)) - 0.5)
    reference = task.suffix(k, fit.inputs, hidden[k])
    output = task.suffix(k, fit.inputs, hidden[k] + noise * steps)
    measured = float(task.metrics(reference, output, fit.inputs)[second_order].mean())
    assert 0.5 < measured / predicted < 2.0, (measured, predicted)


def check_prefix_map(task: SplitTask, windows: TaskWindows, k: int) -> None:
    """``task.prefix_map`` gives the hidden state after layer ``k`` and supports the JVP and
    VJP that T10's power iteration uses."""
    fn, x = task.prefix_map(k, windows.inputs)
    _, hidden = task.forward(windows.inputs, [k])
    assert torch.allclose(fn(x), hidden[k], atol=1e-5, rtol=1e-4)
    tangent = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    _, jvp = torch.func.jvp(fn, (x,), (tangent,))
    _, vjp_fn = torch.func.vjp(fn, x)
    (vjp,) = vjp_fn(jvp)
    assert jvp.shape == hidden[k].shape and float((vjp * tangent).sum().detach()) > 0  # ‖J t‖²
