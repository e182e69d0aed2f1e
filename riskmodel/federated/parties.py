"""The three parties. Each holds only its own data and talks to the others only through the channel.

* :class:`Guest` (the bank): labels, its own features (finance and firm families), the model.
  Holds the binning key pair, all model weights and the WoE tables, including those of the host's
  features (computed from decrypted bin-level counts).
* :class:`Host` (the data hub): its own features. Holds no key and no label; computes on
  ciphertexts only, and learns the merged bin boundaries of its features that enter the model.
* :class:`Arbiter` (the key holder, FATE's arbiter): the training key pair; decrypts masked
  gradients and, in the exact mode, per-row logits (see docs/federated.md for what that reveals).

Every method that talks sends or receives through :class:`~riskmodel.federated.channel.Channel`;
the driver functions in :mod:`riskmodel.federated.lr` and :mod:`riskmodel.federated.run` call the
methods in protocol order. A party object never reads another party's attributes.
"""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd

from riskmodel.binning import MonotonicBinner
from riskmodel.federated import crypto
from riskmodel.federated.binning import MergedBins, prebin_index, prebin_splits
from riskmodel.federated.channel import Channel, Encrypted, ProtocolError

log = logging.getLogger(__name__)


def _scheme_for(n: int, plaintext: bool, timer):
    return crypto.PlainScheme(timer) if plaintext else crypto.PublicScheme(n, timer)


def _enc(scheme, cts) -> Encrypted:
    if scheme.encrypted:
        return Encrypted(cts, width=scheme.ciphertext_bytes)
    return Encrypted(cts, width=scheme.ciphertext_bytes, signed=True)


def _bin_sums(scheme, cts, bins: np.ndarray, n_bins: int) -> list:
    """Homomorphic sum of ``cts`` per bin (``bins[i]`` is the bin of row i)."""
    order = np.argsort(bins, kind="stable")
    bounds = np.searchsorted(bins[order], np.arange(n_bins + 1), side="left")
    with scheme.timer.time("homomorphic_add", len(cts)):
        return [scheme.sum(cts[k] for k in order[bounds[b] : bounds[b + 1]]) for b in range(n_bins)]


class _Party:
    name = "party"

    def __init__(self, channel: Channel, plaintext: bool = False):
        self.channel = channel
        self.plaintext = plaintext
        self.timer = crypto.CryptoTimer()

    def send(self, to: str, type: str, payload: dict) -> None:
        with self.timer.time("channel"):
            self.channel.send(self.name, to, type, payload)

    def recv(self, frm: str, type: str) -> dict:
        with self.timer.time("channel"):
            return self.channel.recv(self.name, frm, type)


# =====================================================================================================
class Arbiter(_Party):
    """Key holder: generates the training key pair and decrypts what it is sent (masked, or logits)."""

    name = "arbiter"

    def __init__(self, channel: Channel, key_bits: int = 2048, plaintext: bool = False):
        super().__init__(channel, plaintext)
        self.key_bits = key_bits
        self.keys = crypto.PlainScheme(self.timer) if plaintext else crypto.KeyPair(key_bits, self.timer)

    def publish_key(self) -> None:
        n = 0 if self.plaintext else int(self.keys.n)
        for party in ("guest", "host"):
            self.send(party, "training_public_key", {"n": str(n)})

    def sigmoid_batch(self) -> None:
        """Exact mode: decrypt the (shuffled) logits of a batch, return Enc(sigmoid) and sum softplus."""
        msg = self.recv("guest", "encrypted_logits")
        z = crypto.decode(self.keys.decrypt(msg["z"]))
        p = 1.0 / (1.0 + np.exp(-z))
        softplus = float(np.logaddexp(0.0, z).sum())
        cts = self.keys.encrypt(crypto.encode(p))
        self.send("guest", "encrypted_probabilities", {"p": _enc(self.keys, cts), "softplus_sum": softplus})

    def decrypt_masked(self) -> None:
        msg = self.recv("guest", "masked_gradient")
        values = self.keys.decrypt(msg["values"])
        self.send("guest", "masked_gradient_plain", {"values": [str(v) for v in values]})


# =====================================================================================================
class Host(_Party):
    """The data hub: its feature columns (numeric), nothing else."""

    name = "host"

    def __init__(self, channel: Channel, X: pd.DataFrame, plaintext: bool = False, max_prebins: int = 20):
        super().__init__(channel, plaintext)
        self._X = X.reset_index(drop=True)
        self.max_prebins = max_prebins

    # ---- alignment ------------------------------------------------------------------------------
    def keep_rows(self, rows: np.ndarray) -> None:
        """Restrict to the aligned rows, in the common order."""
        self._X = self._X.iloc[np.asarray(rows)].reset_index(drop=True)

    # ---- keys -----------------------------------------------------------------------------------
    def receive_training_key(self) -> None:
        n = int(self.recv("arbiter", "training_public_key")["n"])
        self.train_scheme = _scheme_for(n, self.plaintext, self.timer)

    @property
    def base_rate(self) -> float:
        return float(self._y.mean())

    def mean_squared_woe(self) -> np.ndarray:
        """Mean of WoE^2 per model feature (own: from rows; host: from bin counts)."""
        own = [float(np.mean(self._own_woe[:, j] ** 2)) for j in range(len(self.own_features_))]
        host = [float((b.count * b.woe**2).sum() / self.n_rows) for b in (self.host_bins_[f] for f in self.host_features_)]
        return np.asarray(own + host)

    # ---- binning --------------------------------------------------------------------------------
    def binning_sums(self) -> None:
        """Sum the guest's encrypted labels per pre-bin of every feature; send sums and counts."""
        n = int(self.recv("guest", "binning_public_key")["n"])
        scheme = _scheme_for(n, self.plaintext, self.timer)
        labels = list(self.recv("guest", "encrypted_labels")["y"])
        if len(labels) != len(self._X):
            raise ProtocolError(f"host holds {len(self._X)} aligned rows but received {len(labels)} encrypted labels")
        self._prebin_splits: dict[str, np.ndarray] = {}
        self._prebins: dict[str, np.ndarray] = {}
        sizes, counts, sums = [], [], []
        for name in self._X.columns:
            x = self._X[name].to_numpy(dtype="float64", na_value=np.nan)
            splits = prebin_splits(x[~np.isnan(x)], self.max_prebins)
            idx = prebin_index(x, splits)
            k = len(splits) + 2  # non-missing pre-bins + missing bin
            self._prebin_splits[name], self._prebins[name] = splits, idx
            sizes.append(k)
            counts.append(np.bincount(idx, minlength=k))
            sums.extend(_bin_sums(scheme, labels, idx, k))
        sums = scheme.rerandomize(sums)
        self.send("guest", "prebin_label_sums", {
            "features": [str(c) for c in self._X.columns], "sizes": np.asarray(sizes, dtype="int64"),
            "counts": np.concatenate(counts).astype("int64"), "sums": _enc(scheme, sums),
        })

    def receive_model_features(self) -> None:
        """The selected features and which pre-bin splits survive the merge: merged bin per row."""
        msg = self.recv("guest", "model_features")
        self.features_: list[str] = list(msg["features"])
        self.kept_: dict[str, list[int]] = {f: list(k) for f, k in zip(msg["features"], msg["kept"])}
        self._bins = {}
        self._n_bins = {}
        for f in self.features_:
            kept = np.asarray(self.kept_[f], dtype="int64")
            pre = self._prebins[f]
            missing = pre == len(self._prebin_splits[f]) + 1
            b = np.searchsorted(kept, pre, side="left")
            b[missing] = len(kept) + 1
            self._bins[f] = b
            self._n_bins[f] = len(kept) + 2

    def publish_splits(self) -> None:
        """Disclose the merged split values of the model's features (so the bank can score alone)."""
        self.recv("guest", "publish_request")
        splits = [self._prebin_splits[f][self.kept_[f]].tolist() for f in self.features_]
        self.send("guest", "published_splits", {"features": self.features_, "splits": splits})

    # ---- training -------------------------------------------------------------------------------
    def receive_bin_scores(self) -> None:
        cts = list(self.recv("guest", "encrypted_bin_scores")["t"])
        self._scores, pos = {}, 0
        for f in self.features_:
            k = self._n_bins[f]
            self._scores[f] = cts[pos : pos + k]
            pos += k
        if pos != len(cts):
            raise ProtocolError(f"host expected {pos} encrypted bin scores, received {len(cts)}")

    def partial_logits(self, rows: slice) -> None:
        """Enc(u_h,i) = sum over model features of Enc(score of row i's bin), re-randomised."""
        s = self.train_scheme
        n = rows.stop - rows.start
        cols = [(self._scores[f], self._bins[f][rows]) for f in self.features_]
        out = []
        with self.timer.time("homomorphic_add", n * len(cols)):
            for i in range(n):
                out.append(s.sum(sc[b[i]] for sc, b in cols))
        out = s.rerandomize(out)
        self.send("guest", "encrypted_host_logits", {"u": _enc(s, out)})

    def bin_residuals(self, rows: slice) -> None:
        """Per model feature and merged bin, the sum of the batch's encrypted residuals (re-randomised)."""
        s = self.train_scheme
        d = list(self.recv("guest", "encrypted_residuals")["d"])
        if len(d) != rows.stop - rows.start:
            raise ProtocolError(f"host expected {rows.stop - rows.start} encrypted residuals, received {len(d)}")
        sums = []
        for f in self.features_:
            sums.extend(_bin_sums(s, d, self._bins[f][rows], self._n_bins[f]))
        self.send("guest", "encrypted_bin_residuals", {"g": _enc(s, s.rerandomize(sums))})


# =====================================================================================================
class Guest(_Party):
    """The bank: labels, its own feature columns, and the model (all weights and WoE tables)."""

    name = "guest"

    def __init__(self, channel: Channel, X: pd.DataFrame, y, directions: dict, plaintext: bool = False,
                 key_bits: int = 2048, max_prebins: int = 20, min_bin_share: float = 0.05,
                 smoothing: float = 0.5, unknown_direction: str = "auto", seed: int | None = None):
        super().__init__(channel, plaintext)
        self._X = X.reset_index(drop=True)
        self._y = np.asarray(y, dtype="int64")
        self.directions = dict(directions)
        self.key_bits = key_bits
        self.max_prebins = max_prebins
        self.min_bin_share = min_bin_share
        self.smoothing = smoothing
        self.unknown_direction = unknown_direction
        self._rng = np.random.default_rng(seed)

    def keep_rows(self, rows: np.ndarray) -> None:
        self._X = self._X.iloc[np.asarray(rows)].reset_index(drop=True)
        self._y = self._y[np.asarray(rows)]

    @property
    def n_rows(self) -> int:
        return len(self._y)

    def receive_training_key(self) -> None:
        n = int(self.recv("arbiter", "training_public_key")["n"])
        self.train_scheme = _scheme_for(n, self.plaintext, self.timer)

    @property
    def base_rate(self) -> float:
        return float(self._y.mean())

    def mean_squared_woe(self) -> np.ndarray:
        """Mean of WoE^2 per model feature (own: from rows; host: from bin counts)."""
        own = [float(np.mean(self._own_woe[:, j] ** 2)) for j in range(len(self.own_features_))]
        host = [float((b.count * b.woe**2).sum() / self.n_rows) for b in (self.host_bins_[f] for f in self.host_features_)]
        return np.asarray(own + host)

    # ---- binning --------------------------------------------------------------------------------
    def binning_start(self) -> None:
        """Own key pair for binning; send the public key and the encrypted labels."""
        self._bin_keys = crypto.PlainScheme(self.timer) if self.plaintext else crypto.KeyPair(self.key_bits, self.timer)
        n = 0 if self.plaintext else int(self._bin_keys.n)
        self.send("host", "binning_public_key", {"n": str(n)})
        cts = self._bin_keys.encrypt(self._y.tolist())
        self.send("host", "encrypted_labels", {"y": _enc(self._bin_keys, cts)})

    def binning_finish(self) -> None:
        """Decrypt per-pre-bin event counts of the host's features, merge, WoE/IV; bin own features."""
        msg = self.recv("host", "prebin_label_sums")
        events = np.asarray(self._bin_keys.decrypt(msg["sums"]), dtype="float64")
        counts = msg["counts"].astype("float64")
        n = float(self.n_rows)
        self.host_bins_: dict[str, MergedBins] = {}
        pos = 0
        for f, k in zip(msg["features"], msg["sizes"]):
            c, e = counts[pos : pos + k], events[pos : pos + k]
            pos += k
            self.host_bins_[f] = MergedBins(
                f, c[:-1], e[:-1], c[-1], e[-1], int(self.directions.get(f, 0)), n,
                self.min_bin_share, self.smoothing, self.unknown_direction,
            )
        self.own_binner_ = MonotonicBinner(
            directions={c: int(self.directions.get(c, 0)) for c in self._X.columns},
            max_prebins=self.max_prebins, min_bin_share=self.min_bin_share,
            unknown_direction=self.unknown_direction, smoothing=self.smoothing,
        ).fit(self._X, self._y)

    def iv(self) -> pd.Series:
        iv = {c: b.iv for c, b in self.own_binner_.bins_.items()}
        iv.update({c: b.iv for c, b in self.host_bins_.items()})
        return pd.Series(iv, name="iv").sort_values(ascending=False, kind="mergesort")

    # ---- selection ------------------------------------------------------------------------------
    def select(self, min_iv: float = 0.02, max_corr: float = 0.7) -> None:
        """IV filter on every feature; correlation filter among the guest's own features (the only
        pairs whose WoE the guest can correlate without more protocol); tell the host its features."""
        from riskmodel.federated.lr import select_features

        own_woe = self.own_binner_.transform(self._X)
        self.iv_ = self.iv()
        self.selected_, self.dropped_ = select_features(self.iv_, own_woe, min_iv, max_corr)
        self.own_features_ = [c for c in self.selected_ if c in self.own_binner_.bins_]
        self.host_features_ = [c for c in self.selected_ if c in self.host_bins_]
        self.send("host", "model_features", {
            "features": self.host_features_, "kept": [self.host_bins_[f].kept for f in self.host_features_],
        })
        self._own_woe = own_woe[self.own_features_].to_numpy(dtype="float64")
        self._own_bins = {c: self.own_binner_.bins_[c].bin_index(self._X[c]) for c in self.own_features_}

    # ---- training: one pass over the data gives the loss and gradient at theta -----------------
    # theta = weights of own_features_, weights of host_features_, intercept.
    def start_pass(self, theta: np.ndarray, mode: str) -> None:
        """Send Enc(t_jb), t_jb = w_j * WoE_jb, for every bin of the host's model features."""
        if mode not in ("exact", "taylor"):
            raise ValueError(f"mode must be 'exact' or 'taylor', got {mode!r}")
        s = self.train_scheme
        G, H = len(self.own_features_), len(self.host_features_)
        self._theta, self._mode = np.asarray(theta, dtype="float64"), mode
        w_host = self._theta[G : G + H]
        t = [w_host[j] * self.host_bins_[f].woe for j, f in enumerate(self.host_features_)]
        t = np.concatenate(t) if t else np.empty(0)
        self.send("host", "encrypted_bin_scores", {"t": _enc(s, s.encrypt(crypto.encode(t)))})
        one = s.encrypt([0])[0] if not s.encrypted else 1  # Enc(0) without randomness; masked before use
        self._acc_own = {c: [one] * self.own_binner_.bins_[c].n_bins for c in self.own_features_}
        self._acc_host = {f: [one] * len(self.host_bins_[f].woe) for f in self.host_features_}
        self._acc_d = one
        self._acc_yz = one
        self._softplus = 0.0

    def combine_logits(self, rows: slice) -> None:
        """Enc(z) = Enc(u_h) + own partial logit + intercept. Exact mode: shuffle and send to the
        arbiter. Taylor mode: Enc(4 d) = Enc(z) + 2 - 4 y, re-randomised, kept for the host."""
        s = self.train_scheme
        u = list(self.recv("host", "encrypted_host_logits")["u"])
        n = rows.stop - rows.start
        if len(u) != n:
            raise ProtocolError(f"guest expected {n} encrypted host logits, received {len(u)}")
        G = len(self.own_features_)
        own = self._own_woe[rows] @ self._theta[:G] + self._theta[-1]
        own_enc = crypto.encode(own)
        y = self._y[rows]
        with self.timer.time("homomorphic_add", n):
            z = [s.add_plain(c, k) for c, k in zip(u, own_enc)]
        if self._mode == "exact":
            with self.timer.time("homomorphic_add", int(y.sum())):
                self._acc_yz = s.add(self._acc_yz, s.sum(z[i] for i in np.flatnonzero(y)))
            self._perm = self._rng.permutation(n)
            self.send("arbiter", "encrypted_logits", {"z": _enc(s, [z[i] for i in self._perm])})
        else:
            shift = crypto.encode(2.0 - 4.0 * y)
            with self.timer.time("homomorphic_add", n):
                d = [s.add_plain(c, k) for c, k in zip(z, shift)]
            self._d = s.rerandomize(d)

    def send_residuals(self, rows: slice) -> None:
        """Exact mode: Enc(d) = Enc(sigmoid(z)) - y (unshuffled). Both modes: send Enc(d) to the
        host and add it to the guest's own per-bin sums."""
        s = self.train_scheme
        n = rows.stop - rows.start
        if self._mode == "exact":
            msg = self.recv("arbiter", "encrypted_probabilities")
            p = list(msg["p"])
            if len(p) != n:
                raise ProtocolError(f"guest expected {n} encrypted probabilities, received {len(p)}")
            self._softplus += float(msg["softplus_sum"])
            unshuffled = [None] * n
            for k, i in enumerate(self._perm):
                unshuffled[i] = p[k]
            neg_y = crypto.encode(-self._y[rows].astype("float64"))
            with self.timer.time("homomorphic_add", n):
                d = [s.add_plain(c, k) for c, k in zip(unshuffled, neg_y)]
        else:
            d = self._d
        self.send("host", "encrypted_residuals", {"d": _enc(s, d)})
        with self.timer.time("homomorphic_add", n):
            self._acc_d = s.add(self._acc_d, s.sum(d))
        for c in self.own_features_:
            sums = _bin_sums(s, d, self._own_bins[c][rows], len(self._acc_own[c]))
            self._acc_own[c] = [s.add(a, b) for a, b in zip(self._acc_own[c], sums)]

    def receive_bin_residuals(self) -> None:
        s = self.train_scheme
        g = list(self.recv("host", "encrypted_bin_residuals")["g"])
        pos = 0
        for f in self.host_features_:
            k = len(self._acc_host[f])
            self._acc_host[f] = [s.add(a, b) for a, b in zip(self._acc_host[f], g[pos : pos + k])]
            pos += k
        if pos != len(g):
            raise ProtocolError(f"guest expected {pos} encrypted bin residual sums, received {len(g)}")

    def request_gradient(self) -> None:
        """Enc(gradient) = sum over bins of WoE_b * Enc(sum of residuals in bin b); masked for the arbiter."""
        s = self.train_scheme
        cts = []
        with self.timer.time("homomorphic_mul", sum(len(v) for v in self._acc_own.values()) + sum(len(v) for v in self._acc_host.values())):
            for c in self.own_features_:
                woe = crypto.encode(self.own_binner_.bins_[c].woe)
                cts.append(s.sum(s.mul_plain(a, k) for a, k in zip(self._acc_own[c], woe) if k != 0))
            for f in self.host_features_:
                woe = crypto.encode(self.host_bins_[f].woe)
                cts.append(s.sum(s.mul_plain(a, k) for a, k in zip(self._acc_host[f], woe) if k != 0))
        cts.append(self._acc_d)
        cts.append(self._acc_yz)
        self._masks = [s.random_mask() for _ in cts]
        masked = [s.add_plain(c, r) for c, r in zip(cts, self._masks)]
        self.send("arbiter", "masked_gradient", {"values": _enc(s, masked)})

    def finish_pass(self, C: float) -> tuple[float | None, np.ndarray]:
        """Unmask; return (loss, gradient) of the L2-penalised mean log loss (loss None in Taylor mode)."""
        s = self.train_scheme
        vals = self.recv("arbiter", "masked_gradient_plain")["values"]
        ints = [s.unmask(int(v), r) for v, r in zip(vals, self._masks)]
        n = float(self.n_rows)
        k = len(self.own_features_) + len(self.host_features_)
        scale = 0.25 if self._mode == "taylor" else 1.0
        w = self._theta[:k]
        grad_w = scale * crypto.decode(ints[:k], 2) / n + w / (C * n)
        grad_b = scale * float(crypto.decode([ints[k]])[0]) / n
        grad = np.append(grad_w, grad_b)
        if self._mode == "taylor":
            return None, grad
        yz = float(crypto.decode([ints[k + 1]])[0])
        loss = (self._softplus - yz) / n + float(w @ w) / (2 * C * n)
        return loss, grad

    # ---- publication ----------------------------------------------------------------------------
    def request_splits(self) -> None:
        """Ask the host for the merged split values of its model features."""
        self.send("host", "publish_request", {"features": self.host_features_})

    def receive_splits(self) -> dict:
        """The host's disclosed split values as ordinary ``VariableBinning`` objects."""
        msg = self.recv("host", "published_splits")
        return {f: self.host_bins_[f].to_variable_binning(sp) for f, sp in zip(msg["features"], msg["splits"])}
