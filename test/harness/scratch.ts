/**
 * Scratch disk space for tests: a temp directory per test file, and a tiny tmpfs to fill.
 */
import { execFileSync } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, before, type TestContext } from 'node:test';

/**
 * A directory `os.tmpdir()/PREFIXxxxxxx` made before the calling file's tests and removed after
 * them. Call at module top level; the returned function gives its path once the tests run.
 */
export function tempRoot(prefix: string): () => string {
  let dir = '';
  before(async () => {
    dir = await fsp.mkdtemp(path.join(os.tmpdir(), prefix));
  });
  after(async () => {
    await fsp.rm(dir, { recursive: true, force: true });
  });
  return () => {
    if (dir === '') throw new Error('tempRoot: used before the tests started');
    return dir;
  };
}

/**
 * Mounts a small tmpfs (`options` as for mount -o, e.g. `size=256k`) on `dir` (created if missing)
 * so a test can fill the disk. Needs root: elsewhere it skips `t` and returns false, except in CI
 * where it throws. The caller unmounts it (`unmount`) in `finally`.
 */
export async function mountTmpfs(t: TestContext, dir: string, options: string): Promise<boolean> {
  await fsp.mkdir(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', dir], { stdio: 'pipe' });
    return true;
  } catch (err) {
    if (process.env.CI) throw err;
    t.skip(`cannot mount a tmpfs here (${(err as Error).message.split('\n')[0]}); runs in CI`);
    return false;
  }
}

export function unmount(dir: string): void {
  execFileSync('umount', [dir], { stdio: 'pipe' });
}
