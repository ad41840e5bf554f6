"""Layer-by-layer comparison of a wgvision model with the peer (timm or transformers).

1. Dump every node of a wgvision run:
     wgvision run MODEL.safetensors --input IN.safetensors -o OUT.safetensors --dump-nodes DIR
2. Compare the dump with the peer model run in float64 on the same input:
     python compare_nodes.py --nodes DIR --input IN.safetensors \\
         --timm vit_base_patch16_224 [--set depth=2 --set img_size=32 ...] \\
         --checkpoint PEER.safetensors [--top N] [--threshold 1e-4]
     python compare_nodes.py --nodes DIR --input IN.safetensors \\
         --hf config.json --checkpoint PEER.safetensors
   --timm/--set (KEY=JSON) and --hf take what `wgvision convert` took; --checkpoint is the
   peer's own checkpoint (the file that was converted). With --dtype f16 weights, raise
   --threshold (e.g. 2e-2).

The peer is built (timm.create_model(NAME, pretrained=False, **sets), or the transformers
class named by config.json's `architectures`, else by its model_type), loaded from the
checkpoint and run in float64 on `pixel_values` (plus `input_ids` / `attention_mask` when
IN has them), with a forward hook on every module recording its output (a tuple's or
ModelOutput's first element; a module called again gets a trailing ') and its first
input, "NAME (input)". Each dumped node is then matched with a peer tensor:
- the module of the same name, if it agrees within --threshold (relative L2);
- else the recorded tensor with as many elements and the lowest relative L2 (ties go to
  the name sharing the longest prefix with the node), as is or as NCHW -> [N, H*W, C] or
  the reverse;
- else the same up to the order of tokens ("[rows permuted]": rows are paired by nearest
  value; "[rows of padded]": the peer has extra rows, e.g. windows padded), for windowed
  or shifted maps; for the same-name module also up to the order of channels (a
  head-first qkv).
Fused nodes thus find their peer elsewhere: a matmul + GELU is the peer's `mlp.act`, a
matmul with the residual is the next module's "(input)", i.e. the block's running sum.
Peer values beyond the f32 range (float64 finfo.min masks) saturate like ours and are
left out of the relative L2's scale.

One line per node in execution order: node, op, variant, shape, peer tensor, relative L2,
max abs diff, status:
  ok        within --threshold;
  DIVERGED  no peer tensor agrees, and a same-name module exists, or the nearest tensor
            is close (relative L2 < 0.1: the right one with wrong values), or the next
            node disagrees too;
  no match  no counterpart, but the next node agrees again (only the layout differs,
            e.g. patchify / im2col, a fused qkv against separate q/k/v projections).
The peer column shows the matched tensor, "~NAME" for the nearest one when none agrees,
or - when nothing is close (relative L2 >= 0.5). The first diverged node is reported at
the end (with any unmatched nodes just before it). Exit status 1 if a node diverged.
"""
import argparse
import json
import os
import sys

import torch
from safetensors.torch import load_file


F32_MAX = torch.finfo(torch.float32).max  # the peer's float64 masks (finfo.min) saturate like ours
# Checkpoint names newer than the installed peer's, tried for keys it does not expect.
RENAMES = [(".q_proj.", ".query."), (".k_proj.", ".key."), (".v_proj.", ".value.")]


def build_timm(name, sets):
    import timm
    return timm.create_model(name, pretrained=False, **sets)


def build_hf(config_path):
    import transformers
    config = transformers.AutoConfig.from_pretrained(config_path)
    if config.architectures:
        return getattr(transformers, config.architectures[0])(config)
    detection = {"owlvit": "OwlViTForObjectDetection", "owlv2": "Owlv2ForObjectDetection"}
    if config.model_type in detection:
        return getattr(transformers, detection[config.model_type])(config)
    return transformers.AutoModel.from_config(config)


def first_tensor(x):
    """A module output as one tensor: itself, a tuple's first element, a ModelOutput's first field."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, dict):
        x = list(x.values())
    if isinstance(x, (tuple, list)) and x:
        return first_tensor(x[0])
    return None


def record_peer(model, inputs):
    """Run the peer in float64 on inputs (a tuple of arguments or a dict of keyword
    arguments); returns {label: tensor} of every module's output and first input."""
    recorded = {}

    def keep(label, value):
        t = first_tensor(value)
        if t is not None and t.is_floating_point():
            while label in recorded:  # a module called more than once
                label += "'"
            recorded[label] = t.detach().double().clamp(-F32_MAX, F32_MAX)  # a copy: later in-place ops

    def hook(name):
        def fn(module, args, output):
            keep(name, output)
            if args:
                keep(f"{name} (input)", args[0])
        return fn

    for name, module in model.named_modules():
        module.register_forward_hook(hook(name or "(model)"))
    torch.set_default_dtype(torch.float64)  # transformers builds masks in the default dtype
    try:
        with torch.no_grad():
            model = model.double().eval()
            out = model(*inputs) if isinstance(inputs, tuple) else model(**inputs)
    finally:
        torch.set_default_dtype(torch.float32)
    if isinstance(out, dict):  # every field of a ModelOutput (logits, pred_boxes, ...)
        for k, v in out.items():
            if isinstance(v, torch.Tensor) and v.is_floating_point():
                recorded[f"(model).{k}"] = v.detach().double().clamp(-F32_MAX, F32_MAX)
    return recorded


def layouts(t):
    """The peer tensor in the layouts a node may use: as is, NCHW -> N,HW,C, N,H,W,C -> NCHW."""
    yield "", t
    if t.dim() == 4:
        yield " [NCHW]", t.permute(0, 2, 3, 1)
        yield " [NHWC->NCHW]", t.permute(0, 3, 1, 2)


def compare(ours, peer):
    """(relative L2, max abs diff) of our f32 node against a peer tensor, both flattened."""
    a, b = ours.reshape(-1), peer.reshape(-1)
    d = a - b
    scale = b[b.abs() < F32_MAX].norm().clamp_min(1e-300)  # masked (saturated) entries: not in the scale
    return (d.norm() / scale).item(), d.abs().max().item()


def nearest(a, b, k=16):
    """For each row of a, the index of the nearest row of b: by brute force where small,
    else among the 2k whose random projection is closest to its own (an exact pairing,
    up to rounding, for a permuted copy); None where pairing by the projection alone is
    far off (not a copy)."""
    if len(a) * len(b) * a.shape[1] <= 1e9:
        return torch.cdist(a, b).argmin(1)
    v = torch.randn(a.shape[1], generator=torch.Generator().manual_seed(0), dtype=a.dtype)
    ka, (kb, order) = a @ v, (b @ v).sort()
    pos = torch.searchsorted(kb, ka).clamp(1, len(b) - 1)
    pos -= ((ka - kb[pos - 1]).abs() < (kb[pos] - ka).abs()).long()  # the nearest projection
    if (a - b[order[pos]]).norm() > 0.5 * a.norm():
        return None
    dist, pick = torch.full((len(a),), float("inf"), dtype=a.dtype), pos
    for off in range(-k, k):
        j = (pos + off).clamp(0, len(b) - 1)
        d = ((a - b[order[j]]) ** 2).sum(1)
        pick, dist = torch.where(d < dist, j, pick), torch.minimum(d, dist)
    return order[pick]


def compare_rows(ours, peer, channels=False):
    """compare() up to the order of rows (tokens; the last axis is channels), for maps the
    peer holds window-partitioned, shifted or padded (peer rows may be a superset); with
    channels, also up to the order of channels (e.g. a head-first qkv), found by pairing
    the columns' sorted values (same row count only)."""
    c = ours.shape[-1]
    a, b = ours.reshape(-1, c), peer.reshape(-1, c)
    if channels:
        cols = nearest(a.sort(0).values.T.contiguous(), b.sort(0).values.T.contiguous())
        if cols is None:
            return float("inf"), float("inf")
        b = b[:, cols]
    rows = nearest(a, b)
    return (float("inf"), float("inf")) if rows is None else compare(a, b[rows])


def shared_prefix(a, b):
    n = 0
    for x, y in zip(a.split("."), b.split(" ")[0].split(".")):
        if x != y:
            break
        n += 1
    return n


def match(node, ours, recorded, threshold):
    """Returns (label, rel, max_abs, same_name): the same-name module if it agrees, else the best tensor."""
    same = recorded.get(node)
    same_name = same is not None and same.numel() == ours.numel()
    c = ours.shape[-1]
    if same_name:  # as is, then (channels last only) up to the order of tokens, and of channels
        for how in ("", " [rows permuted]", " [rows, channels permuted]"):
            for tag, view in layouts(same):
                if how and view.shape[-1] != c:
                    continue
                rel, mx = compare_rows(ours, view, "channels" in how) if how else compare(ours, view)
                if rel <= threshold:
                    return node + tag + how, rel, mx, True
    best = [(*compare(ours, view), label + tag) for label, t in recorded.items() if t.numel() == ours.numel()
            for tag, view in layouts(t)]
    if not best or min(best)[0] > threshold:  # the same tokens in another order, or among padding?
        best += [(*compare_rows(ours, view), label + tag + (" [rows permuted]" if t.numel() == ours.numel()
                                                             else " [rows of padded]"))
                 for label, t in recorded.items() if t.numel() >= ours.numel()
                 for tag, view in layouts(t) if view.shape[-1] == c]
    if not best:
        return None, None, None, same_name
    low = min(b[0] for b in best)
    tied = [b for b in best if b[0] <= low * 1.01 + 1e-12]  # identical copies (Identity, inputs)
    rel, mx, label = max(tied, key=lambda b: (shared_prefix(node, b[2]), "(input)" not in b[2], -b[0]))
    return label, rel, mx, same_name


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--nodes", required=True, help="the --dump-nodes directory of `wgvision run`")
    p.add_argument("--input", required=True, help="the --input safetensors file of that run")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--timm", metavar="NAME", help="timm model name")
    g.add_argument("--hf", metavar="CONFIG", help="transformers config.json")
    p.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="timm constructor override")
    p.add_argument("--checkpoint", required=True, help="the peer checkpoint (safetensors, peer's names)")
    p.add_argument("--threshold", type=float, default=1e-4, help="relative L2 above which a node is flagged")
    p.add_argument("--top", type=int, default=0, help="also list the N nodes with the largest relative L2")
    args = p.parse_args()

    if args.timm:
        sets = {}
        for kv in args.set:
            k, v = kv.split("=", 1)
            try:
                sets[k] = json.loads(v)
            except json.JSONDecodeError:
                sets[k] = v  # a bare string, e.g. act_layer=gelu_tanh
        model = build_timm(args.timm, sets)
    else:
        model = build_hf(args.hf)
    state = load_file(args.checkpoint)
    expected = set(model.state_dict())
    for k in [k for k in state if k not in expected]:
        for old, new in RENAMES:
            if k.replace(old, new) in expected:
                state[k.replace(old, new)] = state.pop(k)
                break
    missing, unexpected = model.load_state_dict(state, strict=False)
    params = dict(model.named_parameters())
    missing = [k for k in missing if k in params]  # buffers such as relative_position_index are rebuilt
    if missing or unexpected:
        print(f"warning: checkpoint missing {len(missing)} parameters {missing[:4]}, "
              f"{len(unexpected)} unexpected keys {unexpected[:4]}", file=sys.stderr)

    io = load_file(args.input)
    if args.timm:
        inputs = (io["pixel_values"].double(),)
    else:
        inputs = {k: io[k].double() if k == "pixel_values" else io[k]
                  for k in ("pixel_values", "input_ids", "attention_mask") if k in io}
    recorded = record_peer(model, inputs)

    with open(os.path.join(args.nodes, "nodes.json")) as f:
        index = json.load(f)
    rows = []
    for n in index["nodes"]:
        ours = load_file(os.path.join(args.nodes, n["file"]))[n["node"]].double()
        label, rel, mx, same_name = match(n["node"], ours, recorded, args.threshold)
        ok = rel is not None and rel <= args.threshold
        if rel is not None and rel >= 0.5:  # nothing like it
            label = rel = mx = None
        rows.append(dict(n, peer=label if ok else "~" + label if label else "-", rel=rel, max=mx, ok=ok,
                         near=rel is not None and rel < 0.1, same_name=same_name))
    # An unmatched node diverged if a same-name module exists, if the nearest tensor is close
    # (the right one, wrong values) or if the next node disagrees too; otherwise it only
    # differs in layout (its consumer agrees again).
    for r, after in zip(rows, rows[1:] + [dict(ok=False)]):
        r["status"] = "ok" if r["ok"] else "DIVERGED" if r["same_name"] or r["near"] or not after["ok"] else "no match"

    for r in rows:
        r["shape"] = "x".join(map(str, r["shape"]))
    w = {k: max(len(k), *(len(r[k]) for r in rows)) for k in ("node", "op", "variant", "shape", "peer")}
    fmt = lambda x: "-" if x is None else f"{x:.2e}"
    print("  ".join(k.ljust(n) for k, n in w.items()), f"{'rel L2':>9} {'max abs':>9}  status")
    for r in rows:
        print("  ".join(r[k].ljust(n) for k, n in w.items()), f"{fmt(r['rel']):>9} {fmt(r['max']):>9}  {r['status']}")
    counts = {s: sum(r["status"] == s for r in rows) for s in ("ok", "no match", "DIVERGED")}
    print(f"\n{index.get('model', '?')}: {len(rows)} nodes, {counts['ok']} match the peer within "
          f"{args.threshold:g}, {counts['no match']} without a counterpart, {counts['DIVERGED']} diverged")
    if args.top:
        print("largest relative L2:")
        for r in sorted((r for r in rows if r["rel"] is not None), key=lambda r: -r["rel"])[:args.top]:
            print(f"  {r['node']:<{w['node']}}  {fmt(r['rel'])}  {r['peer']}")
    first = next((i for i, r in enumerate(rows) if r["status"] == "DIVERGED"), None)
    if first is None:
        print("no node diverges")
        return 0
    before = []
    for r in reversed(rows[:first]):
        if r["status"] != "no match":
            break
        before.insert(0, r["node"])
    r = rows[first]
    against = f"rel L2 {fmt(r['rel'])} against {r['peer']}" if r["rel"] is not None else "no peer tensor close"
    print(f"first divergence: {r['node']} ({r['op']}, {against})"
          + (f", right after unmatched {', '.join(before)}" if before else ""))
    return 1


if __name__ == "__main__":
    sys.exit(main())
