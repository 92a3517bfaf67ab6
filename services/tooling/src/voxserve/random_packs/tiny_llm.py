"""A small random Qwen2 causal LM in the Spark-TTS-0.5B ``LLM/`` layout.

The files mirror the real ones: a byte-level BPE ``tokenizer.json`` carrying the real special tokens as
added tokens, ``tokenizer_config.json`` / ``special_tokens_map.json`` naming the same tokenizer class and
special tokens, a ``config.json`` with the real keys, ``generation_config.json`` and ``model.safetensors``
under the Hugging Face Qwen2 tensor names. Only the sizes are small, so the code that loads this pack
(transformers, vLLM) is the code that loads real weights.

The BPE merges are learnt from a short corpus shipped beside this module (``corpus.txt``); the
tokenizer does not depend on the seed, only the weights do.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.numpy import save_file as save_numpy
from safetensors.torch import save_file as save_torch
from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors
from tokenizers.models import BPE
from tokenizers.trainers import BpeTrainer

NUM_GLOBAL_TOKENS = 4096
NUM_SEMANTIC_TOKENS = 8192
NUM_STYLE_LEVELS = 5

ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
QWEN_SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)

SPARK_CONTROL_TOKENS = (
    "<|task_tts|>",
    "<|task_controllable_tts|>",
    "<|start_content|>",
    "<|end_content|>",
    "<|start_style_label|>",
    "<|end_style_label|>",
    "<|start_global_token|>",
    "<|end_global_token|>",
    "<|start_semantic_token|>",
    "<|end_semantic_token|>",
    "<|gender_0|>",
    "<|gender_1|>",
    *(f"<|pitch_label_{n}|>" for n in range(NUM_STYLE_LEVELS)),
    *(f"<|speed_label_{n}|>" for n in range(NUM_STYLE_LEVELS)),
)

# Package data (see the tooling's pyproject package-data), read through importlib.resources so that
# it is found in an installed wheel as in a checkout.
CORPUS_FILE = "corpus.txt"

# Size of the learnt byte-level vocabulary (256 byte symbols + merges), before the added tokens.
BASE_VOCAB_SIZE = 1536

# Qwen2's pre-tokenizer split (the same expression as in the real tokenizer.json).
QWEN2_SPLIT_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
    r"|\s*[\r\n]+|\s+(?!\S)|\s+"
)

MAX_POSITIONS = 4096
VOCAB_MULTIPLE = 64
INIT_STD = 0.02


@dataclass(frozen=True)
class LlmSize:
    """Qwen2 dimensions of a random pack's LM; the tokenizer is the same at every size."""

    hidden_size: int
    num_layers: int
    num_attention_heads: int
    num_kv_heads: int
    intermediate_size: int
    vocab_size: int | None = None
    """None: the tokenizer's length rounded up to a multiple of 64."""
    dtype: str = "float32"


TINY_LLM = LlmSize(hidden_size=64, num_layers=2, num_attention_heads=2, num_kv_heads=1, intermediate_size=128)
# Spark-TTS-0.5B (Qwen2.5-0.5B): the sizes that matter for serving speed on a GPU.
SPARK_0_5B_LLM = LlmSize(
    hidden_size=896,
    num_layers=24,
    num_attention_heads=14,
    num_kv_heads=2,
    intermediate_size=4864,
    vocab_size=166000,
    dtype="bfloat16",
)


def bicodec_tokens() -> list[str]:
    """The BiCodec audio tokens, globals before semantics, each run in index order (as upstream)."""
    return [f"<|bicodec_global_{n}|>" for n in range(NUM_GLOBAL_TOKENS)] + [
        f"<|bicodec_semantic_{n}|>" for n in range(NUM_SEMANTIC_TOKENS)
    ]


# The s3 family: an LM that writes S3 speech tokens (CosyVoice2 / Chatterbox vocabulary).
NUM_SPEECH_TOKENS = 6561
S3_CONTROL_TOKENS = (
    "<|task_tts|>",
    "<|start_content|>",
    "<|end_content|>",
    "<|start_speech|>",
    "<|end_speech|>",
)


def spark_added_tokens() -> tuple[str, ...]:
    return (*bicodec_tokens(), *SPARK_CONTROL_TOKENS)


def s3_added_tokens() -> tuple[str, ...]:
    return (*(f"<|speech_{n}|>" for n in range(NUM_SPEECH_TOKENS)), *S3_CONTROL_TOKENS)


def build_tiny_tokenizer(
    added_tokens: tuple[str, ...] | None = None, special_tokens: tuple[str, ...] = QWEN_SPECIAL_TOKENS
) -> Tokenizer:
    """Byte-level BPE with Qwen2's pipeline, trained on the embedded corpus, plus the model's own
    special tokens (default: Qwen2's) and the family's audio and control tokens (default: Spark's)."""
    tokenizer = Tokenizer(
        BPE(
            dropout=None,
            unk_token=None,
            continuing_subword_prefix="",
            end_of_word_suffix="",
            fuse_unk=False,
            byte_fallback=False,
        )
    )
    tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT_PATTERN), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False),
        ]
    )
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = BpeTrainer(
        vocab_size=BASE_VOCAB_SIZE,
        min_frequency=1,
        show_progress=False,
        # All 256 byte symbols, so any UTF-8 text (Devanagari included) encodes without unknowns.
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(corpus_lines(), trainer)

    # Qwen2's own tokens are special; the Spark tokens are ordinary added tokens, as upstream, whose
    # inference decodes with skip_special_tokens=True and still finds the BiCodec tokens in the text.
    tokenizer.add_special_tokens([AddedToken(t, special=True, normalized=False) for t in special_tokens])
    added = spark_added_tokens() if added_tokens is None else added_tokens
    tokenizer.add_tokens([AddedToken(t, special=False, normalized=False) for t in added])
    return tokenizer


def corpus_lines() -> list[str]:
    """The training text shipped beside this module, one sentence a line: English, then some Hindi
    so that Devanagari gets merges of its own."""
    text = resources.files("voxserve.random_packs").joinpath(CORPUS_FILE).read_text(encoding="utf-8")
    return text.strip().splitlines()


def write_tiny_llm(llm_dir: Path, seed: int) -> None:
    """The tiny LM of the embedded default pack (see `write_llm`)."""
    write_llm(llm_dir, seed, TINY_LLM)


@dataclass(frozen=True)
class LlmFlavour:
    """What differs between the base models the families build on."""

    architecture: str
    model_type: str
    special_tokens: tuple[str, ...]
    bos_token: str | None
    eos_token: str
    pad_token: str
    tokenizer_class: str
    attention_bias: bool
    rope_theta: float
    rms_norm_eps: float


QWEN2 = LlmFlavour(
    "Qwen2ForCausalLM",
    "qwen2",
    QWEN_SPECIAL_TOKENS,
    None,
    IM_END,
    ENDOFTEXT,
    "Qwen2Tokenizer",
    True,
    1e6,
    1e-6,
)
# Llama 3's own special tokens (Orpheus builds on Llama-3.2-3B).
LLAMA3_SPECIAL_TOKENS = (
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
)
LLAMA3 = LlmFlavour(
    "LlamaForCausalLM",
    "llama",
    LLAMA3_SPECIAL_TOKENS,
    "<|begin_of_text|>",
    "<|eot_id|>",
    "<|end_of_text|>",
    "PreTrainedTokenizerFast",
    False,
    5e5,
    1e-5,
)


def write_llm(
    llm_dir: Path,
    seed: int,
    size: LlmSize,
    added_tokens: tuple[str, ...] | None = None,
    flavour: LlmFlavour = QWEN2,
) -> None:
    """Write the tokenizer, configs and random weights into ``llm_dir`` (created if missing).

    The same seed, size, tokens and flavour give byte-identical files.
    """
    llm_dir = Path(llm_dir)
    llm_dir.mkdir(parents=True, exist_ok=True)

    tokenizer = build_tiny_tokenizer(added_tokens, flavour.special_tokens)
    tokenizer.save(str(llm_dir / "tokenizer.json"), pretty=True)
    _write_json(llm_dir / "tokenizer_config.json", _tokenizer_config(tokenizer, flavour))
    special_map = {"eos_token": _token_entry(flavour.eos_token), "pad_token": _token_entry(flavour.pad_token)}
    if flavour.bos_token is not None:
        special_map["bos_token"] = _token_entry(flavour.bos_token)
    _write_json(llm_dir / "special_tokens_map.json", special_map)

    config = _model_config(tokenizer, size, flavour)
    _write_json(llm_dir / "config.json", config)
    _write_json(
        llm_dir / "generation_config.json",
        {"bos_token_id": config["bos_token_id"], "eos_token_id": config["eos_token_id"]},
    )
    if size.dtype == "float32":
        weights = _random_weights(config, seed, flavour.attention_bias)
        save_numpy(weights, str(llm_dir / "model.safetensors"), metadata={"format": "pt"})
    else:
        dtype = getattr(torch, size.dtype)
        # Each tensor is converted as it is drawn: a 3B model never exists in float32 at once.
        tensors = _random_weights(
            config, seed, flavour.attention_bias, lambda array: torch.from_numpy(array).to(dtype)
        )
        save_torch(tensors, str(llm_dir / "model.safetensors"), metadata={"format": "pt"})


def _model_config(tokenizer: Tokenizer, size: LlmSize, flavour: LlmFlavour) -> dict[str, Any]:
    vocab_size = size.vocab_size or -(-tokenizer.get_vocab_size() // VOCAB_MULTIPLE) * VOCAB_MULTIPLE
    common = {
        "architectures": [flavour.architecture],
        "attention_dropout": 0.0,
        "bos_token_id": _token_id(tokenizer, flavour.bos_token or ENDOFTEXT),
        "eos_token_id": _token_id(tokenizer, flavour.eos_token),
        "hidden_act": "silu",
        "hidden_size": size.hidden_size,
        "initializer_range": INIT_STD,
        "intermediate_size": size.intermediate_size,
        "max_position_embeddings": MAX_POSITIONS,
        "model_type": flavour.model_type,
        "num_attention_heads": size.num_attention_heads,
        "num_hidden_layers": size.num_layers,
        "num_key_value_heads": size.num_kv_heads,
        "rms_norm_eps": flavour.rms_norm_eps,
        "rope_theta": flavour.rope_theta,
        "tie_word_embeddings": True,
        "torch_dtype": size.dtype,
        "use_cache": True,
        "vocab_size": vocab_size,
    }
    if flavour.model_type == "qwen2":
        return common | {
            "max_window_layers": size.num_layers,
            "sliding_window": MAX_POSITIONS,
            "use_sliding_window": False,
        }
    return common | {
        "attention_bias": False,
        "head_dim": size.hidden_size // size.num_attention_heads,
        "mlp_bias": False,
        "pretraining_tp": 1,
    }


def _random_weights(
    config: dict[str, Any],
    seed: int,
    attention_bias: bool = True,
    convert: Callable[[np.ndarray], Any] = lambda array: array,
) -> dict[str, Any]:
    """Random weights under the Hugging Face names, each passed through ``convert`` when drawn."""
    rng = np.random.default_rng(seed)
    hidden = config["hidden_size"]
    head_dim = hidden // config["num_attention_heads"]
    q_dim = config["num_attention_heads"] * head_dim
    kv_dim = config["num_key_value_heads"] * head_dim
    ffn = config["intermediate_size"]

    def normal(*shape: int) -> Any:
        return convert((rng.standard_normal(shape) * INIT_STD).astype(np.float32))

    def ones(n: int) -> Any:
        return convert(np.ones(n, dtype=np.float32))

    # Drawn in a fixed order so that the seed alone decides every value.
    weights = {"model.embed_tokens.weight": normal(config["vocab_size"], hidden)}
    for layer in range(config["num_hidden_layers"]):
        prefix = f"model.layers.{layer}"
        for name, rows in (("q_proj", q_dim), ("k_proj", kv_dim), ("v_proj", kv_dim)):
            weights[f"{prefix}.self_attn.{name}.weight"] = normal(rows, hidden)
            if attention_bias:
                weights[f"{prefix}.self_attn.{name}.bias"] = normal(rows)
        weights |= {
            f"{prefix}.self_attn.o_proj.weight": normal(hidden, q_dim),
            f"{prefix}.mlp.gate_proj.weight": normal(ffn, hidden),
            f"{prefix}.mlp.up_proj.weight": normal(ffn, hidden),
            f"{prefix}.mlp.down_proj.weight": normal(hidden, ffn),
            f"{prefix}.input_layernorm.weight": ones(hidden),
            f"{prefix}.post_attention_layernorm.weight": ones(hidden),
        }
    weights["model.norm.weight"] = ones(hidden)
    return weights


def _tokenizer_config(tokenizer: Tokenizer, flavour: LlmFlavour) -> dict[str, Any]:
    added = sorted(tokenizer.get_added_tokens_decoder().items())
    return {
        "add_bos_token": False,
        "add_prefix_space": False,
        "added_tokens_decoder": {str(i): _token_entry(t.content, t.special) for i, t in added},
        "bos_token": flavour.bos_token,
        "clean_up_tokenization_spaces": False,
        "eos_token": flavour.eos_token,
        "errors": "replace",
        "model_max_length": MAX_POSITIONS,
        "pad_token": flavour.pad_token,
        "split_special_tokens": False,
        "tokenizer_class": flavour.tokenizer_class,
        "unk_token": None,
    }


def _token_entry(content: str, special: bool = True) -> dict[str, Any]:
    return {
        "content": content,
        "lstrip": False,
        "normalized": False,
        "rstrip": False,
        "single_word": False,
        "special": special,
    }


def _token_id(tokenizer: Tokenizer, token: str) -> int:
    token_id = tokenizer.token_to_id(token)
    if token_id is None:
        raise KeyError(f"tokenizer has no {token}")
    return token_id


def _write_json(path: Path, obj: dict[str, Any]) -> None:
    path.write_text(json.dumps(obj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
