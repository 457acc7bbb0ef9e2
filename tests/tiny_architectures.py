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

    def build(seed: int = 0, **overrides):
        config = getattr(transformers, config_name)(**(settings | overrides))
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


def build(name: str, seed: int = 0, **overrides) -> torch.nn.Module:
    """The tiny model ``name`` (a key of :data:`ARCHITECTURES`); ``overrides`` change its
    config (e.g. ``vocab_size`` to match a real tokenizer)."""
    return ARCHITECTURES[name](seed, **overrides)


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


def write_gemma3_gguf(model: torch.nn.Module, path) -> None:
    """Write a tiny Gemma3 causal LM as a float32 GGUF file with a small SentencePiece-style
    vocabulary, as llama.cpp lays it out (tensor names from ``gguf``'s map; Gemma's
    RMSNorm weights stored as ``1 + w``), so transformers' GGUF reader can load it."""
    import gguf
    import numpy as np

    config = model.config
    writer = gguf.GGUFWriter(str(path), "gemma3")
    writer.add_context_length(config.max_position_embeddings)
    writer.add_embedding_length(config.hidden_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)
    writer.add_sliding_window(config.sliding_window)
    writer.add_vocab_size(config.vocab_size)
    letters = ["▁", "▁the", "▁a", "e", "t", "h", "▁of", "s", "n", "i", "o", "r", "d", "l",
               "u", "c", "m", "w", "f", "g", "y", "p", "b", "k"]
    tokens = ["<pad>", "<eos>", "<bos>", "<unk>"] + [f"<0x{i:02X}>" for i in range(100)] + letters
    assert len(tokens) == config.vocab_size
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores([0.0] * len(tokens))
    writer.add_token_types([3, 3, 3, 2] + [6] * 100 + [1] * len(letters))
    writer.add_bos_token_id(2)
    writer.add_eos_token_id(1)
    writer.add_unk_token_id(3)
    writer.add_pad_token_id(0)
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.GEMMA3, config.num_hidden_layers)
    for name, tensor in model.state_dict().items():
        if name == "lm_head.weight":  # tied to the embedding
            continue
        values = tensor.float().numpy()
        if name.endswith("norm.weight"):
            values = values + 1.0
        writer.add_tensor(names.get_name(name, try_suffixes=(".weight",)),
                          np.ascontiguousarray(values))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
