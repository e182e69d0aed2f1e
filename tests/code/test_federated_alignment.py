"""Entity alignment: each side ends with exactly the intersection, in the same order, and no id crosses."""

from __future__ import annotations

import pandas as pd
import pytest

from riskmodel.errors import UserError
from riskmodel.federated.alignment import align, row_keys
from riskmodel.federated.channel import Channel


def test_alignment_yields_only_the_intersection_in_a_common_order():
    common = [f"Fc{i:04d}|2024-03-01" for i in range(40)]
    only_bank = [f"Fb{i:04d}|2024-03-01" for i in range(15)]
    only_hub = [f"Fh{i:04d}|2024-03-01" for i in range(25)]
    bank = pd.Series(only_bank + common[::-1])
    hub = pd.Series(common + only_hub)
    ch = Channel(keep_payloads=True)
    g_rows, h_rows, summary = align(ch, bank, hub)
    assert summary == {"guest_rows": 55, "host_rows": 65, "intersection": 40}
    assert sorted(bank.iloc[g_rows]) == sorted(common)
    assert list(bank.iloc[g_rows]) == list(hub.iloc[h_rows])  # same rows, same order on both sides
    # no key (and no firm id) appears in any message; the arbiter never receives the session key
    for e in ch.log:
        for k in only_bank + only_hub + common:
            assert k.encode() not in e.body and k.split("|")[0].encode() not in e.body
    assert all(e.type != "alignment_session_key" for e in ch.entries(receiver="arbiter"))
    # what comes back to each side is the intersection only: 40 tokens of 16 bytes
    back = [e for e in ch.log if e.type == "alignment_intersection"]
    assert {e.receiver for e in back} == {"guest", "host"} and all(len(e.body) == 40 * 16 for e in back)


def test_row_keys_and_errors():
    k = row_keys(["F1", "F2"], pd.to_datetime(["2024-01-05", "2024-02-01"]))
    assert list(k) == ["F1|2024-01-05", "F2|2024-02-01"]
    with pytest.raises(UserError, match="duplicate row keys"):
        align(Channel(), pd.Series(["a", "a"]), pd.Series(["a"]))
    with pytest.raises(UserError, match="no row in common"):
        align(Channel(), pd.Series(["a"]), pd.Series(["b"]))
