"""Entity alignment on pseudonymous ids, mediated by the arbiter: each data party learns only the intersection.

Both data parties hold rows keyed by the hub's pseudonymous ids (``features.privacy.pseudonymize``,
keyed HMAC-SHA256 of the registration id), extended with the application date, since a row is an
application (a firm as of a date). The protocol:

1. The guest draws a random 32-byte session key and sends it to the host (guest -> host). The
   arbiter never sees it.
2. Each data party sends the arbiter ``HMAC-SHA256(session key, row key)`` of its rows, as a
   sorted set of 16-byte tokens (so row order tells nothing).
3. The arbiter intersects the two token sets and returns the intersection (sorted) to both.
4. Each party keeps its rows whose token is in the intersection, ordered by token: both sides now
   hold the same rows in the same order without having exchanged a single id.

What each party learns (semi-honest, non-colluding): the guest and the host learn the
intersection and nothing about the other's rows outside it; the arbiter learns the two set sizes
and the intersection size, and tokens it cannot link to firms (it lacks the session key).

Honest limits of hashed-id alignment compared with a real private set intersection (PSI) protocol
such as ECDH-PSI or FATE's RSA blind-signature intersection:

* The tokens are deterministic. If the arbiter colludes with either party (gives it the other's
  token set), that party can test any id it can enumerate (registration ids are structured and
  enumerable) and so learns the other party's rows outside the intersection. A PSI protocol gives
  no such set to anybody.
* Without an arbiter (the parties exchanging tokens directly) each party would learn the other's
  full set the same way: never do that with a shared or guessable key.
* Set sizes leak to the arbiter; padding with dummy tokens would hide them.
* Both sides learn the intersection, which is inherent to aligned training: the hub learns which
  of its firms applied at this bank.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets

import numpy as np
import pandas as pd

from riskmodel.errors import UserError
from riskmodel.federated.channel import Channel

log = logging.getLogger(__name__)

TOKEN_BYTES = 16


def row_keys(firm_ids, dates) -> pd.Series:
    """The entity key of an application row: ``<pseudonymous firm id>|<YYYY-MM-DD>``."""
    f = pd.Series(firm_ids).astype("string").reset_index(drop=True)
    d = pd.to_datetime(pd.Series(dates)).dt.strftime("%Y-%m-%d").reset_index(drop=True)
    if f.isna().any() or d.isna().any():
        raise UserError("alignment: every row needs a firm_id and an application_date; found missing values")
    return f + "|" + d


def tokens(keys, session_key: bytes) -> np.ndarray:
    """``HMAC-SHA256(session_key, key)`` truncated to TOKEN_BYTES, as an array of bytes objects."""
    return np.asarray(
        [hmac.new(session_key, str(k).encode("utf-8"), hashlib.sha256).digest()[:TOKEN_BYTES] for k in keys], dtype=object
    )


def _pack(toks) -> bytes:
    return b"".join(sorted(toks))


def _unpack(blob: bytes) -> list[bytes]:
    return [blob[i : i + TOKEN_BYTES] for i in range(0, len(blob), TOKEN_BYTES)]


class _AlignmentSide:
    """Shared logic of a data party during alignment."""

    def __init__(self, name: str, channel: Channel, keys: pd.Series):
        self.name = name
        self.channel = channel
        self.keys = pd.Series(keys).astype("string").reset_index(drop=True)
        if self.keys.duplicated().any():
            dup = self.keys[self.keys.duplicated()].head(3).tolist()
            raise UserError(f"alignment: {name} has duplicate row keys {dup}; one row per firm and date")

    def send_tokens(self, session_key: bytes) -> None:
        self._tokens = tokens(self.keys, session_key)
        self.channel.send(self.name, "arbiter", "alignment_tokens", {"tokens": _pack(self._tokens)})

    def receive_intersection(self) -> np.ndarray:
        """Positions of this party's rows in the intersection, in the common (token) order."""
        msg = self.channel.recv(self.name, "arbiter", "alignment_intersection")
        common = _unpack(msg["tokens"])
        where = {t: i for i, t in enumerate(self._tokens)}
        missing = [t for t in common if t not in where]
        if missing:
            raise UserError(f"alignment: the arbiter returned {len(missing)} token(s) {self.name} never sent")
        return np.asarray([where[t] for t in common], dtype="int64")


def align(channel: Channel, guest_keys, host_keys) -> tuple[np.ndarray, np.ndarray, dict]:
    """Run the alignment protocol; returns (guest row positions, host row positions, summary).

    Row ``k`` of the aligned data is ``guest_rows[k]`` on the guest and ``host_rows[k]`` on the
    host. Each side only ever handles its own keys; the ``summary`` holds the sizes each party saw.
    """
    guest = _AlignmentSide("guest", channel, guest_keys)
    host = _AlignmentSide("host", channel, host_keys)
    # 1. session key, guest -> host
    session_key = secrets.token_bytes(32)
    channel.send("guest", "host", "alignment_session_key", {"key": session_key})
    host_session = channel.recv("host", "guest", "alignment_session_key")["key"]
    # 2. tokens to the arbiter
    guest.send_tokens(session_key)
    host.send_tokens(host_session)
    # 3. the arbiter intersects
    g = set(_unpack(channel.recv("arbiter", "guest", "alignment_tokens")["tokens"]))
    h = set(_unpack(channel.recv("arbiter", "host", "alignment_tokens")["tokens"]))
    common = _pack(g & h)
    for party in ("guest", "host"):
        channel.send("arbiter", party, "alignment_intersection", {"tokens": common})
    # 4. each side maps back to its rows
    g_rows = guest.receive_intersection()
    h_rows = host.receive_intersection()
    if len(g_rows) == 0:
        raise UserError("alignment: the guest and the host have no row in common; check that both use the same id key")
    summary = {"guest_rows": len(guest.keys), "host_rows": len(host.keys), "intersection": len(g_rows)}
    log.info("alignment: guest %d rows, host %d rows, intersection %d", *summary.values())
    return g_rows, h_rows, summary
