/**
 * Stand-in for `postern run -c DIR` while a daemon the bench needs (smtpd, qmgr) is written but
 * not yet in the master's daemon table (src/master/daemons.ts): the same Master, config loader and
 * log, with the named daemons registered here from their modules' `createDaemon`. The bench uses it
 * only in that case and says so under its table.
 *
 *   node dist/bench/serve.js CONFIG_DIR smtpd,qmgr     stops on SIGTERM/SIGINT (exit 0)
 */
import { loadConfig } from '../src/config/index.js';
import { Log } from '../src/log/index.js';
import type { DaemonFactory } from '../src/master/daemon.js';
import { DAEMONS, type DaemonLoader } from '../src/master/daemons.js';
import { Master } from '../src/master/index.js';

/** `createDaemon` of dist/src/NAME/index.js, when that module exists and exports one. */
export async function daemonModule(name: string): Promise<DaemonFactory | null> {
  // A computed specifier: the module may not exist yet in this checkout.
  const spec = `../src/${name}/index.js`;
  try {
    const m = (await import(spec)) as { createDaemon?: unknown };
    return typeof m.createDaemon === 'function' ? (m.createDaemon as DaemonFactory) : null;
  } catch {
    return null;
  }
}

/** Daemons the bench needs that exist as modules but are missing from DAEMONS. */
export async function unregisteredDaemons(): Promise<string[]> {
  const out: string[] = [];
  for (const name of ['smtpd', 'qmgr']) if (!(name in DAEMONS) && (await daemonModule(name)) !== null) out.push(name);
  return out;
}

async function main(configDir: string, names: readonly string[]): Promise<void> {
  const load = () => loadConfig({ configDir, env: {} });
  const config = await load();
  const p = config.params;
  const log = Log.open({ syslog_name: p.syslog_name, myhostname: p.myhostname, maillog_file: p.maillog_file });
  const daemons: Record<string, DaemonLoader> = { ...DAEMONS };
  for (const name of names) {
    const factory = await daemonModule(name);
    if (factory !== null) daemons[name] ??= async () => factory;
  }
  const master = await Master.start({ config, log, loadConfig: load, daemons });
  let stopping = false;
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) process.exit(1);
    stopping = true;
    master
      .stop(signal)
      .then(() => log.close())
      .finally(() => process.exit(0));
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

if (process.argv[1]?.endsWith('/serve.js')) {
  const [configDir, names = ''] = process.argv.slice(2);
  if (configDir === undefined) {
    process.stderr.write('usage: node dist/bench/serve.js CONFIG_DIR [daemon,...]\n');
    process.exit(2);
  }
  await main(configDir, names.split(',').filter((x) => x !== ''));
}
