/**
 * The mail queue: ids, directories, the queue file format, and per-message state.
 *
 * What it does: names queue files (Postfix-style ids, ./id.ts), lays out the queue directories
 * under `queue_directory` (./directories.ts), writes and validates queue files (./file.ts — the
 * format is documented at the top of that module), keeps per-recipient progress in an
 * append-only state log beside them (./state-log.ts), and tells qmgr about new files (./kick.ts).
 *
 * Data in: message bytes and envelopes from cleanup. Out: validated QueueFile values and message
 * streams for qmgr and the delivery agents (which only read). On disk: `queue_directory` only.
 * Trusts nothing it reads back: every file is checked (length, end record, SHA-256, envelope
 * shape) before use, and a bad one is reported as PosternError code 'corrupt'.
 *
 * Writers (DESIGN invariant 2): cleanup creates queue files; qmgr alone moves, marks (state log)
 * and deletes them.
 *
 * main.cf parameters: queue_directory, enable_long_queue_ids (read by cleanup, which allocates ids).
 */
export type { ClientFacts, EnvelopeRecipient, HeaderInsert, QueueEnvelope } from './envelope.js';
export { checkEnvelope } from './envelope.js';
export {
  createQueueDirectories,
  listQueueIds,
  moveQueueFile,
  QUEUE_NAMES,
  type QueueName,
  queueDirPath,
  queueFilePath,
  removeQueueFile,
  removeStaleTemporaryFiles,
  STATE_DIR,
  TEMP_NAME_RE,
} from './directories.js';
export {
  END_RECORD_LENGTH,
  type OpenMessageOptions,
  openMessage,
  QUEUE_FILE_MAGIC,
  type QueueFile,
  QueueFileWriter,
  type ReadQueueFileOptions,
  readMessage,
  readQueueFile,
} from './file.js';
export { isQueueId, longQueueId, type MicroTime, makeQueueId, microNow, queueIdInode, shortQueueId } from './id.js';
export { type KickListener, QueueKick, queueKick } from './kick.js';
export {
  type DeferredRecord,
  type DoneRecord,
  type NotifiedRecord,
  parseStateLog,
  readStateLog,
  removeStateLog,
  StateLog,
  type StateLogOptions,
  type StateRecord,
  stateLogPath,
} from './state-log.js';
