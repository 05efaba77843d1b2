#!/usr/bin/env python3
r"""A small local HTTP/1.1 server for the tests and benchmarks of chapters 04 and 07.

Standard library only.  Each connection gets its own (daemon) thread, so many
slow requests can be in flight at once.

Usage:
    python3 tests/helpers/httpd.py [--bind 127.0.0.1] [--port 0] [--quiet]
    python3 tests/helpers/httpd.py --print-bytes N    # the body of /bytes/N

Once listening it prints exactly one line to stdout, `listening on HOST:PORT`
(port 0 lets the kernel choose a free port).  Each request is logged to
stderr as `METHOD PATH STATUS` unless --quiet.  SIGTERM or SIGINT: exit 0.

Routes (GET only):
    /status/CODE            status CODE (200..599), body "status CODE\n"
                            (no body for 204, 205 and 304, as HTTP requires)
    /delay/MS               sleep MS ms, then 200 "delayed MS ms\n"
    /bytes/N                200, N bytes of application/octet-stream (N <= 1 GiB):
                            byte i = (i * 7 + (i >> 8)) & 0xFF
                            Every byte value (NUL, CR, LF...) appears in the
                            first 256 bytes; the pattern repeats every 64 KiB.
    /chunked/COUNT/MS       200, Transfer-Encoding: chunked, headers at once;
                            then COUNT times: sleep MS ms, send chunk "chunk I\n"
    /never                  read the request, never answer; return when the
                            client closes the connection
    /redirect/N             N > 0: 302 to /redirect/N-1 (relative); N == 0: 200
                            "redirected\n"
    /headers-then-stall/MS  200 with Content-Length 10, send "hello", sleep MS
                            ms, send "world"
    anything else           404 "not found: PATH\n"

    ?delay=MS on any route above (MS 0..600000): sleep MS ms, counted in
    flight, before the route runs, so /status/404?delay=300 is a slow 404 and
    /bytes/100?delay=300 a slow 100-byte body.  A delay that is not a whole
    number in range: 400.

Counters (for 07-semaphore's tests: how much concurrency a client really
produced, and how many connections it opened):
    in_flight       requests being handled now: one is counted from the moment
                    its handling starts (the request line and headers read)
                    until just before the last write of its response, so a
                    client can never have seen a response whose request is
                    still counted (a client's own count of requests in flight
                    is never below the server's)
    max_in_flight   the highest in_flight since the start or the last reset
    requests        requests received (counted when their handling starts,
                    answered or not)
    connections     TCP connections that carried at least one counted request
                    (a connection used only for /stats, or closed without a
                    request, as a port probe is, is not counted)
    GET /stats          200 application/json {"in_flight": n,
                        "max_in_flight": m, "requests": r, "connections": c};
                        not counted itself in any of them
    GET /stats/reset    zero max_in_flight, requests and connections (not
                        in_flight: requests still being handled stay counted,
                        and max_in_flight restarts from it); 200 with the
                        counters as they were before the reset
"""

import argparse
import http
import json
import re
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

CHUNK = 64 * 1024
MAX_BYTES = 1 << 30
MAX_DELAY_MS = 600_000
# byte i depends only on i % 65536, so one precomputed 64 KiB block serves
# every chunk of /bytes/N (chunks always start at a multiple of 64 KiB).
BLOCK = bytes((i * 7 + (i >> 8)) & 0xFF for i in range(CHUNK))


def pattern_chunks(n):
    """Yield the first n bytes of the /bytes pattern, 64 KiB at a time."""
    while n > 0:
        yield BLOCK[:min(n, CHUNK)]
        n -= CHUNK


class Stats:
    """The counters behind /stats (see the module docstring), thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()         # protects every field below
        self.in_flight = 0                   # requests between start and end
        self.max_in_flight = 0               # high-water mark of in_flight
        self.requests = 0                    # requests started
        self.connections = 0                 # connections with a counted request

    def start(self, new_connection):
        """A counted request starts (on a connection not yet counted if
        new_connection)."""
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.requests += 1
            if new_connection:
                self.connections += 1

    def end(self):
        with self.lock:
            self.in_flight -= 1

    def snapshot(self):
        with self.lock:
            return self.snapshot_locked()

    def snapshot_locked(self):
        """The counters as a dict (the caller holds the lock)."""
        return {"in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
                "requests": self.requests,
                "connections": self.connections}

    def reset(self):
        """Zero the counters (max_in_flight restarts from in_flight); return
        them as they were."""
        with self.lock:
            before = self.snapshot_locked()
            self.max_in_flight = self.in_flight
            self.requests = 0
            self.connections = 0
            return before


STATS = Stats()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are separate writes: without TCP_NODELAY, Nagle's
    # algorithm would hold the second one until the client's (delayed) ACK.
    disable_nagle_algorithm = True
    quiet = False

    ROUTES = [
        (re.compile(r"/status/(\d+)"), "status"),
        (re.compile(r"/delay/(\d+)"), "delay"),
        (re.compile(r"/bytes/(\d+)"), "bytes"),
        (re.compile(r"/chunked/(\d+)/(\d+)"), "chunked"),
        (re.compile(r"/never"), "never"),
        (re.compile(r"/redirect/(\d+)"), "redirect"),
        (re.compile(r"/headers-then-stall/(\d+)"), "stall"),
    ]

    def setup(self):
        super().setup()
        self.counted_connection = False      # has it carried a counted request?
        self.counted = False                 # is the current request in_flight?

    def do_GET(self):
        path, _, query = self.path.partition("?")
        if path == "/stats":
            return self.reply_json(STATS.snapshot())
        if path == "/stats/reset":
            return self.reply_json(STATS.reset())
        STATS.start(not self.counted_connection)
        self.counted_connection = True
        self.counted = True
        try:
            self.route(path, query)
        finally:
            self.uncount()                   # if the route did not already

    def route(self, path, query):
        delays = parse_qs(query).get("delay")
        if delays is not None:
            ms = delays[-1]
            if not (ms.isdigit() and int(ms) <= MAX_DELAY_MS):
                return self.reply(400, f"delay must be 0..{MAX_DELAY_MS} ms\n")
            time.sleep(int(ms) / 1000)
        for regex, name in self.ROUTES:
            m = regex.fullmatch(path)
            if m:
                return getattr(self, "route_" + name)(*map(int, m.groups()))
        self.reply(404, f"not found: {self.path}\n")

    def uncount(self):
        """The current request is no longer in flight (once per request)."""
        if self.counted:
            self.counted = False
            STATS.end()

    def last_write(self, data):
        """Write the last bytes of a response, uncounting the request first:
        once the client has them, the request must not be counted."""
        self.uncount()
        self.wfile.write(data)

    # --- helpers ---------------------------------------------------------

    def reply(self, code, body, headers=()):
        """Send a complete response with an accurate Content-Length."""
        data = body.encode()
        try:
            reason = http.HTTPStatus(code).phrase
        except ValueError:
            reason = "Unknown"
        self.send_response(code, reason)
        for name, value in headers:
            self.send_header(name, value)
        if code not in (204, 304):          # these must not carry a length
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
        if not data:                         # the headers end the response
            self.uncount()
        self.end_headers()
        self.last_write(data)

    def reply_json(self, obj):
        data = (json.dumps(obj) + "\n").encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_request(self, code="-", size="-"):
        # A malformed request (send_error before parsing) has no command or
        # path yet.
        command = getattr(self, "command", None) or "-"
        path = getattr(self, "path", None) or "-"
        self.log(f"{command} {path} {int(code)}")

    def log_message(self, format, *args):   # errors from http.server itself
        self.log(format % args)

    def log(self, line):
        if not self.quiet:
            try:                             # one write: no interleaving
                sys.stderr.write(line + "\n")
                sys.stderr.flush()
            except OSError:                  # stderr closed: keep serving
                pass

    # --- routes ----------------------------------------------------------

    def route_status(self, code):
        if not 200 <= code <= 599:
            return self.reply(404, f"not found: {self.path}\n")
        body = "" if code in (204, 205, 304) else f"status {code}\n"
        self.reply(code, body)

    def route_delay(self, ms):
        time.sleep(ms / 1000)
        self.reply(200, f"delayed {ms} ms\n")

    def route_bytes(self, n):
        if n > MAX_BYTES:
            return self.reply(400, f"at most {MAX_BYTES} bytes\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(n))
        if n == 0:                           # the headers end the response
            self.uncount()
        self.end_headers()
        chunks = pattern_chunks(n)
        chunk = next(chunks, None)
        for following in chunks:             # every chunk but the last
            self.wfile.write(chunk)
            chunk = following
        if chunk is not None:
            self.last_write(chunk)

    def route_chunked(self, count, ms):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()                   # headers go out now
        for i in range(count):
            time.sleep(ms / 1000)
            data = f"chunk {i}\n".encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.last_write(b"0\r\n\r\n")

    def route_never(self):
        self.close_connection = True
        while self.connection.recv(4096):    # b"" once the client closes
            pass
        self.log(f"{self.command} {self.path} - (client closed)")

    def route_redirect(self, n):
        if n == 0:
            return self.reply(200, "redirected\n")
        target = f"/redirect/{n - 1}"
        self.reply(302, f"redirect to {target}\n", [("Location", target)])

    def route_stall(self, ms):
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "10")
        self.end_headers()
        self.wfile.write(b"hello")
        time.sleep(ms / 1000)
        self.last_write(b"world")


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False                   # never wait for handlers on exit
    request_queue_size = 128

    def handle_error(self, request, client_address):
        # A client that goes away mid-response is normal here: stay quiet.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


def print_bytes(n):
    out = sys.stdout.buffer
    try:
        for chunk in pattern_chunks(n):
            out.write(chunk)
        out.flush()
    except BrokenPipeError:                  # e.g. piped into `head -c`
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bind", default="127.0.0.1", help="address (127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (0 = any free)")
    parser.add_argument("--quiet", action="store_true", help="no request log")
    parser.add_argument("--print-bytes", type=int, metavar="N",
                        help="write the body of /bytes/N to stdout and exit")
    args = parser.parse_args()

    if args.print_bytes is not None:
        print_bytes(args.print_bytes)
        return 0

    Handler.quiet = args.quiet
    try:
        server = Server((args.bind, args.port), Handler)
    except OSError as e:                     # e.g. port already in use
        sys.exit(f"httpd.py: cannot listen on {args.bind}:{args.port}: {e}")

    def stop(signum, frame):
        # shutdown() waits for serve_forever() to return, and serve_forever()
        # runs in this (the main) thread: so call it from another thread.
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)

    host, port = server.server_address[:2]
    print(f"listening on {host}:{port}", flush=True)
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
