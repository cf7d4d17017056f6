#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_ops (fuzz/corpus/seed_*), one small input
per theme, in the operation encoding of fuzz_ops.c. Deterministic; rerun
after changing the encoding:  python3 fuzz/gen_corpus.py
"""
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))

# Opcodes: the enum in fuzz_ops.c, in order.
(MALLOC, MALLOC2, MALLOC3, CALLOC, REALLOC, REALLOC2, ALIGNED_ALLOC, POSIX_MEMALIGN,
 MEMALIGN, VALLOC, FREE, FREE_SIZED, FREE_ALIGNED_SIZED, USABLE, HANDOFF, HANDOFF2,
 TAKE_BACK, REALLOCARRAY, TRIM, FAULTS_ON, FAULTS_OFF, SYNC, ABSURD, EPHEMERAL) = range(24)


# Size encodings (get_size): selector byte, then operand bytes.
def tiny(n):          # 0..255
    return bytes([0, n & 255])

def small(n):         # 0..32 KiB
    return bytes([2]) + (n % 65536).to_bytes(2, "little")

def edge(idx, delta=0):  # interesting[idx] + delta, delta in -16..15
    return bytes([3 | ((delta + 16) << 3)]) + bytes([idx])

def medium(n):        # 32 KiB + 1 + n % (1 MiB - 32 KiB)
    return bytes([5]) + (n % (1 << 24)).to_bytes(3, "little")

def large(n):         # 1 MiB + 1 + n*7 % 4 MiB
    return bytes([7]) + (n % (1 << 24)).to_bytes(3, "little")


def op(code, slot, *operands):
    return bytes([code, slot]) + b"".join(operands)


def seed_small():
    out = b""
    for i in range(40):
        out += op(MALLOC, i, tiny(i * 7))
    for i in range(0, 40, 3):
        out += op(FREE, i)
    for i in range(40, 60):
        out += op(MALLOC2, i, small(1000 * (i - 39)))
    for i in range(1, 40, 2):
        out += op(REALLOC, i, small(i * 300))
    for i in range(40, 60, 2):
        out += op(FREE_SIZED, i)
    out += op(CALLOC, 5, small(3000), bytes([3]))
    out += op(USABLE, 5)
    return out


def seed_engines():
    out = b""
    out += op(MALLOC, 1, medium(100000))
    out += op(MALLOC, 2, large(200000))
    out += op(REALLOC, 1, large(10))           # medium -> large
    out += op(REALLOC, 2, small(100))          # large -> small
    out += op(REALLOC, 3, tiny(10))            # realloc(NULL)
    for idx in range(50, 70, 2):               # around 32 KiB, 1 MiB, 2 MiB
        out += op(REALLOC2, 3, edge(idx, -1))
        out += op(REALLOC2, 3, edge(idx, 1))
    out += op(REALLOC, 3, tiny(0))             # realloc(p, 0)
    out += op(CALLOC, 4, large(300000), bytes([7]))
    out += op(FREE, 1) + op(FREE, 2) + op(FREE, 4)
    out += op(TRIM, 0, bytes([0]))
    return out


def seed_aligned():
    out = b""
    for i in range(20):
        out += op(ALIGNED_ALLOC, i, small(i * 500), bytes([0x80 | i]), bytes([0]))
        out += op(POSIX_MEMALIGN, 20 + i, medium(i * 30000), bytes([i]), bytes([2 if i % 5 == 0 else 0]))
        out += op(MEMALIGN, 40 + i, tiny(i), bytes([0x80 | (i + 5)]), bytes([(i << 1) | 1]))
    out += op(VALLOC, 60, small(5000), bytes([0]))
    out += op(VALLOC, 61, tiny(0), bytes([1]))
    out += op(MEMALIGN, 62, large(1000), bytes([0x80 | 19]), bytes([0]))
    for i in range(0, 63, 4):
        out += op(FREE_ALIGNED_SIZED, i)
    return out


def seed_handoff():
    out = b""
    for i in range(32):
        out += op(MALLOC, i, small(i * 997) if i % 4 else medium(i * 9999))
    for i in range(32):
        out += op(HANDOFF if i % 2 else HANDOFF2, i, bytes([i % 7]), small(i * 333))
    out += op(SYNC, 0)
    out += op(TAKE_BACK, 0, bytes([3])) * 8
    for i in range(32, 48):
        out += op(MALLOC3, i, large(i * 1000) if i % 8 == 0 else tiny(i))
        out += op(HANDOFF, i, bytes([2]), medium(i * 5000))
    out += op(TAKE_BACK, 32, bytes([3])) * 4
    return out


def seed_threads():
    out = b""
    for i in range(16):
        out += op(MALLOC, i, small(i * 1500))
    for i in range(0, 16, 2):
        out += op(EPHEMERAL, i, bytes([i + 1]), tiny(i), small(i * 2000), medium(i * 700), large(i))
    for i in range(16):
        out += op(HANDOFF, i, bytes([3 + i % 2]), small(i * 100))
    out += op(SYNC, 0) + op(TAKE_BACK, 0, bytes([3])) * 4
    out += op(EPHEMERAL, 20, bytes([21]), tiny(1), tiny(2), tiny(3), tiny(4))
    return out


def seed_faults():
    out = b""
    out += op(MALLOC, 0, small(100)) + op(MALLOC, 1, large(1000))
    out += op(FAULTS_ON, 0, bytes([0]))          # every mapping call fails
    for i in range(2, 12):
        out += op(MALLOC, i, large(i * 100000) if i % 2 else medium(i * 80000))
    out += op(REALLOC, 1, large(900000))
    out += op(POSIX_MEMALIGN, 12, large(5), bytes([0x80 | 18]), bytes([0]))
    out += op(EPHEMERAL, 13, bytes([14]), small(10), small(20), medium(30), large(40))
    out += op(FAULTS_OFF, 0)
    out += op(FAULTS_ON, 0, bytes([2 | (2 << 3)]))  # after 2, one in 3
    for i in range(14, 30):
        out += op(MALLOC2, i, medium(i * 60000) if i % 3 else large(i * 3000))
    out += op(FAULTS_OFF, 0) + op(TRIM, 0, bytes([1]))
    out += op(USABLE, 1)
    return out


def seed_absurd():
    out = b""
    out += op(MALLOC, 0, small(4000))
    for k in range(0, 128, 5):
        out += op(ABSURD, 0, bytes([k]))
    out += op(REALLOCARRAY, 0, bytes([255]), small(10))
    out += op(REALLOCARRAY, 0, bytes([3]), small(9000))
    out += op(REALLOCARRAY, 0, bytes([1]), medium(5000))
    return out


def seed_random(n, length):
    rng = random.Random(n)
    return bytes(rng.randrange(256) for _ in range(length))


SEEDS = {
    "seed_small": seed_small(),
    "seed_engines": seed_engines(),
    "seed_aligned": seed_aligned(),
    "seed_handoff": seed_handoff(),
    "seed_threads": seed_threads(),
    "seed_faults": seed_faults(),
    "seed_absurd": seed_absurd(),
    "seed_random1": seed_random(1, 600),
    "seed_random2": seed_random(2, 1500),
}


def main():
    d = os.path.join(HERE, "corpus")
    os.makedirs(d, exist_ok=True)
    for name, data in SEEDS.items():
        with open(os.path.join(d, name), "wb") as f:
            f.write(data)
        print(f"{name}: {len(data)} bytes")


if __name__ == "__main__":
    main()
