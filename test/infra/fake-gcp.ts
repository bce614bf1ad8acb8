/**
 * Stands in for the parts of Google Cloud a node VM talks to at first boot, for the VM test (no
 * cloud is reachable from here): the metadata server's service-account token, Secret Manager's
 * `versions/latest:access` (same paths, headers and JSON as the real APIs), and a file server for
 * the Node.js tarball and the release tarball. Run inside the test's network namespace:
 * `node fake-gcp.js <host> <port> <files-dir> <secrets.json>`; prints `listening` when ready.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const [host, portText, filesDir, secretsFile] = process.argv.slice(2);
const token = 'walrus-test-access-token';
const secrets = JSON.parse(fs.readFileSync(secretsFile!, 'utf8')) as Record<string, string>;

function json(res: http.ServerResponse, status: number, body: object): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x');
  if (url.pathname === '/computeMetadata/v1/instance/service-accounts/default/token') {
    if (req.headers['metadata-flavor'] !== 'Google') return json(res, 403, { error: 'Metadata-Flavor' });
    return json(res, 200, { access_token: token, expires_in: 3599, token_type: 'Bearer' });
  }
  const secret = /^\/v1\/(projects\/[^/]+\/secrets\/[^/]+)\/versions\/latest:access$/.exec(url.pathname);
  if (secret !== null) {
    if (req.headers.authorization !== `Bearer ${token}`) return json(res, 401, { error: 'token' });
    const value = secrets[secret[1]!];
    if (value === undefined) return json(res, 404, { error: { code: 404, status: 'NOT_FOUND' } });
    return json(res, 200, {
      name: `${secret[1]}/versions/1`,
      payload: { data: Buffer.from(value).toString('base64') },
    });
  }
  if (url.pathname.startsWith('/files/')) {
    const file = path.join(filesDir!, path.normalize(url.pathname.slice('/files/'.length)));
    if (file.startsWith(filesDir!) && fs.existsSync(file) && fs.statSync(file).isFile()) {
      res.writeHead(200, { 'content-length': fs.statSync(file).size });
      fs.createReadStream(file).pipe(res);
      return;
    }
  }
  json(res, 404, { error: 'not found' });
});
server.listen(Number(portText), host, () => console.log('listening'));
process.on('SIGTERM', () => process.exit(0));
