/**
 * One binary out of a package of a newer Debian release than the machine's, for the benchmarks'
 * baselines (the replication bench needs nats-server >= 2.10 for `sync_interval: always`, and
 * bookworm ships 2.9.10; trixie ships 2.10). Nothing is installed system-wide: the package is
 * unpacked with `dpkg-deb -x` into a cache directory and the binary is run from there.
 *
 * Every byte is checked the way apt checks it: the suite's InRelease is verified with `gpgv`
 * against the machine's Debian archive keyring, the Packages index against the SHA-256 that
 * InRelease lists for it, and the .deb against the SHA-256 that the index lists for it. Only
 * deb.debian.org is asked (Debian's own archive).
 */
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const archiveUrl = 'http://deb.debian.org/debian';
const keyringPath = '/usr/share/keyrings/debian-archive-keyring.gpg';
const downloadTimeoutMs = 120_000;
const toolTimeoutMs = 60_000;
/** The largest download accepted (the Packages index of a suite is about 10 MB, xz). */
const downloadSizeMaxBytes = 64 * 1024 * 1024;

export interface DebianBinaryRequest {
  /** e.g. `trixie` */
  readonly suite: string;
  /** e.g. `nats-server` */
  readonly packageName: string;
  /** Path of the binary inside the package, e.g. `usr/sbin/nats-server`. */
  readonly binaryPath: string;
  /** Unpacked packages go to `<cacheDir>/<package>_<version>/`. */
  readonly cacheDir: string;
}

export interface DebianBinary {
  readonly path: string;
  readonly version: string;
}

async function download(url: string): Promise<Buffer> {
  const response = await fetch(url, { signal: AbortSignal.timeout(downloadTimeoutMs) });
  if (!response.ok) throw new Error(`GET ${url}: HTTP ${response.status}`);
  const body = Buffer.from(await response.arrayBuffer());
  if (body.length > downloadSizeMaxBytes)
    throw new Error(`GET ${url}: ${body.length} bytes, more than allowed`);
  return body;
}

function sha256(data: Buffer): string {
  return crypto.createHash('sha256').update(data).digest('hex');
}

function run(command: string, args: readonly string[], input?: Buffer): Buffer {
  const out = spawnSync(command, args, { input, timeout: toolTimeoutMs, maxBuffer: 256 * 1024 * 1024 });
  if (out.error !== undefined) throw new Error(`${command}: ${out.error.message}`);
  if (out.status !== 0) throw new Error(`${command} ${args.join(' ')} failed: ${String(out.stderr).trim()}`);
  return out.stdout;
}

/** The stanza of `packageName` in a Packages index, as field → value. */
function stanzaOf(index: string, packageName: string): Map<string, string> | null {
  for (const stanza of index.split('\n\n')) {
    if (!stanza.startsWith(`Package: ${packageName}\n`)) continue;
    const fields = new Map<string, string>();
    for (const line of stanza.split('\n')) {
      const colon = line.indexOf(': ');
      if (colon > 0 && !line.startsWith(' ')) fields.set(line.slice(0, colon), line.slice(colon + 2));
    }
    return fields;
  }
  return null;
}

/** Downloads (once; later calls find the cache), verifies and unpacks the package; returns its binary. */
export async function debianBinary(request: DebianBinaryRequest): Promise<DebianBinary> {
  const arch = run('dpkg', ['--print-architecture']).toString().trim();
  const dists = `${archiveUrl}/dists/${request.suite}`;
  const signed = await download(`${dists}/InRelease`);
  const release = run('gpgv', ['--keyring', keyringPath, '--output', '-', '-'], signed).toString();
  const indexName = `main/binary-${arch}/Packages.xz`;
  const listed = release
    .split('\n')
    .map((line) => line.trim().split(/\s+/))
    .find((parts) => parts.length === 3 && parts[0]!.length === 64 && parts[2] === indexName);
  if (listed === undefined) throw new Error(`${request.suite}'s InRelease lists no SHA-256 for ${indexName}`);
  const indexXz = await download(`${dists}/${indexName}`);
  if (sha256(indexXz) !== listed[0]) throw new Error(`${indexName} of ${request.suite} fails its SHA-256`);
  const stanza = stanzaOf(run('xz', ['-dc'], indexXz).toString(), request.packageName);
  const version = stanza?.get('Version');
  const filename = stanza?.get('Filename');
  const debSha256 = stanza?.get('SHA256');
  if (version === undefined || filename === undefined || debSha256 === undefined)
    throw new Error(`${request.suite} has no package ${request.packageName} for ${arch}`);

  const target = path.join(request.cacheDir, `${request.packageName}_${version.replace(/[^\w.+-]/g, '_')}`);
  const binary = path.join(target, request.binaryPath);
  if (fs.existsSync(binary)) return { path: binary, version };
  const deb = await download(`${archiveUrl}/${filename}`);
  if (sha256(deb) !== debSha256) throw new Error(`${filename} fails its SHA-256`);
  fs.mkdirSync(request.cacheDir, { recursive: true });
  const staging = fs.mkdtempSync(path.join(request.cacheDir, '.unpack-'));
  try {
    const debPath = path.join(staging, 'package.deb');
    fs.writeFileSync(debPath, deb);
    run('dpkg-deb', ['-x', debPath, path.join(staging, 'root')]);
    if (!fs.existsSync(path.join(staging, 'root', request.binaryPath)))
      throw new Error(`${filename} has no ${request.binaryPath}`);
    fs.rmSync(target, { recursive: true, force: true });
    fs.renameSync(path.join(staging, 'root'), target);
  } finally {
    fs.rmSync(staging, { recursive: true, force: true });
  }
  return { path: binary, version };
}
