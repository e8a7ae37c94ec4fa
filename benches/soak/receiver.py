#!/usr/bin/env python3
"""Flapping webhook receiver for benches/soak.sh (loopback only).

Cycles UP_S seconds answering 200, then DOWN_S seconds misbehaving: half the requests get 503,
the other half a connection reset (SO_LINGER 0) before any answer. Every request is logged as
`<unix_ms> <status|reset> <Idempotency-Key>` to LOG, so the soak can count each handoff's
deliveries (200s) by key.
"""
import os
import socket
import struct
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
LOG = sys.argv[2]
UP_S = float(os.environ.get("UP_S", "20"))
DOWN_S = float(os.environ.get("DOWN_S", "8"))
T0 = time.time()
lock = threading.Lock()
n = 0


def up():
    return (time.time() - T0) % (UP_S + DOWN_S) < UP_S


class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def do_POST(self):
        global n
        length = int(self.headers.get("Content-Length", "0"))
        self.rfile.read(min(length, 1 << 20))
        key = self.headers.get("Idempotency-Key", "-")
        with lock:
            n += 1
            k = n
        if up():
            status = 200
        elif k % 2:
            status = 503
        else:
            status = "reset"
        with lock, open(LOG, "a") as f:
            f.write(f"{int(time.time() * 1000)} {status} {key}\n")
        if status == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()


ThreadingHTTPServer(("127.0.0.1", PORT), H).serve_forever()
