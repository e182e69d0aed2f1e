"""Vertical federated LR: real Paillier gives the plaintext protocol's numbers, the protocol agrees
with the centralized pipeline, only ciphertexts and aggregates cross, tampering stops the run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskmodel import evaluation as ev
from riskmodel.creditdata import synthetic_credit
from riskmodel.federated import lr as flr
from riskmodel.federated.channel import Channel, ProtocolError
from riskmodel.federated.parties import Arbiter, Guest, Host
from riskmodel.federated.run import centralized_fit, federated_fit

BANK, HUB = ["x0", "x1"], ["x2", "x3", "x4"]


def _data(n, seed):
    X, y, dirs = synthetic_credit(n_rows=n, n_features=5, seed=seed, categorical=False)
    keys = pd.Series([f"F{i:06d}|2024-01-01" for i in range(n)])
    return X, y, dirs, keys


@pytest.fixture(scope="module")
def encrypted_run():
    X, y, dirs, keys = _data(240, 5)
    ch = Channel(keep_payloads=True)
    # the hub has 20 rows the bank lacks and the bank 20 the hub lacks
    r = federated_fit(X[BANK].iloc[:220], keys.iloc[:220], y[:220], X[HUB].iloc[20:], keys.iloc[20:], dirs,
                      key_bits=512, batch_size=100, max_epochs=2, seed=1, channel=ch)
    return X, y, dirs, keys, r


def test_paillier_run_reproduces_the_plaintext_protocol(encrypted_run):
    X, y, dirs, keys, enc = encrypted_run
    plain = federated_fit(X[BANK].iloc[:220], keys.iloc[:220], y[:220], X[HUB].iloc[20:], keys.iloc[20:], dirs,
                          plaintext=True, batch_size=100, max_epochs=2, seed=1)
    assert enc["alignment"]["intersection"] == 200
    assert enc["features"] == plain["features"]
    np.testing.assert_allclose(enc["theta"], plain["theta"], rtol=0, atol=1e-9)
    assert [e.type for e in enc["channel"].log] == [e.type for e in plain["channel"].log]
    # and encryption is what makes the messages big: 512-bit keys -> 128-byte ciphertexts
    assert enc["channel"].summary()["bytes"] > 5 * plain["channel"].summary()["bytes"]


def test_host_never_receives_plaintext_rows_or_labels(encrypted_run):
    X, y, dirs, keys, r = encrypted_run
    n = r["alignment"]["intersection"]
    to_host = r["channel"].entries(receiver="host")
    assert {e.type for e in to_host} >= {"encrypted_labels", "encrypted_bin_scores", "encrypted_residuals", "model_features"}
    for e in to_host:
        for f in e.fields:
            if f["kind"] != "ciphertext" and e.type != "alignment_intersection":
                assert f["count"] < n, (e.type, f)  # aggregates (feature lists, split positions), never one per row
    g_rows = r["aligned_rows"]["guest"]
    labels = y[:220][g_rows]
    for e in to_host:
        assert labels.astype("int64").tobytes() not in e.body and labels.astype("float64").tobytes() not in e.body


def test_guest_never_receives_raw_host_values(encrypted_run):
    X, y, dirs, keys, r = encrypted_run
    from_host = r["channel"].entries(sender="host", receiver="guest")
    published = [e for e in from_host if e.type == "published_splits"]
    assert len(published) == 1
    for e in from_host:
        kinds = {f["name"]: f["kind"] for f in e.fields}
        if e.type in ("encrypted_host_logits", "encrypted_bin_residuals"):
            assert set(kinds.values()) == {"ciphertext"}
        if e.type == "published_splits":
            continue  # the merged boundaries of the model's features, disclosed by design
        for v in X[HUB].to_numpy().ravel():
            if np.isfinite(v):
                assert np.float64(v).tobytes() not in e.body
    # the disclosed boundaries are exactly the scorecard's bins of host features
    sc = r["scorecard"]
    for f in r["host_features"]:
        assert len(sc.binner_.bins_[f].splits) == len(sc.binner_.bins_[f].count) - 2


def test_arbiter_sees_only_ciphertexts_and_masked_values(encrypted_run):
    r = encrypted_run[-1]
    to_arb = r["channel"].entries(receiver="arbiter")
    assert {e.type for e in to_arb} == {"alignment_tokens", "encrypted_logits", "masked_gradient"}
    for e in to_arb:
        if e.type != "alignment_tokens":
            assert {f["kind"] for f in e.fields} == {"ciphertext"}


def test_federated_agrees_with_centralized_pipeline():
    X, y, dirs, keys = _data(3000, 6)
    tr, te = slice(0, 2000), slice(2000, 3000)
    fed = federated_fit(X[BANK].iloc[tr], keys.iloc[tr], y[tr], X[HUB].iloc[tr], keys.iloc[tr], dirs,
                        plaintext=True, batch_size=500, max_epochs=25, seed=0)
    g = fed["aligned_rows"]["guest"]
    cen = centralized_fit(X.iloc[tr].iloc[g][BANK + HUB], y[tr][g], BANK, dirs)
    assert set(fed["features"]) == set(cen["features"])
    np.testing.assert_allclose(fed["scorecard"].coef_[cen["features"]], cen["scorecard"].coef_, atol=0.02)
    auc_f = ev.auc(y[te], fed["scorecard"].predict_proba(X.iloc[te][fed["features"]])[:, 1])
    auc_c = ev.auc(y[te], cen["scorecard"].predict_proba(X.iloc[te][cen["features"]])[:, 1])
    assert abs(auc_f - auc_c) < 0.005
    # an ordinary scorecard: points table and score = base points + bin points
    sc = fed["scorecard"]
    t = sc.table()
    assert t.loc[0, "variable"] == "(base)" and set(fed["features"]) == set(t["variable"][1:])
    pts = sc.points(X.iloc[te][fed["features"]])
    np.testing.assert_allclose(pts["score"], sc.scaling_.score_from_logit(sc.decision_function(X.iloc[te][fed["features"]])))


def test_nonneg_reference_solver_respects_bounds():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(500, 3))
    y = (rng.random(500) < 1 / (1 + np.exp(-(W[:, 0] - W[:, 1] - 2)))).astype(int)
    theta = flr.fit_nonneg_lr(W, y)
    assert theta[0] > 0.5 and theta[1] == 0.0  # a negative effect is clamped at 0 (dropped)


def _manual_parties(n=120, plaintext=False):
    X, y, dirs, keys = _data(n, 7)
    ch = Channel()
    guest = Guest(ch, X[BANK], y, dirs, key_bits=512, plaintext=plaintext)
    host = Host(ch, X[HUB], plaintext=plaintext)
    arbiter = Arbiter(ch, key_bits=512, plaintext=plaintext)
    arbiter.publish_key()
    guest.receive_training_key()
    host.receive_training_key()
    guest.binning_start()
    host.binning_sums()
    guest.binning_finish()
    guest.select(0.0, 0.99)
    host.receive_model_features()
    return ch, guest, host, arbiter


def test_tampered_ciphertext_stops_training():
    ch, guest, host, arbiter = _manual_parties()
    theta = flr.initial_theta(len(guest.selected_), 0.1)
    guest.start_pass(theta, "exact")
    host.receive_bin_scores()
    rows = slice(0, 120)
    host.partial_logits(rows)
    guest.combine_logits(rows)
    arbiter.sigmoid_batch()
    guest.send_residuals(rows)
    msg = ch.in_flight[("guest", "host")][0]
    body = bytearray(msg.body)
    body[-1] ^= 0xFF
    msg.body = bytes(body)
    with pytest.raises(ProtocolError, match=r"\('encrypted_residuals'\) from guest to host failed its integrity check: tampered"):
        host.bin_residuals(rows)


def test_taylor_mode_sends_nothing_per_row_to_the_arbiter():
    ch, guest, host, arbiter = _manual_parties(plaintext=True)
    out = flr.train(guest, host, arbiter, mode="taylor", batch_size=60, max_epochs=2)
    assert out["epochs"] == 2 and np.isfinite(out["theta"]).all()
    assert {e.type for e in ch.entries(receiver="arbiter")} == {"masked_gradient"}
    with pytest.raises(ValueError, match="mode must be 'exact' or 'taylor'"):
        guest.start_pass(out["theta"], "newton")


def test_federated_scorecard_scores_like_any_credit_model(encrypted_run):
    from riskmodel.creditmodel import CreditModel

    X, y, dirs, keys, r = encrypted_run
    sc = r["scorecard"]
    cm = CreditModel.from_estimator(sc, name="federated_scorecard")
    out = cm.predict(X[r["features"]].iloc[:50])
    np.testing.assert_allclose(out["pd"], sc.predict_proba(X[r["features"]].iloc[:50])[:, 1])
    np.testing.assert_allclose(out["score"], sc.points(X[r["features"]].iloc[:50])["score"])
    assert out["grade"].notna().all()
