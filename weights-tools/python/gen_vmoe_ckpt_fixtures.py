"""Write a golden vmoe fixture's parameters as a native vmoe checkpoint: PREFIX.index and
PREFIX.data-0000i-of-00002, byte for byte as vmoe's save_checkpoint
(vmoe/checkpoints/partitioned.py, version 20220622) writes them from one process, into
tests/fixtures/vmoe_ckpt/. The config and the float64 reference stay in
tests/fixtures/vmoe/ (the same parameters, so the same logits).

What is reproduced (msgpack 1.x; no jax or flax needed):
  - the tree: the flat '/'-joined names nested into dicts; leaves numbered in the order
    jax flattens it (keys sorted at every level);
  - the array shards: a mesh of two devices where, as vmoe's configs partition them
    (params_axis_resources [('Moe/Mlp/.*', ('expert',))]), expert arrays are split
    along the expert axis and the others replicated; each distinct global slice is then
    cut so no chunk exceeds max_chunk_bytes (here small, so the expert kernels come in
    several chunks; vmoe's default is 256 MB), splitting the smallest axis first by the
    smallest divisor in 2..9 that fits (`_split_slicend`);
  - the shard of each chunk: in sorted slice order, the checkpoint shard holding the
    fewest bytes so far (ties to the lower number);
  - the index: {shard_count, index: tree of IndexInfo (ext 8), version: '20220622'}, an
    IndexInfo packing (shaped array bytes (shape, dtype name, weak_type, {}), slice_nd
    bytes per chunk, shard per chunk); a slice_nd packs one (start, stop, None) per axis;
  - each shard: {'__msgpack_array_chunk_a87ca2__': True, 'LEAF': [[subchunks, slice_nd
    (ext 6)], ...]} in leaf order, a chunk stored flat in ndarrays (ext 1: shape, dtype
    name, C-order bytes) of at most 2**30 bytes each.
Run: python weights-tools/python/gen_vmoe_ckpt_fixtures.py
"""
import json
import os
import re

import msgpack
import numpy as np
from safetensors.numpy import load_file

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "..", "tests", "fixtures")
CASE = "k2_bpr_token_prelogits_drops"
NUM_SHARDS = 2
NUM_DEVICES = 2
MAX_CHUNK_BYTES = 16 * 1024
EXPERT_PARTITIONED = re.compile(r"Moe/Mlp/.*")
# flax.serialization.MAX_CHUNK_SIZE: a chunk is stored in subchunks of at most this.
MAX_SUBCHUNK_BYTES = 2**30
ARRAY_CHUNKS_KEY = "__msgpack_array_chunk_a87ca2__"
EXT_NDARRAY, EXT_SLICE_ND, EXT_INDEX_INFO = 1, 6, 8
VERSION = "20220622"


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def slice_nd_bytes(slicend):
    return pack([pack([start, stop, None]) for start, stop in slicend])


def ndarray_ext(arr):
    return msgpack.ExtType(EXT_NDARRAY, pack([list(arr.shape), arr.dtype.name, arr.tobytes("C")]))


def nest(flat):
    tree = {}
    for name, arr in flat.items():
        node = tree
        *parents, leaf = name.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = arr
    return tree


def flatten(tree, path=()):
    """(path, leaf) in jax's order: keys sorted at every level."""
    for k in sorted(tree):
        v = tree[k]
        if isinstance(v, dict):
            yield from flatten(v, path + (k,))
        else:
            yield path + (k,), v


def unflatten_sorted(paths_values):
    tree = {}
    for path, v in paths_values:
        node = tree
        for p in path[:-1]:
            node = node.setdefault(p, {})
        node[path[-1]] = v
    return tree


def device_slices(name, shape):
    """The global slice of the array each device of the mesh holds."""
    full = tuple((0, d) for d in shape)
    if EXPERT_PARTITIONED.search(name) and shape and shape[0] % NUM_DEVICES == 0:
        step = shape[0] // NUM_DEVICES
        return [((i * step, (i + 1) * step),) + full[1:] for i in range(NUM_DEVICES)]
    return [full] * NUM_DEVICES


def split_slicend(slicend, max_items):
    """Cut a slice into chunks of at most max_items elements, as `_split_slicend` does."""
    shape = [b - a for a, b in slicend]
    items = int(np.prod(shape))
    chunks = [tuple(slicend)]
    if items <= max_items:
        return chunks
    for axis, size in sorted(enumerate(shape), key=lambda t: (t[1], t[0])):
        if size == 1:
            continue
        fits = [s for s in range(2, 10) if size % s == 0 and items // s <= max_items]
        splits = fits[0] if fits else size
        start, stop, step = slicend[axis][0], slicend[axis][1], size // splits
        chunks = [c[:axis] + ((j, j + step),) + c[axis + 1:] for c in chunks for j in range(start, stop, step)]
        items /= splits
        if items <= max_items:
            break
    return chunks


def main():
    flat = load_file(os.path.join(FIXTURES, "vmoe", f"{CASE}.checkpoint.safetensors"))
    leaves = list(flatten(nest(flat)))
    bytes_per_shard = [0] * NUM_SHARDS
    index_leaves = []
    shard_chunks = [dict() for _ in range(NUM_SHARDS)]  # shard -> leaf number -> [(slice, data)]
    for i, (path, arr) in enumerate(leaves):
        name = "/".join(path)
        max_items = max(MAX_CHUNK_BYTES // arr.dtype.itemsize, 1)
        slices = []
        for s in dict.fromkeys(device_slices(name, arr.shape)):  # distinct, in device order
            slices.extend(split_slicend(s, max_items))
        slices = sorted(set(slices))
        shards = []
        for s in slices:
            shard = sorted((b, k) for k, b in enumerate(bytes_per_shard))[0][1]
            bytes_per_shard[shard] += int(np.prod([b - a for a, b in s])) * arr.dtype.itemsize
            shards.append(shard)
            data = arr[tuple(slice(a, b) for a, b in s)]
            shard_chunks[shard].setdefault(i, []).append((s, data))
        shaped = pack([list(arr.shape), arr.dtype.name, False, {}])
        info = pack([shaped, [slice_nd_bytes(s) for s in slices], shards])
        index_leaves.append((path, msgpack.ExtType(EXT_INDEX_INFO, info)))

    out = os.path.join(FIXTURES, "vmoe_ckpt")
    os.makedirs(out, exist_ok=True)
    prefix = os.path.join(out, CASE)
    index = {"shard_count": NUM_SHARDS, "index": unflatten_sorted(index_leaves), "version": VERSION}
    with open(prefix + ".index", "wb") as f:
        f.write(msgpack.packb(index, use_bin_type=True, strict_types=True))
    for shard, chunks in enumerate(shard_chunks):
        state = {ARRAY_CHUNKS_KEY: True}
        for i, pieces in chunks.items():
            encoded = []
            for s, data in pieces:
                flat_chunk = data.reshape(-1)
                sub = max(1, MAX_SUBCHUNK_BYTES // flat_chunk.dtype.itemsize)
                subchunks = [ndarray_ext(flat_chunk[k:k + sub]) for k in range(0, flat_chunk.size, sub)]
                encoded.append([subchunks, msgpack.ExtType(EXT_SLICE_ND, slice_nd_bytes(s))])
            state[str(i)] = encoded
        with open(f"{prefix}.data-{shard:05d}-of-{NUM_SHARDS:05d}", "wb") as f:
            f.write(msgpack.packb(state, use_bin_type=True, strict_types=True))

    # The point of the fixture: some array is in several chunks, across both shards.
    split = [("/".join(p), sorted({s for s in chunks_shards})) for (p, _), chunks_shards in
             zip(leaves, ([sh for sh in range(NUM_SHARDS) if i in shard_chunks[sh]] for i in range(len(leaves))))]
    across = [n for n, shards in split if len(shards) == NUM_SHARDS]
    assert across, "no array is split across the shards"
    summary = {
        "case": CASE,
        "config": f"../vmoe/{CASE}.config.json",
        "io": f"../vmoe/{CASE}.io.safetensors",
        "leaves": len(leaves),
        "shard_count": NUM_SHARDS,
        "max_chunk_bytes": MAX_CHUNK_BYTES,
        "split_across_shards": across,
        "msgpack_version": ".".join(map(str, msgpack.version)),
    }
    with open(os.path.join(out, "fixture.json"), "w") as f:
        json.dump(summary, f, indent=1)
        f.write("\n")
    sizes = {p: os.path.getsize(os.path.join(out, p)) for p in sorted(os.listdir(out))}
    print(json.dumps(sizes, indent=1), f"\n{len(across)} arrays split across shards, e.g. {across[:2]}")


if __name__ == "__main__":
    main()
