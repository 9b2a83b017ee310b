#!/usr/bin/env python3
"""Opens N idle TCP connections to a running channel-bridge and reports its memory.

RELIABILITY.md, "10k idle connections": the daemon's resident memory before, with N idle
sockets open (they send nothing), and whether /healthz still answers meanwhile. Loopback
only. Usage: scripts/idle-flood.py PID PORT [N]
"""
import socket
import sys
import time
import urllib.request


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def healthz(port):
    started = time.monotonic()
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=60) as r:
        r.read()
    return time.monotonic() - started


def main():
    pid, port = int(sys.argv[1]), int(sys.argv[2])
    n = int(sys.argv[3]) if len(sys.argv) > 3 else 10000
    before = rss_kib(pid)
    sockets = []
    for _ in range(n):
        s = socket.socket()
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        sockets.append(s)
    time.sleep(2)
    during = rss_kib(pid)
    took = healthz(port)
    print(f"idle sockets: {n}")
    print(f"daemon RSS before: {before} KiB, with the sockets open: {during} KiB")
    print(f"/healthz answered in {took:.2f} s with them open")
    # Wait past the header timeout: the daemon closes what it accepted.
    time.sleep(float(sys.argv[4]) if len(sys.argv) > 4 else 12)
    closed = 0
    for s in sockets:
        try:
            if s.recv(1) == b"":
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    print(f"closed by the daemon after the header timeout: {closed} of {n}")
    print(f"daemon RSS after: {rss_kib(pid)} KiB")


if __name__ == "__main__":
    main()
