/**
 * The root reader's child process (see ./root-reader.ts): forked by the master while it is still
 * root, it stays root and answers `{id, file}` with the file's bytes, for a file that the
 * configuration in argv[2] names in one of ROOT_READABLE_PARAMS, and only while that configuration
 * can be changed by root alone. Everything else is refused with EACCES. It writes no log: errors go
 * back to the asking process, which logs them.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadConfig } from '../config/index.js';
import type { Params } from '../config/types.js';
import { ROOT_READ_LIMIT, ROOT_READABLE_PARAMS, type RootReadReply, type RootReadRequest } from './root-reader.js';

const configDir = process.argv[2] ?? '';

// The master decides when this process ends: its exit closes the channel.
for (const sig of ['SIGHUP', 'SIGINT', 'SIGTERM'] as const) process.on(sig, () => undefined);
process.on('disconnect', () => process.exit(0));

const refuse = (message: string): Error => Object.assign(new Error(message), { code: 'EACCES' });

/** The configuration must be root's alone: owned by uid 0, not writable by group or others. */
function requireRootOwned(p: string): void {
  const st = fs.statSync(p);
  if (st.uid !== 0 || (st.mode & 0o022) !== 0) throw refuse(`${p} can be changed by a user other than root; TLS files are not read as root for it`);
}

let cache: { at: number; files: ReadonlySet<string> } | null = null;

/** The TLS files the configuration names now (read again at most once a second). */
async function allowedFiles(): Promise<ReadonlySet<string>> {
  if (cache !== null && Date.now() - cache.at < 1000) return cache.files;
  requireRootOwned(configDir);
  const config = await loadConfig({ configDir, env: process.env });
  requireRootOwned(config.mainCfPath);
  if (fs.existsSync(config.masterCfPath)) requireRootOwned(config.masterCfPath);
  const files = new Set<string>();
  const add = (p: Params): void => {
    for (const name of ROOT_READABLE_PARAMS) {
      const v: unknown = p[name];
      for (const f of Array.isArray(v) ? v : [v]) if (typeof f === 'string' && f !== '' && f.toLowerCase() !== 'none') files.add(f);
    }
  };
  add(config.params);
  for (const s of config.services) add(s.params);
  cache = { at: Date.now(), files };
  return files;
}

async function answer(req: RootReadRequest): Promise<RootReadReply> {
  try {
    if (typeof req.file !== 'string' || !path.isAbsolute(req.file) || !(await allowedFiles()).has(req.file)) {
      throw refuse(`${String(req.file)} is not a TLS file of the configuration`);
    }
    const fd = fs.openSync(req.file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    try {
      const st = fs.fstatSync(fd);
      if (!st.isFile()) throw Object.assign(new Error('not a regular file'), { code: 'EINVAL' });
      if (st.size > ROOT_READ_LIMIT) throw Object.assign(new Error(`larger than ${ROOT_READ_LIMIT} bytes`), { code: 'EFBIG' });
      return { id: req.id, data: fs.readFileSync(fd).toString('base64') };
    } finally {
      fs.closeSync(fd);
    }
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    return { id: req.id, error: { code: e.code ?? 'EIO', message: e.message } };
  }
}

process.on('message', (m: RootReadRequest) => {
  void answer(m).then((r) => process.send?.(r));
});
