"""Float64 reference of V-MoE inference (google-research/vmoe, deterministic), written from
the rules in issue 4, on a parameter tree flattened to '/'-joined Flax paths.

- Encoder block: x += Attn(LN_0(x)); x += MLP-or-MoE(LN_1(x)). LayerNorm eps 1e-6,
  attention scaled by 1/sqrt(Dh), MLP = Dense, tanh GELU, Dense.
- Token routing: the B*N tokens in order, in groups of S. Per group: gates = softmax(x W)
  over E; top-K per token (ties to the lower index); combine weight = the gate.
  capacity = ceil(S*K*cf/E) rounded up to a multiple of 4. All 1st choices fill slots
  before any 2nd choice; within a rank, token order, or with batch_priority descending
  top-1 gate (stable). A choice whose expert is full is dropped.
- Image routing: per image, gates = softmax(mean_tokens(x) W); top-K; every token of the
  image goes to those experts with those gates; no capacity.
- Shared expert: a dense MLP on every token, added to the MoE output.
"""
import math

import numpy as np

EPS = 1e-6


def layer_norm(x, scale, bias):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + EPS) * scale + bias


def gelu_tanh(x):
    return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3)))


def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def top_k(g, k):
    """Indices of the k largest gates, ties to the lower index (stable sort)."""
    order = np.argsort(-g, kind="stable")
    return order[:k]


def capacity(group_size, k, cf, experts):
    c = math.ceil(group_size * k * cf / experts)
    return (c + 3) // 4 * 4


def assign_slots(gates, k, cap, batch_priority):
    """gates [S, E] -> (experts [S, K], kept [S, K] bool, position [S, K])."""
    s, e = gates.shape
    experts = np.stack([top_k(gates[t], k) for t in range(s)])
    if batch_priority:
        order = np.argsort(-gates[np.arange(s), experts[:, 0]], kind="stable")
    else:
        order = np.arange(s)
    fill = np.zeros(e, dtype=np.int64)
    kept = np.zeros((s, k), dtype=bool)
    pos = np.full((s, k), -1, dtype=np.int64)
    for r in range(k):
        for t in order:
            ex = experts[t, r]
            if fill[ex] < cap:
                kept[t, r] = True
                pos[t, r] = fill[ex]
                fill[ex] += 1
    return experts, kept, pos


def mlp(p, prefix, x, expert=None):
    k0, b0 = p[f"{prefix}/Dense_0/kernel"], p[f"{prefix}/Dense_0/bias"]
    k1, b1 = p[f"{prefix}/Dense_1/kernel"], p[f"{prefix}/Dense_1/bias"]
    if expert is not None:
        k0, b0, k1, b1 = k0[expert], b0[expert], k1[expert], b1[expert]
    return gelu_tanh(x @ k0 + b0) @ k1 + b1


def moe(p, prefix, x, cfg, stats):
    """x [B, N, D] (already LayerNorm'ed) -> [B, N, D]."""
    moe_cfg = cfg["encoder"]["moe"]
    router = moe_cfg["router"]
    k = router["num_selected_experts"]
    e = moe_cfg["num_experts"]
    b, n, d = x.shape
    w = p[f"{prefix}/Router/dense/kernel"]
    out = np.zeros_like(x)
    counts = np.zeros(e, dtype=np.int64)
    dropped = 0
    top1 = []
    if moe_cfg.get("routing", "token") == "image":
        for bi in range(b):
            g = softmax(x[bi].mean(0) @ w)
            ex = top_k(g, k)
            top1.append(g[ex[0]])
            for r in range(k):
                out[bi] += g[ex[r]] * mlp(p, f"{prefix}/Mlp", x[bi], expert=ex[r])
                counts[ex[r]] += n
    else:
        s = moe_cfg["group_size"]
        flat = x.reshape(b * n, d)
        if (b * n) % s:
            raise ValueError("B*N not divisible by group_size")
        disp = router["dispatcher"]
        cap = capacity(s, k, disp["capacity_factor"], e)
        res = np.zeros_like(flat)
        for g0 in range(0, b * n, s):
            xs = flat[g0:g0 + s]
            gates = softmax(xs @ w)
            experts, kept, _ = assign_slots(gates, k, cap, disp.get("batch_priority", False))
            top1.extend(gates[np.arange(s), experts[:, 0]])
            for t in range(s):
                for r in range(k):
                    if kept[t, r]:
                        ex = experts[t, r]
                        res[g0 + t] += gates[t, ex] * mlp(p, f"{prefix}/Mlp", xs[t:t + 1], expert=ex)[0]
                        counts[ex] += 1
                    else:
                        dropped += 1
        out = res.reshape(b, n, d)
    if moe_cfg.get("shared_expert", False):
        out = out + mlp(p, f"{prefix}/Shared", x)
    stats.append({"tokens_per_expert": counts.tolist(), "dropped": int(dropped), "mean_top1_gate": float(np.mean(top1))})
    return out


def attention(p, prefix, x):
    q = np.einsum("bnd,dhk->bhnk", x, p[f"{prefix}/query/kernel"]) + p[f"{prefix}/query/bias"][None, :, None, :]
    k = np.einsum("bnd,dhk->bhnk", x, p[f"{prefix}/key/kernel"]) + p[f"{prefix}/key/bias"][None, :, None, :]
    v = np.einsum("bnd,dhk->bhnk", x, p[f"{prefix}/value/kernel"]) + p[f"{prefix}/value/bias"][None, :, None, :]
    a = softmax(q @ k.transpose(0, 1, 3, 2) / math.sqrt(q.shape[-1]))
    o = a @ v
    return np.einsum("bhnk,hkd->bnd", o, p[f"{prefix}/out/kernel"]) + p[f"{prefix}/out/bias"]


def forward(p, cfg, pixels):
    """pixels [B, 3, H, W] (NCHW, as wgvision takes them) -> (logits, routing stats)."""
    x = pixels.transpose(0, 2, 3, 1)  # NHWC, as vmoe computes
    ph, pw = cfg["patch_size"]
    b, h, w, c = x.shape
    gh, gw = h // ph, w // pw
    patches = x[:, :gh * ph, :gw * pw].reshape(b, gh, ph, gw, pw, c).transpose(0, 1, 3, 2, 4, 5)
    tok = np.einsum("bijyxc,yxcd->bijd", patches, p["embedding/kernel"]) + p["embedding/bias"]
    tok = tok.reshape(b, gh * gw, -1)
    if cfg["classifier"] == "token":
        cls = np.broadcast_to(p["cls"], (b, 1, tok.shape[-1]))
        tok = np.concatenate([cls, tok], axis=1)
    tok = tok + p["Encoder/posembed_input/pos_embedding"]
    enc = cfg["encoder"]
    moe_layers = set(enc["moe"]["layers"]) if enc.get("moe") else set()
    stats = []
    for i in range(enc["num_layers"]):
        blk = f"Encoder/encoderblock_{i}"
        y = layer_norm(tok, p[f"{blk}/LayerNorm_0/scale"], p[f"{blk}/LayerNorm_0/bias"])
        tok = tok + attention(p, f"{blk}/SelfAttention", y)
        y = layer_norm(tok, p[f"{blk}/LayerNorm_1/scale"], p[f"{blk}/LayerNorm_1/bias"])
        if i in moe_layers:
            tok = tok + moe(p, f"{blk}/Moe", y, cfg, stats)
        else:
            tok = tok + mlp(p, f"{blk}/Mlp", y)
    tok = layer_norm(tok, p["Encoder/encoder_norm/scale"], p["Encoder/encoder_norm/bias"])
    pooled = tok[:, 0] if cfg["classifier"] == "token" else tok.mean(1)
    if cfg.get("representation_size"):
        pooled = np.tanh(pooled @ p["pre_logits/kernel"] + p["pre_logits/bias"])
    return pooled @ p["head/kernel"] + p["head/bias"], stats
