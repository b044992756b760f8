// Tests for bin/codex-responses-api-proxy.js. Each test copies the launcher
// and package.json into a temporary package whose vendor/ holds a fake
// binary: a /bin/sh script whose first argument picks what it does. The
// launcher runs under the Node that runs the tests, so
//   node --test npm/test/launcher.test.mjs
//   "$(scripts/node16.sh)" --test npm/test/launcher.test.mjs
// cover both the current Node and the oldest one package.json accepts.
// POSIX only: the fake binary is a shell script.

import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import test from "node:test";
import { fileURLToPath } from "node:url";

const npmDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");
const launcherSource = path.join(npmDir, "bin", "codex-responses-api-proxy.js");
const NAME = "codex-responses-api-proxy";
const WAIT_MS = 10000;
const KEY = "sk-abc\n"; // a fake key; the fake binary reports only its checksum

// Every temp dir lives under scratch, removed when this test process exits.
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "launcher-test-"));
process.on("exit", () => fs.rmSync(scratch, { recursive: true, force: true }));

// FAKE_BINARY stands in for the Go proxy. "trap" mode announces "ready" only
// after its traps are set, so the test knows when signalling is meaningful.
const FAKE_BINARY = `#!/bin/sh
case "$1" in
  args) shift; for a in "$@"; do printf '%s\\n' "$a"; done ;;
  stdin) cksum ;;
  exit) exit "$2" ;;
  trap)
    trap 'exit 43' TERM
    trap 'exit 44' INT
    trap 'exit 45' HUP
    echo ready
    # Short foreground sleeps: the shell runs a trap once the current one
    # ends. (A single "wait" can miss a signal that came just before it.)
    i=0
    while [ "$i" -lt 200 ]; do sleep 0.1; i=$((i + 1)); done
    exit 99 ;;
  die) kill -"$2" $$; sleep 5; exit 98 ;;
  *) echo "fake binary: unknown mode $1" >&2; exit 97 ;;
esac
`;

// TARGETS is the launcher's own table, read from its source so the test
// follows it instead of repeating it.
const TARGETS = Object.fromEntries(
  [...fs.readFileSync(launcherSource, "utf8").matchAll(/^\s*"([a-z0-9]+ [a-z0-9]+)": "([a-z0-9_-]+)",$/gm)].map(
    ([, platform, triple]) => [platform, triple],
  ),
);
const HOST = `${process.platform} ${process.arch}`;

// makePackage lays out a package like the published one in a fresh temp dir,
// with the fake binary where the launcher looks for it on platform.
// binaryMode is the fake binary's file mode, or null for no binary at all.
function makePackage({ binaryMode = 0o755, platform = HOST } = {}) {
  const root = fs.mkdtempSync(path.join(scratch, "package-"));
  fs.mkdirSync(path.join(root, "bin"));
  fs.copyFileSync(path.join(npmDir, "package.json"), path.join(root, "package.json"));
  fs.copyFileSync(launcherSource, path.join(root, "bin", `${NAME}.js`));
  const exe = platform.startsWith("win32 ") ? ".exe" : "";
  const binary = path.join(root, "vendor", TARGETS[platform], NAME, NAME + exe);
  if (binaryMode !== null) {
    fs.mkdirSync(path.dirname(binary), { recursive: true });
    fs.writeFileSync(binary, FAKE_BINARY, { mode: binaryMode });
    fs.chmodSync(binary, binaryMode); // the umask must not decide the test
  }
  return { root, launcher: path.join(root, "bin", `${NAME}.js`), binary };
}

// pretend returns node arguments that make the launcher see platform as
// process.platform: a CommonJS preload, which Node 16 supports too.
function pretend(root, platform) {
  const preload = path.join(root, `${platform}.cjs`);
  fs.writeFileSync(preload, `Object.defineProperty(process, "platform", { value: ${JSON.stringify(platform)} });\n`);
  return ["--require", preload];
}

// start runs the launcher with piped stdio under this test's Node.
function start(launcher, args, { nodeArgs = [] } = {}) {
  const child = spawn(process.execPath, [...nodeArgs, launcher, ...args], {
    stdio: ["pipe", "pipe", "pipe"],
  });
  child.stdout.setEncoding("utf8");
  child.stderr.setEncoding("utf8");
  child.out = "";
  child.err = "";
  child.stdout.on("data", (s) => (child.out += s));
  child.stderr.on("data", (s) => (child.err += s));
  return child;
}

// within resolves with what promise gives, or kills child and rejects after WAIT_MS.
function within(child, what, promise) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`timed out after ${WAIT_MS} ms waiting for ${what}; stderr: ${child.err}`));
    }, WAIT_MS);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// exited resolves with the launcher's exit code or signal and its output.
function exited(child) {
  return within(
    child,
    "exit",
    new Promise((resolve) => {
      child.on("close", (code, signal) => resolve({ code, signal, stdout: child.out, stderr: child.err }));
    }),
  );
}

// printed resolves once the launcher's stdout contains text.
function printed(child, text) {
  return within(
    child,
    `${JSON.stringify(text)} on stdout`,
    new Promise((resolve, reject) => {
      const check = () => {
        if (child.out.includes(text)) {
          resolve();
        }
      };
      child.stdout.on("data", check);
      child.on("close", () => reject(new Error(`exited before printing ${JSON.stringify(text)}; stderr: ${child.err}`)));
      check();
    }),
  );
}

// run runs the launcher to completion with input on its stdin.
async function run(launcher, args, { input = "", nodeArgs } = {}) {
  const child = start(launcher, args, { nodeArgs });
  child.stdin.end(input);
  return exited(child);
}

test("arguments reach the binary unchanged", async () => {
  const { launcher } = makePackage();
  const args = ["--port", "0", "two words", `it's "quoted"`, "", "--x=a b", "$HOME", "*", "ünï"];
  const got = await run(launcher, ["args", ...args]);
  assert.equal(got.stderr, "");
  assert.equal(got.code, 0);
  assert.deepEqual(got.stdout.split("\n").slice(0, -1), args);
});

test("stdin reaches the binary byte for byte", async () => {
  const { launcher } = makePackage();
  const want = spawnSync("cksum", { input: KEY, encoding: "utf8" }).stdout;
  const got = await run(launcher, ["stdin"], { input: KEY });
  assert.equal(got.code, 0);
  assert.equal(got.stdout, want);
  assert.ok(!got.stdout.includes(KEY.trim()) && !got.stderr.includes(KEY.trim()));
});

test("exit codes are mirrored", async (t) => {
  const { launcher } = makePackage();
  for (const code of [0, 3, 42]) {
    await t.test(`exit ${code}`, async () => {
      const got = await run(launcher, ["exit", String(code)]);
      assert.equal(got.signal, null);
      assert.equal(got.code, code);
    });
  }
});

test("signals are forwarded to the binary", async (t) => {
  const { launcher } = makePackage();
  for (const [signal, code] of [["SIGTERM", 43], ["SIGINT", 44], ["SIGHUP", 45]]) {
    await t.test(signal, async () => {
      const child = start(launcher, ["trap"]);
      await printed(child, "ready\n");
      child.kill(signal); // the launcher only; the binary hears it from the launcher
      const got = await exited(child);
      assert.equal(got.signal, null);
      assert.equal(got.code, code);
    });
  }
});

test("a binary killed by a signal takes the launcher with it", async () => {
  const { launcher } = makePackage();
  const got = await run(launcher, ["die", "TERM"]);
  assert.equal(got.signal, "SIGTERM");
  assert.equal(got.code, null);
});

test("a signal Node ignores becomes exit code 128+n", async () => {
  const { launcher } = makePackage();
  const got = await run(launcher, ["die", "PIPE"]);
  assert.equal(got.signal, null);
  assert.equal(got.code, 128 + os.constants.signals.SIGPIPE);
});

test("unsupported platform is named with the supported ones", async () => {
  const { root, launcher } = makePackage();
  const got = await run(launcher, ["args"], { nodeArgs: pretend(root, "freebsd") });
  assert.equal(got.code, 1);
  assert.equal(got.stdout, "");
  assert.match(got.stderr, new RegExp(`^${NAME}: error: unsupported platform "freebsd ${process.arch}"\n`));
  assert.match(got.stderr, /supported platforms: linux x64, linux arm64, .*darwin arm64, .*win32 x64/);
});

test("android runs the linux binary", async () => {
  const platform = `android ${process.arch}`;
  assert.equal(TARGETS[platform], TARGETS[`linux ${process.arch}`]);
  const { root, launcher } = makePackage({ platform });
  const got = await run(launcher, ["args", "ok"], { nodeArgs: pretend(root, "android") });
  assert.equal(got.stderr, "");
  assert.equal(got.code, 0);
  assert.equal(got.stdout, "ok\n");
});

test("windows looks for the .exe", async () => {
  const platform = `win32 ${process.arch}`;
  const { root, launcher, binary } = makePackage({ platform, binaryMode: null });
  assert.ok(binary.endsWith(`${path.sep}${TARGETS[platform]}${path.sep}${NAME}${path.sep}${NAME}.exe`));
  const got = await run(launcher, ["args"], { nodeArgs: pretend(root, "win32") });
  assert.equal(got.code, 1);
  assert.ok(got.stderr.startsWith(`${NAME}: error: no binary for platform "${platform}" at ${binary}\n`), got.stderr);
});

test("missing binary names the platform, the path and the fix", async () => {
  const { launcher, binary } = makePackage({ binaryMode: null });
  const got = await run(launcher, ["args"]);
  assert.equal(got.code, 1);
  assert.equal(got.stdout, "");
  assert.ok(
    got.stderr.startsWith(`${NAME}: error: no binary for platform "${HOST}" at ${binary}\n`),
    `got ${JSON.stringify(got.stderr)}`,
  );
  assert.match(got.stderr, /hint: reinstall @openai\/codex-responses-api-proxy/);
  assert.match(got.stderr, /build it from source/);
});

test("a binary that cannot be executed is a clear error", async () => {
  const { launcher, binary } = makePackage({ binaryMode: 0o644 });
  const got = await run(launcher, ["args"]);
  assert.equal(got.code, 1);
  assert.ok(got.stderr.startsWith(`${NAME}: error: cannot start ${binary}: `), `got ${JSON.stringify(got.stderr)}`);
  assert.match(got.stderr, /EACCES/);
});

test("the packed and installed package runs its binary", async () => {
  const { root } = makePackage();
  const work = fs.mkdtempSync(path.join(scratch, "install-"));
  const npm = (...args) =>
    execFileSync("npm", [...args, "--offline", "--no-audit", "--no-fund", "--loglevel=error"], {
      cwd: work,
      encoding: "utf8",
      timeout: WAIT_MS * 6,
    });
  const tarball = npm("pack", root, "--pack-destination", work).trim().split("\n").pop();
  npm("install", "--prefix", work, path.join(work, tarball));
  // Run the installed bin symlink with this test's Node, as npx would with its own.
  const installed = path.join(work, "node_modules", ".bin", NAME);
  const want = spawnSync("cksum", { input: KEY, encoding: "utf8" }).stdout;
  const got = await run(installed, ["stdin"], { input: KEY });
  assert.equal(got.stderr, "");
  assert.equal(got.code, 0);
  assert.equal(got.stdout, want);
});
