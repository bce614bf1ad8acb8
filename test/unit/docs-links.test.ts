/**
 * The repository stands alone: every relative link in README.md and docs/*.md (Markdown links,
 * images and reference definitions) names a file or folder inside the repository that exists, so
 * a fresh clone has everything its docs point to. Absolute URLs are left alone.
 */
import fs from 'node:fs';
import path from 'node:path';
import test from 'ava';

const root = path.resolve(import.meta.dirname, '../../..');

function markdownFiles(): string[] {
  const docs = fs
    .readdirSync(path.join(root, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => path.join('docs', f));
  return ['README.md', ...docs];
}

/** Link targets in Markdown text, code spans and fenced blocks left out. */
function linkTargets(markdown: string): string[] {
  const prose = markdown.replace(/```[\s\S]*?```/g, '').replace(/`[^`\n]*`/g, '');
  const targets: string[] = [];
  for (const m of prose.matchAll(/\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) targets.push(m[1]!);
  for (const m of prose.matchAll(/^\s*\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+"[^"]*")?\s*$/gm)) targets.push(m[1]!);
  return targets;
}

function isRelative(target: string): boolean {
  return !/^[a-z][a-z0-9+.-]*:/i.test(target) && !target.startsWith('//') && !target.startsWith('#');
}

test('the link finder sees links and references, and skips code', (t) => {
  t.deepEqual(linkTargets('see [a](docs/a.md#x) and ![i](img.png "t")\n[r]: ../r.md\n`[no](no.md)`'), [
    'docs/a.md#x',
    'img.png',
    '../r.md',
  ]);
});

test('every relative link in README.md and docs/*.md resolves to a file in the repository', (t) => {
  const broken: string[] = [];
  let checked = 0;
  for (const file of markdownFiles()) {
    const text = fs.readFileSync(path.join(root, file), 'utf8');
    for (const target of linkTargets(text).filter(isRelative)) {
      const withoutAnchor = decodeURIComponent(target.split('#')[0]!.split('?')[0]!);
      const resolved = path.resolve(root, path.dirname(file), withoutAnchor);
      checked++;
      if (!resolved.startsWith(root + path.sep) && resolved !== root)
        broken.push(`${file}: ${target} leaves the repository`);
      else if (!fs.existsSync(resolved)) broken.push(`${file}: ${target} does not exist`);
    }
  }
  t.deepEqual(broken, []);
  t.true(checked > 10, `${checked} relative links checked`);
});
