"""SigLIP SentencePiece tokenizer fixtures: small Unigram SentencePiece models trained here
(the hub is not reachable) with SigLIP's settings (unigram, T5's special ids: <pad> 0,
</s> 1, <unk> 2, no bos, no byte fallback), and the ids transformers' SiglipTokenizer gives
for a set of strings as SiglipProcessor calls it (padding="max_length", max_length=64,
truncation=True).

Three models:
- spiece.model: 1000 pieces, normalised with sentencepiece's own nmt_nfkc rule, as SigLIP's
  spiece.model is (its precompiled charsmap is most of the file's 250 KB).
- small/spiece.model + small/tokenizer.json: 600 pieces with a smaller rule set (nmt_nfkc's
  mapping of a few Unicode blocks plus accent compositions, probed from the first model), so
  that the fast tokenizer.json stays small. tokenizer.json comes from transformers'
  SpmConverter with a normaliser that reproduces SiglipTokenizer's text canonicalisation
  (transformers has no SigLIP fast tokenizer); its ids are recorded separately, since the
  fast pipeline differs from the slow one on a few inputs (special tokens inside the text).
- bytes/spiece.model + bytes/tokenizer.json: 500 pieces with byte fallback (unknown
  characters become <0xXX> pieces; SigLIP's model has none) and no normalisation rules.

Output: tests/fixtures/siglip_tokenizer/. Needs sentencepiece and protobuf (beside
transformers 4.57.1). Run: python weights-tools/python/gen_siglip_tokenizer_fixtures.py
"""
import importlib
import json
import os
import pydoc
import re
import string
import tempfile
import warnings

import sentencepiece as spm
from tokenizers import AddedToken, Regex, Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import Unigram
from transformers import PreTrainedTokenizerFast, SiglipImageProcessor, SiglipProcessor, SiglipTokenizer
from transformers.convert_slow_tokenizer import SpmConverter, import_protobuf

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "..", "tests", "fixtures", "siglip_tokenizer")
LABELS = os.path.join(HERE, "..", "data", "imagenet1k_labels.txt")
MAX_LEN = 64

LONG = ("a very long caption that keeps going on and on about a small brown dog chasing a red ball "
        "across a wide green field while children laugh and play near the old stone bridge under "
        "a bright blue summer sky with white clouds drifting slowly over the distant mountains")

STRINGS = [
    "a photo of a cat",
    "A Photo Of A CAT",
    "a photo of a tabby cat, sitting on the sofa.",
    "hello, world! it's 2024 \u2014 isn't it?",
    "don't stop-believing!!! (really) [ok] {x} <y> @home #tag $5 100% a&b ~z",
    "3.14159 and 42 dogs, 1,000,000 ants",
    "  multiple   spaces\tand\nnewlines  ",
    "caf\u00e9 cr\u00e8me br\u00fbl\u00e9e na\u00efve",
    "cafe\u0301 na\u0308ive e\u0301\u0301",
    "\ufb01ne \uff46\uff55\uff4c\uff4c\uff57\uff49\uff44\uff54\uff48 \u2460\u2461 \u00bd \u2163",
    "zero\u200bwidth\u00a0nbsp\u3000ideographic",
    "\u03a3\u038a\u03a3\u03a5\u03a6\u039f\u03a3 Stra\u00dfe \u0130stanbul",
    "\u6771\u4eac\u30bf\u30ef\u30fc",
    "emoji \U0001f600\U0001f600 test \U0001f408 x\U0001f600y",
    "\u2581already\u2581escaped \u2581 x",
    "a dog </s> on a mat",
    "a dog on a mat </s>",
    "</S> <unk>",
    "x",
    "",
    "   ",
    "!!!",
    LONG,
    LONG + " " + LONG,
]

# A few sentences with accented letters, so that some (not all) are in the vocabulary.
EXTRA = [
    "un caf\u00e9 cr\u00e8me et une cr\u00eape au beurre, s'il vous pla\u00eet",
    "na\u00efve fa\u00e7ade r\u00e9sum\u00e9 d\u00e9j\u00e0 vu \u00e0 la carte",
    "\u00fcber die Br\u00fccke, sch\u00f6ne Gr\u00fc\u00dfe aus M\u00fcnchen",
]


def corpus_text():
    """English text that ships with Python: the stdlib's pydoc pages, plus captions of the
    ImageNet class names (the repo's label file) and a few accented sentences."""
    mods = ["os", "re", "json", "string", "collections", "itertools", "functools", "typing", "argparse",
            "logging", "subprocess", "threading", "pathlib", "random", "math", "datetime", "email",
            "http.client", "urllib.request", "unittest", "inspect", "dataclasses", "enum", "textwrap",
            "shutil", "tarfile", "zipfile", "csv", "sqlite3", "socket", "pickle", "copy", "heapq",
            "bisect", "decimal", "fractions", "statistics", "calendar", "difflib", "pprint", "tempfile",
            "glob", "hashlib", "base64", "struct", "weakref", "contextlib", "abc", "operator", "queue",
            "io", "time", "platform", "traceback", "warnings", "ast", "tokenize", "configparser",
            "html.parser", "smtplib", "mailbox", "uuid", "ipaddress", "wave", "colorsys", "getopt",
            "optparse", "zlib", "gzip", "bz2", "lzma"]
    parts = []
    for m in mods:
        try:
            doc = pydoc.render_doc(importlib.import_module(m), renderer=pydoc.plaintext)
            # Object reprs carry memory addresses: drop them so that training is repeatable.
            parts.append(re.sub(r" at 0x[0-9a-f]+", "", doc))
        except Exception:
            pass
    labels = [l.strip() for l in open(LABELS, encoding="utf-8") if l.strip()]
    templates = ["a photo of a {}.", "a blurry photo of the {}", "A close-up picture of a {}!", "there is a {} in this image"]
    parts += [t.format(l) for l in labels for t in templates]
    parts += EXTRA * 50
    return "\n".join(parts)


def train(corpus_path, prefix, vocab_size, byte_fallback=False, **norm):
    spm.SentencePieceTrainer.train(
        input=corpus_path, model_prefix=prefix, model_type="unigram", vocab_size=vocab_size,
        character_coverage=0.9995, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, byte_fallback=byte_fallback,
        num_threads=1, minloglevel=2, max_sentence_length=100000, **norm)
    with open(prefix + ".model", "rb") as f:
        m = import_protobuf().ModelProto.FromString(f.read())
    # The proto records the (temporary) paths it was trained from: keep only the names.
    m.trainer_spec.input[:] = [os.path.basename(p) for p in m.trainer_spec.input]
    m.trainer_spec.model_prefix = os.path.basename(m.trainer_spec.model_prefix)
    if m.normalizer_spec.normalization_rule_tsv:
        m.normalizer_spec.normalization_rule_tsv = os.path.basename(m.normalizer_spec.normalization_rule_tsv)
    return m.SerializeToString()


def probe_rules(model_bytes, tmp):
    """nmt_nfkc's mapping of a few blocks and of accent compositions, as rule TSV lines,
    read off sentencepiece's normaliser (dummy prefix and whitespace folding off)."""
    pb = import_protobuf()
    m = pb.ModelProto.FromString(model_bytes)
    m.normalizer_spec.add_dummy_prefix = False
    m.normalizer_spec.remove_extra_whitespaces = False
    m.normalizer_spec.escape_whitespaces = False
    sp = spm.SentencePieceProcessor()
    sp.LoadFromSerializedProto(m.SerializeToString())
    ranges = [(0x00, 0x250), (0x370, 0x400), (0x2000, 0x2070), (0x2070, 0x20A0), (0x2100, 0x2190),
              (0x2460, 0x2500), (0x2581, 0x2582), (0x3000, 0x3001), (0xFB00, 0xFB07), (0xFE00, 0xFE10),
              (0xFF00, 0xFFF0)]
    keys = [chr(c) for a, b in ranges for c in range(a, b) if not 0xD800 <= c < 0xE000]
    keys += [b + c for b in "aeiouycnAEIOUYCN" for c in "\u0300\u0301\u0302\u0303\u0308\u030a\u0327"]
    lines = []
    for k in keys:
        v = sp.normalize(k)
        if v != k:
            lines.append(" ".join(f"{ord(c):X}" for c in k) + "\t" + " ".join(f"{ord(c):X}" for c in v))
    path = os.path.join(tmp, "rules.tsv")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path, len(lines)


def slow_tokenizer(path, hub_like):
    # The hub's SigLIP tokenizer_config.json sets model_input_names ["input_ids"]: SiglipModel
    # gets no attention mask. The class default also returns one.
    kw = {"model_input_names": ["input_ids"]} if hub_like else {}
    return SiglipTokenizer(path, model_max_length=MAX_LEN, **kw)


class SiglipFastConverter(SpmConverter):
    """SpmConverter (Unigram from the proto, Precompiled charsmap, Metaspace) with
    SiglipTokenizer's own steps as normalisers: literal "▁" read as a space, lower-casing,
    ASCII punctuation removed, whitespace runs folded and stripped, then sentencepiece's
    charsmap and its whitespace folding; Metaspace; "$A </s>" after. The special tokens
    are SiglipTokenizer's (</s>, <unk>, stripping the spaces around them); sentencepiece's
    control pieces are not added tokens, as in the slow tokenizer."""

    def tokenizer(self, proto):
        tok = Tokenizer(Unigram([(p.piece, p.score) for p in proto.pieces], unk_id=proto.trainer_spec.unk_id,
                                byte_fallback=proto.trainer_spec.byte_fallback))
        tok.add_special_tokens([AddedToken(t, lstrip=True, rstrip=True, normalized=False, special=True) for t in ("</s>", "<unk>")])
        return tok

    def normalizer(self, proto):
        punct = "[" + "".join("\\" + c for c in string.punctuation) + "]"
        seq = [
            normalizers.Replace("\u2581", " "),
            normalizers.Lowercase(),
            normalizers.Replace(Regex(punct), ""),
            normalizers.Replace(Regex(r"\s+"), " "),
            normalizers.Strip(left=True, right=True),
        ]
        if proto.normalizer_spec.precompiled_charsmap:
            seq.append(normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap))
        seq += [normalizers.Replace(Regex(" {2,}"), " "), normalizers.Strip(left=True, right=True)]
        return normalizers.Sequence(seq)

    def pre_tokenizer(self, replacement, add_prefix_space):
        # "always" (tokenizers' "first" looks at the normalised text's first original offset,
        # so leading spaces would lose the "▁"); text after a special token inside the text
        # then gets a "▁" that SiglipTokenizer does not give it.
        return pre_tokenizers.Metaspace(replacement=replacement, prepend_scheme="always")

    def post_processor(self):
        eos = self.original_tokenizer.eos_token_id
        return processors.TemplateProcessing(single=["$A", "</s>"], pair=["$A", "</s>", "$B", "</s>"], special_tokens=[("</s>", eos)])


def encode_all(processor, tok):
    out = []
    for s in STRINGS:
        enc = processor(text=s, padding="max_length", max_length=MAX_LEN, truncation=True)
        ids = enc["input_ids"]
        assert "attention_mask" not in enc, "the hub-like processor returns input_ids only"
        mask = tok(s, padding="max_length", max_length=MAX_LEN, truncation=True)["attention_mask"]
        out.append((ids, mask))
    return out


def main():
    warnings.filterwarnings("ignore")
    for d in ("small", "bytes"):
        os.makedirs(os.path.join(OUT, d), exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = os.path.join(tmp, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            f.write(corpus_text())
        big = train(corpus, os.path.join(tmp, "big"), 1000, normalization_rule_name="nmt_nfkc")
        rules, n_rules = probe_rules(big, tmp)
        small = train(corpus, os.path.join(tmp, "small"), 600, normalization_rule_tsv=rules)
        byte = train(corpus, os.path.join(tmp, "bytes"), 500, normalization_rule_name="identity", byte_fallback=True)
    paths = {"big": os.path.join(OUT, "spiece.model"), "small": os.path.join(OUT, "small", "spiece.model"),
             "bytes": os.path.join(OUT, "bytes", "spiece.model")}
    for key, data in (("big", big), ("small", small), ("bytes", byte)):
        with open(paths[key], "wb") as f:
            f.write(data)

    image_processor = SiglipImageProcessor()
    toks, slow, fast = {}, {}, {}
    for key, path in paths.items():
        toks[key] = slow_tokenizer(path, hub_like=True)
        slow[key] = encode_all(SiglipProcessor(image_processor, toks[key]), slow_tokenizer(path, hub_like=False))
    # do_lower_case false (a tokenizer_config.json may say so).
    cased = SiglipTokenizer(paths["small"], model_max_length=MAX_LEN, do_lower_case=False)
    slow["cased"] = [(cased(s, padding="max_length", max_length=MAX_LEN, truncation=True)["input_ids"], None) for s in STRINGS]
    for key in ("small", "bytes"):
        backend = SiglipFastConverter(toks[key]).converted()
        backend.save(os.path.join(OUT, key, "tokenizer.json"), pretty=False)
        f = PreTrainedTokenizerFast(tokenizer_object=backend, eos_token="</s>", unk_token="<unk>", pad_token="</s>",
                                    model_max_length=MAX_LEN)
        fast[key] = [f(s, padding="max_length", max_length=MAX_LEN, truncation=True) for s in STRINGS]

    cases, differ = [], {"small": [], "bytes": []}
    for i, s in enumerate(STRINGS):
        ids, mask = slow["big"][i]
        c = {"text": s, "input_ids": ids, "attention_mask": mask,
             "tokens": toks["big"].convert_ids_to_tokens([t for t, m in zip(ids, mask) if m])}
        for key in ("small", "bytes"):
            c[key + "_input_ids"] = slow[key][i][0]
            c[key + "_fast_input_ids"] = fast[key][i]["input_ids"]
            c[key + "_fast_attention_mask"] = fast[key][i]["attention_mask"]
            if c[key + "_fast_input_ids"] != c[key + "_input_ids"]:
                differ[key].append(s)
        c["small_cased_input_ids"] = slow["cased"][i][0]
        cases.append(c)
    big_tok = toks["big"]
    head = {"max_length": MAX_LEN, "pad_id": big_tok.pad_token_id, "eos_id": big_tok.eos_token_id,
            "unk_id": big_tok.unk_token_id, "vocab_size": big_tok.vocab_size,
            "small_vocab_size": toks["small"].vocab_size, "bytes_vocab_size": toks["bytes"].vocab_size,
            "fast_differs_from_slow": differ}
    with open(os.path.join(OUT, "cases.json"), "w") as f:
        # One case a line: readable, and a third of the size of an indented dump.
        f.write(json.dumps(head, ensure_ascii=False)[:-1] + ', "cases": [\n')
        f.write(",\n".join(json.dumps(c, ensure_ascii=False, separators=(",", ":")) for c in cases) + "\n]}\n")
    for c in cases:
        print(repr(c["text"])[:50], c["tokens"][:14])
    print(f"{n_rules} rules in the small model; the fast tokenizer.json differs from SiglipTokenizer on: {differ}")
    for name in ("spiece.model", "small/spiece.model", "small/tokenizer.json", "bytes/spiece.model",
                 "bytes/tokenizer.json", "cases.json"):
        print(name, os.path.getsize(os.path.join(OUT, name)))


if __name__ == "__main__":
    main()
