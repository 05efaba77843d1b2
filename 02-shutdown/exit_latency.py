#!/usr/bin/env python3
"""exit_latency.py BINARY [RUNS] [CONNS]: how long ./shutdown takes from
SIGTERM to exit with CONNS idle keep-alive connections open (default 64),
over RUNS runs (default 15). Each connection has made one request and is
waiting for its next one, which never comes: the case where a server that
only waits for its connections to "finish" would wait for its idle timeout.

Prints one line per run on stderr, then RESULT lines (median and max, in
ms). Exits 1 if any run does not exit 0 or takes longer than 5 s.
"""

import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time


def one_run(binary, conns, log_path):
    with open(log_path, "w") as log:
        proc = subprocess.Popen([binary, "--bind", "127.0.0.1:0", "--log-level", "info"],
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
    deadline = time.monotonic() + 10
    port = None
    while port is None:
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError("the server did not start: " + open(log_path).read())
        m = re.search(r"listening on 127\.0\.0\.1:(\d+)", open(log_path).read())
        if m:
            port = int(m.group(1))
        else:
            time.sleep(0.01)
    socks = []
    for _ in range(conns):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
        socks.append(s)
    for s in socks:  # read each response whole: the connection is now idle
        data = b""
        while not data.endswith(b"ok\n"):
            chunk = s.recv(4096)
            if not chunk:
                raise RuntimeError("connection closed early")
            data += chunk
    time.sleep(0.05)  # every connection thread is back in its idle poll
    t0 = time.perf_counter()
    os.kill(proc.pid, signal.SIGTERM)
    status = proc.wait()
    ms = (time.perf_counter() - t0) * 1000
    for s in socks:
        s.close()
    return ms, status


def main(argv):
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    binary = argv[0]
    runs = int(argv[1]) if len(argv) > 1 else 15
    conns = int(argv[2]) if len(argv) > 2 else 64
    times = []
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs):
            ms, status = one_run(binary, conns, os.path.join(tmp, "server.log"))
            print("run %2d: exit %d after %.2f ms" % (i + 1, status, ms), file=sys.stderr)
            times.append(ms)
            ok = ok and status == 0 and ms < 5000
    times.sort()
    print("RESULT shutdown_exit_latency_median %.2f ms" % times[len(times) // 2])
    print("RESULT shutdown_exit_latency_max %.2f ms" % times[-1])
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
