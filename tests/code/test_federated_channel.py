"""The federated message channel: round trip, log, and clear errors on tampered or reordered messages."""

from __future__ import annotations

import numpy as np
import pytest

from riskmodel.federated.channel import Channel, Encrypted, ProtocolError


def _payload():
    return {
        "c": Encrypted([12345678901234567890, 7, 2**200 + 1], width=32),
        "a": np.array([1.5, -2.0, np.nan]),
        "names": ["x0", "x1"],
        "blob": b"\x00\x01\x02",
    }


def test_roundtrip_and_log_record_type_size_sender_receiver_sequence():
    ch = Channel()
    ch.send("guest", "host", "first", _payload())
    ch.send("guest", "host", "second", {"k": 3})
    got = ch.recv("host", "guest", "first")
    assert [int(v) for v in got["c"]] == [12345678901234567890, 7, 2**200 + 1]
    np.testing.assert_array_equal(got["a"], np.array([1.5, -2.0, np.nan]))
    assert got["names"] == ["x0", "x1"] and got["blob"] == b"\x00\x01\x02"
    assert ch.recv("host", "guest", "second") == {"k": 3}
    e0, e1 = ch.log
    assert (e0.sender, e0.receiver, e0.type, e0.seq) == ("guest", "host", "first", 0)
    assert e1.seq == 1
    kinds = {f["name"]: (f["kind"], f["count"]) for f in e0.fields}
    assert kinds == {"c": ("ciphertext", 3), "a": ("array", 3), "names": ("json", 2), "blob": ("bytes", 3)}
    assert e0.nbytes > 3 * 32 + 3 * 8  # the ciphertexts, the array and a header
    s = ch.summary()
    assert s["parties"]["guest"]["bytes_sent"] == e0.nbytes + e1.nbytes == s["parties"]["host"]["bytes_received"]
    assert s["ciphertexts"] == 3


def test_tampered_body_raises_clear_error():
    ch = Channel()
    ch.send("guest", "host", "encrypted_labels", _payload())
    msg = ch.in_flight[("guest", "host")][0]
    body = bytearray(msg.body)
    body[5] ^= 0x01  # flip one bit of a ciphertext
    msg.body = bytes(body)
    with pytest.raises(ProtocolError, match=r"message #0 \('encrypted_labels'\) from guest to host failed its integrity check: tampered"):
        ch.recv("host", "guest", "encrypted_labels")


def test_tampered_header_raises():
    ch = Channel()
    ch.send("host", "guest", "prebin_label_sums", {"counts": np.array([3, 4])})
    msg = ch.in_flight[("host", "guest")][0]
    msg.header = msg.header.replace(b'"count":2', b'"count":1')
    with pytest.raises(ProtocolError, match="tampered"):
        ch.recv("guest", "host", "prebin_label_sums")


def test_out_of_order_and_replay_raise():
    ch = Channel()
    ch.send("guest", "arbiter", "encrypted_logits", {"i": 0})
    ch.send("guest", "arbiter", "encrypted_logits", {"i": 1})
    q = ch.in_flight[("guest", "arbiter")]
    q[0], q[1] = q[1], q[0]
    with pytest.raises(ProtocolError, match=r"out of order: expected sequence #0, got #1"):
        ch.recv("arbiter", "guest", "encrypted_logits")

    ch2 = Channel()
    ch2.send("guest", "host", "m", {"i": 0})
    replay = ch2.in_flight[("guest", "host")][0]
    assert ch2.recv("host", "guest", "m") == {"i": 0}
    ch2.in_flight[("guest", "host")].append(replay)
    with pytest.raises(ProtocolError, match=r"out of order: expected sequence #1, got #0"):
        ch2.recv("host", "guest", "m")


def test_unexpected_type_and_missing_message_raise():
    ch = Channel()
    ch.send("arbiter", "guest", "masked_gradient_plain", {"values": ["1"]})
    with pytest.raises(ProtocolError, match=r"has type 'masked_gradient_plain', expected 'encrypted_probabilities'"):
        ch.recv("guest", "arbiter", "encrypted_probabilities")
    with pytest.raises(ProtocolError, match="none is in flight"):
        ch.recv("host", "guest", "encrypted_residuals")
    with pytest.raises(ProtocolError, match="no link"):
        ch.send("guest", "guest", "x", {})


def test_object_arrays_are_refused():
    ch = Channel()
    with pytest.raises(TypeError, match="only numeric or bool arrays"):
        ch.send("guest", "host", "x", {"ids": np.array(["a", "b"], dtype=object)})
