"""Opens /cam.mjpg, reads the status line and closes, N times in a row; counts 503s.

A stream's place must be free the moment its client goes (issue 15, finding 2). The
close comes with unread bytes (the stream's head), so the kernel sends a reset.

    python3 bench/open_close.py PORT [N]
"""
import socket
import sys

port = int(sys.argv[1])
count = int(sys.argv[2]) if len(sys.argv) > 2 else 25
codes = []
for _ in range(count):
    s = socket.create_connection(("127.0.0.1", port))
    s.settimeout(5)
    s.sendall(b"GET /cam.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
    line = b""
    while b"\r\n" not in line:
        data = s.recv(64)
        if not data:
            break
        line += data
    codes.append(line.split(b" ")[1].decode() if b" " in line else "closed")
    s.close()
print(f"{count} open/close in a row: {codes.count('200')} x 200, {codes.count('503')} x 503")
