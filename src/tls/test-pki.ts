/**
 * TEST SUPPORT ONLY (imported by *.test.ts, never by the server): a throw-away PKI made with the
 * openssl command line in a temp directory — a root CA, an intermediate CA, and leaf certificates
 * with chosen validity dates (`openssl ca -startdate/-enddate`, so expired and not-yet-valid
 * certificates are real ones, not a mocked clock). EC P-256 keys keep it fast.
 */
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';

export interface IssuedCert {
  /** PEM file with the certificate alone (like Let's Encrypt's cert.pem). */
  readonly cert: string;
  /** PEM file with the unencrypted private key (privkey.pem). */
  readonly key: string;
  /** PEM file: certificate, then the issuing intermediate (fullchain.pem); equals cert for root-issued. */
  readonly fullchain: string;
}

export interface IssueOptions {
  readonly cn: string;
  /** Which CA signs it. Default: the intermediate. */
  readonly issuer?: 'root' | 'intermediate' | 'other-intermediate';
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

function openssl(args: readonly string[], cwd: string): string {
  return execFileSync('openssl', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** `YYYYMMDDHHMMSSZ`, the form `openssl ca -startdate` takes (always with 4-digit year in 3.0). */
function asn1Time(d: Date): string {
  return `${d.toISOString().replace(/[-:T]/g, '').slice(0, 14)}Z`;
}

const CA_CNF = (dir: string) => `
[ca]
default_ca = this_ca
[this_ca]
dir = ${dir}
database = $dir/index.txt
new_certs_dir = $dir/newcerts
serial = $dir/serial
certificate = $dir/ca.crt
private_key = $dir/ca.key
default_md = sha256
default_days = 365
policy = policy_any
unique_subject = no
copy_extensions = none
[policy_any]
organizationName = optional
commonName = supplied
[leaf_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
[int_ext]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid, issuer
`;

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes'];

export class TestPki {
  readonly dir: string;
  /** Root CA certificate (self-signed): the file to give as CAfile to trust this PKI. */
  readonly rootCert: string;
  readonly intermediateCert: string;
  /** A second intermediate under the same root (for "wrong intermediate"). */
  readonly otherIntermediateCert: string;
  private serial = 1;

  private constructor(dir: string) {
    this.dir = dir;
    this.rootCert = path.join(dir, 'root', 'ca.crt');
    this.intermediateCert = path.join(dir, 'intermediate', 'ca.crt');
    this.otherIntermediateCert = path.join(dir, 'other-intermediate', 'ca.crt');
  }

  /** Creates root and intermediates under `dir` (created if missing; use a unique temp dir). */
  static create(dir: string, names: { root?: string; intermediate?: string } = {}): TestPki {
    const pki = new TestPki(dir);
    const root = pki.caDir('root');
    const now = Date.now();
    openssl(
      [
        'req', '-x509', ...EC, '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', `/O=Postern Test/CN=${names.root ?? 'Postern Test Root'}`,
        '-days', '3650', '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign',
      ],
      root,
    );
    for (const [which, cn] of [['intermediate', names.intermediate ?? 'Postern Test Intermediate'], ['other-intermediate', 'Postern Other Intermediate']] as const) {
      const d = pki.caDir(which);
      openssl(['req', '-new', ...EC, '-keyout', 'ca.key', '-out', 'ca.csr', '-subj', `/O=Postern Test/CN=${cn}`], d);
      pki.sign('root', path.join(d, 'ca.csr'), path.join(d, 'ca.crt'), 'int_ext', new Date(now - 86_400_000), new Date(now + 5 * 365 * 86_400_000));
    }
    return pki;
  }

  private caDir(name: string): string {
    const d = path.join(this.dir, name);
    fs.mkdirSync(path.join(d, 'newcerts'), { recursive: true });
    fs.writeFileSync(path.join(d, 'index.txt'), '');
    fs.writeFileSync(path.join(d, 'serial'), '1000\n');
    fs.writeFileSync(path.join(d, 'ca.cnf'), CA_CNF(d));
    return d;
  }

  private sign(ca: string, csr: string, out: string, ext: string, notBefore: Date, notAfter: Date): void {
    const d = path.join(this.dir, ca);
    openssl(
      ['ca', '-batch', '-notext', '-config', 'ca.cnf', '-extensions', ext, '-in', csr, '-out', out, '-startdate', asn1Time(notBefore), '-enddate', asn1Time(notAfter)],
      d,
    );
  }

  /** A server certificate; files under `dir/leaf-N/`. Default validity: yesterday to in 90 days. */
  issue(o: IssueOptions): IssuedCert {
    const d = path.join(this.dir, `leaf-${this.serial++}`);
    fs.mkdirSync(d);
    const now = Date.now();
    openssl(['req', '-new', ...EC, '-keyout', 'privkey.pem', '-out', 'req.csr', '-subj', `/CN=${o.cn}`], d);
    const issuer = o.issuer ?? 'intermediate';
    const cert = path.join(d, 'cert.pem');
    this.sign(issuer, path.join(d, 'req.csr'), cert, 'leaf_ext', o.notBefore ?? new Date(now - 86_400_000), o.notAfter ?? new Date(now + 90 * 86_400_000));
    const fullchain = path.join(d, 'fullchain.pem');
    const issuerCert = path.join(this.dir, issuer, 'ca.crt');
    fs.writeFileSync(fullchain, issuer === 'root' ? fs.readFileSync(cert) : Buffer.concat([fs.readFileSync(cert), fs.readFileSync(issuerCert)]));
    return { cert, key: path.join(d, 'privkey.pem'), fullchain };
  }

  /** Concatenate PEM files into `name` under dir (chains in any order, key + chain files). */
  concat(name: string, files: readonly string[]): string {
    const out = path.join(this.dir, name);
    fs.writeFileSync(out, Buffer.concat(files.map((f) => fs.readFileSync(f))));
    return out;
  }

  /** The key re-written encrypted with a passphrase (PKCS#8 `ENCRYPTED PRIVATE KEY`). */
  encryptKey(key: string, name: string): string {
    const out = path.join(this.dir, name);
    openssl(['pkey', '-in', key, '-aes256', '-passout', 'pass:secret', '-out', out], this.dir);
    return out;
  }

  /** The certificate re-written in DER. */
  toDer(cert: string, name: string): string {
    const out = path.join(this.dir, name);
    openssl(['x509', '-in', cert, '-outform', 'der', '-out', out], this.dir);
    return out;
  }
}
