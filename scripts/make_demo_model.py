#!/usr/bin/env python3
"""Writes the demo reward model: a tiny LlamaForSequenceClassification with
deterministic random weights and a small byte-level BPE tokenizer trained here
on a built-in text. Nothing is downloaded; the same seed gives the same files.

    python3 scripts/make_demo_model.py OUT_DIR [--seed N]

The scores it gives are meaningless (random weights): it exists so a new user
sees the whole path, from a Hugging Face-style directory to named scores.
Only the Python standard library is used.
"""
import argparse
import collections
import json
import math
import os
import random
import re
import struct
import sys

CORPUS = """
A reward model reads a conversation and returns a score for the last response.
Reinforcement learning from human feedback uses such scores to train a policy.
The assistant answered the question about Paris: the Louvre, the Eiffel Tower
and Montmartre are worth seeing. Is seventeen a prime number? Yes, 17 is prime.
Helpfulness, correctness, coherence, complexity and verbosity are the five
attributes a HelpSteer-style model predicts. Write a haiku about the sea.
The quick brown fox jumps over the lazy dog 0123456789 times.
def add(a, b):\n    return a + b\n
""" * 3

SPECIALS = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
            "<|eot_id|>", "<|finetune_right_pad_id|>"]

# The Llama 3 pre-tokenizer pattern (the encoder in lib/ runs it; training
# here only needs a close approximation of its word boundaries).
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                  r"|\s*[\r\n]+|\s+(?!\S)|\s+")
TRAIN_PATTERN = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d|[^\r\n\w]?[^\W\d_]+|\d{1,3}| ?[^\s\w]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

TEMPLATE = (
    "{{- bos_token }}"
    "{%- for message in messages %}"
    "{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{%- endif %}"
)

LABELS = ["helpfulness", "correctness", "coherence", "complexity", "verbosity"]


def bytes_to_unicode():
    """GPT-2's printable alphabet for the 256 bytes."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def train_bpe(text, n_merges):
    b2u = bytes_to_unicode()
    words = collections.Counter(TRAIN_PATTERN.findall(text))
    splits = {w: [b2u[b] for b in w.encode()] for w in words}
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, n in words.items():
            s = splits[w]
            for a, b in zip(s, s[1:]):
                pairs[a, b] += n
        if not pairs:
            break
        (a, b), count = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        if count < 2:
            break
        merges.append((a, b))
        for w in words:
            s, out, i = splits[w], [], 0
            while i < len(s):
                if i + 1 < len(s) and s[i] == a and s[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(s[i])
                    i += 1
            splits[w] = out
    vocab = {}
    for b in range(256):
        vocab[b2u[b]] = len(vocab)
    for a, b in merges:
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
    return vocab, merges


def tokenizer_json(vocab, merges):
    added = [{"id": len(vocab) + i, "content": s, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": True} for i, s in enumerate(SPECIALS)]
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": added,
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_PATTERN}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": True,
                  "vocab": vocab, "merges": [[a, b] for a, b in merges]},
    }


def bf16_bytes(values):
    out = bytearray()
    for v in values:
        u = struct.unpack("<I", struct.pack("<f", v))[0]
        u = (u + 0x7FFF + ((u >> 16) & 1)) >> 16   # round to nearest even
        out += struct.pack("<H", u)
    return bytes(out)


def write_safetensors(path, tensors):
    header, blobs, offset = {}, [], 0
    for name, shape, values in tensors:
        data = bf16_bytes(values)
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=2026)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = random.Random(args.seed)

    vocab, merges = train_bpe(CORPUS, 400)
    n_vocab = len(vocab) + len(SPECIALS)
    hidden, layers, heads, kv_heads, ffn = 64, 2, 4, 2, 128
    head_dim = hidden // heads
    config = {
        "architectures": ["LlamaForSequenceClassification"], "model_type": "llama",
        "hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
        "num_key_value_heads": kv_heads, "head_dim": head_dim, "intermediate_size": ffn,
        "vocab_size": n_vocab, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5,
        "rope_parameters": {"rope_type": "default", "rope_theta": 500000.0},
        "hidden_act": "silu", "attention_bias": False, "mlp_bias": False, "tie_word_embeddings": False,
        "dtype": "bfloat16", "id2label": {str(i): l for i, l in enumerate(LABELS)},
        "label2id": {l: i for i, l in enumerate(LABELS)},
        "bos_token_id": vocab.get("<|begin_of_text|>", len(vocab)), "pad_token_id": len(vocab) + 5,
    }

    def randn(n, scale):
        return [rng.gauss(0.0, scale) for _ in range(n)]

    def norm(n):
        return [1.0 + rng.uniform(-0.2, 0.2) for _ in range(n)]

    s = 1.0 / math.sqrt(hidden)
    tensors = [("model.embed_tokens.weight", [n_vocab, hidden], randn(n_vocab * hidden, 1.0))]
    for i in range(layers):
        p = f"model.layers.{i}."
        tensors += [
            (p + "input_layernorm.weight", [hidden], norm(hidden)),
            (p + "self_attn.q_proj.weight", [heads * head_dim, hidden], randn(heads * head_dim * hidden, s)),
            (p + "self_attn.k_proj.weight", [kv_heads * head_dim, hidden], randn(kv_heads * head_dim * hidden, s)),
            (p + "self_attn.v_proj.weight", [kv_heads * head_dim, hidden], randn(kv_heads * head_dim * hidden, s)),
            (p + "self_attn.o_proj.weight", [hidden, heads * head_dim], randn(hidden * heads * head_dim, s)),
            (p + "post_attention_layernorm.weight", [hidden], norm(hidden)),
            (p + "mlp.gate_proj.weight", [ffn, hidden], randn(ffn * hidden, s)),
            (p + "mlp.up_proj.weight", [ffn, hidden], randn(ffn * hidden, s)),
            (p + "mlp.down_proj.weight", [hidden, ffn], randn(hidden * ffn, 1.0 / math.sqrt(ffn))),
        ]
    tensors += [("model.norm.weight", [hidden], norm(hidden)),
                ("score.weight", [len(LABELS), hidden], randn(len(LABELS) * hidden, s))]

    write_safetensors(os.path.join(args.out, "model.safetensors"), tensors)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(args.out, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(tokenizer_json(vocab, merges), f, ensure_ascii=False)
    with open(os.path.join(args.out, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>",
                   "model_max_length": 4096, "chat_template": TEMPLATE}, f, indent=2)
    print(f"demo model written to {args.out}: vocab {n_vocab} ({len(merges)} merges), hidden {hidden}, "
          f"{layers} layers, labels {','.join(LABELS)}", file=sys.stderr)


if __name__ == "__main__":
    main()
