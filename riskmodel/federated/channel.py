"""The message channel between parties: every message is serialised, numbered, authenticated and logged.

Parties never share Python objects: a payload is encoded to bytes when sent and decoded from
bytes when received, so what a party learns is exactly what crossed the channel, and the log says
what that was. Each log entry records the message type, sender, receiver, size in bytes, a
sequence number per directed link, and per field whether it held ciphertexts or plaintext and how
many values.

Integrity and order: every directed link (sender -> receiver) has its own key and sequence
counter; a message carries ``HMAC-SHA256(link key, header || body)`` (what TLS gives a real
deployment). ``recv`` rejects, with a :class:`ProtocolError` naming the message, a body or header
that was altered in flight (``tampered``), a message whose sequence number is not the next one on
its link (``out of order``: reordered, replayed or dropped messages), and a message of an
unexpected type.

Payload fields (``dict`` name -> value):
  * :class:`Encrypted` (a list of ciphertext integers) -> kind ``ciphertext``;
  * ``numpy.ndarray`` (numeric or bool) -> kind ``array``;
  * ``bytes`` -> kind ``bytes``; anything JSON-able (numbers, strings, lists, dicts) -> kind ``json``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections import defaultdict, deque
from dataclasses import dataclass, field

import numpy as np


class ProtocolError(RuntimeError):
    """A message failed an integrity, order or type check; the run must stop."""


class Encrypted(list):
    """A list of ciphertext integers (Paillier: unsigned, ``width`` bytes each)."""

    def __init__(self, values=(), width: int = 0, signed: bool = False):
        super().__init__(values)
        self.width = int(width)
        self.signed = bool(signed)


def _encode_field(name: str, value) -> tuple[dict, bytes]:
    if isinstance(value, Encrypted):
        width = value.width or max((max(int(v).bit_length() for v in value) + 8) // 8 + 1 if len(value) else 1, 1)
        blob = b"".join(int(v).to_bytes(width, "big", signed=value.signed) for v in value)
        return {"name": name, "kind": "ciphertext", "width": width, "signed": value.signed, "count": len(value)}, blob
    if isinstance(value, np.ndarray):
        if value.dtype == object or value.dtype.kind not in "biuf":
            raise TypeError(f"field {name!r}: only numeric or bool arrays cross the channel, got dtype {value.dtype}")
        arr = np.ascontiguousarray(value)
        return {"name": name, "kind": "array", "dtype": arr.dtype.str, "shape": list(arr.shape), "count": int(arr.size)}, arr.tobytes()
    if isinstance(value, (bytes, bytearray)):
        return {"name": name, "kind": "bytes", "count": len(value)}, bytes(value)
    blob = json.dumps(value, sort_keys=True, separators=(",", ":")).encode("utf-8")
    count = len(value) if isinstance(value, (list, tuple, dict)) else 1
    return {"name": name, "kind": "json", "count": count}, blob


def _decode_field(meta: dict, blob: bytes):
    kind = meta["kind"]
    if kind == "ciphertext":
        w = meta["width"]
        import gmpy2

        vals = [int.from_bytes(blob[i : i + w], "big", signed=meta["signed"]) for i in range(0, len(blob), w)]
        return Encrypted([gmpy2.mpz(v) for v in vals] if not meta["signed"] else vals, width=w, signed=meta["signed"])
    if kind == "array":
        return np.frombuffer(blob, dtype=np.dtype(meta["dtype"])).reshape(meta["shape"]).copy()
    if kind == "bytes":
        return bytes(blob)
    return json.loads(blob.decode("utf-8"))


def encode_payload(payload: dict) -> tuple[list[dict], bytes]:
    metas, blobs = [], []
    for name, value in payload.items():
        meta, blob = _encode_field(name, value)
        meta["nbytes"] = len(blob)
        metas.append(meta)
        blobs.append(blob)
    return metas, b"".join(blobs)


def decode_payload(metas: list[dict], body: bytes) -> dict:
    out, pos = {}, 0
    for meta in metas:
        blob = body[pos : pos + meta["nbytes"]]
        pos += meta["nbytes"]
        out[meta["name"]] = _decode_field(meta, blob)
    if pos != len(body):
        raise ProtocolError(f"message body has {len(body) - pos} trailing bytes")
    return out


@dataclass
class Message:
    """One message in flight. ``header`` and ``body`` are the bytes that travel."""

    sender: str
    receiver: str
    seq: int
    type: str
    header: bytes
    body: bytes
    mac: bytes

    @property
    def nbytes(self) -> int:
        return len(self.header) + len(self.body) + len(self.mac) + 4


@dataclass
class LogEntry:
    index: int
    seq: int
    sender: str
    receiver: str
    type: str
    nbytes: int
    fields: list[dict] = field(default_factory=list)
    body: bytes | None = None  # kept only with Channel(keep_payloads=True), for audits and tests


class Channel:
    """In-process message bus between named parties, with a log of everything sent.

    ``send(sender, receiver, type, payload)`` encodes and queues; ``recv(receiver, sender, type)``
    checks integrity, order and type, decodes and returns the payload. The queue of messages in
    flight per link is ``in_flight[(sender, receiver)]`` (tests alter it to simulate an attacker).
    ``keep_payloads=True`` also keeps every message body in the log, for audits.
    """

    def __init__(self, parties=("guest", "host", "arbiter"), keep_payloads: bool = False):
        self.parties = tuple(parties)
        self.keep_payloads = keep_payloads
        self._keys = {(a, b): secrets.token_bytes(32) for a in self.parties for b in self.parties if a != b}
        self._next_send: dict[tuple[str, str], int] = defaultdict(int)
        self._next_recv: dict[tuple[str, str], int] = defaultdict(int)
        self.in_flight: dict[tuple[str, str], deque[Message]] = defaultdict(deque)
        self.log: list[LogEntry] = []

    def _check_link(self, sender: str, receiver: str) -> tuple[str, str]:
        link = (sender, receiver)
        if link not in self._keys:
            raise ProtocolError(f"no link from {sender!r} to {receiver!r}; parties are {self.parties}")
        return link

    def _mac(self, link, header: bytes, body: bytes) -> bytes:
        return hmac.new(self._keys[link], header + b"\x00" + body, hashlib.sha256).digest()

    def send(self, sender: str, receiver: str, type: str, payload: dict) -> LogEntry:
        link = self._check_link(sender, receiver)
        seq = self._next_send[link]
        self._next_send[link] += 1
        metas, body = encode_payload(payload)
        header = json.dumps(
            {"sender": sender, "receiver": receiver, "seq": seq, "type": type, "fields": metas},
            sort_keys=True, separators=(",", ":"),
        ).encode("utf-8")
        msg = Message(sender, receiver, seq, type, header, body, self._mac(link, header, body))
        self.in_flight[link].append(msg)
        entry = LogEntry(
            index=len(self.log), seq=seq, sender=sender, receiver=receiver, type=type, nbytes=msg.nbytes,
            fields=[{"name": m["name"], "kind": m["kind"], "count": m["count"], "nbytes": m["nbytes"]} for m in metas],
            body=body if self.keep_payloads else None,
        )
        self.log.append(entry)
        return entry

    def recv(self, receiver: str, sender: str, type: str) -> dict:
        link = self._check_link(sender, receiver)
        queue = self.in_flight[link]
        expected = self._next_recv[link]
        if not queue:
            raise ProtocolError(f"{receiver} expected message #{expected} ({type!r}) from {sender}, but none is in flight")
        msg = queue.popleft()
        if not hmac.compare_digest(msg.mac, self._mac(link, msg.header, msg.body)):
            raise ProtocolError(
                f"message #{msg.seq} ({msg.type!r}) from {sender} to {receiver} failed its integrity check: "
                "tampered in flight; stop the run and check the transport"
            )
        head = json.loads(msg.header.decode("utf-8"))
        if head["seq"] != expected:
            raise ProtocolError(
                f"message from {sender} to {receiver} is out of order: expected sequence #{expected}, got #{head['seq']} "
                f"({head['type']!r}); a message was reordered, replayed or dropped"
            )
        if head["type"] != type:
            raise ProtocolError(
                f"message #{head['seq']} from {sender} to {receiver} has type {head['type']!r}, expected {type!r}"
            )
        self._next_recv[link] += 1
        return decode_payload(head["fields"], msg.body)

    # ---- summaries -------------------------------------------------------------------------------
    def summary(self) -> dict:
        """Messages and bytes sent/received per party, per message type, and ciphertext counts."""
        parties = {p: {"messages_sent": 0, "bytes_sent": 0, "messages_received": 0, "bytes_received": 0} for p in self.parties}
        by_type: dict[str, dict] = {}
        ciphertexts = 0
        for e in self.log:
            parties[e.sender]["messages_sent"] += 1
            parties[e.sender]["bytes_sent"] += e.nbytes
            parties[e.receiver]["messages_received"] += 1
            parties[e.receiver]["bytes_received"] += e.nbytes
            t = by_type.setdefault(e.type, {"messages": 0, "bytes": 0, "route": f"{e.sender}->{e.receiver}"})
            t["messages"] += 1
            t["bytes"] += e.nbytes
            ciphertexts += sum(f["count"] for f in e.fields if f["kind"] == "ciphertext")
        return {
            "messages": len(self.log),
            "bytes": sum(e.nbytes for e in self.log),
            "ciphertexts": ciphertexts,
            "parties": parties,
            "types": by_type,
        }

    def entries(self, receiver: str | None = None, sender: str | None = None) -> list[LogEntry]:
        return [e for e in self.log if (receiver is None or e.receiver == receiver) and (sender is None or e.sender == sender)]
