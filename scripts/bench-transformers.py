#!/usr/bin/env python3
"""transformers' own forward pass at nimreward-bench --device cuda's shapes.

Llama-3.3-70B's shape in bf16 with random weights, attn_implementation="sdpa",
no torch.compile. A 70B model does not fit next to nothing else, so a few
layers are timed and the time is scaled per layer: the model is built with
2K layers, timed, cut to K layers, timed again; per layer = the difference / K,
and the rest (embedding, final norm, masks) = what K layers leave over. The
80-layer time is the rest + 80 x per layer. Batches as the benchmark's: 1x4096,
4x2048, 16x512 and the RLHF batch of 64 sequences of a 128-token prompt plus
256 response tokens (transformers computes the shared prompt 64 times).

Attention alone: transformers' own sdpa_attention_forward (which calls
torch's scaled_dot_product_attention as transformers does: repeat_kv, or
enable_gqa where it chooses that) on q, k, v of the layer's shapes, and
repeat_kv + SDPA spelled out, each timed; the backend that ran is read off the
kernel names in a profile. Attention FLOPs are counted causal (half the pairs).

    python3 scripts/bench-transformers.py [--layers 2] [--repeat 2] [--json FILE]
"""
import argparse
import json
import math
import statistics
import sys

import torch
import torch.nn.functional as F

HIDDEN, HEADS, KV_HEADS, HEAD_DIM, FFN, VOCAB, LAYERS = 8192, 64, 8, 128, 28672, 128256, 80
BATCHES = [("1x4096", 1, 4096), ("4x2048", 4, 2048), ("16x512", 16, 512), ("rlhf 64x(128+256)", 64, 384)]


def build_model(n_layers):
    import transformers
    cfg = transformers.LlamaConfig(hidden_size=HIDDEN, intermediate_size=FFN, num_hidden_layers=n_layers,
                                   num_attention_heads=HEADS, num_key_value_heads=KV_HEADS, head_dim=HEAD_DIM,
                                   vocab_size=VOCAB, max_position_embeddings=131072, rms_norm_eps=1e-5,
                                   tie_word_embeddings=False)
    cfg._attn_implementation = "sdpa"
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = transformers.LlamaModel(cfg)
    torch.set_default_dtype(torch.float32)
    model.eval()
    impl = getattr(model.config, "_attn_implementation", "?")
    if impl != "sdpa":
        sys.exit(f"bench-transformers: the model uses attention {impl!r}, not sdpa")
    return model


def time_cuda(fn, repeat):
    fn()                                        # warm-up: kernels chosen, memory pooled
    torch.cuda.synchronize()
    times = []
    for _ in range(repeat):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / 1e3)
    return statistics.median(times)


def model_flops(b, n):
    per_token = 2 * (HIDDEN * (HEADS + 2 * KV_HEADS) * HEAD_DIM + HEADS * HEAD_DIM * HIDDEN + 3 * HIDDEN * FFN)
    attn = 4 * HEADS * HEAD_DIM * n * (n + 1) / 2
    return b * LAYERS * (per_token * n + attn)


def attention_flops(b, n):
    return 4 * HEADS * HEAD_DIM * b * n * (n + 1) / 2


def backend_of(fn):
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        fn()
        torch.cuda.synchronize()
    names = " ".join(e.key.lower() for e in prof.key_averages())
    for key, name in (("cudnn", "CUDNN_ATTENTION"), ("flash", "FLASH_ATTENTION"), ("fmha", "EFFICIENT_ATTENTION"),
                      ("efficient", "EFFICIENT_ATTENTION"), ("mem_eff", "EFFICIENT_ATTENTION")):
        if key in names:
            return name
    return "MATH"


def attention_bench(b, n, repeat):
    """transformers' sdpa_attention_forward and repeat_kv + SDPA at one shape."""
    g = torch.Generator(device="cuda").manual_seed(0)
    q = torch.randn(b, HEADS, n, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=g)
    k = torch.randn(b, KV_HEADS, n, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=g)
    v = torch.randn(b, KV_HEADS, n, HEAD_DIM, device="cuda", dtype=torch.bfloat16, generator=g)
    scale = 1 / math.sqrt(HEAD_DIM)
    out = {}
    try:
        from transformers.integrations import sdpa_attention as sa

        class Module(torch.nn.Module):          # what sdpa_attention_forward reads off the attention layer
            num_key_value_groups = HEADS // KV_HEADS
            is_causal = True

        mod = Module()
        hf = lambda: sa.sdpa_attention_forward(mod, q, k, v, None, scaling=scale)
        gqa = getattr(sa, "use_gqa_in_sdpa", lambda m, key: False)(None, k)
        out["sdpa_path"] = "enable_gqa" if gqa else "repeat_kv"
        out["sdpa_seconds"] = time_cuda(hf, repeat)
        out["sdpa_backend"] = backend_of(hf)
    except ImportError:
        out["sdpa_path"] = "repeat_kv (transformers has no sdpa_attention_forward)"
    def repeat_kv(x):
        bb, h, s, d = x.shape
        return x[:, :, None].expand(bb, h, HEADS // KV_HEADS, s, d).reshape(bb, HEADS, s, d)
    rk = lambda: F.scaled_dot_product_attention(q, repeat_kv(k), repeat_kv(v), is_causal=True, scale=scale)
    out["repeat_kv_seconds"] = time_cuda(rk, repeat)
    out.setdefault("sdpa_seconds", out["repeat_kv_seconds"])
    out.setdefault("sdpa_backend", backend_of(rk))
    flops = attention_flops(b, n)
    out["sdpa_tflops"] = flops / out["sdpa_seconds"] / 1e12
    out["sdpa_repeat_kv_tflops"] = flops / out["repeat_kv_seconds"] / 1e12
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--layers", type=int, default=2, help="K: the model is timed with 2K and K layers")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    import transformers
    print(f"transformers {transformers.__version__}, torch {torch.__version__} (CUDA {torch.version.cuda}), "
          f"{torch.cuda.get_device_name(0)}; bf16, sdpa, no compile; {2 * args.layers} and {args.layers} layers "
          f"timed, scaled to {LAYERS}")
    torch.backends.cuda.matmul.allow_tf32 = False
    model = build_model(2 * args.layers)
    results = []
    with torch.inference_mode():
        for name, b, n in BATCHES:
            ids = torch.randint(0, VOCAB, (b, n), device="cuda", generator=torch.Generator(device="cuda").manual_seed(1))
            if name.startswith("rlhf"):
                ids[:, :128] = ids[0, :128]     # the shared prompt, recomputed per sequence by transformers
            results.append({"batch": name, "b": b, "n": n, "ids": ids})
        for r in results:
            r["t_2k"] = time_cuda(lambda: model(input_ids=r["ids"], use_cache=False), args.repeat)
        model.layers = torch.nn.ModuleList(list(model.layers)[: args.layers])
        model.config.num_hidden_layers = args.layers
        for r in results:
            r["t_k"] = time_cuda(lambda: model(input_ids=r["ids"], use_cache=False), args.repeat)
        del model
        torch.cuda.empty_cache()
        print(f"{'batch':<18}{'tokens':>7}{'s/layer':>10}{'80 layers s':>12}{'tokens/s':>10}{'model TF':>10}"
              f"{'sdpa TF':>9}{'rep_kv TF':>10}  sdpa path, backend")
        lines = []
        for r in results:
            per_layer = max((r["t_2k"] - r["t_k"]) / args.layers, 1e-9)
            rest = max(r["t_k"] - args.layers * per_layer, 0.0)
            t80 = rest + LAYERS * per_layer
            tokens = r["b"] * r["n"]
            att = attention_bench(r["b"], r["n"], args.repeat)
            row = {"engine": "transformers", "batch": r["batch"], "tokens": tokens, "seconds": t80,
                   "per_layer_seconds": per_layer, "rest_seconds": rest, "tokens_per_s": tokens / t80,
                   "model_tflops": model_flops(r["b"], r["n"]) / t80 / 1e12, **att,
                   "transformers": transformers.__version__, "torch": torch.__version__}
            print(f"{r['batch']:<18}{tokens:>7}{per_layer:>10.5f}{t80:>12.3f}{tokens / t80:>10.0f}"
                  f"{row['model_tflops']:>10.1f}{att['sdpa_tflops']:>9.1f}{att['sdpa_repeat_kv_tflops']:>10.1f}  "
                  f"{att['sdpa_path']}, {att['sdpa_backend']}", flush=True)
            lines.append(row)
    if args.json:
        with open(args.json, "a") as f:
            for row in lines:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
