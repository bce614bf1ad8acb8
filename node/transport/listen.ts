/**
 * Binding a TCP listener, shared by the client-port and raft-port servers: resolves with the
 * bound address (the real port when 0 was asked for) or rejects with the bind error.
 */
import type net from 'node:net';

export function listenOn(
  server: net.Server,
  port: number,
  host: string,
): Promise<{ host: string; port: number }> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen(port, host, () => {
      server.off('error', onError);
      const addr = server.address() as net.AddressInfo;
      resolve({ host: addr.address, port: addr.port });
    });
  });
}
