"""Tiny random transformers models (4 layers, width 64) of many architectures, built
from configs in code (no downloads), for the split and task tests.

Each builder returns the model in evaluation mode with fixed random weights.
Text models have a 128-token vocabulary; the ViT takes 16×16 RGB images.
"""

from __future__ import annotations

import torch

VOCAB = 128
WIDTH = 64
LAYERS = 4


def _text(config_name: str, model_name: str, **settings):
    import transformers

    def build(seed: int = 0):
        config = getattr(transformers, config_name)(**settings)
        torch.manual_seed(seed)
        return getattr(transformers, model_name)(config).eval()
    return build


_DECODER = dict(vocab_size=VOCAB, hidden_size=WIDTH, intermediate_size=2 * WIDTH,
                num_hidden_layers=LAYERS, num_attention_heads=4, num_key_value_heads=2,
                max_position_embeddings=128, pad_token_id=0, bos_token_id=1, eos_token_id=2)

#: name → (builder, what the model is); the rows of the architecture table.
ARCHITECTURES = {
    "llama": _text("LlamaConfig", "LlamaForCausalLM", **_DECODER),
    "qwen2": _text("Qwen2Config", "Qwen2ForCausalLM", **_DECODER),
    "qwen3": _text("Qwen3Config", "Qwen3ForCausalLM", head_dim=16, **_DECODER),
    "gemma2": _text("Gemma2Config", "Gemma2ForCausalLM", head_dim=16, sliding_window=8,
                    **_DECODER),
    "gemma3": _text("Gemma3TextConfig", "Gemma3ForCausalLM", head_dim=16, sliding_window=8,
                    layer_types=["sliding_attention", "full_attention"] * 2, **_DECODER),
    "phi3": _text("Phi3Config", "Phi3ForCausalLM", **_DECODER),
    "mistral": _text("MistralConfig", "MistralForCausalLM", sliding_window=8, **_DECODER),
    "gpt2": _text("GPT2Config", "GPT2LMHeadModel", vocab_size=VOCAB, n_embd=WIDTH,
                  n_layer=LAYERS, n_head=4, n_positions=128, pad_token_id=0,
                  bos_token_id=1, eos_token_id=2),
    "gpt-neox": _text("GPTNeoXConfig", "GPTNeoXForCausalLM", vocab_size=VOCAB,
                      hidden_size=WIDTH, intermediate_size=2 * WIDTH,
                      num_hidden_layers=LAYERS, num_attention_heads=4,
                      max_position_embeddings=128, pad_token_id=0),
    "opt": _text("OPTConfig", "OPTForCausalLM", vocab_size=VOCAB, hidden_size=WIDTH,
                 ffn_dim=2 * WIDTH, num_hidden_layers=LAYERS, num_attention_heads=4,
                 word_embed_proj_dim=WIDTH, max_position_embeddings=128, pad_token_id=0),
    "opt-project-in": _text("OPTConfig", "OPTForCausalLM", vocab_size=VOCAB, hidden_size=WIDTH,
                      ffn_dim=2 * WIDTH, num_hidden_layers=LAYERS, num_attention_heads=4,
                      word_embed_proj_dim=WIDTH // 2, max_position_embeddings=128,
                      pad_token_id=0),
    "falcon": _text("FalconConfig", "FalconForCausalLM", vocab_size=VOCAB,
                    hidden_size=WIDTH, num_hidden_layers=LAYERS, num_attention_heads=4,
                    pad_token_id=0),
    "bert": _text("BertConfig", "BertModel", vocab_size=VOCAB, hidden_size=WIDTH,
                  intermediate_size=2 * WIDTH, num_hidden_layers=LAYERS,
                  num_attention_heads=4, max_position_embeddings=128, pad_token_id=0),
    "vit": _text("ViTConfig", "ViTForImageClassification", image_size=16, patch_size=4,
                 num_channels=3, hidden_size=WIDTH, intermediate_size=2 * WIDTH,
                 num_hidden_layers=LAYERS, num_attention_heads=4, num_labels=10),
}


def build(name: str, seed: int = 0) -> torch.nn.Module:
    """The tiny model ``name`` (a key of :data:`ARCHITECTURES`)."""
    return ARCHITECTURES[name](seed)


def text_batch(generator: torch.Generator, left: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """Three rows of 19 token ids and their mask: unpadded, left-padded (when ``left``;
    else unpadded too) and right-padded."""
    ids = torch.randint(3, VOCAB, (3, 19), generator=generator)
    mask = torch.ones_like(ids)
    if left:
        mask[1, :6] = 0
    mask[2, 13:] = 0
    return ids, mask


def image_batch(generator: torch.Generator) -> torch.Tensor:
    """Three random 16×16 RGB images."""
    return torch.rand(3, 3, 16, 16, generator=generator)
