/**
 * The human docs at /docs: a self-contained HTML page rendered from openapi.yaml (no CDN, no
 * scripts), listing every operation with its summary, then the document itself. Parsing is by the
 * spec's fixed indentation, which `npx redocly lint` keeps honest.
 */

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);
}

interface OperationLine {
  readonly method: string;
  readonly path: string;
  readonly summary: string;
}

export function listOperations(specText: string): OperationLine[] {
  const out: OperationLine[] = [];
  let inPaths = false;
  let path = '';
  let method = '';
  for (const line of specText.split('\n')) {
    if (/^\S/.test(line)) inPaths = line.startsWith('paths:');
    if (!inPaths) continue;
    const p = /^ {2}(\/\S*):\s*$/.exec(line);
    if (p) {
      path = p[1]!;
      continue;
    }
    const m = /^ {4}(get|post|put|patch|delete):\s*$/.exec(line);
    if (m) {
      method = m[1]!.toUpperCase();
      out.push({ method, path, summary: '' });
      continue;
    }
    const s = /^ {6}summary:\s*(.*)$/.exec(line);
    if (s && out.length > 0) {
      const last = out[out.length - 1]!;
      out[out.length - 1] = { ...last, summary: s[1]!.replace(/^'(.*)'$/, '$1') };
    }
  }
  return out;
}

export function renderDocsPage(specText: string): string {
  const title = /^ {2}title:\s*(.*)$/m.exec(specText)?.[1] ?? 'API';
  const rows = listOperations(specText)
    .map(
      (op) =>
        `<tr><td><code class="m">${op.method}</code></td><td><code>${escapeHtml(op.path)}</code></td><td>${escapeHtml(op.summary)}</td></tr>`,
    )
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;width:100%}td{border-bottom:1px solid #ddd;padding:.3rem .5rem;vertical-align:top}
code.m{font-weight:bold}pre{background:#f6f6f6;padding:1rem;overflow:auto;font-size:13px}</style></head>
<body><h1>${escapeHtml(title)}</h1>
<p>Machine-readable: <a href="/openapi.yaml">/openapi.yaml</a> (OpenAPI 3.1). Errors are
<code>application/problem+json</code> with a stable <code>code</code>.</p>
<h2>Operations</h2><table>${rows}</table>
<h2>The document</h2><pre>${escapeHtml(specText)}</pre></body></html>
`;
}
