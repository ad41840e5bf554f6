#!/usr/bin/env python3
"""Writes the committed seed corpus under fuzz/corpus/<target>/ (run from the repo root).

    python3 fuzz/make_corpus.py CONVERTED_DIR

CONVERTED_DIR holds model files made by `wgvision convert` from the test fixtures (one per
family: vit, swin, maxvit, vmoe, owlv2, owlvit; see fuzz/README.md); their metadata is
kept and their tensors cut to the two smallest, so seeds stay a few KB. Images need
Pillow. Seeds are small valid inputs; libFuzzer mutates them into bad ones.
"""
import io, json, os, struct, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")
FIX = os.path.join(ROOT, "tests", "fixtures")


def out(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def safetensors(tensors, metadata=None):
    """tensors: [(name, dtype, shape, raw bytes)]"""
    header, blob = {}, b""
    for name, dtype, shape, raw in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(blob), len(blob) + len(raw)]}
        blob += raw
    if metadata is not None:
        header["__metadata__"] = metadata
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + blob


def read_safetensors(path):
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    header = json.loads(b[8 : 8 + n])
    meta = header.pop("__metadata__", None)
    tensors = [(k, v["dtype"], v["shape"], b[8 + n + v["data_offsets"][0] : 8 + n + v["data_offsets"][1]]) for k, v in header.items()]
    return meta, tensors


def tiny_tokenizer(n_merges=40):
    """The fixture tokenizer cut to its 512 byte symbols, the first merges and the specials."""
    t = json.load(open(os.path.join(FIX, "clip_tokenizer", "tokenizer.json")))
    vocab = t["model"]["vocab"]
    keep = {k: v for k, v in vocab.items() if v < 512 + n_merges}
    bos, eos = len(keep), len(keep) + 1
    keep["<|startoftext|>"], keep["<|endoftext|>"] = bos, eos
    t["model"]["vocab"] = keep
    t["model"]["merges"] = t["model"]["merges"][:n_merges]
    for a in t["added_tokens"]:
        a["id"] = {"<|startoftext|>": bos, "<|endoftext|>": eos}.get(a["content"], a["id"])
    return t


def model_file_seeds(converted):
    tok = json.dumps(tiny_tokenizer(), separators=(",", ":"))
    for fam in ["vit", "swin", "maxvit", "vmoe", "owlv2", "owlvit"]:
        meta, tensors = read_safetensors(os.path.join(converted, fam + ".safetensors"))
        meta = {k: (tok if k.startswith("wgvision.file.") else v) for k, v in meta.items()}
        small = sorted(tensors, key=lambda t: len(t[3]))[:2]
        out("model_file", fam + ".safetensors", safetensors(small, meta))
        out("model_file", fam + ".config.json", meta["wgvision.config"])
    out("model_file", "no_metadata.safetensors", safetensors([("x", "F32", [2], struct.pack("<2f", 1, 2))]))


def run_input_seeds():
    f32 = lambda vals: struct.pack("<%df" % len(vals), *vals)
    px = f32([i / 48 for i in range(48)])
    out("run_input", "pixels.safetensors", safetensors([("pixel_values", "F32", [1, 3, 4, 4], px)]))
    ids = struct.pack("<8q", 49406, 320, 2368, 49407, 49406, 1929, 49407, 0)
    mask = struct.pack("<8q", 1, 1, 1, 1, 1, 1, 1, 0)
    out("run_input", "owl.safetensors", safetensors([("pixel_values", "F32", [1, 3, 4, 4], px), ("input_ids", "I64", [2, 4], ids), ("attention_mask", "I64", [2, 4], mask)]))
    mixed = [
        ("f16", "F16", [2, 2], struct.pack("<4e", 1, -2, 0.5, 65504)),
        ("bf16", "BF16", [3], bytes([0x80, 0x3F, 0x00, 0xC0, 0x00, 0x00])),
        ("f64", "F64", [2], struct.pack("<2d", 1e300, -0.0)),
        ("i32", "I32", [1, 2], struct.pack("<2i", 7, -1)),
        ("u8", "U8", [1, 1, 3], bytes([1, 2, 3])),
        ("mask", "BOOL", [2], bytes([0, 1])),
        ("empty", "F32", [0, 3], b""),
        ("scalar", "F32", [], f32([3.5])),
    ]
    out("run_input", "dtypes.safetensors", safetensors(mixed, {"note": "seed"}))


def tokenizer_seeds():
    texts = [c["text"] for c in json.load(open(os.path.join(FIX, "clip_tokenizer", "cases.json")))["cases"]]
    sep = b"\xff"
    enc = lambda parts: sep.join(p.encode() if isinstance(p, str) else p for p in parts)
    tok = tiny_tokenizer()
    out("tokenizer", "tokenizer_json", b"\x00" + enc([json.dumps(tok, separators=(",", ":")), "a photo of a cat", "Don't STOP!!", "<|endoftext|>x!"]))
    merges = "#version: 0.2\n" + "\n".join(" ".join(m) for m in tok["model"]["merges"]) + "\n"
    out("tokenizer", "vocab_merges", b"\x01" + enc([json.dumps(tok["model"]["vocab"], separators=(",", ":")), merges, "hello, world! it's 2024"]))
    clip = open(os.path.join(FIX, "clip_tokenizer", "clip_merges.txt"), encoding="utf-8").read().splitlines()[:60]
    out("tokenizer", "clip_merges", b"\x02" + enc(["\n".join(clip) + "\n", "a remote control.", "x"]))
    out("tokenizer", "texts_a", b"\x03" + enc(texts[:7]))
    out("tokenizer", "texts_b", b"\x03" + enc(texts[7:]))


def image_seeds():
    from PIL import Image

    def save(name, img, fmt, **kw):
        b = io.BytesIO()
        img.save(b, fmt, **kw)
        out("image", name, b.getvalue())

    rgb = Image.new("RGB", (7, 5))
    rgb.putdata([((x * 37) % 256, (y * 51) % 256, (x * y * 13) % 256) for y in range(5) for x in range(7)])
    save("rgb.png", rgb, "PNG")
    save("rgba.png", rgb.convert("RGBA"), "PNG")
    save("gray.png", rgb.convert("L"), "PNG")
    save("gray_alpha.png", rgb.convert("LA"), "PNG")
    save("palette.png", rgb.convert("P"), "PNG")
    save("bilevel.png", rgb.convert("1"), "PNG")
    save("gray16.png", rgb.convert("I;16"), "PNG")
    big = rgb.resize((20, 12))
    save("baseline.jpg", big, "JPEG", quality=80)
    save("progressive.jpg", big, "JPEG", quality=60, progressive=True)
    save("gray.jpg", big.convert("L"), "JPEG")
    save("cmyk.jpg", big.convert("CMYK"), "JPEG")
    save("subsampled_444.jpg", big, "JPEG", subsampling=0)


if __name__ == "__main__":
    model_file_seeds(sys.argv[1])
    run_input_seeds()
    tokenizer_seeds()
    image_seeds()
