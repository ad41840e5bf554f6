"""Golden fixtures at the released geometries: the real image size, token count, width
and head dim of released checkpoints of every family, with depth cut to one or two
blocks per stage (bugs that appear only above a few hundred tokens are invisible at toy
sizes).

These checkpoints are tens of MB each, so they are not committed: every checkpoint
tensor and the pixel input are synthesized deterministically by synth.py, which the Rust
test reproduces bit for bit. Per case, tests/fixtures/geometry/ gets
  <case>.json              how to convert (timm model + sets, or an hf / vmoe config),
                           {name, shape, offset, scale, checksum} for every checkpoint
                           tensor under the peer's own names, the inputs' specs, the
                           outputs' names and shapes, the seed and the peer versions;
  <case>.out.safetensors   the float64 reference outputs, plus literal inputs
                           (OWL's input_ids and attention_mask);
  <case>.config.json       the transformers / vmoe config (hf and vmoe cases).
plus synth.json: a few synthesized values for the Rust test of synth itself.

The peer model is built, every tensor of its state dict (parameters and BatchNorm
statistics) is overwritten with synth(name, shape, offset, scale, seed) where (offset,
scale) follows a rule (norm weights 1 +- 0.2, biases +- 0.1, matrices uniform with std
1/sqrt(fan_in), LayerScale 0.5 +- 0.2, ...), and the model runs in float64 on the
synthesized float32 input.
Run: python weights-tools/python/gen_geometry_fixtures.py [CASE...]  (pinned versions:
requirements.txt)
"""
import json
import math
import os
import sys

import numpy as np
import timm
import torch
import transformers
from safetensors.numpy import save_file
from transformers import OwlViTConfig, OwlViTForObjectDetection, Owlv2Config, Owlv2ForObjectDetection

from synth import checksum, synth, synth_value
from vmoe_reference import forward as vmoe_forward

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "geometry")
PIXELS = (0.0, 1.0)  # pixel_values: uniform in [-1, 1)

CASES = [
    # name, family, source, spec, batch
    ("vit_base_patch16_384", "vit", "timm", dict(model="vit_base_patch16_384", sets=dict(depth=2)), 2),
    ("vit_large_patch16_384", "vit", "timm", dict(model="vit_large_patch16_384", sets=dict(depth=1)), 1),
    ("dinov2_small_patch14_reg4_518", "vit", "timm",
     dict(model="vit_small_patch14_reg4_dinov2", sets=dict(depth=2, img_size=518)), 1),
    ("clip_large_patch14_336", "vit", "timm", dict(model="vit_large_patch14_clip_336", sets=dict(depth=1)), 1),
    # The last stage's 12x12 map is one window, so timm drops its shift: one block there.
    ("swin_base_patch4_window12_384", "swin", "timm",
     dict(model="swin_base_patch4_window12_384", sets=dict(depths=[2, 2, 2, 1])), 1),
    ("maxvit_tiny_tf_384", "maxvit", "timm", dict(model="maxvit_tiny_tf_384", sets=dict(depths=[1, 1, 1, 1])), 1),
    ("maxvit_tiny_tf_512", "maxvit", "timm", dict(model="maxvit_tiny_tf_512", sets=dict(depths=[1, 1, 1, 1])), 1),
    ("owlvit_base_patch32_768", "owl", "hf", dict(v2=False, image_size=768, patch_size=32), 1),
    ("owlvit_base_patch16_768", "owl", "hf", dict(v2=False, image_size=768, patch_size=16), 1),
    ("owlv2_base_patch16_960", "owl", "hf", dict(v2=True, image_size=960, patch_size=16), 1),
    # ViT-B/16, E=8, K=2, every 2nd layer, fine-tuned at 384 (vmoe_paper configs): one
    # group is 8 images of 577 tokens.
    ("vmoe_b16_384_e8_k2", "vmoe", "vmoe", dict(), 8),
]

NORM_TYPES = (torch.nn.LayerNorm, torch.nn.GroupNorm, torch.nn.modules.batchnorm._BatchNorm)
EMBEDDINGS = ("pos_embed", "cls_token", "reg_token", "position_embedding", "class_embedding", "token_embedding",
              "relative_position_bias_table")


def rule(name, shape, norm_params):
    """(offset, scale) for one checkpoint tensor."""
    leaf = name.replace("/", ".").split(".")[-1]
    if name in norm_params or leaf == "scale" or leaf.startswith("running_"):
        if leaf in ("weight", "scale"):
            return 1.0, 0.2
        if leaf == "running_mean":
            return 0.0, 0.2
        if leaf == "running_var":
            return 1.0, 0.5
        return 0.0, 0.1
    if leaf == "gamma":  # LayerScale
        return 0.5, 0.2
    if any(e in name for e in EMBEDDINGS) and "kernel" not in name:
        return 0.0, 0.5
    if len(shape) <= 1 or leaf == "bias":
        return 0.0, 0.1
    fan_in = int(np.prod(shape[1:]))
    return 0.0, math.sqrt(3.0 / fan_in)


def f32(x):
    """The float32 value as a Python float (exact in JSON)."""
    return float(np.float32(x))


def norm_param_names(model):
    names = set()
    for mname, m in model.named_modules():
        if isinstance(m, NORM_TYPES) or type(m).__name__.endswith("Norm2d"):
            for p in ("weight", "bias", "running_mean", "running_var"):
                names.add(f"{mname}.{p}" if mname else p)
    return names


def synth_torch_state(model, seed):
    """Overwrite the model's parameters and BatchNorm statistics with synthesized values;
    returns the tensor specs (the checkpoint the Rust test writes)."""
    norms = norm_param_names(model)
    params = dict(model.named_parameters())
    sd = model.state_dict()
    specs = []
    with torch.no_grad():
        for name, t in sd.items():
            if name not in params and not (name.endswith("running_mean") or name.endswith("running_var")):
                continue  # computed buffers (indices, masks, num_batches_tracked) stay the model's
            shape = list(t.shape)
            off, sc = rule(name, shape, norms)
            v = synth(name, shape, off, sc, seed)
            t.copy_(torch.from_numpy(v))
            specs.append({"name": name, "shape": shape, "offset": f32(off), "scale": f32(sc), "checksum": checksum(v)})
    return specs


def input_spec(name, shape, seed):
    v = synth(name, shape, *PIXELS, seed)
    return v, {"name": name, "shape": list(shape), "offset": f32(PIXELS[0]), "scale": f32(PIXELS[1]), "checksum": checksum(v)}


def timm_case(spec, batch, seed):
    model = timm.create_model(spec["model"], pretrained=False, **spec["sets"]).eval()
    tensors = synth_torch_state(model, seed)
    size = spec["sets"].get("img_size", model.pretrained_cfg["input_size"][1])
    x, xs = input_spec("pixel_values", (batch, 3, size, size), seed)
    with torch.no_grad():
        ref = model.double()(torch.from_numpy(x).double())
    entry = {"from": "timm", "model": spec["model"], "sets": spec["sets"]}
    return entry, tensors, [xs], {"logits": ref.numpy()}, {}


def owl_config(v2, image_size, patch_size):
    """The released google/owlvit-base-patch32, -patch16 and google/owlv2-base-patch16
    configs with both towers cut to one layer."""
    text = dict(vocab_size=49408, hidden_size=512, intermediate_size=2048, num_hidden_layers=1, num_attention_heads=8,
                max_position_embeddings=16, hidden_act="quick_gelu", layer_norm_eps=1e-5, attention_dropout=0.0,
                initializer_range=0.02, initializer_factor=1.0, pad_token_id=1, bos_token_id=0, eos_token_id=2)
    vision = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=1, num_attention_heads=12,
                  num_channels=3, image_size=image_size, patch_size=patch_size, hidden_act="quick_gelu",
                  layer_norm_eps=1e-5, attention_dropout=0.0, initializer_range=0.02, initializer_factor=1.0)
    cls = Owlv2Config if v2 else OwlViTConfig
    cfg = cls(text_config=text, vision_config=vision, projection_dim=512, logit_scale_init_value=2.6592,
              initializer_factor=1.0, return_dict=True)
    cfg.architectures = ["Owlv2ForObjectDetection" if v2 else "OwlViTForObjectDetection"]
    return cfg


def owl_queries(batch, seed):
    """Tokenized-looking queries: bos (49406), ids, eos (49407, the largest id: transformers
    pools at the argmax), zero padding; lengths up to the full 16; the last query per image
    is all zeros (a padding query, as the processor makes for ragged query lists)."""
    rng = np.random.default_rng(seed)
    lengths = [2, 6, 14, None]
    ids = np.zeros((batch * len(lengths), 16), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i in range(ids.shape[0]):
        n = lengths[i % len(lengths)]
        if n is None:
            continue
        ids[i, 0] = 49406
        ids[i, 1:1 + n] = rng.integers(1, 49406, size=n)
        ids[i, 1 + n] = 49407
        mask[i, :2 + n] = 1
    return ids, mask


def owl_case(name, spec, batch, seed):
    cfg = owl_config(spec["v2"], spec["image_size"], spec["patch_size"])
    with open(os.path.join(OUT, f"{name}.config.json"), "w") as f:
        f.write(cfg.to_json_string())
    torch.manual_seed(seed)
    model = (Owlv2ForObjectDetection if spec["v2"] else OwlViTForObjectDetection)(cfg).eval()
    tensors = synth_torch_state(model, seed)
    s = spec["image_size"]
    x, xs = input_spec("pixel_values", (batch, 3, s, s), seed)
    ids, mask = owl_queries(batch, seed)
    torch.set_default_dtype(torch.float64)  # transformers builds the causal mask in the default dtype
    with torch.no_grad():
        out = model.double()(pixel_values=torch.from_numpy(x).double(), input_ids=torch.from_numpy(ids),
                             attention_mask=torch.from_numpy(mask))
    torch.set_default_dtype(torch.float32)
    outputs = {"logits": out.logits.numpy(), "pred_boxes": out.pred_boxes.numpy()}
    if getattr(out, "objectness_logits", None) is not None:
        outputs["objectness_logits"] = out.objectness_logits.numpy()
    entry = {"from": "hf", "config": f"{name}.config.json"}
    literal = {"input_ids": ids, "attention_mask": mask}
    return entry, tensors, [xs], outputs, literal


def vmoe_config():
    """V-MoE B/16 (E=8, K=2, every 2, fine-tuned at 384: vmoe_paper/common.py and
    vmoe_b16_imagenet21k_randaug_strong_ft_ilsvrc2012.py) cut to one dense and one MoE
    block. group_size = 8 images/device x 577 tokens; capacity factor 1.5."""
    image, patch = 384, 16
    group = 8 * ((image // patch) ** 2 + 1)
    return {"name": "vmoe_b16_384_e8_k2", "image_size": [image, image], "patch_size": [patch, patch],
            "hidden_size": 768, "num_classes": 1000, "classifier": "token", "representation_size": None,
            "encoder": {"num_layers": 2, "num_heads": 12, "mlp_dim": 3072,
                        "moe": {"layers": [1], "num_experts": 8, "group_size": group,
                                "router": {"num_selected_experts": 2, "noise_std": 1.0,
                                           "dispatcher": {"name": "einsum", "capacity_factor": 1.5,
                                                          "batch_priority": False}}}}}


def vmoe_shapes(cfg):
    """The Flax parameter tree of vmoe's VisionTransformerMoe, '/'-joined, with shapes."""
    d, (ph, pw) = cfg["hidden_size"], cfg["patch_size"]
    enc = cfg["encoder"]
    nh, m, e = enc["num_heads"], enc["mlp_dim"], enc["moe"]["num_experts"]
    n = (cfg["image_size"][0] // ph) * (cfg["image_size"][1] // pw) + 1
    s = {"embedding/kernel": [ph, pw, 3, d], "embedding/bias": [d], "cls": [1, 1, d],
         "Encoder/posembed_input/pos_embedding": [1, n, d]}
    for i in range(enc["num_layers"]):
        b = f"Encoder/encoderblock_{i}"
        for ln in ("LayerNorm_0", "LayerNorm_1"):
            s[f"{b}/{ln}/scale"], s[f"{b}/{ln}/bias"] = [d], [d]
        for qkv in ("query", "key", "value"):
            s[f"{b}/SelfAttention/{qkv}/kernel"], s[f"{b}/SelfAttention/{qkv}/bias"] = [d, nh, d // nh], [nh, d // nh]
        s[f"{b}/SelfAttention/out/kernel"], s[f"{b}/SelfAttention/out/bias"] = [nh, d // nh, d], [d]
        if i in enc["moe"]["layers"]:
            s[f"{b}/Moe/Router/dense/kernel"] = [d, e]
            s[f"{b}/Moe/Mlp/Dense_0/kernel"], s[f"{b}/Moe/Mlp/Dense_0/bias"] = [e, d, m], [e, m]
            s[f"{b}/Moe/Mlp/Dense_1/kernel"], s[f"{b}/Moe/Mlp/Dense_1/bias"] = [e, m, d], [e, d]
        else:
            s[f"{b}/Mlp/Dense_0/kernel"], s[f"{b}/Mlp/Dense_0/bias"] = [d, m], [m]
            s[f"{b}/Mlp/Dense_1/kernel"], s[f"{b}/Mlp/Dense_1/bias"] = [m, d], [d]
    s["Encoder/encoder_norm/scale"], s["Encoder/encoder_norm/bias"] = [d], [d]
    s["head/kernel"], s["head/bias"] = [d, cfg["num_classes"]], [cfg["num_classes"]]
    return s


def vmoe_rule(name, shape):
    if name == "cls":
        return 0.0, 0.5
    if name.endswith("Router/dense/kernel"):
        # Gate logits with std ~2 (LayerNorm'ed inputs): real top-2 decisions with both
        # gates weighing in, and few near-ties that float32 could order differently.
        return 0.0, 2.0 * math.sqrt(3.0 / shape[0])
    if "/Moe/Mlp/" in name and name.endswith("kernel"):
        return 0.0, math.sqrt(3.0 / shape[1])  # [E, in, out]
    if name.endswith("kernel") and len(shape) == 3 and "SelfAttention/out" in name:
        return 0.0, math.sqrt(3.0 / (shape[0] * shape[1]))  # [H, Dh, D]
    if name.endswith("kernel") and "SelfAttention" in name:
        return 0.0, math.sqrt(3.0 / shape[0])  # [D, H, Dh]
    if name == "embedding/kernel":
        return 0.0, math.sqrt(3.0 / int(np.prod(shape[:3])))  # HWIO
    if name.endswith("kernel"):
        return 0.0, math.sqrt(3.0 / shape[0])  # Dense [in, out]
    return rule(name, shape, set())


def vmoe_case(name, spec, batch, seed):
    cfg = vmoe_config()
    with open(os.path.join(OUT, f"{name}.config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    p, tensors = {}, []
    for tname, shape in vmoe_shapes(cfg).items():
        off, sc = vmoe_rule(tname, shape)
        v = synth(tname, shape, off, sc, seed)
        p[tname] = v.astype(np.float64)
        tensors.append({"name": tname, "shape": shape, "offset": f32(off), "scale": f32(sc), "checksum": checksum(v)})
    h, w = cfg["image_size"]
    x, xs = input_spec("pixel_values", (batch, 3, h, w), seed)
    logits, stats = vmoe_forward(p, cfg, x.astype(np.float64))
    entry = {"from": "vmoe", "config": f"{name}.config.json", "routing_stats": stats}
    print(f"  routing: dropped {[s['dropped'] for s in stats]}, per expert {[s['tokens_per_expert'] for s in stats]}")
    return entry, tensors, [xs], {"logits": logits}, {}


def synth_vectors():
    """Values for the Rust test of synth itself: a few names, offsets, scales and seeds,
    including a non-ASCII name and indices far past 2**32 (uint64 wrapping)."""
    cases = [("pixel_values", 0.0, 1.0, 0), ("blocks.0.attn.qkv.weight", 0.0, 0.0625, 10000),
             ("Encoder/encoderblock_1/Moe/Mlp/Dense_0/kernel", 1.0, 0.2, 2**40 + 3), ("naïve·名前", -0.3, 7.5, 12345)]
    out = []
    for name, off, sc, seed in cases:
        v = synth(name, (16,), off, sc, seed)
        far = [0, 15, 2**24 + 1, 2**32 + 7, 2**63 + 11]
        out.append({"name": name, "offset": f32(off), "scale": f32(sc), "seed": seed,
                    "first16_bits": [f"{b:08x}" for b in v.view(np.uint32)], "checksum": checksum(v),
                    "at": [[i, f"{np.float32(synth_value(name, i, off, sc, seed)).view(np.uint32):08x}"] for i in far]})
        # the vectorized path and the scalar path agree
        assert all(np.float32(synth_value(name, i, off, sc, seed)) == v[i] for i in range(16))
    return out


def write_json(path, doc):
    """Indented, with one line per entry of the long lists (tensors, inputs, outputs)."""
    lines = []
    for k, v in doc.items():
        if isinstance(v, list) and v and isinstance(v[0], dict):
            items = ",\n".join("  " + json.dumps(x) for x in v)
            lines.append(f" {json.dumps(k)}: [\n{items}\n ]")
        else:
            lines.append(f" {json.dumps(k)}: {json.dumps(v)}")
    with open(path, "w") as f:
        f.write("{\n" + ",\n".join(lines) + "\n}\n")
    json.loads(open(path).read())


def main(only):
    os.makedirs(OUT, exist_ok=True)
    versions = {"torch": torch.__version__, "timm": timm.__version__, "transformers": transformers.__version__,
                "numpy": np.__version__}
    if not only:
        write_json(os.path.join(OUT, "synth.json"), {"vectors": synth_vectors()})
    for i, (name, family, source, spec, batch) in enumerate(CASES):
        if only and name not in only:
            continue
        seed = 10_000 + i
        print(f"{name} ...", flush=True)
        if source == "timm":
            entry, tensors, inputs, outputs, literal = timm_case(spec, batch, seed)
        elif source == "hf":
            entry, tensors, inputs, outputs, literal = owl_case(name, spec, batch, seed)
        else:
            entry, tensors, inputs, outputs, literal = vmoe_case(name, spec, batch, seed)
        io = {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in outputs.items()}
        io.update({k: np.ascontiguousarray(v) for k, v in literal.items()})
        save_file(io, os.path.join(OUT, f"{name}.out.safetensors"))
        doc = {"name": name, "family": family, **entry, "batch": batch, "seed": seed, "versions": versions,
               "inputs": inputs, "literal_inputs": sorted(literal),
               "outputs": [{"name": k, "shape": list(v.shape)} for k, v in outputs.items()],
               "n_params": int(sum(np.prod(t["shape"]) for t in tensors)), "tensors": tensors}
        write_json(os.path.join(OUT, f"{name}.json"), doc)
        os.chmod(os.path.join(OUT, f"{name}.out.safetensors"), 0o644)
        print(f"  {doc['n_params'] / 1e6:.1f}M params, outputs {[(k, v.shape) for k, v in outputs.items()]}, "
              f"|logits| {np.abs(outputs['logits'][np.isfinite(outputs['logits'])]).mean():.3g}", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
