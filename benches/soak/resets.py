#!/usr/bin/env python3
"""TCP resets against the gateway for benches/soak.sh: COUNT connections that start a WebSocket
upgrade (or send half a request) and are then reset (SO_LINGER 0) instead of closed."""
import socket
import struct
import sys

host, port, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
for i in range(count):
    s = socket.create_connection((host, port), timeout=2)
    req = (
        "GET /v1/media/twilio HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    )
    s.sendall(req.encode() if i % 2 else req[: len(req) // 2].encode())
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
