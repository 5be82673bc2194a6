/**
 * The qmgr worker thread (see ./thread-client.ts): its own Log on the master's destination, the
 * qmgr daemon as ./index.ts runs it in a thread (createInProcess), and the kicks, reloads, log
 * reopens and drain the master thread sends.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { Log } from '../log/index.js';
import { strerror } from '../log/strerror.js';
import { queueKick } from '../queue/kick.js';
import { createInProcess } from './index.js';
import type { FromQmgrThread, QmgrThreadData, ToQmgrThread } from './thread-client.js';

const data = workerData as QmgrThreadData;
const port = parentPort!;
const send = (m: FromQmgrThread): void => port.postMessage(m);

async function main(): Promise<void> {
  const log = Log.open(data.log);
  const logger = log.logger('qmgr');
  const daemon = await createInProcess({ config: data.config, service: data.service, log });
  const kick = queueKick(data.service.params.queue_directory);
  port.on('message', (m: ToQmgrThread) => {
    switch (m.type) {
      case 'kick':
        for (const err of kick.fire(m.id, m.queue, m.file)) logger.warning(`${m.id}: queue kick listener failed: ${strerror(err)}`);
        break;
      case 'reopen':
        try {
          log.reopen();
        } catch (err) {
          logger.warning(`reopen ${data.log.maillog_file}: ${strerror(err)}`);
        }
        break;
      case 'reload': {
        const p = m.config.params;
        try {
          log.configure({ syslog_name: p.syslog_name, myhostname: p.myhostname, maillog_file: p.maillog_file });
        } catch (err) {
          logger.warning(`maillog_file ${p.maillog_file}: ${strerror(err)}`);
        }
        daemon.reload(m.config, m.service).catch((err: unknown) => logger.warning(`reload: ${strerror(err)}`));
        break;
      }
      case 'drain':
        void daemon
          .drain(m.deadline)
          .catch((err: unknown) => logger.warning(`drain: ${strerror(err)}`))
          .finally(() => {
            log.flushSync();
            send({ type: 'drained' });
          });
        break;
    }
  });
  send({ type: 'ready' });
}

main().catch((err: unknown) => send({ type: 'failed', message: strerror(err) }));
