#!/usr/bin/env python3
"""Bridge for qemu's guestfwd=...-cmd: one guest connection on stdin/stdout, relayed to
127.0.0.1:PORT on the host. qemu runs one of these per connection."""
import os
import selectors
import socket
import sys


def main():
    port = int(sys.argv[1])
    try:
        conn = socket.create_connection(("127.0.0.1", port), timeout=5)
    except OSError:
        return 1
    conn.settimeout(None)
    sel = selectors.DefaultSelector()
    stdin = sys.stdin.buffer.fileno()
    stdout = sys.stdout.buffer.fileno()
    sel.register(stdin, selectors.EVENT_READ, "guest")
    sel.register(conn, selectors.EVENT_READ, "host")
    while True:
        for key, _ in sel.select():
            if key.data == "guest":
                data = os.read(stdin, 65536)
                if not data:
                    conn.close()
                    return 0
                conn.sendall(data)
            else:
                data = conn.recv(65536)
                if not data:
                    return 0
                view = memoryview(data)
                while view:
                    n = os.write(stdout, view)
                    view = view[n:]


if __name__ == "__main__":
    sys.exit(main())
