"""End-to-end smoke test of one proxy command, through the real binary.

    python3 scripts/platforms/smoke.py [--version V] [--windows] [--own-pid] [--sigterm] -- CMD...

CMD starts the proxy, possibly through an emulator or a launcher
(qemu-aarch64-static BIN, wine64 BIN.exe, wine64 node.exe launcher.js, the
npm package's command). scripts/platforms.sh and scripts/e2e_npm.sh use it.
The test, every wait bounded:
  - with --version, `CMD --version` prints V;
  - pipes a random key on stdin and passes --http-shutdown, --server-info
    (a Windows path with --windows, as wine maps Z: to /) and --upstream-url
    pointing at a fake upstream on 127.0.0.1;
  - reads the server-info file: exactly {"port":N,"pid":N} and a newline,
    and with --own-pid the pid is CMD's own (qemu-user runs the guest in its
    own process; a launcher's child has another);
  - streams POST /v1/responses: the upstream checks the bearer and the body
    and sends each SSE event only once the client has received the one
    before, so any buffering in the proxy or a launcher fails the test;
  - GET /v1/models gets 403, and so does POST /v1/responses sent the way a
    page on another loopback port makes a browser send it (Origin,
    Sec-Fetch-Site: same-site); neither reaches the upstream;
  - `curl --fail .../shutdown` exits 0 and so does the proxy;
  - with --sigterm, a second proxy is started and stopped with SIGTERM, and
    must exit 0;
  - the key appears in none of the proxy's stdout, stderr, server-info file,
    nor in any byte the client received.
Standard library only. Exits 1 with "smoke: error: ..." on the first failure.
"""

import argparse
import http.client
import http.server
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time

EVENTS = [
    b'event: response.created\ndata: {"type":"response.created"}\n\n',
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"hi"}\n\n',
    b'event: response.completed\ndata: {"type":"response.completed"}\n\n',
]
BODY = json.dumps({"model": "gpt-5", "stream": True, "input": "say hi"}).encode()
SERVER_INFO = re.compile(rb'\{"port":([1-9][0-9]*),"pid":([1-9][0-9]*)\}\n')


class Failure(Exception):
    """A check failed; the message says which and why."""


class Upstream(http.server.ThreadingHTTPServer):
    """Fake Responses API on 127.0.0.1 that streams EVENTS one at a time."""

    daemon_threads = True

    def __init__(self, key: str, wait: float) -> None:
        super().__init__(("127.0.0.1", 0), UpstreamHandler)
        self.key = key
        self.wait = wait
        self.requests = 0
        self.errors: list[str] = []
        self.seen = [threading.Event() for _ in EVENTS]  # the client got event i


class UpstreamHandler(http.server.BaseHTTPRequestHandler):
    """Checks one forwarded request and answers it with EVENTS, chunked."""

    protocol_version = "HTTP/1.1"
    server: Upstream

    def log_message(self, *args: object) -> None:
        """Keeps the test's output to its own lines."""

    def do_POST(self) -> None:
        """Answers a well-formed forwarded request with the SSE stream."""
        up = self.server
        up.requests += 1
        try:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = self.read_chunked()
            else:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            problems = []
            if self.path != "/v1/responses":
                problems.append(f"path {self.path!r}")
            if self.headers.get("Authorization") != f"Bearer {up.key}":
                problems.append("Authorization is not Bearer <key>")
            if body != BODY:
                problems.append(f"body {body[:100]!r}")
            if problems:
                up.errors.extend(problems)
                self.send_response(400)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i, event in enumerate(EVENTS):
                if i > 0 and not up.seen[i - 1].wait(up.wait):
                    up.errors.append(f"the client did not get event {i} before the upstream sent event {i + 1}")
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError as e:
            up.errors.append(f"upstream: {e}")

    def read_chunked(self) -> bytes:
        """Reads a chunked request body."""
        data = b""
        while size := int(self.rfile.readline().split(b";")[0], 16):
            data += self.rfile.read(size)
            self.rfile.readline()
        self.rfile.readline()
        return data


class Proxy:
    """One proxy process started by CMD, its output going to files in tmp."""

    def __init__(self, cmd: list[str], tmp: str, name: str, key: str, windows: bool, upstream_port: int) -> None:
        self.tmp, self.key = tmp, key
        self.info = os.path.join(tmp, f"{name}-info.json")
        self.stdout = os.path.join(tmp, f"{name}-stdout")
        self.stderr = os.path.join(tmp, f"{name}-stderr")
        # wine maps drive Z: to the Unix root.
        info_arg = "Z:" + self.info.replace("/", "\\") if windows else self.info
        with open(self.stdout, "wb") as so, open(self.stderr, "wb") as se:
            self.proc = subprocess.Popen(
                cmd + ["--http-shutdown", "--server-info", info_arg,
                       "--upstream-url", f"http://127.0.0.1:{upstream_port}/v1/responses"],
                stdin=subprocess.PIPE, stdout=so, stderr=se)
        try:
            self.proc.stdin.write(key.encode() + b"\n")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass  # it exited at once; server_info reports how

    def server_info(self, wait: float) -> tuple[int, int, bytes]:
        """Waits for the server-info file; returns its port, pid and bytes."""
        deadline = time.monotonic() + wait
        while not (os.path.exists(self.info) and os.path.getsize(self.info) > 0):
            if self.proc.poll() is not None:
                raise Failure(f"the proxy exited with {self.proc.returncode} before writing its server-info file")
            if time.monotonic() > deadline:
                raise Failure(f"no server-info file after {wait}s")
            time.sleep(0.05)
        with open(self.info, "rb") as f:
            raw = f.read()
        m = SERVER_INFO.fullmatch(raw)
        if not m:
            raise Failure(f"server-info file holds {raw[:200]!r}, want {{\"port\":N,\"pid\":N}} and a newline")
        return int(m[1]), int(m[2]), raw

    def wait(self, wait: float, how: str) -> None:
        """Waits for the proxy to exit after how, and wants status 0."""
        try:
            code = self.proc.wait(wait)
        except subprocess.TimeoutExpired:
            raise Failure(f"the proxy still runs {wait}s after {how}") from None
        if code != 0:
            raise Failure(f"the proxy exited with {code} after {how}, want 0")

    def stop(self) -> None:
        """Kills the proxy by its PID if it still runs."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stderr_tail(self) -> str:
        """The end of the proxy's stderr, the key redacted."""
        try:
            with open(self.stderr, "rb") as f:
                tail = f.read()[-2000:]
        except OSError:
            return ""
        return tail.replace(self.key.encode(), b"<KEY>").decode(errors="replace")


def expect_403(port: int, wait: float, method: str, path: str, headers: dict[str, str], body: bytes | None) -> bytes:
    """Sends one request and wants a 403; returns every byte received."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=wait)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    if resp.status != 403:
        raise Failure(f"{method} {path} {headers}: status {resp.status}, want 403")
    return data


def stream(port: int, up: Upstream, wait: float) -> bytes:
    """POSTs BODY and checks that EVENTS arrive one by one; returns them."""
    # Longer than the upstream's wait, so that buffering is reported as such
    # rather than as a client timeout.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2 * wait)
    try:
        conn.request("POST", "/v1/responses", body=BODY,
                     headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
        resp = conn.getresponse()
        if resp.status != 200:
            raise Failure(f"POST /v1/responses: status {resp.status}, upstream saw: {up.errors}")
        got = b""
        while chunk := resp.read1(65536):
            got += chunk
            for i in range(len(EVENTS)):
                if got.startswith(b"".join(EVENTS[:i + 1])):
                    up.seen[i].set()
    finally:
        conn.close()
    if up.errors:
        raise Failure(f"upstream: {up.errors}")
    if got != b"".join(EVENTS):
        raise Failure(f"streamed body {got[:300]!r}, want the {len(EVENTS)} events")
    return got


def check_version(cmd: list[str], version: str, wait: float) -> None:
    """Wants `CMD --version` to exit 0 and print version."""
    out = subprocess.run(cmd + ["--version"], capture_output=True, timeout=wait, stdin=subprocess.DEVNULL)
    printed = (out.stdout + out.stderr).decode(errors="replace")
    if out.returncode != 0 or version not in printed:
        raise Failure(f"--version: exit {out.returncode}, output {printed[:200]!r}, want {version!r}")


def smoke(cmd: list[str], windows: bool, own_pid: bool, sigterm: bool, wait: float, tmp: str) -> str:
    """Runs every check against CMD; returns a one-line summary."""
    key = "sk-smoke-" + secrets.token_urlsafe(24)
    up = Upstream(key, wait)
    threading.Thread(target=up.serve_forever, daemon=True).start()
    procs = []
    try:
        p = Proxy(cmd, tmp, "shutdown", key, windows, up.server_port)
        procs.append(p)
        port, pid, raw = p.server_info(wait)
        if own_pid and pid != p.proc.pid:
            raise Failure(f"server-info pid {pid}, want the proxy's {p.proc.pid}")
        received = [raw, stream(port, up, wait)]
        before = up.requests
        received.append(expect_403(port, wait, "GET", "/v1/models", {}, None))
        received.append(expect_403(port, wait, "POST", "/v1/responses", {
            "Content-Type": "application/json",
            "Origin": "http://127.0.0.1:8000",
            "Sec-Fetch-Site": "same-site",
            "Sec-Fetch-Mode": "cors",
        }, BODY))
        if up.requests != before:
            raise Failure(f"{up.requests - before} refused request(s) reached the upstream")
        shutdown = subprocess.run(
            ["curl", "--fail", "--silent", "--show-error", "--max-time", str(wait),
             f"http://127.0.0.1:{port}/shutdown"],
            stdin=subprocess.DEVNULL, capture_output=True, timeout=wait + 5)
        if shutdown.returncode != 0:
            raise Failure(f"curl --fail /shutdown: exit {shutdown.returncode}: {shutdown.stderr.decode(errors='replace').strip()}")
        received.append(shutdown.stdout)
        p.wait(wait, "/shutdown")
        done = "shutdown exit 0"

        if sigterm:
            p = Proxy(cmd, tmp, "sigterm", key, windows, up.server_port)
            procs.append(p)
            p.server_info(wait)
            p.proc.send_signal(signal.SIGTERM)
            p.wait(wait, "SIGTERM")
            done += ", SIGTERM exit 0"

        for p in procs:
            for name, path in (("stdout", p.stdout), ("stderr", p.stderr), ("server-info file", p.info)):
                with open(path, "rb") as f:
                    if key.encode() in f.read():
                        raise Failure(f"the key appears in the proxy's {name}")
        if any(key.encode() in r for r in received):
            raise Failure("the key appears in a response")
        return f"{len(EVENTS)} events streamed one by one, 403 twice, {done}, key in no output"
    except Failure:
        for p in procs:
            if tail := p.stderr_tail():
                sys.stderr.write(f"smoke: the proxy's stderr:\n{tail}")
        raise
    finally:
        for p in procs:
            p.stop()
        up.shutdown()
        up.server_close()


def main(argv: list[str] | None = None) -> int:
    """Parses the arguments, runs the smoke test and reports its outcome."""
    parser = argparse.ArgumentParser(prog="smoke", description=__doc__.split("\n\n")[0])
    parser.add_argument("--version", help="what CMD --version must print")
    parser.add_argument("--windows", action="store_true", help="CMD is a Windows program under wine")
    parser.add_argument("--own-pid", action="store_true", help="the server-info pid must be CMD's own")
    parser.add_argument("--sigterm", action="store_true", help="also check that SIGTERM stops it with status 0")
    parser.add_argument("--wait", type=float, default=30, help="bound of every wait, in seconds")
    parser.add_argument("cmd", nargs="+", help="the command that starts the proxy")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="smoke.") as tmp:
        try:
            if args.version is not None:
                check_version(args.cmd, args.version, args.wait)
            summary = smoke(args.cmd, args.windows, args.own_pid, args.sigterm, args.wait, tmp)
        except Failure as e:
            print(f"smoke: error: {e}", file=sys.stderr)
            return 1
    print(f"smoke: ok: {summary}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
