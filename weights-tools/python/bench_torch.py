"""PyTorch CPU figures to set beside `wgvision bench` (same machine, same session).

    python bench_torch.py [--threads 2] [--iters 10] [NAME ...]

NAME: a timm model (random init), `matmul:MxNxK`, `owlvit-base-patch32` (the image
tower plus heads of transformers' OwlViTForObjectDetection, one text query), or
`clip-vit-base-patch32` / `clip-vit-base-patch16` / `siglip-base-patch16-224` (the image
side of transformers' CLIPModel / SiglipModel: image embeddings and logits against 8
precomputed text embeddings, as `wgvision bench` times it; `:text` times the text tower
on 8 labels instead). Prints one
JSON line per workload: median and min ms over --iters runs after one warm-up.
"""
import argparse
import json
import statistics
import time

import torch


def timed(fn, iters):
    fn()
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        fn()
        ts.append((time.perf_counter() - t) * 1e3)
    return statistics.median(ts), min(ts)


def workload(name):
    if name.startswith("matmul:"):
        m, n, k = (int(x) for x in name.split(":")[1].split("x"))
        a, w = torch.randn(m, k), torch.randn(k, n)
        return (lambda: a @ w), 2 * m * n * k
    if name.startswith("owlvit"):
        from transformers import OwlViTConfig, OwlViTForObjectDetection

        model = OwlViTForObjectDetection(OwlViTConfig()).eval()
        px = torch.randn(1, 3, 768, 768)
        ids = torch.tensor([[49406, 320, 1125, 539, 320, 2368, 49407]])
        return (lambda: model(input_ids=ids, pixel_values=px)), None
    if name.startswith(("clip-", "siglip-")):
        from transformers import CLIPConfig, CLIPModel, SiglipConfig, SiglipModel

        base, _, part = name.partition(":")
        if base.startswith("clip"):
            patch = 32 if base.endswith("32") else 16
            model = CLIPModel(CLIPConfig(vision_config={"patch_size": patch})).eval()
            ids, mask = torch.randint(1, 49406, (8, 77)), torch.ones(8, 77, dtype=torch.int64)
            text_kw = {"input_ids": ids, "attention_mask": mask}
        else:
            model = SiglipModel(SiglipConfig()).eval()
            text_kw = {"input_ids": torch.randint(1, 31999, (8, 64))}
        if part == "text":
            return (lambda: model.get_text_features(**text_kw)), None
        px = torch.randn(1, 3, 224, 224)
        with torch.no_grad():
            txt = model.get_text_features(**text_kw)
            txt = txt / txt.norm(dim=-1, keepdim=True)

        def image_side():
            img = model.get_image_features(pixel_values=px)
            img = img / img.norm(dim=-1, keepdim=True)
            return img @ txt.t() * model.logit_scale.exp()

        return image_side, None
    import timm

    model = timm.create_model(name, pretrained=False).eval()
    size = model.pretrained_cfg.get("input_size", (3, 224, 224))
    x = torch.randn(1, *size)
    return (lambda: model(x)), None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=10)
    ap.add_argument("names", nargs="*", default=["matmul:1024x1024x1024", "vit_tiny_patch16_224", "vit_base_patch16_224"])
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    for name in args.names:
        fn, flops = workload(name)
        with torch.no_grad():
            med, lo = timed(fn, args.iters)
        row = {"workload": name, "torch": torch.__version__, "threads": args.threads, "median_ms": round(med, 2), "min_ms": round(lo, 2)}
        if flops:
            row["gflops"] = round(flops / (med * 1e6), 1)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
