"""Golden fixtures for V-MoE: random vmoe parameter trees (flattened to '/'-joined Flax
paths, as `--from vmoe` reads them), vmoe config.json files, and float64 outputs and
routing statistics from vmoe_reference.py on the same float32 inputs the test feeds
wgvision. Output: tests/fixtures/vmoe/.
Cases: K=1 and K=2; capacity factors that drop choices; batch priority on and off;
groups spanning several images and groups smaller than an image; image routing (Mobile
V-MoE); a shared expert (ViMoE); 'gap' and 'token' classifiers; pre_logits.
Run: python weights-tools/python/gen_vmoe_fixtures.py
"""
import json
import os

import numpy as np
from safetensors.numpy import save_file

from vmoe_reference import forward

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "vmoe")


def config(classifier, moe, representation_size=None, layers=3, image=32, patch=8, d=32, heads=4, mlp=64):
    return {"image_size": [image, image], "patch_size": [patch, patch], "hidden_size": d, "num_classes": 10,
            "classifier": classifier, "representation_size": representation_size,
            "encoder": {"num_layers": layers, "num_heads": heads, "mlp_dim": mlp, "moe": moe}}


def moe_cfg(layers, e, k, s, cf=1.0, bpr=False, routing=None, shared=False):
    m = {"layers": layers, "num_experts": e, "group_size": s,
         "router": {"num_selected_experts": k, "noise_std": 1.0,
                    "dispatcher": {"name": "einsum", "capacity_factor": cf, "batch_priority": bpr}}}
    if routing:
        m["routing"] = routing
    if shared:
        m["shared_expert"] = True
    return m


CASES = [
    # name, config, batch
    ("k1_gap_groups_span_images_drops", config("gap", moe_cfg([1], 4, 1, 32, cf=0.5)), 4),
    ("k2_bpr_token_prelogits_drops", config("token", moe_cfg([0, 2], 8, 2, 17, cf=0.5, bpr=True), representation_size=24), 2),
    ("k2_no_bpr_small_groups_drops", config("gap", moe_cfg([1, 2], 4, 2, 8, cf=0.75)), 2),
    ("image_routing_shared_expert", config("token", moe_cfg([1], 4, 2, 17, routing="image", shared=True)), 3),
    ("k2_shared_expert_no_drops", config("token", moe_cfg([0, 1], 4, 2, 34, cf=4.0, shared=True), representation_size=16), 2),
]


def params(cfg, rng):
    d = cfg["hidden_size"]
    (ph, pw), (h, w) = cfg["patch_size"], cfg["image_size"]
    enc = cfg["encoder"]
    nh, m = enc["num_heads"], enc["mlp_dim"]
    dh = d // nh
    moe = enc["moe"]
    e = moe["num_experts"]
    n = (h // ph) * (w // pw) + (cfg["classifier"] == "token")
    r = lambda *s, scale=None: (rng.standard_normal(s) * (scale if scale is not None else 1.0 / np.sqrt(s[0] if len(s) > 1 else 10))).astype(np.float32)
    p = {"embedding/kernel": r(ph, pw, 3, d, scale=1.0 / np.sqrt(ph * pw * 3)), "embedding/bias": r(d, scale=0.1),
         "Encoder/posembed_input/pos_embedding": r(1, n, d, scale=0.1)}
    if cfg["classifier"] == "token":
        p["cls"] = r(1, 1, d, scale=0.5)
    for i in range(enc["num_layers"]):
        b = f"Encoder/encoderblock_{i}"
        for ln in ("LayerNorm_0", "LayerNorm_1"):
            p[f"{b}/{ln}/scale"] = (1.0 + 0.2 * rng.standard_normal(d)).astype(np.float32)
            p[f"{b}/{ln}/bias"] = r(d, scale=0.1)
        for qkv in ("query", "key", "value"):
            p[f"{b}/SelfAttention/{qkv}/kernel"] = r(d, nh, dh, scale=1.0 / np.sqrt(d))
            p[f"{b}/SelfAttention/{qkv}/bias"] = r(nh, dh, scale=0.1)
        p[f"{b}/SelfAttention/out/kernel"] = r(nh, dh, d, scale=1.0 / np.sqrt(d))
        p[f"{b}/SelfAttention/out/bias"] = r(d, scale=0.1)
        if i in moe["layers"]:
            p[f"{b}/Moe/Router/dense/kernel"] = r(d, e, scale=1.0)  # sharp gates: real routing decisions
            p[f"{b}/Moe/Mlp/Dense_0/kernel"] = r(e, d, m, scale=1.0 / np.sqrt(d))
            p[f"{b}/Moe/Mlp/Dense_0/bias"] = r(e, m, scale=0.1)
            p[f"{b}/Moe/Mlp/Dense_1/kernel"] = r(e, m, d, scale=1.0 / np.sqrt(m))
            p[f"{b}/Moe/Mlp/Dense_1/bias"] = r(e, d, scale=0.1)
            if moe.get("shared_expert"):
                p[f"{b}/Moe/Shared/Dense_0/kernel"] = r(d, m, scale=1.0 / np.sqrt(d))
                p[f"{b}/Moe/Shared/Dense_0/bias"] = r(m, scale=0.1)
                p[f"{b}/Moe/Shared/Dense_1/kernel"] = r(m, d, scale=1.0 / np.sqrt(m))
                p[f"{b}/Moe/Shared/Dense_1/bias"] = r(d, scale=0.1)
        else:
            p[f"{b}/Mlp/Dense_0/kernel"] = r(d, m, scale=1.0 / np.sqrt(d))
            p[f"{b}/Mlp/Dense_0/bias"] = r(m, scale=0.1)
            p[f"{b}/Mlp/Dense_1/kernel"] = r(m, d, scale=1.0 / np.sqrt(m))
            p[f"{b}/Mlp/Dense_1/bias"] = r(d, scale=0.1)
    p["Encoder/encoder_norm/scale"] = (1.0 + 0.2 * rng.standard_normal(d)).astype(np.float32)
    p["Encoder/encoder_norm/bias"] = r(d, scale=0.1)
    k_in = d
    if cfg.get("representation_size"):
        rs = cfg["representation_size"]
        p["pre_logits/kernel"] = r(d, rs, scale=1.0 / np.sqrt(d))
        p["pre_logits/bias"] = r(rs, scale=0.1)
        k_in = rs
    p["head/kernel"] = r(k_in, cfg["num_classes"], scale=1.0 / np.sqrt(k_in))
    p["head/bias"] = r(cfg["num_classes"], scale=0.1)
    return p


def main():
    os.makedirs(OUT, exist_ok=True)
    index = []
    for i, (name, cfg, batch) in enumerate(CASES):
        rng = np.random.default_rng(5000 + i)
        p = params(cfg, rng)
        save_file(p, os.path.join(OUT, f"{name}.checkpoint.safetensors"))
        with open(os.path.join(OUT, f"{name}.config.json"), "w") as f:
            json.dump(cfg, f, indent=1)
        h, w = cfg["image_size"]
        x = rng.standard_normal((batch, 3, h, w)).astype(np.float32)
        logits, stats = forward({k: v.astype(np.float64) for k, v in p.items()}, cfg, x.astype(np.float64))
        save_file({"pixel_values": x, "logits": logits}, os.path.join(OUT, f"{name}.io.safetensors"))
        index.append({"name": name, "from": "vmoe", "config": f"{name}.config.json", "batch": batch,
                      "out_shape": list(logits.shape), "routing_stats": stats})
        print(f"{name}: -> {logits.shape}, dropped {[s['dropped'] for s in stats]}, per expert {[s['tokens_per_expert'] for s in stats]}")
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"numpy_version": np.__version__, "cases": index}, f, indent=1)


if __name__ == "__main__":
    main()
