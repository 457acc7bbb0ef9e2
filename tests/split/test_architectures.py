"""One split mechanism for every transformers architecture: bit-exact at every split.

Tiny random models (4 layers, width 64, :mod:`tiny_architectures`) of 14
architectures, built from configs in code. For each, ``suffix(prefix(x))`` must
equal ``model(x)`` bit for bit at every split point, unpadded and with left and
right padding (text models). :func:`test_architecture_table_is_the_measured_one`
measures the table of ``docs/architectures.md`` and compares it with the
committed page; ``RDGAP_WRITE_TABLE=1`` rewrites the page from the measurement.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from rdgap.split import SplitModel, find_layers, logits_and_hidden
from rdgap.split import layers as layer_stack

from tiny_architectures import ARCHITECTURES, build, image_batch, text_batch

TABLE_PAGE = Path(__file__).resolve().parents[2] / "docs" / "architectures.md"
BEGIN, END = "<!-- table: tests/split/test_architectures.py -->", "<!-- end table -->"


@pytest.fixture(scope="module")
def models():
    return {name: build(name) for name in ARCHITECTURES}


def _inputs(split: SplitModel, padded: bool, seed: int):
    generator = torch.Generator().manual_seed(seed)
    if split.main_input == "pixel_values":
        return image_batch(generator), None
    ids, mask = text_batch(generator, left=split.model.can_generate())
    return ids, (mask if padded else None)


def measure(name: str, model: torch.nn.Module) -> dict:
    """Which splits are bit-exact, unpadded and padded; where the layers are; what they return."""
    layers = find_layers(model)
    row = {"architecture": name, "class": type(model).__name__,
           "layers": next(n for n, m in model.named_modules() if m is layers),
           "exact": [], "padded": []}
    for k in range(1, len(layers)):
        split = SplitModel(model, k)
        for padded in (False, True):
            x, mask = _inputs(split, padded, seed=k)
            if padded and mask is None:
                continue
            full = split.full(x, mask)
            same = torch.equal(split.suffix(split.prefix(x, mask), mask), full)
            row["padded" if padded else "exact"].append(same)
    row["returns"] = "tuple" if layer_stack._RETURNS[layers] else "tensor"
    return row


def _cell(values: list[bool], splits: int) -> str:
    if not values:
        return "n/a (images)"
    return f"yes, k = 1…{splits}" if all(values) else \
        "NO at k = " + ", ".join(str(k + 1) for k, v in enumerate(values) if not v)


def render(rows: list[dict]) -> str:
    from rdgap.validation.tasks import task_kind

    lines = ["| architecture | class | layer stack | layers return | bit-exact | "
             "bit-exact, padded | `rdgap validate --model` task |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        splits = len(row["exact"])
        kind = task_kind(row["config"])
        lines.append(f"| {row['architecture']} | `{row['class']}` | `{row['layers']}` | "
                     f"{row['returns']} | {_cell(row['exact'], splits)} | "
                     f"{_cell(row['padded'], splits)} | {kind} |")
    return "\n".join(lines)


@pytest.mark.parametrize("name", list(ARCHITECTURES))
def test_suffix_of_prefix_is_the_model_at_every_split(models, name):
    model = models[name]
    before = list(find_layers(model))
    row = measure(name, model)
    assert row["exact"] == [True] * (len(before) - 1)
    assert row["padded"] == ([] if name == "vit" else [True] * (len(before) - 1))
    assert list(find_layers(model)) == before  # every layer restored
    # not vacuous: another state at the split gives another output
    split = SplitModel(model, 2)
    x, mask = _inputs(split, True, seed=0)
    hidden = split.prefix(x, mask)
    assert not torch.equal(split.suffix(hidden + 0.1, mask), split.full(x, mask))


@pytest.mark.parametrize("name", ["opt-project-in", "gpt2", "bert", "falcon"])
def test_capture_gives_the_prefix_states_in_one_pass(models, name):
    model = models[name]
    ids, mask = text_batch(torch.Generator().manual_seed(5), left=model.can_generate())
    output, hidden = logits_and_hidden(model, ids, mask, [1, 3])
    assert torch.equal(output, SplitModel(model, 1).full(ids, mask))
    for k in (1, 3):
        assert torch.equal(hidden[k], SplitModel(model, k).prefix(ids, mask))


def test_placeholder_ids_do_not_matter(models):
    """The state is injected at layer k: the real ids give the same suffix output."""
    split = SplitModel(models["opt-project-in"], 2)
    ids, mask = text_batch(torch.Generator().manual_seed(3))
    hidden = split.prefix(ids, mask)
    assert torch.equal(split.suffix(hidden, mask, input_ids=ids), split.suffix(hidden, mask))


def test_stand_ins_must_return_what_the_layer_returns(models):
    """Falcon's forward unpacks its layers' tuples: a bare-tensor stand-in breaks it."""
    model = models["falcon"]
    split = SplitModel(model, 2)
    ids, mask = text_batch(torch.Generator().manual_seed(4))
    hidden = split.prefix(ids, mask)
    assert layer_stack._RETURNS[split.layers] == 2
    layer_stack._RETURNS[split.layers] = 0  # the defect: stand-ins return a tensor
    try:
        try:
            wrong = split.suffix(hidden, mask)
        except Exception:  # noqa: BLE001 - any failure shows the defect is caught
            wrong = None
        assert wrong is None or not torch.equal(wrong, split.full(ids, mask))
    finally:
        del layer_stack._RETURNS[split.layers]
    assert torch.equal(split.suffix(hidden, mask), split.full(ids, mask))


def test_layers_override_and_errors(models):
    model = models["opt"]
    named = SplitModel(model, 2, layers="model.decoder.layers")
    assert named.layers is find_layers(model)
    with pytest.raises(TypeError, match="layers: OPTForCausalLM has no submodule"):
        SplitModel(model, 2, layers="model.nope")
    with pytest.raises(TypeError, match="layers: expected an nn.ModuleList"):
        SplitModel(model, 2, layers=torch.nn.ModuleList([torch.nn.Linear(2, 2)] * 3))

    class TwoStacks(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.a = torch.nn.ModuleList(torch.nn.Linear(2, 2) for _ in range(3))
            self.b = torch.nn.ModuleList(torch.nn.ReLU() for _ in range(3))

    with pytest.raises(TypeError, match=r"several layer lists .*\['a', 'b'\].*layers="):
        find_layers(TwoStacks())
    assert find_layers(TwoStacks(), "b") is not None


def test_architecture_table_is_the_measured_one(models):
    rows = [measure(name, model) | {"config": model.config} for name, model in models.items()]
    table = render(rows)
    assert all(all(r["exact"]) and all(r["padded"]) for r in rows), table
    if os.environ.get("RDGAP_WRITE_TABLE") == "1":
        text = TABLE_PAGE.read_text()
        start, stop = text.index(BEGIN) + len(BEGIN), text.index(END)
        TABLE_PAGE.write_text(text[:start] + "\n" + table + "\n" + text[stop:])
    page = TABLE_PAGE.read_text()
    committed = page[page.index(BEGIN) + len(BEGIN):page.index(END)].strip()
    assert committed == table, f"docs/architectures.md is stale; measured:\n{table}"
