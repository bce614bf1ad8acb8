/**
 * Writes a client-tokens document (`--client-tokens-file`) for tests: every token with the same
 * scopes, replaced atomically (temp file + rename), so a node reloading it on SIGHUP never reads
 * half a file.
 */
import fs from 'node:fs';

export function writeTokensFile(file: string, tokens: readonly string[], scopes: readonly string[]): void {
  fs.writeFileSync(`${file}.tmp`, JSON.stringify({ tokens: tokens.map((token) => ({ token, scopes })) }));
  fs.renameSync(`${file}.tmp`, file);
}
