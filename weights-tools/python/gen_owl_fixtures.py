"""Golden fixtures for OWL-ViT and OWLv2 detection from transformers (and OWL-ViT's
image preprocessing): small random models
(perturbed so no bias or norm sits at 0/1), their config.json and state dict under
transformers' names, and float64 outputs (logits, pred_boxes, OWLv2's objectness_logits)
on float32 pixels and int64 input_ids / attention_mask. Several queries of different
lengths per image, a padding query (all ids 0), batch > 1. Output: tests/fixtures/owl/.
Run: python weights-tools/python/gen_owl_fixtures.py  (pinned versions: requirements.txt)
"""
import json
import os

import numpy as np
import torch
import transformers
from safetensors.torch import save_file
from PIL import Image
from transformers import CLIPTokenizerFast, OwlViTConfig, OwlViTImageProcessor, Owlv2ImageProcessor, OwlViTForObjectDetection, Owlv2Config, Owlv2ForObjectDetection

from gen_vit_fixtures import perturb

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "owl")
VOCAB, MAXLEN = 300, 16


def configs(cls, image_size, patch_size, vocab=VOCAB):
    text = dict(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                max_position_embeddings=MAXLEN, bos_token_id=vocab - 2, eos_token_id=vocab - 1, pad_token_id=0)
    vision = dict(hidden_size=48, intermediate_size=96, num_hidden_layers=2, num_attention_heads=3,
                  image_size=image_size, patch_size=patch_size)
    return cls(text_config=text, vision_config=vision, projection_dim=32)


def queries(rng, batch, q, lengths, pad_query):
    ids = np.zeros((batch * q, MAXLEN), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i in range(batch * q):
        if pad_query is not None and i == pad_query:
            continue  # all zeros: a padding query, as the processor makes for ragged query lists
        n = lengths[i % len(lengths)]
        ids[i, 0] = VOCAB - 2
        ids[i, 1:1 + n] = rng.integers(1, VOCAB - 2, size=n)
        ids[i, 1 + n] = VOCAB - 1
        mask[i, :2 + n] = 1
    return ids, mask


CASES = [
    # name, model class, config class, image size, patch, batch, queries per image, lengths, padding query row
    ("owlvit_patch16_batch2_pad_query", OwlViTForObjectDetection, OwlViTConfig, 64, 16, 2, 3, [1, 4, 7], 5),
    ("owlvit_patch32_one_image", OwlViTForObjectDetection, OwlViTConfig, 96, 32, 1, 2, [2, 12], None),
    ("owlv2_patch16_batch2_pad_query", Owlv2ForObjectDetection, Owlv2Config, 64, 16, 2, 2, [3, 1], 3),
]


def save_model(name, cls, config, seed):
    """A perturbed random model saved with its config; returns it and its generator."""
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = cls(config).eval()
    perturb(model, gen)
    save_file({k: v.detach().float().contiguous() for k, v in model.state_dict().items()},
              os.path.join(OUT, f"{name}.checkpoint.safetensors"))
    with open(os.path.join(OUT, f"{name}.config.json"), "w") as f:
        f.write(config.to_json_string())
    return model, gen


def main():
    os.makedirs(OUT, exist_ok=True)
    index = []
    for i, (name, cls, cfg_cls, image, patch, batch, q, lengths, pad_query) in enumerate(CASES):
        rng = np.random.default_rng(6000 + i)
        model, gen = save_model(name, cls, configs(cfg_cls, image, patch), 6000 + i)
        x = torch.randn(batch, 3, image, image, generator=gen).float()
        ids, mask = queries(rng, batch, q, lengths, pad_query)
        torch.set_default_dtype(torch.float64)  # transformers builds the causal mask in the default dtype
        with torch.no_grad():
            out = model.double()(pixel_values=x.double(), input_ids=torch.from_numpy(ids),
                                 attention_mask=torch.from_numpy(mask))
        torch.set_default_dtype(torch.float32)
        io = {"pixel_values": x, "input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask),
              "logits": out.logits.contiguous(), "pred_boxes": out.pred_boxes.contiguous()}
        outputs = ["logits", "pred_boxes"]
        if getattr(out, "objectness_logits", None) is not None:
            io["objectness_logits"] = out.objectness_logits.contiguous()
            outputs.append("objectness_logits")
        save_file(io, os.path.join(OUT, f"{name}.io.safetensors"))
        index.append({"name": name, "from": "hf", "config": f"{name}.config.json", "batch": batch,
                      "outputs": outputs, "out_shape": list(out.logits.shape)})
        print(f"{name}: logits {tuple(out.logits.shape)} boxes {tuple(out.pred_boxes.shape)}")
    # A real query (ids set) whose attention_mask is all zeros: transformers' additive
    # masks (finfo.min) swamp every score, so the text tower attends uniformly over the
    # causal keys and the logits stay finite.
    name = "owlvit_all_zero_mask_query"
    rng = np.random.default_rng(6400)
    model, gen = save_model(name, OwlViTForObjectDetection, configs(OwlViTConfig, 64, 16), 6400)
    x = torch.randn(1, 3, 64, 64, generator=gen).float()
    ids, mask = queries(rng, 1, 3, [3, 5, 2], None)
    mask[1, :] = 0
    torch.set_default_dtype(torch.float64)
    with torch.no_grad():
        out = model.double()(pixel_values=x.double(), input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    torch.set_default_dtype(torch.float32)
    assert torch.isfinite(out.logits).all()
    save_file({"pixel_values": x, "input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask),
               "logits": out.logits.contiguous(), "pred_boxes": out.pred_boxes.contiguous()},
              os.path.join(OUT, f"{name}.io.safetensors"))
    index.append({"name": name, "from": "hf", "config": f"{name}.config.json", "batch": 1,
                  "outputs": ["logits", "pred_boxes"], "out_shape": list(out.logits.shape)})
    print(f"{name}: logits {tuple(out.logits.shape)}")
    # A model whose vocabulary is the CLIP tokenizer fixture's, for the end-to-end
    # `run --image --query` test (tokenized by transformers' CLIPTokenizerFast).
    tok_dir = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "clip_tokenizer")
    tok = CLIPTokenizerFast(vocab_file=os.path.join(tok_dir, "vocab.json"), merges_file=os.path.join(tok_dir, "merges.txt"),
                            pad_token="!", model_max_length=MAXLEN)
    name = "owlvit_clip_vocab_e2e"
    model, gen = save_model(name, OwlViTForObjectDetection, configs(OwlViTConfig, 64, 16, vocab=len(tok)), 6100)
    texts = ["a photo of a cat", "a remote control", "hello, world!"]
    enc = tok(texts, padding="max_length", truncation=True, max_length=MAXLEN, return_tensors="pt")
    x = torch.randn(1, 3, 64, 64, generator=gen).float()
    torch.set_default_dtype(torch.float64)
    with torch.no_grad():
        out = model.double()(pixel_values=x.double(), input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    torch.set_default_dtype(torch.float32)
    save_file({"pixel_values": x, "input_ids": enc["input_ids"].contiguous(), "attention_mask": enc["attention_mask"].contiguous(),
               "logits": out.logits.contiguous(), "pred_boxes": out.pred_boxes.contiguous()},
              os.path.join(OUT, f"{name}.io.safetensors"))
    index.append({"name": name, "from": "hf", "config": f"{name}.config.json", "batch": 1, "queries": texts,
                  "outputs": ["logits", "pred_boxes"], "out_shape": list(out.logits.shape)})
    print(f"{name}: logits {tuple(out.logits.shape)}")
    # Image-guided (one-shot) detection: transformers' image_guided_detection on a target
    # and a query image with the first OWL-ViT case's model.
    name = "owlvit_image_guided"
    model, gen = save_model(name, OwlViTForObjectDetection, configs(OwlViTConfig, 64, 16), 6200)
    x = torch.randn(1, 3, 64, 64, generator=gen).float()
    qx = torch.randn(1, 3, 64, 64, generator=gen).float()
    torch.set_default_dtype(torch.float64)
    with torch.no_grad():
        out = model.double().image_guided_detection(pixel_values=x.double(), query_pixel_values=qx.double())
    torch.set_default_dtype(torch.float32)
    save_file({"pixel_values": x, "query_pixel_values": qx, "logits": out.logits.contiguous(),
               "target_pred_boxes": out.target_pred_boxes.contiguous()}, os.path.join(OUT, f"{name}.io.safetensors"))
    print(f"{name}: logits {tuple(out.logits.shape)}")
    # Preprocessing: OwlViTImageProcessor (resize to 64x64, PIL bicubic; crop to the same
    # size; CLIP mean/std) and Owlv2ImageProcessor on a non-square image, for
    # `detect::owl_pixels`.
    rng = np.random.default_rng(6300)
    gx, gy = np.linspace(0, 1, 90)[None, :, None], np.linspace(0, 1, 70)[:, None, None]
    ramp = np.concatenate([gx * np.ones_like(gy), gy * np.ones_like(gx), gx * gy], axis=2)
    img = (255 * np.clip(ramp + 0.05 * rng.standard_normal((70, 90, 3)), 0, 1)).astype(np.uint8)
    png = os.path.join(OUT, "preprocess_input.png")
    Image.fromarray(img).save(png)
    proc = OwlViTImageProcessor(size={"height": 64, "width": 64}, crop_size={"height": 64, "width": 64})
    pix = proc(images=Image.open(png), return_tensors="pt")["pixel_values"].float()
    save_file({"pixel_values": pix.contiguous()}, os.path.join(OUT, "preprocess_owlvit.safetensors"))
    # Owlv2ImageProcessor (needs scipy): pad to a square with 0.5, anti-aliased resize.
    proc2 = Owlv2ImageProcessor(size={"height": 64, "width": 64})
    pix2 = proc2(images=Image.open(png), return_tensors="pt")["pixel_values"].float()
    save_file({"pixel_values": pix2.contiguous()}, os.path.join(OUT, "preprocess_owlv2.safetensors"))
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump({"transformers_version": transformers.__version__, "torch_version": torch.__version__,
                   "cases": index}, f, indent=1)


if __name__ == "__main__":
    main()
