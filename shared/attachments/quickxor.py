"""Microsoft's QuickXorHash, the hash OneDrive and SharePoint report for every file (`file.hashes.quickXorHash`).

The algorithm: a 160-bit state; the byte at offset n of the file is XORed into it at bit (11 * n) mod 160,
wrapping around; at the end the file's length (64 bits, little-endian) is XORed into the last 8 of its 20 bytes;
the result is base64. Since 11 * 160 is a multiple of 160, bytes 160 apart land on the same bits: each chunk folds
(XOR) into one 160-byte block first, by halving it as big integers (C speed, about 200 MB/s on one core here);
only the 160 bytes of the folded block are placed bit by bit, once, at the end. A byte-by-byte loop in Python
would take seconds per megabyte; the C library on PyPI (`quickxorhash`) has no wheels, only a source build, and
is slower (a byte loop in C). The tests compare this with that library on random data cut at random places.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

WIDTH_BITS = 160
SHIFT = 11
BLOCK = WIDTH_BITS  # bytes after which a byte's bit position repeats
BLOCK_BITS = BLOCK * 8
_STATE_MASK = (1 << WIDTH_BITS) - 1
_LENGTH_MASK = (1 << 64) - 1
_BLOCK_MASK = (1 << BLOCK_BITS) - 1
# Below this many blocks the last halvings are done on one integer; above it, on the bytes (cheaper: no shift of a
# large integer, whose cost is most of the work; measured on 5 MiB chunks, 255 MB/s against 52).
_BYTES_FOLD_BLOCKS = 64


class QuickXorHash:
    """Incremental: `update` with the file's bytes in order, in pieces of any size; `digest` at any time."""

    def __init__(self) -> None:
        self._folded = 0  # byte k: XOR of every byte at an offset n with n mod 160 == k
        self.length = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        folded = _fold(memoryview(data).cast("B"))
        # Folded from the chunk's own first byte: turned so that each byte sits at its offset in the file.
        turn = 8 * (self.length % BLOCK)
        self._folded ^= ((folded << turn) | (folded >> (BLOCK_BITS - turn))) & _BLOCK_MASK
        self.length += len(data)

    def digest(self) -> bytes:
        state = 0
        folded = self._folded
        for k in range(BLOCK):
            byte = (folded >> (8 * k)) & 0xFF
            if byte:
                placed = byte << ((SHIFT * k) % WIDTH_BITS)
                state ^= (placed & _STATE_MASK) | (placed >> WIDTH_BITS)
        state ^= (self.length & _LENGTH_MASK) << (WIDTH_BITS - 64)
        return state.to_bytes(WIDTH_BITS // 8, "little")

    def b64digest(self) -> str:
        return base64.b64encode(self.digest()).decode("ascii")


def _fold(data: memoryview) -> int:
    """The XOR of the 160-byte blocks of `data` (the last one zero-padded), as a little-endian integer."""
    blocks = -(-len(data) // BLOCK)
    while blocks > _BYTES_FOLD_BLOCKS:
        # The upper half of the blocks onto the lower half; with an odd count, the middle block is not paired.
        half = (blocks + 1) // 2
        lower = int.from_bytes(data[: half * BLOCK], "little")
        data = memoryview((lower ^ int.from_bytes(data[half * BLOCK :], "little")).to_bytes(half * BLOCK, "little"))
        blocks = half
    value = int.from_bytes(data, "little")
    while blocks > 1:
        half = (blocks + 1) // 2
        bits = half * BLOCK_BITS
        value = (value & ((1 << bits) - 1)) ^ (value >> bits)
        blocks = half
    return value


def quick_xor_hash(chunks: Iterable[bytes]) -> str:
    """The QuickXorHash (base64, as Graph writes it) of the bytes of `chunks`, in order."""
    hasher = QuickXorHash()
    for chunk in chunks:
        hasher.update(chunk)
    return hasher.b64digest()
