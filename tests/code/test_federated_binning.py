"""Federated WoE binning: merging decrypted per-pre-bin counts gives MonotonicBinner's bins exactly."""

from __future__ import annotations

import numpy as np
import pytest

from riskmodel.binning import MonotonicBinner
from riskmodel.creditdata import synthetic_credit
from riskmodel.federated.binning import MergedBins, prebin_index, prebin_splits
from riskmodel.federated.channel import Channel
from riskmodel.federated.parties import Guest, Host


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_merge_from_counts_equals_monotonic_binner(seed):
    X, y, dirs = synthetic_credit(n_rows=1500, n_features=6, seed=seed, categorical=False)
    X["ties"] = np.round(X["x0"])  # few distinct values: one pre-bin per value
    dirs["ties"] = 0
    ref = MonotonicBinner(directions=dirs).fit(X, y)
    for name in X.columns:
        x = X[name].to_numpy()
        splits = prebin_splits(x[~np.isnan(x)], 20)
        idx = prebin_index(x, splits)
        k = len(splits) + 2
        count = np.bincount(idx, minlength=k).astype(float)
        event = np.bincount(idx, weights=y, minlength=k)
        mb = MergedBins(name, count[:-1], event[:-1], count[-1], event[-1], dirs[name], len(x), 0.05, 0.5, "auto")
        vb = mb.to_variable_binning(splits[mb.kept])
        rb = ref.bins_[name]
        np.testing.assert_array_equal(vb.splits, rb.splits)
        np.testing.assert_array_equal(vb.count, rb.count)
        np.testing.assert_array_equal(vb.event, rb.event)
        np.testing.assert_allclose(vb.woe, rb.woe, rtol=0, atol=1e-12)
        assert vb.direction == rb.direction and vb.labels == rb.labels


def test_federated_binning_with_paillier_matches_pooled_binning_and_host_sees_no_label():
    X, y, dirs = synthetic_credit(n_rows=300, n_features=4, seed=3, categorical=False)
    ch = Channel(keep_payloads=True)
    guest = Guest(ch, X[["x0"]], y, dirs, key_bits=512)
    host = Host(ch, X[["x1", "x2", "x3"]])
    guest.binning_start()
    host.binning_sums()
    guest.binning_finish()
    ref = MonotonicBinner(directions=dirs).fit(X, y)
    for f in ("x1", "x2", "x3"):
        mb = guest.host_bins_[f]
        np.testing.assert_array_equal(mb.count, ref.bins_[f].count)
        np.testing.assert_array_equal(mb.event, ref.bins_[f].event)
        np.testing.assert_allclose(mb.woe, ref.bins_[f].woe, atol=1e-12)
    # the host received ciphertexts only: randomised (no two equal, none a trivial 1 + y n)
    labels = [e for e in ch.log if e.type == "encrypted_labels"][0]
    assert [f["kind"] for f in labels.fields] == ["ciphertext"]
    n = guest._bin_keys.n
    cts = guest._bin_keys.from_bytes(labels.body)
    assert len(set(cts)) == len(cts) == 300
    assert not any(c in (1, 1 + n) for c in cts)
    # what the guest received from the host: ciphertexts and pre-bin counts, no raw value
    sums = [e for e in ch.log if e.type == "prebin_label_sums"][0]
    assert {f["name"]: f["kind"] for f in sums.fields} == {"features": "json", "sizes": "array", "counts": "array", "sums": "ciphertext"}
    for v in X[["x1", "x2", "x3"]].to_numpy().ravel():
        if np.isfinite(v):
            assert np.float64(v).tobytes() not in sums.body


def test_selection_tells_the_host_only_merged_boundaries_of_model_features():
    X, y, dirs = synthetic_credit(n_rows=300, n_features=6, seed=4, categorical=False)
    ch = Channel()
    guest = Guest(ch, X[["x0", "x1"]], y, dirs, plaintext=True)
    host = Host(ch, X[["x2", "x3", "x4", "x5"]], plaintext=True)
    guest.binning_start()
    host.binning_sums()
    guest.binning_finish()
    guest.select(min_iv=0.02, max_corr=0.7)
    host.receive_model_features()
    assert host.features_ == guest.host_features_
    assert all(f in guest.host_bins_ for f in host.features_)
    assert not hasattr(host, "woe_") and not any(hasattr(host, a) for a in ("_y", "host_bins_", "iv_"))
    for f in host.features_:
        assert host.kept_[f] == guest.host_bins_[f].kept
