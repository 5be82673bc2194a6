/**
 * Loopback ports for tests.
 */
import * as net from 'node:net';

/** A port free on both 127.0.0.1 and ::1 (picked by the kernel, checked on the other family). */
export async function freePort(): Promise<number> {
  for (;;) {
    const a = net.createServer();
    await new Promise<void>((resolve) => a.listen({ host: '::1', port: 0, ipv6Only: true }, resolve));
    const port = (a.address() as net.AddressInfo).port;
    const b = net.createServer();
    const ok = await new Promise<boolean>((resolve) => {
      b.once('error', () => resolve(false));
      b.listen({ host: '127.0.0.1', port }, () => resolve(true));
    });
    await new Promise<void>((resolve) => a.close(() => resolve()));
    if (ok) {
      await new Promise<void>((resolve) => b.close(() => resolve()));
      return port;
    }
  }
}

/** Whether a TCP connection to host:port is accepted (the socket is closed at once). */
export function connects(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}
