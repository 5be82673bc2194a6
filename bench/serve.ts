/**
 * Stand-in for `postern run -c DIR` while smtpd is not yet in the master's daemon table
 * (src/master/daemons.ts): the same Master, config loader and log, with smtpd registered here.
 * Used by the bench only when DAEMONS has no smtpd entry; the report marks such figures.
 *
 *   node dist/bench/serve.js CONFIG_DIR     stops on SIGTERM/SIGINT (exit 0)
 */
import { loadConfig } from '../src/config/index.js';
import { Log } from '../src/log/index.js';
import type { DaemonLoader } from '../src/master/daemons.js';
import { DAEMONS } from '../src/master/daemons.js';
import { Master } from '../src/master/index.js';

const configDir = process.argv[2];
if (configDir === undefined) {
  process.stderr.write('usage: node dist/bench/serve.js CONFIG_DIR\n');
  process.exit(2);
}
const load = () => loadConfig({ configDir, env: {} });
const config = await load();
const p = config.params;
const log = Log.open({ syslog_name: p.syslog_name, myhostname: p.myhostname, maillog_file: p.maillog_file });
const daemons: Record<string, DaemonLoader> = { ...DAEMONS };
daemons.smtpd ??= async () => (await import('../src/smtpd/index.js')).createDaemon;
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
