"""CLIP BPE tokenizer fixtures: a reduced CLIP vocabulary (the 512 byte symbols, their
end-of-word forms, the first 4000 merges of OpenAI CLIP's bpe_simple_vocab_16e6, the two
special tokens; built exactly as CLIP builds its vocabulary), saved as vocab.json +
merges.txt and as tokenizer.json, and the ids transformers' CLIPTokenizerFast gives for a
dozen strings with OWL-ViT's settings (padding to max_length 16, truncation).
Output: tests/fixtures/clip_tokenizer/. Needs open_clip_torch (for the merges file).
Run: python weights-tools/python/gen_tokenizer_fixtures.py
"""
import gzip
import json
import os

import importlib.util

from transformers import CLIPTokenizerFast

OUT = os.path.join(os.path.dirname(__file__), "..", "..", "tests", "fixtures", "clip_tokenizer")
N_MERGES = 4000
MAX_LEN = 16

STRINGS = [
    "a photo of a cat",
    "A Photo Of A CAT",
    "a remote control.",
    "hello, world! it's 2024",
    "don't stop-believing",
    "  multiple   spaces\tand\nnewlines  ",
    "café crème brûlée",
    "naïve coöperation",
    "東京タワー",
    "emoji 😀 test",
    "unbelievably antidisestablishmentarianism",
    "this sentence is far too long to fit into sixteen tokens so it must be truncated at the end",
    "x",
    "",
]


def bytes_to_unicode():
    """GPT-2 / CLIP byte -> printable unicode character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def clip_vocab(merges):
    """CLIP's vocabulary for a merges list: byte symbols, the same with </w>, one token per
    merge, the two special tokens."""
    vocab = list(bytes_to_unicode().values())
    return vocab + [v + "</w>" for v in vocab] + ["".join(m) for m in merges] + ["<|startoftext|>", "<|endoftext|>"]


def write_merges(path, merges):
    # The header line matters: transformers' CLIP tokenizer skips the first line.
    with open(path, "w") as f:
        f.write("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")


def write_cases(tok, path):
    """OWL-ViT's tokenizer settings on every string; returns the cases."""
    cases = []
    for s in STRINGS:
        enc = tok(s, padding="max_length", truncation=True, max_length=MAX_LEN)
        cases.append({"text": s, "input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"],
                      "tokens": tok.convert_ids_to_tokens(enc["input_ids"])})
    with open(path, "w") as f:
        json.dump({"max_length": MAX_LEN, "pad_id": tok.pad_token_id, "cases": cases}, f, ensure_ascii=False, indent=1)
    return cases


def main():
    os.makedirs(OUT, exist_ok=True)
    # open_clip ships OpenAI's merges file; read it without importing open_clip (ftfy).
    spec = importlib.util.find_spec("open_clip")
    bpe = os.path.join(os.path.dirname(spec.origin), "bpe_simple_vocab_16e6.txt.gz")
    lines = gzip.open(bpe).read().decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1:1 + N_MERGES]]
    ids = {v: i for i, v in enumerate(clip_vocab(merges))}
    vocab_path, merges_path = os.path.join(OUT, "vocab.json"), os.path.join(OUT, "merges.txt")
    with open(vocab_path, "w") as f:
        json.dump(ids, f, ensure_ascii=False)
    write_merges(merges_path, merges)
    tok = CLIPTokenizerFast(vocab_file=vocab_path, merges_file=merges_path, pad_token="!", model_max_length=MAX_LEN)
    tok.backend_tokenizer.save(os.path.join(OUT, "tokenizer.json"))
    cases = write_cases(tok, os.path.join(OUT, "cases.json"))
    for c in cases:
        print(repr(c["text"])[:40], [t for t, m in zip(c["tokens"], c["attention_mask"]) if m])
    # The full CLIP vocabulary: OpenAI's merges (the part CLIP uses) are committed, the
    # vocabulary is rebuilt from them, and the same strings are tokenized.
    full = [tuple(m.split()) for m in lines[1:49152 - 256 - 2 + 1]]
    write_merges(os.path.join(OUT, "clip_merges.txt"), full)
    tmp_vocab = os.path.join(OUT, ".full_vocab.json")
    with open(tmp_vocab, "w") as f:
        json.dump({v: i for i, v in enumerate(clip_vocab(full))}, f, ensure_ascii=False)
    full_tok = CLIPTokenizerFast(vocab_file=tmp_vocab, merges_file=os.path.join(OUT, "clip_merges.txt"), pad_token="!",
                                 model_max_length=MAX_LEN)
    os.remove(tmp_vocab)
    full_cases = write_cases(full_tok, os.path.join(OUT, "cases_full_vocab.json"))
    print("full vocab:", full_cases[0]["input_ids"][:8], full_cases[3]["tokens"][:12])


if __name__ == "__main__":
    main()
