#!/usr/bin/env bash
# e2e_npm.sh: end-to-end test of the npm package that scripts/snapshot.sh
# staged into dist/npm/. Run scripts/snapshot.sh first.
#
# It installs the tarball with `npm install -g` into a temporary prefix
# (offline: the package has no dependencies), then, once through the
# installed `codex-responses-api-proxy` command (this machine's Node) and
# once through its launcher under Node 16 (scripts/node16.sh):
#   - `--version` prints the package version, so the stamped version and the
#     npm version agree;
#   - a random key piped on stdin, --server-info, --http-shutdown and
#     --upstream-url pointing at a fake upstream on 127.0.0.1;
#   - a streamed POST /v1/responses: the upstream checks the bearer and the
#     body, sends its first SSE event and sends the rest only once the client
#     has received that one, so buffering in the proxy or the launcher fails;
#   - `curl --fail .../shutdown`, exit status 0, and the key in none of the
#     proxy's stdout, stderr or server-info file.
set -euo pipefail
cd "$(dirname "$0")/.."

die() {
	echo "e2e_npm: error: $*" >&2
	exit 1
}

shopt -s nullglob
tarballs=(dist/npm/*.tgz)
((${#tarballs[@]} == 1)) || die "want exactly one dist/npm/*.tgz, found ${#tarballs[@]}: run scripts/snapshot.sh first"

node16=$(scripts/node16.sh)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/e2e_npm.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

echo "e2e_npm: npm install -g ${tarballs[0]}" >&2
npm install --global --prefix "$tmp/prefix" --offline --no-audit --no-fund --loglevel=error "$PWD/${tarballs[0]}" >&2
pkg=$tmp/prefix/lib/node_modules/@openai/codex-responses-api-proxy
[[ -x $tmp/prefix/bin/codex-responses-api-proxy ]] || die "npm install did not create bin/codex-responses-api-proxy"

run() {
	echo "e2e_npm: $1" >&2
	shift
	python3 - "$pkg/package.json" "$tmp" "$@" <<'EOF'
import http.client
import http.server
import json
import os
import secrets
import subprocess
import sys
import threading
import time

package_json, tmp, cmd = sys.argv[1], sys.argv[2], sys.argv[3:]
WAIT = 10  # seconds, for every single wait below
EVENTS = [
    b'event: response.created\ndata: {"type":"response.created"}\n\n',
    b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","delta":"hi"}\n\n',
    b'event: response.completed\ndata: {"type":"response.completed"}\n\n',
]
BODY = json.dumps({"model": "gpt-5", "stream": True, "input": "say hi"}).encode()


key = "sk-e2e-" + secrets.token_urlsafe(24)


def fail(msg):
    """Exit with msg, after the tail of the proxy's stderr (key redacted)."""
    stderr = os.path.join(tmp, "stderr")
    if os.path.exists(stderr):
        with open(stderr, "rb") as f:
            tail = f.read()[-2000:].replace(key.encode(), b"<KEY>").decode(errors="replace")
        sys.stderr.write(f"e2e_npm: the proxy's stderr:\n{tail}")
    sys.exit(f"e2e_npm: error: {msg}")


with open(package_json, encoding="utf-8") as f:
    version = json.load(f)["version"]
out = subprocess.run(cmd + ["--version"], capture_output=True, timeout=WAIT, stdin=subprocess.DEVNULL)
if out.returncode != 0 or version not in (out.stdout + out.stderr).decode(errors="replace"):
    fail(f"--version: exit {out.returncode}, output {(out.stdout + out.stderr)[:200]!r}, want {version!r}")

first_event_seen = threading.Event()
upstream_errors = []


class Upstream(http.server.BaseHTTPRequestHandler):
    """Fake Responses API: checks the request, streams EVENTS chunked."""

    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_POST(self):
        try:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                body = self.read_chunked()
            problems = []
            if self.path != "/v1/responses":
                problems.append(f"path {self.path!r}")
            if self.headers.get("Authorization") != f"Bearer {key}":
                problems.append("Authorization is not Bearer <key>")
            if body != BODY:
                problems.append(f"body {body[:100]!r}")
            if problems:
                upstream_errors.extend(problems)
                self.send_response(400)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i, event in enumerate(EVENTS):
                if i == 1 and not first_event_seen.wait(WAIT):
                    upstream_errors.append("the client did not get the first event before the upstream sent the next")
                self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError as e:
            upstream_errors.append(f"upstream: {e}")

    def read_chunked(self):
        data = b""
        while size := int(self.rfile.readline().split(b";")[0], 16):
            data += self.rfile.read(size)
            self.rfile.readline()
        self.rfile.readline()
        return data


upstream = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
threading.Thread(target=upstream.serve_forever, daemon=True).start()

info = os.path.join(tmp, "info.json")
stdout_path, stderr_path = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
for path in (info, stdout_path, stderr_path):
    if os.path.exists(path):
        os.remove(path)
with open(stdout_path, "wb") as so, open(stderr_path, "wb") as se:
    proc = subprocess.Popen(
        cmd + ["--http-shutdown", "--server-info", info,
               "--upstream-url", f"http://127.0.0.1:{upstream.server_port}/v1/responses"],
        stdin=subprocess.PIPE, stdout=so, stderr=se)
try:
    proc.stdin.write(key.encode() + b"\n")
    proc.stdin.close()
    deadline = time.monotonic() + WAIT
    while not (os.path.exists(info) and os.path.getsize(info) > 0):
        if proc.poll() is not None:
            fail(f"the proxy exited with {proc.returncode} before writing {info}")
        if time.monotonic() > deadline:
            fail(f"no server-info file after {WAIT}s")
        time.sleep(0.02)
    with open(info, "rb") as f:
        raw_info = f.read()
    port = json.loads(raw_info)["port"]

    # Longer than the upstream's wait, so that a proxy that buffers gets
    # reported as such rather than as a client timeout.
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2 * WAIT)
    conn.request("POST", "/v1/responses", body=BODY,
                 headers={"Content-Type": "application/json", "Accept": "text/event-stream"})
    resp = conn.getresponse()
    if resp.status != 200:
        fail(f"POST /v1/responses: status {resp.status}, upstream saw: {upstream_errors}")
    got = b""
    while chunk := resp.read1(65536):
        got += chunk
        if got.startswith(EVENTS[0]):
            first_event_seen.set()
    conn.close()
    if upstream_errors:
        fail(f"upstream: {upstream_errors}")
    if got != b"".join(EVENTS):
        fail(f"streamed body {got[:300]!r}, want the {len(EVENTS)} events")

    shutdown = subprocess.run(
        ["curl", "--fail", "--silent", "--show-error", "--max-time", str(WAIT),
         f"http://127.0.0.1:{port}/shutdown"],
        stdin=subprocess.DEVNULL, capture_output=True, timeout=WAIT + 5)
    if shutdown.returncode != 0:
        fail(f"curl --fail /shutdown: exit {shutdown.returncode}: {shutdown.stderr.decode(errors='replace').strip()}")
    try:
        code = proc.wait(WAIT)
    except subprocess.TimeoutExpired:
        fail(f"the proxy still runs {WAIT}s after /shutdown")
    if code != 0:
        fail(f"the proxy exited with {code} after /shutdown, want 0")
finally:
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    upstream.shutdown()

for name, path in (("stdout", stdout_path), ("stderr", stderr_path), ("server-info", info)):
    with open(path, "rb") as f:
        if key.encode() in f.read():
            fail(f"the key appears in the proxy's {name}")
print(f"e2e_npm: ok: {len(EVENTS)} events streamed, shutdown exit 0, key in no output", file=sys.stderr)
EOF
}

run "installed command, $(node --version)" "$tmp/prefix/bin/codex-responses-api-proxy"
run "launcher under Node $("$node16" --version)" "$node16" "$pkg/bin/codex-responses-api-proxy.js"
echo "e2e_npm: passed" >&2
