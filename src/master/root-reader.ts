/**
 * The root reader: TLS key and certificate files re-read for a process that has dropped root.
 *
 * Postfix's master stays root and starts every smtpd as root; each smtpd reads its keys before it
 * drops privileges, so a renewed Let's Encrypt key (root-only under /etc/letsencrypt) is read by
 * the next smtpd. Postern's one process drops root for good once it has started, so on SIGHUP or
 * when a certificate file changes it could no longer open `privkey.pem`. Before the drop the
 * master therefore forks one small child that stays root (./root-reader-child.ts) and answers one
 * question over its IPC channel: the contents of FILE.
 *
 * What the child trusts: only the configuration. It reads main.cf and master.cf itself, and serves
 * a file only when that configuration names it in a TLS file parameter (ROOT_READABLE_PARAMS), and
 * only while the configuration directory and both files can be changed by root alone. So the
 * unprivileged process can obtain exactly what root's configuration already gives it at start,
 * nothing else (not /etc/shadow, not a file a later edit by mail_owner would name).
 *
 * The child ignores SIGHUP, SIGINT and SIGTERM (a terminal's Ctrl-C or systemd's stop signal goes
 * to the whole group; the master decides when to stop) and exits when its channel closes, i.e. when
 * the master exits, however that happens.
 */
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { PosternError } from '../errors.js';
import type { RootRead } from '../tls/pem.js';

export type { RootRead } from '../tls/pem.js';

/** Parameters whose values (file names; lists for chain files) the child may read as root. */
export const ROOT_READABLE_PARAMS = [
  'smtpd_tls_cert_file',
  'smtpd_tls_key_file',
  'smtpd_tls_eccert_file',
  'smtpd_tls_eckey_file',
  'smtpd_tls_dcert_file',
  'smtpd_tls_dkey_file',
  'smtpd_tls_chain_files',
  'smtpd_tls_CAfile',
] as const;

/** Largest file the child returns (a PEM bundle is a few KiB; a CAfile a few hundred). */
export const ROOT_READ_LIMIT = 4 * 1024 * 1024;

/** parent → child */
export interface RootReadRequest {
  readonly id: number;
  readonly file: string;
}

/** child → parent */
export interface RootReadReply {
  readonly id: number;
  /** base64 of the file's bytes */
  readonly data?: string;
  readonly error?: { readonly code: string; readonly message: string };
}

export class RootReader {
  readonly #child: ChildProcess;
  readonly #pending = new Map<number, { resolve(b: Buffer): void; reject(e: Error): void }>();
  #next = 1;
  #gone: Error | null = null;

  private constructor(child: ChildProcess) {
    this.#child = child;
    child.on('message', (m: RootReadReply) => {
      const p = this.#pending.get(m.id);
      if (p === undefined) return;
      this.#pending.delete(m.id);
      this.#idle();
      if (m.data !== undefined) p.resolve(Buffer.from(m.data, 'base64'));
      else p.reject(Object.assign(new Error(m.error?.message ?? 'no answer'), { code: m.error?.code ?? 'EIO' }));
    });
    const gone = (why: string): void => {
      this.#gone ??= Object.assign(new Error(`the root reader is gone (${why})`), { code: 'ESRCH' });
      for (const p of this.#pending.values()) p.reject(this.#gone);
      this.#pending.clear();
    };
    child.on('exit', (code, signal) => gone(signal ?? `exit ${code}`));
    child.on('error', (err) => gone(err.message));
    // Idle, the child must not keep the master's event loop alive.
    this.#idle();
  }

  /**
   * Forks the child (call while still root). `configDir` is the directory `postern run` reads;
   * `env` the environment its configuration is expanded with.
   */
  static start(configDir: string, env: NodeJS.ProcessEnv = process.env): RootReader {
    const script = fileURLToPath(new URL('./root-reader-child.js', import.meta.url));
    try {
      // No inherited --cpu-prof or --inspect: the child is not the server.
      const child = fork(script, [configDir], { execArgv: [], env, stdio: ['ignore', 'ignore', 'inherit', 'ipc'], serialization: 'json' });
      return new RootReader(child);
    } catch (err) {
      throw new PosternError('root-reader', `cannot start the root reader: ${(err as Error).message}`, { cause: err });
    }
  }

  /** The child's pid (tests). */
  get pid(): number | undefined {
    return this.#child.pid;
  }

  readonly read: RootRead = (file) => {
    if (this.#gone !== null) return Promise.reject(this.#gone);
    const id = this.#next++;
    return new Promise<Buffer>((resolve, reject) => {
      this.#pending.set(id, { resolve, reject });
      this.#child.ref();
      this.#child.channel?.ref();
      this.#child.send({ id, file } satisfies RootReadRequest, (err) => {
        if (err === null || !this.#pending.has(id)) return;
        this.#pending.delete(id);
        this.#idle();
        reject(Object.assign(err, { code: (err as NodeJS.ErrnoException).code ?? 'EPIPE' }));
      });
    });
  };

  #idle(): void {
    if (this.#pending.size > 0) return;
    this.#child.unref();
    this.#child.channel?.unref();
  }

  /** Ends the child (its channel closes; it exits). */
  close(): void {
    if (this.#child.connected) this.#child.disconnect();
  }
}
