/**
 * `postern run [--embedded] [-c DIR]`: the mail server in the foreground, systemd style (no fork,
 * no pid file, logs to maillog_file or standard error, stops on SIGTERM with exit status 0).
 *
 *   SIGHUP          reload main.cf/master.cf (a bad edit is a warning; the old configuration stays)
 *                   and reopen maillog_file (logrotate)
 *   SIGTERM, SIGINT stop accepting, let sessions finish (at most DRAIN_TIMEOUT_MS), exit 0;
 *                   a second signal exits at once (status 1)
 *
 * `--embedded` (what `npm start` runs) uses ./var/etc under the current directory, written from
 * src/config/embedded.ts on first start and never overwritten; it ignores -c and MAIL_CONFIG.
 * Started as root, the embedded instance runs as its mail_owner (`nobody`) and makes ./var/queue,
 * ./var/data and ./var/mail its own; every directory above ./var must then be searchable by that
 * user (a checkout under /root is not: run `npm start` as an ordinary user there).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { EMBEDDED_DATA_DIRS, materializeEmbedded } from '../config/embedded.js';
import { loadConfig } from '../config/index.js';
import type { Config } from '../config/types.js';
import { Log } from '../log/index.js';
import { Master } from '../master/index.js';
import type { Account } from '../master/privileges.js';
import type { CliContext } from './context.js';

const USAGE = `usage: postern [-c config_dir] run [--embedded]

Runs the mail server in the foreground (for systemd, or a terminal).
  -c DIR       configuration directory with main.cf and master.cf (also: postern -c DIR run)
  --embedded   run the built-in configuration under ./var (what \`npm start\` does); ports
               2525 smtp, 2587 submission, 2465 smtps, 2143 imap, 2993 imaps on 127.0.0.1 and ::1
Signals: HUP reloads the configuration and reopens the log; TERM or INT stops.
`;

/** Absolute time a stopped server may still take to exit before it is forced (a leaked handle). */
const EXIT_GRACE_MS = 3_000;

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** Can `account` (whose only group is its primary one, after the drop) search every directory down to `dir`? */
function unreachableAncestor(dir: string, account: Account): string | null {
  let cur = path.resolve(dir);
  const chain: string[] = [];
  for (;;) {
    chain.unshift(cur);
    const up = path.dirname(cur);
    if (up === cur) break;
    cur = up;
  }
  for (const d of chain) {
    const st = fs.statSync(d);
    const bit = st.uid === account.uid ? 0o100 : st.gid === account.gid ? 0o010 : 0o001;
    if ((st.mode & bit) === 0) return `${d} (mode ${(st.mode & 0o7777).toString(8).padStart(4, '0')})`;
  }
  return null;
}

function chownTree(p: string, account: Account): void {
  const st = fs.lstatSync(p);
  if (st.isSymbolicLink()) return;
  if (st.uid !== account.uid || st.gid !== account.gid) fs.chownSync(p, account.uid, account.gid);
  if (st.isDirectory()) for (const name of fs.readdirSync(p)) chownTree(path.join(p, name), account);
}

/** Embedded instance started as root: hand ./var's data directories to mail_owner before the drop. */
function prepareEmbeddedVar(varDir: string, account: Account): void {
  const blocked = unreachableAncestor(varDir, account);
  if (blocked !== null) {
    throw new Error(`mail_owner ${account.name} cannot reach ${varDir}: ${blocked} is not searchable by that user; run postern as an unprivileged user here, or move the directory`);
  }
  for (const d of EMBEDDED_DATA_DIRS) chownTree(path.join(varDir, d), account);
  // The embedded self-signed key must stay readable after the drop, so SIGHUP can reload it.
  const tlsDir = path.join(varDir, 'etc', 'tls');
  if (fs.existsSync(tlsDir)) chownTree(tlsDir, account);
}

export async function main(args: string[], ctx: CliContext): Promise<number> {
  let embedded = false;
  let configDir = ctx.configDir;
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--embedded') embedded = true;
    else if (a === '-c' && i + 1 < args.length) configDir = args[++i]!;
    else if (a === '-h' || a === '--help') {
      ctx.stdout.write(USAGE);
      return 0;
    } else {
      ctx.stderr.write(`postern: fatal: run: unknown option "${a}"\n${USAGE}`);
      return 1;
    }
  }

  let varDir: string | null = null;
  if (embedded) {
    try {
      const made = materializeEmbedded('var');
      configDir = made.configDir;
      varDir = made.varDir;
    } catch (err) {
      ctx.stderr.write(`postern: fatal: ${message(err)}\n`);
      return 1;
    }
  }
  const load = (): Promise<Config> => loadConfig({ configDir, env: ctx.env });
  // A SIGHUP while starting (systemctl reload right after start) must not kill the process (its
  // default action): remember it and reload once the master runs.
  const starting: StartingHup = { seen: false, handler: () => {} };
  starting.handler = () => {
    starting.seen = true;
  };
  process.on('SIGHUP', starting.handler);
  try {
    return await serve(ctx, load, varDir, starting);
  } finally {
    process.removeListener('SIGHUP', starting.handler);
  }
}

interface StartingHup {
  seen: boolean;
  handler: () => void;
}

async function serve(ctx: CliContext, load: () => Promise<Config>, varDir: string | null, starting: StartingHup): Promise<number> {

  let config: Config;
  try {
    config = await load();
  } catch (err) {
    ctx.stderr.write(`postern: fatal: ${message(err)}\n`);
    return 1;
  }

  const p = config.params;
  let log: Log;
  try {
    log = Log.open({ syslog_name: p.syslog_name, myhostname: p.myhostname, maillog_file: p.maillog_file });
  } catch (err) {
    ctx.stderr.write(`postern: fatal: ${message(err)}\n`);
    return 1;
  }
  const logger = log.logger('master', { id: process.pid });
  for (const w of config.warnings) logger.warning(w);

  let master: Master;
  try {
    master = await Master.start({
      config,
      log,
      loadConfig: load,
      ...(varDir !== null ? { beforeDrop: (owner: Account) => prepareEmbeddedVar(varDir, owner) } : {}),
    });
  } catch (err) {
    logger.fatal(message(err));
    // The terminal (or journal) sees a fatal error even when the log goes to a file.
    if (p.maillog_file !== '' && p.maillog_file !== '/dev/stderr') ctx.stderr.write(`postern: fatal: ${message(err)}\n`);
    await log.close();
    return 1;
  }

  return new Promise<number>((resolve) => {
    let signalled = false;
    const onHup = (): void => {
      master.reload().catch((err: unknown) => logger.warning(`reload: ${message(err)}`));
    };
    const onStop = (signal: NodeJS.Signals): void => {
      if (signalled) {
        logger.warning(`signal ${signal} while stopping: exiting without waiting for sessions`);
        log.flushSync();
        process.exit(1);
      }
      signalled = true;
      process.removeListener('SIGHUP', onHup);
      master
        .stop(signal)
        .catch((err: unknown) => logger.warning(`stop: ${message(err)}`))
        .then(async () => {
          process.removeListener('SIGTERM', onStop);
          process.removeListener('SIGINT', onStop);
          await log.close();
          // Everything is closed; should a stray handle keep the process alive, do not hang systemd.
          setTimeout(() => process.exit(0), EXIT_GRACE_MS).unref();
          resolve(0);
        });
    };
    process.on('SIGHUP', onHup);
    process.removeListener('SIGHUP', starting.handler);
    if (starting.seen) onHup();
    process.on('SIGTERM', onStop);
    process.on('SIGINT', onStop);
  });
}
