#!/usr/bin/env python3
"""Writes the hand-built seed inputs for the codec_chunks target into corpus/codec_chunks/.

Each seed is 4 control bytes (frame_max selector lo/hi, PRNG seed, read-size mode; see the
target's header) followed by frames exactly as a client puts them on the wire after the
8-byte protocol header. Re-run after changing the input layout.
"""
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "codec_chunks")


def control(frame_max, seed, mode):
    sel = (frame_max - 4096) // 2
    return struct.pack("<HBB", sel, seed, mode)


def frame(kind, channel, payload):
    return struct.pack(">BHI", kind, channel, len(payload)) + payload + b"\xce"


def method(channel, class_id, method_id, args=b""):
    return frame(1, channel, struct.pack(">HH", class_id, method_id) + args)


def shortstr(s):
    b = s.encode() if isinstance(s, str) else s
    return bytes([len(b)]) + b


def longstr(b):
    b = b.encode() if isinstance(b, str) else b
    return struct.pack(">I", len(b)) + b


def table(entries):
    body = b""
    for key, kind, value in entries:
        body += shortstr(key) + kind.encode() + value
    return longstr(body)


def header(channel, body_size, flags=0, props=b""):
    return frame(2, channel, struct.pack(">HHQH", 60, 0, body_size, flags) + props)


def body(channel, data):
    return frame(3, channel, data)


HEARTBEAT = frame(8, 0, b"")

client_props = table([
    ("product", "S", longstr("seed")),
    ("capabilities", "F", table([
        ("publisher_confirms", "t", b"\x01"),
        ("consumer_cancel_notify", "t", b"\x01"),
        ("basic.nack", "t", b"\x01"),
    ])),
    ("pid", "I", struct.pack(">i", 4242)),
    ("ratio", "d", struct.pack(">d", 0.5)),
])

HANDSHAKE = (
    method(0, 10, 11, client_props + shortstr("PLAIN") + longstr(b"\x00guest\x00guest") + shortstr("en_US"))
    + method(0, 10, 31, struct.pack(">HIH", 2047, 131072, 60))
    + method(0, 10, 40, shortstr("/") + shortstr("") + b"\x00")
    + method(1, 20, 10, shortstr(""))
)

queue_declare = method(1, 50, 10, struct.pack(">H", 0) + shortstr("q") + b"\x02"
                       + table([("x-max-length", "l", struct.pack(">q", 1000)),
                                ("x-queue-type", "S", longstr("classic"))]))
publish = method(1, 60, 40, struct.pack(">H", 0) + shortstr("") + shortstr("q") + b"\x00")
# content-type (bit 15) + headers (bit 13) + delivery-mode (bit 12)
props = shortstr("text/plain") + table([("k", "S", longstr("v")), ("n", "i", struct.pack(">I", 7))]) + b"\x02"
payload = bytes(range(256)) * 40  # 10240 bytes: three body frames at frame_max 4096

seeds = {
    "seed-handshake": control(131072, 1, 1) + HANDSHAKE,
    "seed-publish-one-frame": control(131072, 2, 2)
        + publish + header(1, 5, 0x9000 | 0x2000, props) + body(1, b"hello"),
    "seed-publish-split-body": control(4096, 3, 3)
        + publish + header(1, len(payload), 0x9000 | 0x2000, props)
        + b"".join(body(1, payload[i:i + 4088]) for i in range(0, len(payload), 4088)),
    "seed-session": control(131072, 4, 7) + HANDSHAKE
        + method(1, 85, 10, b"\x00")
        + method(1, 60, 10, struct.pack(">IHB", 0, 10, 0))
        + queue_declare
        + method(1, 60, 20, struct.pack(">H", 0) + shortstr("q") + shortstr("ctag") + b"\x00" + table([]))
        + publish + header(1, 0)
        + HEARTBEAT
        + method(2, 20, 10, shortstr(""))
        + publish + method(2, 60, 40, struct.pack(">H", 0) + shortstr("amq.topic") + shortstr("a.b") + b"\x01")
        + header(1, 3) + header(2, 2, 0x1000, b"\x01") + body(2, b"xy") + body(1, b"abc")
        + method(1, 60, 80, struct.pack(">QB", 1, 1))
        + method(1, 60, 120, struct.pack(">QB", 2, 2))
        + method(0, 10, 50, struct.pack(">H", 200) + shortstr("bye") + struct.pack(">HH", 0, 0)),
    "seed-whole-read": control(8192, 5, 0xFF) + HANDSHAKE + publish + header(1, 2) + body(1, b"a") + body(1, b"b"),
}

os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
    print(f"{name}: {len(data)} bytes")
