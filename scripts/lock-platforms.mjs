#!/usr/bin/env node
// Run after `npm install` changes package-lock.json.
//
// Native tools (oxlint, its type-aware tsgolint) ship one optional package per platform. The npm
// registry this project's machines reach serves only the Linux ones, so `npm install` cannot
// record the others in package-lock.json, and `npm ci` then refuses the lock ("Missing: ...").
// This adds an entry for each missing platform package, with the os/cpu/libc its name says, so
// `npm ci` accepts the lock; npm never installs them on Linux, so nothing is fetched for them.
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const packages = lock.packages;
const OS = ['android', 'darwin', 'freebsd', 'linux', 'openharmony', 'win32', 'netbsd', 'openbsd', 'sunos', 'aix'];
const CPU = ['arm64', 'arm', 'x64', 'ia32', 'ppc64', 'riscv64', 's390x', 'loong64', 'mips64el'];

let added = 0;
for (const [path, entry] of Object.entries(packages)) {
  for (const [name, version] of Object.entries(entry.optionalDependencies ?? {})) {
    if (packages[`${path}/node_modules/${name}`] || packages[`node_modules/${name}`]) continue;
    const parts = name.split('/').pop().split('-');
    const os = parts.find((part) => OS.includes(part));
    const cpu = parts.find((part) => CPU.includes(part));
    if (!os || !cpu) throw new Error(`${name}: cannot tell its platform from its name; add it by hand`);
    const stub = { version, dev: entry.dev, optional: true, os: [os], cpu: [cpu] };
    if (parts.includes('gnu') || parts.includes('gnueabihf')) stub.libc = ['glibc'];
    if (parts.includes('musl') || parts.includes('musleabihf')) stub.libc = ['musl'];
    packages[`node_modules/${name}`] = stub;
    added += 1;
  }
}
lock.packages = Object.fromEntries(
  Object.entries(packages).toSorted(([a], [b]) => (a === '' ? -1 : b === '' ? 1 : a < b ? -1 : 1)),
);
writeFileSync(file, `${JSON.stringify(lock, null, 2)}\n`);
console.log(`lock-platforms: ${added} platform package(s) recorded`);
