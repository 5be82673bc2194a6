/**
 * Real peers (swaks, curl, openssl, fail2ban-regex, Dovecot): whether one is installed, and running
 * one with its output collected. In CI (CI=true) a missing peer fails the test file; on a developer's
 * machine the test skips with the package to install.
 */
import { spawn, spawnSync } from 'node:child_process';

/** false when `cmd` is on PATH; else why the test skips (throws under CI=true). */
export function peerSkip(cmd: string, pkg: string): string | false {
  if (spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0) return false;
  if (process.env.CI === 'true') throw new Error(`${cmd} is required (CI=true): apt-get install ${pkg}`);
  return `${cmd} not installed (apt-get install ${pkg})`;
}

/** Run a peer to its end; stdout and stderr together in `out`. */
export function runPeer(cmd: string, args: readonly string[], input = ''): Promise<{ status: number | null; out: string }> {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.stderr.on('data', (d: Buffer) => {
      out += d.toString();
    });
    p.on('close', (status) => resolve({ status, out }));
    p.stdin.end(input);
  });
}
