"""Golden fixtures for transformers' CLIP and SigLIP: CLIPVisionModel, CLIPVisionModelWithProjection,
CLIPModel, SiglipVisionModel and SiglipModel.

Small widths built by transformers with random weights (perturbed so no bias or norm sits at 0/1),
saved under transformers' own tensor names with their config.json, and run in float64 on the
float32 inputs the test feeds wgvision. The image geometries are the released ones (CLIP B/32 at
224 px: 50 tokens; L/14 at 336 px: 577 tokens; SigLIP B/16 at 224 and 384 px: 196 and 576 tokens)
with one or two layers. Zero-shot end-to-end cases run the real processors (CLIPProcessor with the
CLIP tokenizer fixture's vocabulary; SiglipProcessor with the SentencePiece fixture) on an image
file and label texts, for the `run --image --label` CLI test.
Output: tests/fixtures/clip/.
Run: python weights-tools/python/gen_clip_fixtures.py  (pinned versions: requirements.txt)
"""
import json
import os

import numpy as np
import torch
import transformers
from PIL import Image
from safetensors.torch import save_file
from transformers import (BitImageProcessor, CLIPConfig, DeiTImageProcessor, CLIPImageProcessor, CLIPModel, CLIPTokenizerFast, CLIPVisionConfig,
                          CLIPVisionModel, CLIPVisionModelWithProjection, SiglipConfig, SiglipImageProcessor,
                          SiglipModel, SiglipTokenizer, SiglipVisionConfig, SiglipVisionModel)

from gen_vit_fixtures import perturb

HERE = os.path.dirname(__file__)
FIX = os.path.join(HERE, "..", "..", "tests", "fixtures")
OUT = os.path.join(FIX, "clip")

VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2)
TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)


def save(name, model, config, inputs, outputs):
    state = {k: v.detach().float().contiguous() for k, v in model.state_dict().items() if not k.endswith("position_ids")}
    with open(os.path.join(OUT, f"{name}.config.json"), "w") as f:
        f.write(config.to_json_string())
    save_file(state, os.path.join(OUT, f"{name}.checkpoint.safetensors"))
    tensors = dict(inputs)
    tensors.update({k: v.detach().clone().contiguous() for k, v in outputs.items()})
    save_file(tensors, os.path.join(OUT, f"{name}.io.safetensors"))
    print(f"{name}: " + ", ".join(f"{k} {tuple(v.shape)}" for k, v in outputs.items()))


def run64(model, **kw):
    model = model.double().eval()
    torch.set_default_dtype(torch.float64)  # CLIP's causal mask is built in the default dtype
    try:
        with torch.no_grad():
            return model(**{k: (v.double() if v.dtype == torch.float32 else v) for k, v in kw.items()})
    finally:
        torch.set_default_dtype(torch.float32)


def test_image():
    """A 200 x 150 picture with edges, gradients and noise (not square, so resize and crop matter)."""
    rng = np.random.default_rng(7)
    y, x = np.mgrid[0:150, 0:200]
    img = np.stack([(x * 255 / 199), (y * 255 / 149), 128 + 60 * np.sin(x / 9.0) * np.cos(y / 7.0)], -1)
    img[40:90, 60:130] = [230, 40, 30]
    img += rng.normal(0, 12, img.shape)
    return Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))


def main():
    os.makedirs(OUT, exist_ok=True)
    index = {"transformers_version": transformers.__version__, "torch_version": torch.__version__, "cases": []}
    gen = torch.Generator().manual_seed(7000)

    def pixels(batch, size):
        return torch.randn(batch, 3, size, size, generator=gen).float()

    # Image towers at released geometries.
    for name, cls, cfg_cls, kw, batch, outs in [
        ("clip_vision_b32_224", CLIPVisionModel, CLIPVisionConfig, dict(VISION, image_size=224, patch_size=32), 1,
         ["last_hidden_state", "pooler_output"]),
        ("clip_vision_l14_336", CLIPVisionModel, CLIPVisionConfig, dict(VISION, image_size=336, patch_size=14,
                                                                         num_hidden_layers=1), 1,
         ["last_hidden_state", "pooler_output"]),
        ("clip_vision_projection", CLIPVisionModelWithProjection, CLIPVisionConfig,
         dict(VISION, image_size=224, patch_size=32, projection_dim=24, hidden_act="gelu"), 1,
         ["last_hidden_state", "image_embeds"]),
        ("siglip_vision_b16_224", SiglipVisionModel, SiglipVisionConfig, dict(VISION, image_size=224, patch_size=16), 1,
         ["last_hidden_state", "pooler_output"]),
        ("siglip_vision_b16_384", SiglipVisionModel, SiglipVisionConfig, dict(VISION, image_size=384, patch_size=16,
                                                                               num_hidden_layers=1), 1,
         ["last_hidden_state", "pooler_output"]),
    ]:
        config = cfg_cls(**kw)
        config.architectures = [cls.__name__]
        model = cls(config).eval()
        perturb(model, gen)
        x = pixels(batch, kw["image_size"])
        out = run64(model, pixel_values=x)
        save(name, model, config, {"pixel_values": x}, {k: getattr(out, k) for k in outs})
        index["cases"].append({"name": name, "outputs": outs})

    # CLIPModel and SiglipModel on random ids (CLIP: a padding mask, ragged lengths).
    # eos_token_id: CLIPTextTransformer pools at the first end-of-text id (argmax for the
    # legacy value 2); here it is the vocabulary's last id, as in the released models.
    clip_cfg = CLIPConfig(text_config=dict(TEXT, vocab_size=300, max_position_embeddings=20, eos_token_id=299),
                          vision_config=dict(VISION, image_size=224, patch_size=32), projection_dim=24)
    clip_cfg.architectures = ["CLIPModel"]
    model = CLIPModel(clip_cfg).eval()
    perturb(model, gen)
    lengths = [20, 5, 9]
    ids = torch.zeros(3, 20, dtype=torch.int64)
    mask = torch.zeros(3, 20, dtype=torch.int64)
    for i, n in enumerate(lengths):
        ids[i, :n] = torch.randint(1, 298, (n,), generator=gen)
        ids[i, n - 1] = 299  # the end-of-text token: the largest id
        mask[i, :n] = 1
    x = pixels(2, 224)
    out = run64(model, pixel_values=x, input_ids=ids, attention_mask=mask)
    outs = ["logits_per_image", "logits_per_text", "image_embeds", "text_embeds"]
    save("clip_model", model, clip_cfg, {"pixel_values": x, "input_ids": ids, "attention_mask": mask},
         {k: getattr(out, k) for k in outs})
    index["cases"].append({"name": "clip_model", "outputs": outs})

    sig_cfg = SiglipConfig(text_config=dict(TEXT, vocab_size=300, max_position_embeddings=16),
                           vision_config=dict(VISION, image_size=224, patch_size=16))
    sig_cfg.architectures = ["SiglipModel"]
    model = SiglipModel(sig_cfg).eval()
    perturb(model, gen)
    ids = torch.randint(0, 300, (3, 16), generator=gen)
    x = pixels(1, 224)
    out = run64(model, pixel_values=x, input_ids=ids)
    save("siglip_model", model, sig_cfg, {"pixel_values": x, "input_ids": ids}, {k: getattr(out, k) for k in outs})
    index["cases"].append({"name": "siglip_model", "outputs": outs})

    # Preprocessing: the processors' pixel values for one image file.
    img = test_image()
    img.save(os.path.join(OUT, "picture.png"))
    clip_proc = CLIPImageProcessor()  # shortest edge 224, bicubic, center crop 224, CLIP mean/std
    sig_proc = SiglipImageProcessor()  # 224 x 224 bicubic, mean = std = 0.5
    deit_proc = DeiTImageProcessor()  # both sides to 256 (bicubic), center crop 224, ImageNet mean/std
    bit_proc = BitImageProcessor(size={"shortest_edge": 256}, image_mean=[0.485, 0.456, 0.406],
                                 image_std=[0.229, 0.224, 0.225])  # DINOv2's hub config
    pre = {"clip_pixels": clip_proc(img, return_tensors="pt")["pixel_values"].float(),
           "siglip_pixels": sig_proc(img, return_tensors="pt")["pixel_values"].float(),
           "deit_pixels": deit_proc(img, return_tensors="pt")["pixel_values"].float(),
           "bit_pixels": bit_proc(img, return_tensors="pt")["pixel_values"].float()}
    save_file({k: v.contiguous() for k, v in pre.items()}, os.path.join(OUT, "picture.processed.safetensors"))
    with open(os.path.join(OUT, "clip_preprocessor_config.json"), "w") as f:
        f.write(clip_proc.to_json_string())
    with open(os.path.join(OUT, "siglip_preprocessor_config.json"), "w") as f:
        f.write(sig_proc.to_json_string())
    for name, proc in [("deit", deit_proc), ("bit", bit_proc)]:
        with open(os.path.join(OUT, f"{name}_preprocessor_config.json"), "w") as f:
            f.write(proc.to_json_string())

    # Zero-shot end to end: CLIPProcessor (the CLIP tokenizer fixture's vocabulary) on the image
    # and three labels, and the model's softmax over logits_per_image.
    tok_dir = os.path.join(FIX, "clip_tokenizer")
    tok = CLIPTokenizerFast(vocab_file=os.path.join(tok_dir, "vocab.json"), merges_file=os.path.join(tok_dir, "merges.txt"))
    labels = ["a photo of a cat", "a photo of a dog", "a red square on a gradient"]
    assert tok.eos_token_id == len(tok) - 1
    cfg = CLIPConfig(text_config=dict(TEXT, vocab_size=len(tok), max_position_embeddings=77, eos_token_id=tok.eos_token_id),
                     vision_config=dict(VISION, image_size=224, patch_size=32), projection_dim=24)
    cfg.architectures = ["CLIPModel"]
    model = CLIPModel(cfg).eval()
    perturb(model, gen)
    enc = tok(labels, padding=True, return_tensors="pt")
    out = run64(model, pixel_values=pre["clip_pixels"], input_ids=enc["input_ids"], attention_mask=enc["attention_mask"])
    probs = out.logits_per_image.softmax(dim=1)[0]
    save("clip_zero_shot", model, cfg, {},
         {"logits_per_image": out.logits_per_image, "probs": probs})
    index["zero_shot"] = [{"name": "clip_zero_shot", "labels": labels, "logits_per_image": out.logits_per_image[0].tolist(),
                           "probs": probs.tolist(), "tokenizer": "clip_tokenizer"}]

    # SigLIP: SiglipProcessor (the SentencePiece fixture, padding to max_length 64, no
    # attention mask) and sigmoid(logits_per_image).
    sp_dir = os.path.join(FIX, "siglip_tokenizer")
    sp = SiglipTokenizer(os.path.join(sp_dir, "spiece.model"), model_max_length=64, model_input_names=["input_ids"])
    labels = ["a photo of 2 cats.", "A photo of a dog!", "a red square on a gradient"]
    cfg = SiglipConfig(text_config=dict(TEXT, vocab_size=sp.vocab_size, max_position_embeddings=64),
                       vision_config=dict(VISION, image_size=224, patch_size=16))
    cfg.architectures = ["SiglipModel"]
    model = SiglipModel(cfg).eval()
    perturb(model, gen)
    enc = sp(labels, padding="max_length", max_length=64, truncation=True, return_tensors="pt")
    assert list(enc.keys()) == ["input_ids"]
    out = run64(model, pixel_values=pre["siglip_pixels"], input_ids=enc["input_ids"])
    probs = torch.sigmoid(out.logits_per_image)[0]
    save("siglip_zero_shot", model, cfg, {}, {"logits_per_image": out.logits_per_image, "probs": probs})
    index["zero_shot"].append({"name": "siglip_zero_shot", "labels": labels, "logits_per_image": out.logits_per_image[0].tolist(),
                               "probs": probs.tolist(), "tokenizer": "siglip_tokenizer/spiece.model"})
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        json.dump(index, f, indent=1)


if __name__ == "__main__":
    main()
