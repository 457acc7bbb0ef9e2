"""Which task a model gets, from its transformers config alone (no weights loaded).

``rdgap validate --model FOLDER`` runs next-token prediction on a causal LM,
the sentence embedding on a masked-LM encoder and image classification on an
image classifier; :func:`task_kind` decides from the config, and
:func:`folder_task_kind` says why for a folder.
"""

from __future__ import annotations

import os
from pathlib import Path

#: The three task kinds a model folder can get, by what its config says it is.
CAUSAL_LM, ENCODER, IMAGE_CLASSIFIER = ("next-token prediction", "sentence embedding",
                                        "image classification")


def task_kind(config) -> str:
    """Which task ``rdgap validate`` runs on a model with this transformers config.

    - :data:`IMAGE_CLASSIFIER` (ΔCE, KL, top-1, accuracy) when the model type is a
      transformers image classifier (ViT, DeiT, ...) or the saved class is
      ``…ForImageClassification``;
    - :data:`ENCODER` (sentence embedding, 1 − cos) when the model type has a
      masked-LM head in transformers (BERT, RoBERTa, ...) and the config is not
      a decoder (``is_decoder``: such a folder loads as e.g. ``BertLMHeadModel``
      through the causal-LM auto class, but it is not one);
    - :data:`CAUSAL_LM` (ΔCE, KL, top-1) when the model type has a causal-LM
      class in transformers (Llama, GPT-2, OPT, Falcon, ...).

    Parameters
    ----------
    config : transformers.PretrainedConfig
        The model's config (``config.json`` of a folder).

    Raises
    ------
    ValueError
        If the config is none of the three, naming its model type.
    """
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES, MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES,
        MODEL_FOR_MASKED_LM_MAPPING_NAMES)

    model_type = getattr(config, "model_type", None)
    saved = [str(name) for name in getattr(config, "architectures", None) or []]
    if model_type in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES or \
            any(name.endswith("ForImageClassification") for name in saved):
        return IMAGE_CLASSIFIER
    if model_type in MODEL_FOR_MASKED_LM_MAPPING_NAMES and not getattr(config, "is_decoder", False):
        return ENCODER
    if model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        return CAUSAL_LM
    raise ValueError(f"model: {model_type!r} is not a causal LM, a masked-LM encoder nor an "
                     f"image classifier known to transformers; rdgap validate cannot pick "
                     f"a task for it")


def folder_task_kind(folder: str | os.PathLike) -> tuple[str, str]:
    """The task kind of a model folder (:func:`task_kind` of its ``config.json``) and
    why, e.g. ``("image classification", "model_type 'vit', saved as
    ViTForImageClassification")``.

    Raises
    ------
    FileNotFoundError
        If the folder holds no ``config.json``.
    """
    from transformers import AutoConfig

    path = Path(folder).expanduser()
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"model: {path} has no config.json; expected a folder "
                                f"written by save_pretrained (config.json + weights)")
    config = AutoConfig.from_pretrained(path, local_files_only=True)
    saved = ", ".join(getattr(config, "architectures", None) or []) or "no saved class"
    return task_kind(config), f"model_type {config.model_type!r}, saved as {saved}"
