/**
 * A throw-away PKI made with the openssl command for the TLS socket tests: a root CA, an
 * intermediate, server leaves under the intermediate (served as leaf + intermediate), client
 * certificates trusted (root-signed), self-signed, and one under a second root kept in a hashed
 * CApath directory. Everything lives in a fresh directory under os.tmpdir().
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

/** True when the openssl command runs. Tests skip without it, except under CI=true (then fail). */
export function opensslAvailable(): boolean {
  const r = spawnSync('openssl', ['version'], { encoding: 'utf8' });
  return r.status === 0;
}

/** `{ skip }` option for node:test: a message when openssl is missing outside CI. */
export function skipWithoutOpenssl(): string | false {
  if (opensslAvailable()) return false;
  if (process.env.CI === 'true') throw new Error('openssl is required for the TLS tests (CI=true)');
  return 'openssl not installed: TLS socket tests skipped';
}

export function openssl(args: readonly string[], o: { cwd: string; input?: string }): string {
  const r = spawnSync('openssl', args, { cwd: o.cwd, encoding: 'utf8', input: o.input ?? '' });
  if (r.status !== 0) throw new Error(`openssl ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

export interface Pki {
  readonly dir: string;
  /** Absolute path of a file in the PKI directory. */
  file(name: string): string;
  read(name: string): string;
  remove(): void;
}

const CA_EXT = 'basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n';

/**
 * Files made: root.pem (CA), int.pem (intermediate), srv.key + srv.pem (CN mx.example.test) and
 * fullchain.pem (srv + int), srv2.key + fullchain2.pem (CN mx2.example.test), other.pem (key,
 * leaf CN other.example.test, int: a chain file), ec.pem (P-256 key + leaf CN mx.example.test +
 * int), cli.key/cli.pem (client under root), self.key/self.pem (self-signed client),
 * capath/ (root2 rehashed) with cli2.key/cli2.pem under root2.
 */
export function makePki(): Pki {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'postern-tls-'));
  const run = (args: readonly string[]): string => openssl(args, { cwd: dir });
  const write = (name: string, text: string): void => writeFileSync(path.join(dir, name), text);
  const read = (name: string): string => readFileSync(path.join(dir, name), 'utf8');
  write('ca.ext', CA_EXT);
  write('srv.ext', 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:mx.example.test,DNS:localhost\n');
  write('srv2.ext', 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:mx2.example.test\n');
  write('other.ext', 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\nsubjectAltName=DNS:other.example.test\n');
  write('cli.ext', 'basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n');

  // RSA where a test looks at RSA-PSS (2048 bits); P-256 elsewhere (much faster to generate).
  const RSA = ['-newkey', 'rsa:2048'];
  const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'];
  const req = (alg: readonly string[], key: string, subj: string, csr: string): void => {
    run(['req', '-new', ...alg, '-nodes', '-keyout', key, '-out', csr, '-subj', subj]);
  };
  const sign = (csr: string, ca: string, caKey: string, ext: string, out: string): void => {
    run(['x509', '-req', '-in', csr, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-days', '30', '-sha256', '-extfile', ext, '-out', out]);
  };
  const selfSigned = (alg: readonly string[], key: string, subj: string, out: string, ext: string): void => {
    run(['req', '-x509', ...alg, '-nodes', '-keyout', key, '-out', out, '-days', '30', '-sha256', '-subj', subj, '-extensions', 'v3', '-config', ext]);
  };
  write('v3ca.cnf', `[req]\ndistinguished_name=dn\n[dn]\n[v3]\n${CA_EXT}`);
  write('v3self.cnf', '[req]\ndistinguished_name=dn\n[dn]\n[v3]\nbasicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n');

  selfSigned(EC, 'root.key', '/O=Postern Test/CN=Postern Test Root CA', 'root.pem', 'v3ca.cnf');
  req(EC, 'int.key', '/O=Postern Test/CN=Postern Test Intermediate', 'int.csr');
  sign('int.csr', 'root.pem', 'root.key', 'ca.ext', 'int.pem');
  req(RSA, 'srv.key', '/CN=mx.example.test', 'srv.csr');
  sign('srv.csr', 'int.pem', 'int.key', 'srv.ext', 'srv.pem');
  write('fullchain.pem', read('srv.pem') + read('int.pem'));
  req(EC, 'srv2.key', '/CN=mx2.example.test', 'srv2.csr');
  sign('srv2.csr', 'int.pem', 'int.key', 'srv2.ext', 'srv2.pem');
  write('fullchain2.pem', read('srv2.pem') + read('int.pem'));
  req(EC, 'other.key', '/CN=other.example.test', 'other.csr');
  sign('other.csr', 'int.pem', 'int.key', 'other.ext', 'other.crt');
  write('other.pem', read('other.key') + read('other.crt') + read('int.pem'));
  req(EC, 'ec.key', '/CN=mx.example.test', 'ec.csr');
  sign('ec.csr', 'int.pem', 'int.key', 'srv.ext', 'ec.crt');
  write('ec.pem', read('ec.key') + read('ec.crt') + read('int.pem'));
  write('rsa-chain.pem', read('srv.key') + read('srv.pem') + read('int.pem'));

  req(RSA, 'cli.key', '/O=Client Org/CN=client.example.test', 'cli.csr');
  sign('cli.csr', 'root.pem', 'root.key', 'cli.ext', 'cli.pem');
  selfSigned(RSA, 'self.key', '/CN=self.example.test', 'self.pem', 'v3self.cnf');

  selfSigned(EC, 'root2.key', '/CN=Postern CApath Root', 'root2.pem', 'v3ca.cnf');
  req(EC, 'cli2.key', '/CN=capath-client.example.test', 'cli2.csr');
  sign('cli2.csr', 'root2.pem', 'root2.key', 'cli.ext', 'cli2.pem');
  mkdirSync(path.join(dir, 'capath'));
  write('capath/root2.pem', read('root2.pem'));
  run(['rehash', path.join(dir, 'capath')]);

  return {
    dir,
    file: (name) => path.join(dir, name),
    read,
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
