"""PackCloud's QuickXorHash against an independent implementation (the `quickxorhash` C library on PyPI)."""

import base64
import random

import pytest
import quickxorhash

from shared.attachments.quickxor import QuickXorHash, quick_xor_hash


def reference(data: bytes) -> str:
    hasher = quickxorhash.quickxorhash()
    hasher.update(data)
    return base64.b64encode(hasher.digest()).decode()


def test_known_value_and_empty_file():
    # The value the library's own documentation gives for this input.
    assert quick_xor_hash([b"hello world"]) == "aCgDG9jwBhDc4Q1yawMZAAAAAAA="
    assert quick_xor_hash([]) == reference(b"") == "AAAAAAAAAAAAAAAAAAAAAAAAAAA="


@pytest.mark.parametrize("size", [1, 7, 159, 160, 161, 319, 320, 10_239, 10_240, 10_241, 65_536, 1_048_583])
def test_equals_the_reference_however_the_bytes_are_cut(size):
    rng = random.Random(size)
    data = rng.randbytes(size)
    cuts = sorted(rng.sample(range(size + 1), min(6, size + 1)))
    pieces = [data[a:b] for a, b in zip([0, *cuts], [*cuts, size], strict=True)]
    assert quick_xor_hash(pieces) == reference(data)
    assert quick_xor_hash([data]) == reference(data)


def test_one_flipped_bit_changes_the_hash():
    data = bytearray(random.Random(3).randbytes(50_000))
    before = quick_xor_hash([bytes(data)])
    data[31_337] ^= 0x10
    assert quick_xor_hash([bytes(data)]) != before


def test_length_counts_and_digest_is_repeatable():
    hasher = QuickXorHash()
    hasher.update(memoryview(b"\0" * 1000))
    assert hasher.length == 1000
    assert hasher.b64digest() == hasher.b64digest() == reference(b"\0" * 1000)
