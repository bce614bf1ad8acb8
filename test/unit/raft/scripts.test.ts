/**
 * Runs the data-driven scripts in testdata/*.txt and compares each command's output with the
 * golden text. Regenerate on purpose with RAFT_REWRITE=1 (then read the diff before committing).
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';
import { InteractionEnv, parseScript, renderScript } from './interaction.js';

// Scripts live next to the sources, not in dist.
const dir = path.resolve(import.meta.dirname, '../../../../test/unit/raft/testdata');
const rewrite = process.env['RAFT_REWRITE'] === '1';

for (const file of fs.readdirSync(dir).filter((f) => f.endsWith('.txt'))) {
  test(`script ${file}`, (t) => {
    const full = path.join(dir, file);
    const text = fs.readFileSync(full, 'utf8');
    const env = new InteractionEnv();
    const blocks = parseScript(text);
    t.true(blocks.length > 0, 'the script has commands');
    const actual = blocks.map((b) => env.run(b.command));
    if (rewrite) {
      fs.writeFileSync(full, renderScript(text, actual));
      t.pass();
      return;
    }
    blocks.forEach((b, k) => {
      t.is(
        actual[k],
        b.expected,
        `${file}: output of "${b.command}" (block ${k + 1}) differs; RAFT_REWRITE=1 regenerates`,
      );
    });
  });
}
