/**
 * Rotating TLS material without a restart, in process on real TLS sockets: checkTlsMaterial
 * refuses a key that is not the certificate's and a CA bundle of garbage; a listener made from a
 * ServerTls presents the replacement to new connections while an open one keeps its session, and
 * a refused replacement changes nothing; failed handshakes are counted on the ServerTls.
 */
import { X509Certificate } from 'node:crypto';
import net from 'node:net';
import tls from 'node:tls';
import test from 'ava';
import {
  checkTlsMaterial,
  createListener,
  ServerTls,
  TlsMaterialError,
} from '../../../node/transport/tls-listener.js';
import { eventually } from '../../helpers/eventually.js';
import { makeTestCa } from '../../helpers/test-certs.js';

const ca = makeTestCa('reload-unit');
const first = ca.issue('first');
const second = ca.issue('second');
test.after.always(() => ca.remove());

/** Opens a TLS connection trusting `caPem`; resolves with it and the certificate it was shown. */
function connect(port: number, caPem: string): Promise<{ socket: tls.TLSSocket; fingerprint: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca: caPem }, () =>
      resolve({ socket, fingerprint: socket.getPeerCertificate().fingerprint256 }),
    );
    socket.once('error', reject);
  });
}

/** Writes `text` and resolves with what the echo server sends back. */
function echo(socket: tls.TLSSocket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    socket.once('data', (chunk: Buffer) => resolve(chunk.toString('utf8')));
    socket.once('error', reject);
    socket.write(text);
  });
}

const fingerprintOf = (pem: string): string => new X509Certificate(pem).fingerprint256;

test('checkTlsMaterial refuses a mismatched key, garbage PEM and an empty or garbage CA bundle', (t) => {
  t.notThrows(() => checkTlsMaterial({ cert: first.cert, key: first.key, ca: ca.ca }));
  t.throws(() => checkTlsMaterial({ cert: first.cert, key: second.key }), {
    instanceOf: TlsMaterialError,
    message: /not the certificate/,
  });
  t.throws(() => checkTlsMaterial({ cert: 'garbage', key: first.key }), {
    message: /certificate does not parse/,
  });
  t.throws(() => checkTlsMaterial({ cert: first.cert, key: 'garbage' }), {
    message: /private key does not parse/,
  });
  t.throws(() => checkTlsMaterial({ cert: first.cert, key: first.key, ca: 'nonsense' }), {
    message: /CA bundle holds no PEM certificate/,
  });
  t.throws(
    () =>
      checkTlsMaterial({
        ca: '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n',
      }),
    { message: /CA certificate 1 does not parse/ },
  );
  t.throws(() => checkTlsMaterial({ cert: first.cert }), { message: /go together/ });
});

test('a ServerTls replacement reaches new connections only; a refused one changes nothing', async (t) => {
  const serverTls = new ServerTls({ cert: first.cert, key: first.key, requestCert: false });
  const listener = createListener(serverTls, 16, (socket) => socket.on('data', (d) => socket.write(d)));
  await new Promise<void>((resolve) => listener.server.listen(0, '127.0.0.1', resolve));
  const port = (listener.server.address() as net.AddressInfo).port;
  const open: tls.TLSSocket[] = [];
  t.teardown(() => {
    for (const s of open) s.destroy();
    listener.server.close();
  });

  const before = await connect(port, ca.ca);
  open.push(before.socket);
  t.is(before.fingerprint, fingerprintOf(first.cert));

  serverTls.replace({ cert: second.cert, key: second.key });
  const after = await connect(port, ca.ca);
  open.push(after.socket);
  t.is(after.fingerprint, fingerprintOf(second.cert), 'a new connection gets the new certificate');
  t.is(await echo(before.socket, 'still here'), 'still here', 'the open connection keeps working');
  t.is(before.socket.getPeerCertificate().fingerprint256, fingerprintOf(first.cert));

  // A new certificate with the old key: refused whole, the listener keeps serving `second`.
  t.throws(() => serverTls.replace({ cert: first.cert, key: second.key }), { instanceOf: TlsMaterialError });
  t.is(serverTls.material.cert, second.cert);
  const unchanged = await connect(port, ca.ca);
  open.push(unchanged.socket);
  t.is(unchanged.fingerprint, fingerprintOf(second.cert));

  // A plaintext client: its handshake fails and is counted on the ServerTls and the listener.
  const plain = net.connect(port, '127.0.0.1', () => plain.write('PING\r\n'));
  plain.on('error', () => {});
  await eventually('the failed handshake counted', async () =>
    serverTls.handshakeFailureCount() === 1 ? true : undefined,
  );
  t.is(listener.tlsFailureCount(), 1);
  plain.destroy();
});
