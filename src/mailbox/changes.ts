/**
 * Mailbox change events (DESIGN 3 `MailboxChange`): the mailbox library announces every change it
 * makes (a message added by delivery; later expunges and flag changes from imapd) so that IMAP
 * sessions watching the mailbox can tell their clients (IDLE, untagged EXISTS) without polling.
 * In-process and synchronous: a listener must not block and must not throw (a throwing listener
 * is reported to the emitter, never to the writer's caller).
 */

export type MailboxChangeKind = 'added' | 'expunged' | 'flags';

export interface MailboxChange {
  /** The mailbox: its Maildir directory, absolute, without a trailing slash. */
  readonly mailbox: string;
  readonly kind: MailboxChangeKind;
  /** Message file names (Maildir unique names) the change is about, e.g. the new file in new/. */
  readonly files: readonly string[];
  /** UIDs, once an index assigned them; empty when no index has seen the message yet. */
  readonly uids: readonly number[];
  /** The index's MODSEQ after the change (RFC 7162); null without an index. */
  readonly modseq: number | null;
}

export type MailboxListener = (change: MailboxChange) => void;

export class MailboxChanges {
  private readonly listeners = new Set<MailboxListener>();

  /** Subscribe; returns the function that unsubscribes. */
  on(listener: MailboxListener): () => void {
    this.listeners.add(listener);
    return () => {
      this.listeners.delete(listener);
    };
  }

  get listenerCount(): number {
    return this.listeners.size;
  }

  /** Tell every listener; returns what listeners threw (the writer logs it as a warning). */
  emit(change: MailboxChange): unknown[] {
    const errors: unknown[] = [];
    for (const l of [...this.listeners]) {
      try {
        l(change);
      } catch (err) {
        errors.push(err);
      }
    }
    return errors;
  }
}

/** The process-wide change feed: every delivery into any mailbox is announced here. */
export const mailboxChanges = new MailboxChanges();
