/**
 * The contract between qmgr and the delivery agents (DESIGN 3): qmgr hands an agent a
 * DeliveryRequest (plain, serialisable), the agent opens the queue file read-only and answers one
 * DeliveryStatus per recipient. Agents never move, mark or delete queue files (invariant 2) and
 * never throw for a delivery outcome: unknown errors are temporary (4.x.x), never permanent, never
 * success (CONVENTIONS "Errors").
 */
import type { QueueFile } from './file.js';

export interface DeliveryRecipient {
  /** Index of the recipient in the queue file's envelope (the state log's key). */
  readonly index: number;
  /** The address to deliver to, after virtual alias expansion and canonicalisation. */
  readonly address: string;
  /** The address as received (Postfix's orig_to), when it differs from `address`; else null. */
  readonly origAddress: string | null;
  /** RFC 3461 NOTIFY (null = not given) and ORCPT (`rfc822;addr`) from the envelope. */
  readonly notify: readonly string[] | 'NEVER' | null;
  readonly orcpt: string | null;
}

export interface DeliveryRequest {
  readonly queueId: string;
  /** Absolute path of the queue file (in active/); open with readQueueFile/openMessage, read-only. */
  readonly queueFile: string;
  /** '' = null sender. */
  readonly sender: string;
  readonly recipients: readonly DeliveryRecipient[];
  /** master.cf transport name (`local`, `virtual`, `smtp`, `relay`, `discard`, `error`, ...). */
  readonly transport: string;
  /** Transport-specific next hop: domain or `[host]:port` for smtp, the text for discard/error, the domain for local/virtual. */
  readonly nexthop: string;
  /** Milliseconds since the epoch (for delay= and Arrival-Date). */
  readonly arrivalTime: number;
  /** When qmgr moved the message into active/ (ms since the epoch), for delays=a/b/c/d. */
  readonly activeTime: number;
  /**
   * The queue file as qmgr validated it when it was activated (a plain object: envelope, hash,
   * layout). An agent may take it instead of reading and verifying the immutable file again; an
   * agent without it (another process) opens `queueFile` itself.
   */
  readonly file?: QueueFile;
}

/** RFC 3464 2.3.3 Action values as Postfix uses them. */
export type DeliveryAction = 'delivered' | 'relayed' | 'expanded' | 'deferred' | 'failed';

export interface DeliveryStatus {
  readonly index: number;
  /** RFC 3463 enhanced status, e.g. `2.0.0`, `4.4.1`, `5.1.1`. The class (2/4/5) decides the outcome. */
  readonly dsn: string;
  readonly action: DeliveryAction;
  /** The text in parentheses of Postfix's `status=sent (...)` log line, e.g. `delivered to maildir`. */
  readonly reason: string;
  /** Postfix's relay= field: `local`, `virtual`, `none`, `host[addr]:port`. */
  readonly relay: string;
  /** Seconds spent in connection setup (c) and transmission (d) of delays=a/b/c/d. */
  readonly connSeconds: number;
  readonly xmitSeconds: number;
  /** Remote-MTA and the remote reply for DSN Diagnostic-Code, when there was one (smtp). */
  readonly remoteMta?: string;
  readonly diagnostic?: string;
  /** The local agent expanded the recipient (aliases, :include:): every delivery made for it, in
   * order. qmgr logs one `to=<address>, orig_to=<recipient>` line per entry, as Postfix does. */
  readonly expanded?: readonly DeliveryLeaf[];
}

/** One delivery made for an expanded recipient. */
export interface DeliveryLeaf {
  readonly address: string;
  readonly dsn: string;
  readonly action: DeliveryAction;
  readonly reason: string;
}

/** A delivery agent (local, virtual, smtp, discard, error): one request in, one status per recipient out. */
export interface DeliveryAgent {
  deliver(req: DeliveryRequest): Promise<readonly DeliveryStatus[]>;
}
