#!/usr/bin/env node
// Launcher for the codex-responses-api-proxy binary shipped in this package.
//
// House rules: no dependencies, no network, no install scripts, Node >= 16.
// The API key arrives on stdin, which the binary inherits: the key never
// passes through JavaScript. User-facing output goes to stderr, prefixed
// "codex-responses-api-proxy: error:" or "codex-responses-api-proxy: hint:".

import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { constants } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const NAME = "codex-responses-api-proxy";
const PACKAGE = "@openai/codex-responses-api-proxy";

// TARGETS maps `${process.platform} ${process.arch}` to the target triple
// whose binary sits under vendor/. The Go binaries are static, so the musl
// triples also run on Android. scripts/stage_npm.py has the same table in
// PLATFORMS; its tests fail when the two drift apart.
const TARGETS = {
  "linux x64": "x86_64-unknown-linux-musl",
  "linux arm64": "aarch64-unknown-linux-musl",
  "android x64": "x86_64-unknown-linux-musl",
  "android arm64": "aarch64-unknown-linux-musl",
  "darwin x64": "x86_64-apple-darwin",
  "darwin arm64": "aarch64-apple-darwin",
  "win32 x64": "x86_64-pc-windows-msvc",
  "win32 arm64": "aarch64-pc-windows-msvc",
};

// Signals a terminal or supervisor sends to us that the proxy must see too.
const FORWARDED_SIGNALS = ["SIGINT", "SIGTERM", "SIGHUP"];

const packageRoot = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  "..",
);

function report(kind, message) {
  process.stderr.write(`${NAME}: ${kind}: ${message}\n`);
}

function binaryPath(platform) {
  const triple = TARGETS[platform];
  if (triple === undefined) {
    return undefined;
  }
  const file = platform.startsWith("win32 ") ? `${NAME}.exe` : NAME;
  return path.join(packageRoot, "vendor", triple, NAME, file);
}

function main() {
  const platform = `${process.platform} ${process.arch}`;
  const bin = binaryPath(platform);
  if (bin === undefined) {
    report("error", `unsupported platform "${platform}"`);
    report("hint", `supported platforms: ${Object.keys(TARGETS).join(", ")}`);
    report("hint", "build it from source: https://github.com/openai/codex-responses-api-proxy#readme");
    process.exitCode = 1;
    return;
  }
  if (!existsSync(bin)) {
    report("error", `no binary for platform "${platform}" at ${bin}`);
    report("hint", `reinstall ${PACKAGE} (npm install -g ${PACKAGE}), or build it from source: https://github.com/openai/codex-responses-api-proxy#readme`);
    process.exitCode = 1;
    return;
  }

  // Node dies on SIGINT/SIGTERM/SIGHUP unless a handler exists; with one, we
  // stay alive long enough to pass the signal on and then mirror the outcome.
  // The handlers go in before the spawn: a signal arriving between the two
  // would otherwise kill Node and leave the binary running. They run from the
  // event loop, so only once child below is set.
  const forward = (signal) => {
    child.kill(signal);
  };
  for (const signal of FORWARDED_SIGNALS) {
    process.on(signal, forward);
  }

  const child = spawn(bin, process.argv.slice(2), { stdio: "inherit" });

  child.on("error", (err) => {
    if (child.pid === undefined) {
      // The binary never started (ENOENT, EACCES, ...); no exit event follows.
      report("error", `cannot start ${bin}: ${err.message}`);
      report("hint", `reinstall ${PACKAGE}, or check that the file is executable`);
      process.exit(1);
    }
    report("error", `cannot signal ${NAME} (pid ${child.pid}): ${err.message}`);
  });

  child.on("exit", (code, signal) => {
    if (signal === null) {
      process.exit(code);
    }
    // Die the way the child died, so our parent sees the same signal.
    for (const s of FORWARDED_SIGNALS) {
      process.removeListener(s, forward);
    }
    process.kill(process.pid, signal);
    // Still here: the signal is one Node ignores (SIGPIPE) or cannot be
    // raised on this OS; use the shell convention instead.
    process.exit(128 + constants.signals[signal]);
  });
}

main();
