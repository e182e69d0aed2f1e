"""Paillier on fixed-point numbers, with the arithmetic the protocols need, and a plaintext twin.

Keys, public-key encryption (the obfuscation ``r^n mod n^2``) and CRT decryption are
python-paillier's (``phe``, with ``gmpy2``): ``PaillierPublicKey.raw_encrypt`` and
``PaillierPrivateKey.raw_decrypt``. The
homomorphic operations are done here on the raw ciphertext integers with ``gmpy2`` rather than
through ``phe.EncryptedNumber``: every value in the protocols uses one fixed-point scale
(``2**FRAC_BITS``), so no exponent alignment is ever needed, whereas ``EncryptedNumber`` aligns
exponents with an extra modular exponentiation whenever two numbers of different precision meet
(``decrease_exponent_to``). The operations are the textbook ones:

* ``add(a, b) = a * b mod n^2``                 -> Enc(x + y)
* ``add_plain(a, k) = a * (1 + k n) mod n^2``   -> Enc(x + k)  (``g = n + 1``, so ``g^k = 1 + k n``)
* ``mul_plain(a, k) = a^k mod n^2``             -> Enc(k x)   (negative ``k`` through the inverse)
* ``rerandomize(a) = a * r^n mod n^2``          -> same plaintext, fresh randomness

A key holder (the arbiter for the training key, the guest for its binning key) encrypts with an
obfuscator drawn through the factorisation (:meth:`KeyPair.obfuscator`): same distribution as
``r^n mod n^2``, about a third of the cost. The host, which only has public keys, uses phe's.

Negative numbers are represented modulo ``n`` (values above ``n/2`` decode as negative). A sum of
ciphertexts the receiver itself produced is re-randomised before it is sent back, so the receiver
cannot match the product against its own ciphertexts (see docs/federated.md).

``PlainScheme`` has the same interface and the same fixed-point arithmetic with no encryption: the
"plaintext run of the same protocol" used as the baseline in ``benchmarks/bench_federated.py`` and
in tests that only check the message flow.
"""

from __future__ import annotations

import secrets
import time
from collections import defaultdict
from contextlib import contextmanager

import gmpy2
import numpy as np

FRAC_BITS = 32
SCALE = 1 << FRAC_BITS


class CryptoTimer:
    """Seconds spent per kind of operation (encrypt, obfuscate, decrypt, homomorphic) and counts."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.counts: dict[str, int] = defaultdict(int)

    @contextmanager
    def time(self, kind: str, count: int = 1):
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[kind] += time.perf_counter() - t0
            self.counts[kind] += count

    def as_dict(self) -> dict:
        return {k: {"seconds": round(v, 4), "count": self.counts[k]} for k, v in sorted(self.seconds.items())}


def encode(values) -> list[int]:
    """Fixed-point integers ``round(x * 2**FRAC_BITS)`` (Python ints, may be negative)."""
    arr = np.rint(np.asarray(values, dtype="float64") * SCALE)
    return [int(v) for v in arr]


def decode(ints, scale_power: int = 1) -> np.ndarray:
    """Inverse of :func:`encode` for values carrying ``scale_power`` fixed-point factors."""
    div = 1 << (FRAC_BITS * scale_power)
    return np.asarray([int(v) / div for v in ints], dtype="float64")


class PublicScheme:
    """Operations anyone holding the public key can do (encrypt, add, multiply by a plain integer)."""

    encrypted = True

    def __init__(self, n: int, timer: CryptoTimer | None = None):
        from phe import paillier

        self.public_key = paillier.PaillierPublicKey(int(n))
        self.n = gmpy2.mpz(n)
        self.nsq = self.n * self.n
        self.half = self.n // 2
        self.timer = timer or CryptoTimer()
        self.ciphertext_bytes = (int(self.nsq).bit_length() + 7) // 8

    # ---- encryption ---------------------------------------------------------------------------
    def encrypt(self, ints) -> list:
        """Encrypt integers (negative ones modulo n); each gets fresh randomness ``r^n``."""
        ints = list(ints)
        with self.timer.time("encrypt", len(ints)):
            raw = self.public_key.raw_encrypt
            n = int(self.n)
            return [gmpy2.mpz(raw(int(m) % n)) for m in ints]

    def obfuscator(self):
        """A fresh ``r^n mod n^2`` (the expensive part of an encryption)."""
        r = secrets.randbelow(int(self.n) - 1) + 1
        return gmpy2.powmod(gmpy2.mpz(r), self.n, self.nsq)

    def rerandomize(self, cts) -> list:
        cts = list(cts)
        with self.timer.time("obfuscate", len(cts)):
            nsq = self.nsq
            return [c * self.obfuscator() % nsq for c in cts]

    # ---- homomorphic operations ----------------------------------------------------------------
    def add(self, a, b):
        return a * b % self.nsq

    def sum(self, cts):
        """Enc(sum) of an iterable of ciphertexts (Enc(0) without randomness if empty)."""
        nsq = self.nsq
        acc = gmpy2.mpz(1)
        for c in cts:
            acc = acc * c % nsq
        return acc

    def add_plain(self, c, k: int):
        return c * ((1 + (int(k) % int(self.n)) * self.n) % self.nsq) % self.nsq

    def mul_plain(self, c, k: int):
        k = int(k)
        if k >= 0:
            return gmpy2.powmod(c, k, self.nsq)
        return gmpy2.powmod(gmpy2.invert(c, self.nsq), -k, self.nsq)

    def random_mask(self) -> int:
        """A mask uniform in [0, n): adding it hides a plaintext statistically."""
        return secrets.randbelow(int(self.n))

    def unmask(self, value: int, mask: int) -> int:
        """Signed integer from ``(x + mask) mod n``."""
        x = (int(value) - int(mask)) % int(self.n)
        return x - int(self.n) if x > int(self.half) else x

    def to_bytes(self, cts) -> bytes:
        w = self.ciphertext_bytes
        return b"".join(int(c).to_bytes(w, "big") for c in cts)

    def from_bytes(self, data: bytes) -> list:
        w = self.ciphertext_bytes
        if len(data) % w:
            raise ValueError(f"ciphertext block of {len(data)} bytes is not a multiple of {w}")
        return [gmpy2.mpz(int.from_bytes(data[i : i + w], "big")) for i in range(0, len(data), w)]


class KeyPair(PublicScheme):
    """A Paillier key pair: everything the public scheme does, plus decryption."""

    def __init__(self, key_bits: int = 2048, timer: CryptoTimer | None = None):
        from phe import paillier

        if key_bits < 256:
            raise ValueError(f"key_bits must be at least 256 (tests use 512, production 2048), got {key_bits}")
        t = timer or CryptoTimer()
        with t.time("keygen"):
            pub, self.private_key = paillier.generate_paillier_keypair(n_length=int(key_bits))
        super().__init__(pub.n, t)
        self.public_key = pub
        p, q = gmpy2.mpz(self.private_key.p), gmpy2.mpz(self.private_key.q)
        self._p, self._q, self._psq, self._qsq = p, q, p * p, q * q
        self._crt = gmpy2.invert(self._psq, self._qsq)

    def obfuscator(self):
        """A uniformly random n-th residue mod n^2, computed with the factorisation.

        ``r^n mod n^2`` is uniform in the subgroup of n-th residues, which is (by the CRT) the
        product of the order-(p-1) subgroup mod p^2 (the p-th powers) and the order-(q-1) subgroup
        mod q^2. So ``t_p^p mod p^2`` and ``t_q^q mod q^2`` for uniform ``t_p``, ``t_q``, combined,
        give the same distribution with half-size exponents and half-size moduli (about three
        times faster than phe's ``r^n mod n^2`` here; see benchmarks/results/federated.json).
        Only the key holder can do this (the arbiter; the guest for its binning key).
        """
        psq, qsq = self._psq, self._qsq
        a = gmpy2.powmod(gmpy2.mpz(secrets.randbelow(int(psq) - 2) + 2), self._p, psq)
        b = gmpy2.powmod(gmpy2.mpz(secrets.randbelow(int(qsq) - 2) + 2), self._q, qsq)
        return a + psq * ((b - a) * self._crt % qsq)

    def encrypt(self, ints) -> list:
        """Encrypt with the key holder's fast obfuscator: ``(1 + m n) * obfuscator mod n^2``."""
        ints = list(ints)
        with self.timer.time("encrypt", len(ints)):
            n, nsq = self.n, self.nsq
            return [(1 + (int(m) % int(n)) * n) * self.obfuscator() % nsq for m in ints]

    def decrypt(self, cts) -> list[int]:
        """Signed integers (values above n/2 are negative)."""
        cts = list(cts)
        with self.timer.time("decrypt", len(cts)):
            raw = self.private_key.raw_decrypt
            n, half = int(self.n), int(self.half)
            out = []
            for c in cts:
                m = raw(int(c))
                out.append(m - n if m > half else m)
            return out


class PlainScheme:
    """Same interface, no encryption: ``ciphertexts`` are the fixed-point integers themselves."""

    encrypted = False

    def __init__(self, timer: CryptoTimer | None = None):
        self.timer = timer or CryptoTimer()
        self.n = 1 << 1024
        self.ciphertext_bytes = 16

    def encrypt(self, ints):
        return [int(m) for m in ints]

    def rerandomize(self, cts):
        return list(cts)

    def add(self, a, b):
        return a + b

    def sum(self, cts):
        return sum(cts, 0)

    def add_plain(self, c, k):
        return c + int(k)

    def mul_plain(self, c, k):
        return c * int(k)

    def random_mask(self) -> int:
        return 0

    def unmask(self, value, mask):
        return int(value) - int(mask)

    def decrypt(self, cts):
        return [int(c) for c in cts]

    def to_bytes(self, cts) -> bytes:
        # the plaintext twin ships 8-byte words where values fit, as an unencrypted protocol would
        return b"".join(int(c).to_bytes(16, "big", signed=True) for c in cts)

    def from_bytes(self, data: bytes):
        return [int.from_bytes(data[i : i + 16], "big", signed=True) for i in range(0, len(data), 16)]
