"""Image classification with the digits ViT (:mod:`.vit`), split after block ``k``.

A window is a group of images coded as one stream (so that T2's per-stream
overhead is amortised over many positions): ``images`` per window × 5
tokens (class token first, then 4 patches) per image, in image order. The
fit and evaluation windows come from two disjoint halves of the images the
ViT was *not* trained on (split by ``seed``); each window's group id is the
digits index of its first image, so groups never repeat.

Distortion per window, mean over its images: ΔCE against the true labels
(nats per image), KL(full ‖ split), top-1 agreement with the unsplit model,
and the change of accuracy. The Fisher of ΔCE is the LM's (labels from the
model's own output), with the expectation over the ten labels summed exactly
instead of sampled (:mod:`.task_fisher`).
"""

from __future__ import annotations

import os
from typing import Literal

import numpy as np
import torch
from torch.nn import functional as F

from .task_fisher import task_fit_context
from .tasks import TaskWindows, check_part
from .vit import VIT_NAME, DigitsViT, ViTConfig, digits_data, load_digits_vit


class DigitsViTTask:
    """The digits ViT as a :class:`.tasks.SplitTask`.

    Parameters
    ----------
    model : DigitsViT
        The trained model.
    train_indices : sequence of int
        Digits images it was trained on; never used for fit or evaluation windows.
    name : str
        Architecture label.
    seed : int
        Seed of the fit / evaluation split of the remaining images.
    """

    model_type = "vit"
    task = "image classification"
    metrics_names = ("delta_ce_nats", "kl_nats", "top1_agreement", "accuracy_change")
    default_levels = (0.05,)  # nats/image-token, as for the LM
    batch_size = 16
    default_images = 16

    def __init__(self, model: DigitsViT, train_indices, name: str = VIT_NAME, seed: int = 0):
        self.model, self.name, self.seed = model.eval(), name, seed
        self.num_layers = len(model.blocks)
        self.width = model.config.width
        self.tokens_per_image = model.config.tokens
        self.default_length = self.default_images * self.tokens_per_image
        self.images, self.labels = digits_data()
        trained = np.zeros(len(self.images), dtype=bool)
        trained[np.asarray(train_indices, dtype=int)] = True
        rest = np.flatnonzero(~trained)
        order = np.random.default_rng(seed).permutation(rest)
        half = len(order) // 2
        self.parts = {"fit": np.sort(order[:half]), "eval": np.sort(order[half:])}

    def windows(self, part: Literal["fit", "eval"], count: int | None,
                length: int | None = None) -> TaskWindows:
        """Up to ``count`` windows of 16 images (80 positions), or fewer whole images
        when ``length`` (positions) is shorter.

        Longer windows are not made: the held-out images are few (≈450 per part),
        and the confidence intervals and T8/T9 bounds count windows, so 16 images
        per stream keeps ≈28 windows per part while the container and flush
        overhead stays a few bits per position.
        """
        check_part(part)
        length = length or self.default_length
        per_window = min(self.default_images, length // self.tokens_per_image)
        if per_window < 1:
            raise ValueError(f"length: expected ≥ {self.tokens_per_image} positions (one image "
                             f"of {self.tokens_per_image} tokens), got {length}")
        indices = self.parts[part]
        groups = len(indices) // per_window
        if count is not None:
            groups = min(groups, count)
        if groups == 0:
            raise ValueError(f"length: {part} has {len(indices)} images, fewer than the "
                             f"{per_window} of one window; use shorter windows")
        chosen = torch.as_tensor(indices[:groups * per_window]).reshape(groups, per_window)
        return TaskWindows({"images": self.images[chosen], "labels": self.labels[chosen]},
                           chosen[:, 0].clone())

    # -- passes ---------------------------------------------------------------
    def _check(self, k: int) -> int:
        if isinstance(k, bool) or not isinstance(k, int):
            raise TypeError(f"split: expected an int, got {type(k).__name__}")
        if not 0 < k < self.num_layers:
            raise ValueError(f"split: expected 0 < split < {self.num_layers} (the ViT has "
                             f"{self.num_layers} blocks), got {k}")
        return k

    def _check_hidden(self, hidden: torch.Tensor) -> None:
        if hidden.dim() != 3 or hidden.shape[-1] != self.width \
                or hidden.shape[1] % self.tokens_per_image:
            raise ValueError(f"hidden: expected (windows, images·{self.tokens_per_image}, "
                             f"{self.width}), got {tuple(hidden.shape)}")

    def _flat(self, hidden: torch.Tensor) -> torch.Tensor:
        """``(windows, images·tokens, width)`` → ``(windows·images, tokens, width)`` (a view)."""
        return hidden.reshape(-1, self.tokens_per_image, self.width)

    @torch.no_grad()
    def forward(self, inputs: dict, splits: list[int]) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        splits = sorted({self._check(k) for k in splits})
        images = inputs["images"]
        windows, per_window = images.shape[:2]
        x = self.model.embed(images.reshape(-1, *images.shape[2:]))
        hidden, done = {}, 0
        for k in splits + [self.num_layers]:
            x = self.model.run_blocks(x, done, k)
            done = k
            if k < self.num_layers:
                hidden[k] = x.reshape(windows, per_window * self.tokens_per_image, self.width)
        return self.model.classify(x).reshape(windows, per_window, -1), hidden

    def suffix_differentiable(self, k: int, inputs: dict, hidden: torch.Tensor) -> torch.Tensor:
        """:meth:`suffix` with autograd on (``inputs`` is not needed)."""
        self._check(k)
        self._check_hidden(hidden)
        x = self.model.run_blocks(self._flat(hidden), k, self.num_layers)
        return self.model.classify(x).reshape(hidden.shape[0], -1, self.model.config.classes)

    @torch.no_grad()
    def suffix(self, k: int, inputs: dict, hidden: torch.Tensor) -> torch.Tensor:
        return self.suffix_differentiable(k, inputs, hidden)

    def prefix_map(self, k: int, inputs: dict):
        """THEORY.md T10's prefix as ``(fn, x)``: ``x`` the embedded images
        ``(windows, positions, width)``, ``fn(x)`` the hidden state after block ``k``."""
        self._check(k)
        images = inputs["images"]
        windows = images.shape[0]
        with torch.no_grad():
            x = self.model.embed(images.reshape(-1, *images.shape[2:])).reshape(
                windows, -1, self.width)

        def fn(embedded: torch.Tensor) -> torch.Tensor:
            return self.model.run_blocks(self._flat(embedded), 0, k).reshape(
                embedded.shape[0], -1, self.width)

        return fn, x

    # -- distortion -----------------------------------------------------------
    def metrics(self, reference: torch.Tensor, output: torch.Tensor,
                inputs: dict) -> dict[str, np.ndarray]:
        labels = inputs["labels"]
        if reference.shape != output.shape or reference.shape[:2] != labels.shape:
            raise ValueError(f"output: expected logits of shape {tuple(reference.shape)} "
                             f"(windows, images, classes) for labels {tuple(labels.shape)}, "
                             f"got {tuple(output.shape)}")
        log_p = torch.log_softmax(reference.double(), -1)
        log_q = torch.log_softmax(output.double(), -1)
        ce_p = -log_p.gather(-1, labels[..., None]).squeeze(-1)
        ce_q = -log_q.gather(-1, labels[..., None]).squeeze(-1)
        kl = (log_p.exp() * (log_p - log_q)).sum(-1).clamp_min(0.0)
        top_p, top_q = reference.argmax(-1), output.argmax(-1)
        right = ((top_q == labels).double() - (top_p == labels).double())
        return {"delta_ce_nats": (ce_q - ce_p).mean(1).numpy(),
                "kl_nats": kl.mean(1).numpy(),
                "top1_agreement": (top_p == top_q).double().mean(1).numpy(),
                "accuracy_change": right.mean(1).numpy()}

    def corpus_metrics(self, reference: object, output: object) -> dict[str, float]:
        return {}

    def _expected_log_loss(self, k: int):
        """One term per class ``y``: ``−Σ_i √p_i(y) log p_i(y)`` over the images ``i``.

        The Fisher of the log-loss is ``F_i = E_{y~p_i}[∇log p_i(y) ∇log p_i(y)ᵀ]``, as the
        LM's labels sampled from the model estimate it; with ten classes the
        expectation is summed exactly instead: ``Σ_y g_y g_yᵀ = Σ_i F_i`` on each
        image's positions (images do not attend to each other, so the cross
        terms touch different positions and never enter the per-position diagonal
        or outer products). Sampling one label per image underestimated KL by ≈2×
        on the trained ViT (a confident model's rare labels carry the Fisher).
        """
        def loss(inputs: dict, hidden: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
            log_probs = F.log_softmax(self.suffix_differentiable(k, inputs, hidden), dim=-1)
            weights = log_probs.detach().exp().sqrt()
            return -(weights * log_probs).sum(dim=(0, 1))
        return loss

    def fit_context(self, k: int, fit: TaskWindows, hidden: torch.Tensor):
        """Statistics and the exact Fisher from the first half of the fit windows; the
        calibration probe on *all* of them (≈450 images).

        ΔCE of a 97 %-accurate classifier is carried by the few images near a decision
        boundary, whose cross-entropy jumps when the quantization error tips them, so
        the probe's mean over 14 windows (224 images) had a standard error ≈ 0.025
        nats at the 0.05 level and calibrated codecs overshot it on the evaluation
        windows (mean 0.060 over 5 splits × 3 variants, up to 0.10). Probing all 28 fit
        windows halves the variance (mean 0.052, largest 0.078 in the same check); the
        ViT's width-64 statistics gain little from seeing the probe's other half.
        """
        units = fit.inputs["images"].shape[1]
        return task_fit_context(self, self._check(k), fit, hidden, self._expected_log_loss(k),
                                units=units, probe_all=True)


def load_digits_vit_task(cache_dir: str | os.PathLike | None = None, seed: int = 0,
                         progress: bool = True, config: ViTConfig | None = None) -> DigitsViTTask:
    """The digits-ViT task; the ViT is trained (≈1 min) and cached on first use
    (:func:`.vit.load_digits_vit`)."""
    model, info = load_digits_vit(cache_dir, progress=progress, config=config)
    return DigitsViTTask(model, info["train_indices"], seed=seed)


class ImageClassifierTask(DigitsViTTask):
    """Any transformers image classifier (ViT, DeiT, ...) as a :class:`.tasks.SplitTask`.

    The images are scikit-learn's digits, resized (bilinear) to the model's
    ``image_size``, repeated over its ``num_channels`` and scaled to [−1, 1]
    (ViT's normalisation); windows, groups and metrics are those of
    :class:`DigitsViTTask`, split by ``seed`` into two halves of all 1,797
    images. The labels are the digit classes when the model has 10 labels;
    otherwise they are the *unsplit model's own top-1 class* (so ΔCE is the
    cross-entropy change at the reference prediction and ``accuracy_change``
    the change of agreement with it), stated in ``labels``. The split is
    :class:`rdgap.split.SplitModel`'s (bit-exact at every layer).

    Parameters
    ----------
    model : transformers image-classification model
        In evaluation mode.
    name : str
        Architecture label.
    seed : int
        Seed of the fit / evaluation split of the images.
    """

    default_images = 16

    def __init__(self, model, name: str, seed: int = 0):
        from rdgap.split import SplitModel

        self.model, self.name, self.seed = model.eval(), name, seed
        self.model_type = str(model.config.model_type)
        self.split = SplitModel(model, 1)
        self.num_layers = self.split.num_layers
        self.width = int(model.config.hidden_size)
        self.classes = int(model.config.num_labels)
        self.labels_are = "digit classes" if self.classes == 10 else \
            "the unsplit model's top-1 class"
        digits, labels = digits_data()
        self.images, self.digit_labels = digits, labels
        with torch.no_grad():
            _, hidden = self.split.capture(self._pixels(digits[:1]), None, [1])
        self.tokens_per_image = int(hidden[1].shape[1])
        self.default_length = self.default_images * self.tokens_per_image
        order = np.random.default_rng(seed).permutation(len(digits))
        half = len(order) // 2
        self.parts = {"fit": np.sort(order[:half]), "eval": np.sort(order[half:])}
        self._labels: torch.Tensor | None = None

    @property
    def labels(self) -> torch.Tensor:
        """Label of every digits image (computed once when they are the model's own)."""
        if self._labels is None:
            if self.classes == 10:
                self._labels = self.digit_labels
            else:
                with torch.no_grad():
                    self._labels = torch.cat([
                        self.split.full(self._pixels(self.images[i:i + 64])).argmax(-1)
                        for i in range(0, len(self.images), 64)])
        return self._labels

    def _pixels(self, images: torch.Tensor) -> torch.Tensor:
        """``(n, 8, 8)`` digits in [0, 1] → the model's ``pixel_values``."""
        config = self.model.config
        size = config.image_size if isinstance(config.image_size, (tuple, list)) \
            else (config.image_size,) * 2
        x = F.interpolate(images[:, None], size=tuple(size), mode="bilinear",
                          align_corners=False)
        dtype = next(self.model.parameters()).dtype
        return (x.repeat(1, config.num_channels, 1, 1) * 2.0 - 1.0).to(dtype)

    def _check(self, k: int) -> int:
        return self.split.stack.check_split(k)

    @torch.no_grad()
    def forward(self, inputs: dict, splits: list[int]) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
        images = inputs["images"]
        windows, per_window = images.shape[:2]
        logits, hidden = self.split.capture(self._pixels(images.reshape(-1, *images.shape[2:])),
                                            None, [self._check(k) for k in splits])
        return logits.reshape(windows, per_window, -1), {
            k: h.reshape(windows, per_window * self.tokens_per_image, self.width)
            for k, h in hidden.items()}

    def suffix_differentiable(self, k: int, inputs: dict, hidden: torch.Tensor) -> torch.Tensor:
        """:meth:`suffix` with autograd on (``inputs`` is not needed)."""
        from rdgap.split import SplitModel

        self._check(k)
        self._check_hidden(hidden)
        logits = SplitModel(self.model, k, self.split.layers).suffix_differentiable(
            self._flat(hidden))
        return logits.reshape(hidden.shape[0], -1, self.classes)

    def prefix_map(self, k: int, inputs: dict):
        """THEORY.md T10's prefix as ``(fn, x)``: ``x`` the embedding output
        ``(windows, positions, width)``, ``fn(x)`` the state after layer ``k`` (the
        attention runs in transformers' eager form for forward-mode AD)."""
        self._check(k)
        images = inputs["images"]
        windows = images.shape[0]
        run = self.split.inputs(self._pixels(images.reshape(-1, *images.shape[2:])))
        entry = getattr(self.model.base_model, "embeddings", None) \
            or self.model.get_input_embeddings()
        seen: list[torch.Tensor] = []
        with torch.no_grad():
            self.split.stack.prefix_state(1, run, (entry, seen.append))
        x = seen[0].detach().reshape(windows, -1, self.width)
        inner = self.split.stack.prefix(k, run, entry)

        def fn(embedded: torch.Tensor) -> torch.Tensor:
            attention = self.model.config._attn_implementation
            self.model.config._attn_implementation = "eager"
            try:
                return inner(self._flat(embedded)).reshape(embedded.shape[0], -1, self.width)
            finally:
                self.model.config._attn_implementation = attention

        return fn, x


def load_image_classifier_task(folder: str | os.PathLike, seed: int = 0) -> ImageClassifierTask:
    """:class:`ImageClassifierTask` of a transformers image-classification folder, offline."""
    from pathlib import Path

    from transformers import AutoModelForImageClassification

    os.environ["HF_HUB_OFFLINE"] = "1"
    path = Path(folder).expanduser()
    model = AutoModelForImageClassification.from_pretrained(path, dtype=torch.float32,
                                                            local_files_only=True)
    return ImageClassifierTask(model, name=path.name, seed=seed)
