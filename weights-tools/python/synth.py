"""Deterministic synthetic tensors, reproduced bit for bit by the Rust tests
(tests/common/mod.rs `synth`), so that checkpoints at released sizes need not be committed.

Element i (row-major) of synth(name, shape, offset, scale, seed) is the float32
`offset + scale * u_i`, one float32 multiply then one float32 add (no fused multiply-add),
where
    key = fnv1a64(name as UTF-8) ^ seed
    u_i = float32(splitmix64(key + i * GOLDEN) >> 40) / 2**24 * 2 - 1     (exact in float32)
    splitmix64(x): z = x + GOLDEN; z = (z ^ z >> 30) * 0xBF58476D1CE4E5B9;
                   z = (z ^ z >> 27) * 0x94D049BB133111EB; z ^ z >> 31
with all integer arithmetic on wrapping uint64. u_i lies in [-1, 1) on a 2**-23 grid, so
the uniform's standard deviation is 1/sqrt(3): scale = sqrt(3/fan_in) gives std 1/sqrt(fan_in).
"""
import numpy as np

GOLDEN = 0x9E3779B97F4A7C15
M1 = 0xBF58476D1CE4E5B9
M2 = 0x94D049BB133111EB
FNV_OFFSET = 0xCBF29CE484222325
FNV_PRIME = 0x100000001B3
MASK = (1 << 64) - 1
CHUNK = 1 << 22


def fnv1a64(data: bytes) -> int:
    h = FNV_OFFSET
    for b in data:
        h = ((h ^ b) * FNV_PRIME) & MASK
    return h


def _mix(z):
    """splitmix64 on a uint64 array (wrapping)."""
    z = z + np.uint64(GOLDEN)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(M1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(M2)
    return z ^ (z >> np.uint64(31))


def uniform(name: str, n: int, seed: int) -> np.ndarray:
    """The n float32 values u_i in [-1, 1)."""
    key = np.uint64((fnv1a64(name.encode()) ^ seed) & MASK)
    out = np.empty(n, dtype=np.float32)
    with np.errstate(over="ignore"):
        for s in range(0, n, CHUNK):
            i = np.arange(s, min(n, s + CHUNK), dtype=np.uint64)
            z = _mix(key + i * np.uint64(GOLDEN))
            u = (z >> np.uint64(40)).astype(np.float32)
            out[s:s + len(i)] = u / np.float32(2 ** 24) * np.float32(2) - np.float32(1)
    return out


def synth(name: str, shape, offset: float, scale: float, seed: int) -> np.ndarray:
    n = int(np.prod(shape, dtype=np.int64)) if len(shape) else 1
    u = uniform(name, n, seed)
    v = np.float32(scale) * u            # float32 multiply, rounded
    v = np.float32(offset) + v           # float32 add, rounded (never fused)
    return v.astype(np.float32).reshape(tuple(shape))


def synth_value(name: str, i: int, offset: float, scale: float, seed: int) -> float:
    """Element i alone, in plain Python integers (a check on the vectorized path)."""
    key = (fnv1a64(name.encode()) ^ seed) & MASK
    z = (key + i * GOLDEN + GOLDEN) & MASK
    z = ((z ^ (z >> 30)) * M1) & MASK
    z = ((z ^ (z >> 27)) * M2) & MASK
    z ^= z >> 31
    u = np.float32(z >> 40) / np.float32(2 ** 24) * np.float32(2) - np.float32(1)
    return float(np.float32(offset) + np.float32(np.float32(scale) * u))


def checksum(a: np.ndarray) -> str:
    """sum_i bits(a_i) * (i + 1) over uint64 (wrapping), as 16 hex digits: the Rust tests
    compute the same over their own synthesized values."""
    bits = np.ascontiguousarray(a, dtype=np.float32).reshape(-1).view(np.uint32).astype(np.uint64)
    total = np.uint64(0)
    with np.errstate(over="ignore"):
        for s in range(0, len(bits), CHUNK):
            w = np.arange(s + 1, min(len(bits), s + CHUNK) + 1, dtype=np.uint64)
            total = total + np.sum(bits[s:s + CHUNK] * w, dtype=np.uint64)
    return f"{int(total):016x}"


if __name__ == "__main__":
    print(synth("a", (4,), 0.0, 1.0, 0), checksum(synth("a", (4,), 0.0, 1.0, 0)))
