"""Paillier on fixed point: round trips, homomorphic operations, randomised encryptions."""

from __future__ import annotations

import gmpy2
import numpy as np
import pytest

from riskmodel.federated import crypto


@pytest.fixture(scope="module")
def keys():
    return crypto.KeyPair(512)


def test_fixed_point_roundtrip_and_homomorphic_operations(keys):
    pub = crypto.PublicScheme(keys.n)
    x = np.array([0.0, 1.5, -2.25, 1234.5678, -1e-6])
    ints = crypto.encode(x)
    c = pub.encrypt(ints)
    np.testing.assert_allclose(crypto.decode(keys.decrypt(c)), x, atol=2**-32)
    s = pub.sum(c)
    assert crypto.decode(keys.decrypt([s]))[0] == pytest.approx(x.sum(), abs=1e-8)
    k = crypto.encode([-0.75])[0]
    prod = [pub.mul_plain(ci, k) for ci in c]
    np.testing.assert_allclose(crypto.decode(keys.decrypt(prod), 2), -0.75 * x, atol=1e-8)
    plus = [pub.add_plain(ci, crypto.encode([3.0])[0]) for ci in c]
    np.testing.assert_allclose(crypto.decode(keys.decrypt(plus)), x + 3.0, atol=1e-8)
    r = pub.random_mask()
    masked = keys.decrypt([pub.add_plain(c[2], r)])[0]
    assert pub.unmask(masked, r) == ints[2]


def test_encryptions_are_randomised_and_key_holder_obfuscators_are_nth_residues(keys):
    pub = crypto.PublicScheme(keys.n)
    a, b = pub.encrypt([7, 7])
    c, d = keys.encrypt([7, 7])  # the key holder's CRT obfuscator
    assert len({a, b, c, d}) == 4 and keys.decrypt([a, b, c, d]) == [7, 7, 7, 7]
    assert keys.decrypt(pub.rerandomize([c])) == [7]
    p, q = gmpy2.mpz(keys.private_key.p), gmpy2.mpz(keys.private_key.q)
    lam = gmpy2.lcm(p - 1, q - 1)
    for _ in range(5):
        x = keys.obfuscator()
        assert gmpy2.powmod(x, lam, keys.nsq) == 1  # an n-th residue: decryption removes it
    with pytest.raises(ValueError, match="key_bits must be at least 256"):
        crypto.KeyPair(128)


def test_plain_scheme_mirrors_the_arithmetic():
    s = crypto.PlainScheme()
    c = s.encrypt(crypto.encode([1.0, -2.0]))
    assert crypto.decode([s.sum(c)])[0] == -1.0
    assert s.from_bytes(s.to_bytes(c)) == c
