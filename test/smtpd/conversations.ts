/**
 * Scripted SMTP conversations with the replies Postfix 3.7 gives. protocol.test.ts runs them
 * against Postern; side-by-side.test.ts runs the same scripts against a private Postfix and
 * Postern with the same main.cf and compares the replies.
 *
 * Replies are normalized (queue ids become QID) so they can be compared across servers.
 */
import { SmtpClient } from '../harness/smtp-client.js';

export interface Step {
  /** Bytes to send (latin1). */
  readonly send: string;
  /** The replies that follow, in order (multiline replies with \n). */
  readonly replies: readonly string[];
  /** The server closes the connection after these replies. */
  readonly closes?: boolean;
}

export interface Conversation {
  readonly name: string;
  /** main.cf lines for both servers. */
  readonly mainCf?: string;
  readonly steps: readonly Step[];
  /** The expected first reply, when it is not the 220 greeting. */
  readonly greeting?: string;
  /** Postfix 3.7 differs here on purpose (documented); side-by-side skips it. */
  readonly postern_only?: string;
  /**
   * The settings are read by Postfix daemons other than smtpd (trivial-rewrite resolves address
   * classes), so master.cf -o overrides are not enough: side-by-side runs a Postfix of its own.
   */
  readonly global?: boolean;
}

export const EHLO_REPLY = [
  '250-mx.example.test',
  '250-PIPELINING',
  '250-SIZE 10240000',
  '250-VRFY',
  '250-ETRN',
  '250-ENHANCEDSTATUSCODES',
  '250-8BITMIME',
  '250-DSN',
  '250-SMTPUTF8',
  '250 CHUNKING',
].join('\n');

const ehlo: Step = { send: 'EHLO client.example.test\r\n', replies: [EHLO_REPLY] };
const quit: Step = { send: 'QUIT\r\n', replies: ['221 2.0.0 Bye'], closes: true };

export const CONVERSATIONS: readonly Conversation[] = [
  {
    name: 'HELO and EHLO syntax',
    steps: [
      { send: 'EHLO\r\n', replies: ['501 Syntax: EHLO hostname'] },
      { send: 'HELO\r\n', replies: ['501 Syntax: HELO hostname'] },
      { send: 'HELO client.example.test\r\n', replies: ['250 mx.example.test'] },
      ehlo,
      quit,
    ],
  },
  {
    name: 'commands out of sequence',
    steps: [
      ehlo,
      { send: 'RCPT TO:<bob@mx.example.test>\r\n', replies: ['503 5.5.1 Error: need MAIL command'] },
      { send: 'DATA\r\n', replies: ['503 5.5.1 Error: need RCPT command'] },
      { send: 'MAIL FROM:<alice@client.example.test>\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'MAIL FROM:<alice@client.example.test>\r\n', replies: ['503 5.5.1 Error: nested MAIL command'] },
      { send: 'DATA\r\n', replies: ['554 5.5.1 Error: no valid recipients'] },
      { send: 'RSET x\r\n', replies: ['501 5.5.4 Syntax: RSET'] },
      { send: 'RCPT TO:<bob@mx.example.test>\r\n', replies: ['250 2.1.5 Ok'] },
      { send: 'DATA x\r\n', replies: ['501 5.5.4 Syntax: DATA'] },
      { send: 'RSET\r\n', replies: ['250 2.0.0 Ok'] },
      { send: 'NOOP\r\n', replies: ['250 2.0.0 Ok'] },
      quit,
    ],
  },
  {
    name: 'unknown commands and bad syntax',
    steps: [
      ehlo,
      { send: 'FOO bar\r\n', replies: ['500 5.5.2 Error: command not recognized'] },
      { send: '\r\n', replies: ['500 5.5.2 Error: bad syntax'] },
      { send: 'XCLIENT ADDR=192.0.2.1\r\n', replies: ['550 5.7.0 Error: insufficient authorization'] },
      { send: 'AUTH PLAIN\r\n', replies: ['503 5.5.1 Error: authentication not enabled'] },
      quit,
    ],
  },
  {
    name: 'MAIL and RCPT syntax and parameters',
    steps: [
      ehlo,
      { send: 'MAIL FROM:\r\n', replies: ['501 5.5.4 Syntax: MAIL FROM:<address>'] },
      { send: 'MAIL TO:<a@client.example.test>\r\n', replies: ['501 5.5.4 Syntax: MAIL FROM:<address>'] },
      { send: 'MAIL FROM:<a@client.example.test\r\n', replies: ['501 5.1.7 Bad sender address syntax'] },
      { send: 'MAIL FROM:<a@client.example.test> FOO=1\r\n', replies: ['555 5.5.4 Unsupported option: FOO=1'] },
      { send: 'MAIL FROM:<a@client.example.test> SIZE=x\r\n', replies: ['501 5.5.4 Bad message size syntax'] },
      { send: 'MAIL FROM:<a@client.example.test> RET=ALL\r\n', replies: ['501 5.5.4 Bad RET parameter syntax'] },
      { send: 'MAIL FROM:<a@client.example.test> BODY=8BITMIME RET=HDRS ENVID=x+2By\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'RCPT TO:\r\n', replies: ['501 5.5.4 Syntax: RCPT TO:<address>'] },
      { send: 'RCPT TO:<>\r\n', replies: ['501 5.1.3 Bad recipient address syntax'] },
      { send: 'RCPT TO:<bob@mx.example.test> NOTIFY=SOMETIMES\r\n', replies: ['501 5.5.4 Error: Bad NOTIFY parameter syntax'] },
      { send: 'RCPT TO:<bob@mx.example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;bob@mx.example.test\r\n', replies: ['250 2.1.5 Ok'] },
      { send: 'RCPT TO:<bob@mx.example.test> XYZ\r\n', replies: ['555 5.5.4 Unsupported option: XYZ'] },
      quit,
    ],
  },
  {
    // Postfix 3.7 mail_cmd(): BODY=7BIT and BODY=8BITMIME in any case; nothing else, so
    // BODY=BINARYMIME is an unsupported option (no BINARYMIME in EHLO, RFC 3030 3), echoed as sent.
    // Parameters are checked in the order given: the first bad one answers.
    name: 'MAIL FROM with BODY=7BIT and BODY=BINARYMIME',
    steps: [
      ehlo,
      { send: 'MAIL FROM:<a@client.example.test> BODY=BINARYMIME\r\n', replies: ['555 5.5.4 Unsupported option: BODY=BINARYMIME'] },
      { send: 'MAIL FROM:<a@client.example.test> body=binarymime\r\n', replies: ['555 5.5.4 Unsupported option: body=binarymime'] },
      { send: 'MAIL FROM:<a@client.example.test> BODY=BINARYMIME SIZE=x\r\n', replies: ['555 5.5.4 Unsupported option: BODY=BINARYMIME'] },
      { send: 'MAIL FROM:<a@client.example.test> SIZE=x BODY=BINARYMIME\r\n', replies: ['501 5.5.4 Bad message size syntax'] },
      { send: 'MAIL FROM:<a@client.example.test> BODY=8BIT\r\n', replies: ['555 5.5.4 Unsupported option: BODY=8BIT'] },
      { send: 'MAIL FROM:<a@client.example.test> BODY=\r\n', replies: ['555 5.5.4 Unsupported option: BODY='] },
      { send: 'MAIL FROM:<a@client.example.test> BODY=7BIT\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'RCPT TO:<bob@mx.example.test>\r\n', replies: ['250 2.1.5 Ok'] },
      { send: 'DATA\r\n', replies: ['354 End data with <CR><LF>.<CR><LF>'] },
      { send: 'Subject: 7bit\r\n\r\nplain\r\n.\r\n', replies: ['250 2.0.0 Ok: queued as QID'] },
      { send: 'MAIL FROM:<a@client.example.test> body=7bit SIZE=100\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'RSET\r\n', replies: ['250 2.0.0 Ok'] },
      // A repeated BODY is not an error in Postfix 3.7: the last one counts.
      { send: 'MAIL FROM:<a@client.example.test> BODY=7BIT BODY=8BITMIME\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'RSET\r\n', replies: ['250 2.0.0 Ok'] },
      // BODY=BINARYMIME is refused even with CHUNKING, the only transfer it would allow.
      { send: 'MAIL FROM:<a@client.example.test> BODY=BINARYMIME\r\nRCPT TO:<bob@mx.example.test>\r\nBDAT 3 LAST\r\na\x00b', replies: ['555 5.5.4 Unsupported option: BODY=BINARYMIME', '503 5.5.1 Error: need MAIL command', '503 5.5.1 Error: need RCPT command'] },
      { send: 'MAIL FROM:<a@client.example.test> BODY=7BIT\r\nRCPT TO:<bob@mx.example.test>\r\nBDAT 21 LAST\r\nSubject: b\r\n\r\nhello\r\n', replies: ['250 2.1.0 Ok', '250 2.1.5 Ok', '250 2.0.0 Ok: 21 bytes queued as QID'] },
      quit,
    ],
  },
  {
    name: 'SIZE above message_size_limit',
    mainCf: 'message_size_limit = 1000',
    steps: [
      {
        send: 'EHLO client.example.test\r\n',
        replies: [EHLO_REPLY.replace('SIZE 10240000', 'SIZE 1000')],
      },
      { send: 'MAIL FROM:<a@client.example.test> SIZE=1001\r\n', replies: ['552 5.3.4 Message size exceeds fixed limit'] },
      { send: 'RSET\r\n', replies: ['250 2.0.0 Ok'] },
      { send: 'MAIL FROM:<a@client.example.test> SIZE=1000\r\n', replies: ['250 2.1.0 Ok'] },
      quit,
    ],
  },
  {
    name: 'DATA queued, smuggling sequences stay content',
    // Postfix 3.7's default is "no" (smugglable); Postern's is 3.9's "normalize".
    mainCf: 'smtpd_forbid_bare_newline = normalize\nsmtpd_forbid_bare_newline_exclusions =',
    steps: [
      ehlo,
      { send: 'MAIL FROM:<alice@client.example.test>\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'RCPT TO:<bob@mx.example.test>\r\n', replies: ['250 2.1.5 Ok'] },
      { send: 'DATA\r\n', replies: ['354 End data with <CR><LF>.<CR><LF>'] },
      {
        send: 'Subject: smuggle\r\n\r\nA\n.\nMAIL FROM:<x@evil.example>\r\nB\r\n.\nC\n.\r\nD\r.\rE\r\n..\r\n.\r\n',
        replies: ['250 2.0.0 Ok: queued as QID'],
      },
      quit,
    ],
  },
  {
    name: 'BDAT chunks and errors',
    steps: [
      ehlo,
      { send: 'BDAT 4\r\nabcd', replies: ['503 5.5.1 Error: need RCPT command'] },
      { send: 'MAIL FROM:<a@client.example.test>\r\n', replies: ['503 5.5.1 Error: MAIL after BDAT'] },
      { send: 'BDAT 3 LAST\r\nxyz', replies: ['551 5.0.0 Discarded 3 bytes after earlier error'] },
      { send: 'MAIL FROM:<a@client.example.test>\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'RCPT TO:<bob@mx.example.test>\r\n', replies: ['250 2.1.5 Ok'] },
      { send: 'BDAT 21\r\nSubject: x\r\n\r\nhello\r\n', replies: ['250 2.0.0 Ok: 21 bytes'] },
      { send: 'DATA\r\n', replies: ['503 5.5.1 Error: DATA after BDAT'] },
      { send: 'BDAT 0 LAST\r\n', replies: ['250 2.0.0 Ok: 21 bytes queued as QID'] },
      { send: 'MAIL FROM:<a@client.example.test>\r\nRCPT TO:<bob@mx.example.test>\r\nBDAT 0\r\n', replies: ['250 2.1.0 Ok', '250 2.1.5 Ok', '551 5.7.1 Null BDAT request'] },
      { send: 'RSET\r\n', replies: ['250 2.0.0 Ok'] },
      { send: 'MAIL FROM:<a@client.example.test>\r\nRCPT TO:<bob@mx.example.test>\r\nBDAT 21 LAST\r\nSubject: y\r\n\r\nhello\r\n', replies: ['250 2.1.0 Ok', '250 2.1.5 Ok', '250 2.0.0 Ok: 21 bytes queued as QID'] },
      { send: 'BDAT x\r\n', replies: ['521 5.5.4 Syntax: BDAT count [LAST]'], closes: true },
    ],
  },
  {
    name: 'message_size_limit during DATA',
    mainCf: 'message_size_limit = 2000',
    steps: [
      { send: 'EHLO client.example.test\r\n', replies: [EHLO_REPLY.replace('SIZE 10240000', 'SIZE 2000')] },
      { send: 'MAIL FROM:<a@client.example.test>\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'RCPT TO:<bob@mx.example.test>\r\n', replies: ['250 2.1.5 Ok'] },
      { send: 'DATA\r\n', replies: ['354 End data with <CR><LF>.<CR><LF>'] },
      { send: `Subject: big\r\n\r\n${`${'x'.repeat(998)}\r\n`.repeat(3)}.\r\n`, replies: ['552 5.3.4 Error: message file too big'] },
      { send: 'MAIL FROM:<a@client.example.test>\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'RCPT TO:<bob@mx.example.test>\r\nBDAT 3000 LAST\r\n' + 'z'.repeat(3000), replies: ['250 2.1.5 Ok', '552 5.3.4 Chunk exceeds message size limit'] },
      quit,
    ],
  },
  {
    name: 'smtpd_recipient_limit',
    mainCf: 'smtpd_recipient_limit = 2',
    steps: [
      ehlo,
      { send: 'MAIL FROM:<a@client.example.test>\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'RCPT TO:<b1@mx.example.test>\r\n', replies: ['250 2.1.5 Ok'] },
      { send: 'RCPT TO:<b2@mx.example.test>\r\n', replies: ['250 2.1.5 Ok'] },
      { send: 'RCPT TO:<b3@mx.example.test>\r\n', replies: ['452 4.5.3 Error: too many recipients'] },
      quit,
    ],
  },
  {
    name: 'relay access denied outside mynetworks',
    mainCf: 'mynetworks = 192.0.2.0/24\nsmtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
    steps: [
      ehlo,
      { send: 'MAIL FROM:<alice@client.example.test>\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'RCPT TO:<carol@other.test>\r\n', replies: ['554 5.7.1 <carol@other.test>: Relay access denied'] },
      { send: 'RCPT TO:<carol%other.test@mx.example.test>\r\n', replies: ['554 5.7.1 <carol%other.test@mx.example.test>: Relay access denied'] },
      { send: 'RCPT TO:<bob@mx.example.test>\r\n', replies: ['250 2.1.5 Ok'] },
      quit,
    ],
  },
  {
    name: 'defer_unauth_destination by default (compatibility_level 3.6)',
    mainCf: 'mynetworks = 192.0.2.0/24',
    steps: [
      ehlo,
      { send: 'MAIL FROM:<alice@client.example.test>\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'RCPT TO:<carol@other.test>\r\n', replies: ['454 4.7.1 <carol@other.test>: Relay access denied'] },
      quit,
    ],
  },
  {
    name: 'access tables, non-FQDN and unknown local users',
    mainCf: [
      'mynetworks = 192.0.2.0/24',
      'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
      'smtpd_recipient_restrictions = reject_non_fqdn_recipient, check_recipient_access inline:{ blocked@mx.example.test=REJECT, { deferred@mx.example.test = DEFER try later }, { five@mx.example.test = 550 5.1.1 no such person } }',
      'smtpd_sender_restrictions = reject_non_fqdn_sender, check_sender_access inline:{ { spammer@client.example.test = REJECT go away } }',
      'local_recipient_maps = inline:{ bob=1, blocked=1, deferred=1, five=1 }',
    ].join('\n'),
    steps: [
      ehlo,
      { send: 'MAIL FROM:<alice@client.example.test>\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'RCPT TO:<blocked@mx.example.test>\r\n', replies: ['554 5.7.1 <blocked@mx.example.test>: Recipient address rejected: Access denied'] },
      { send: 'RCPT TO:<deferred@mx.example.test>\r\n', replies: ['450 4.7.1 <deferred@mx.example.test>: Recipient address rejected: try later'] },
      { send: 'RCPT TO:<five@mx.example.test>\r\n', replies: ['550 5.1.1 <five@mx.example.test>: Recipient address rejected: no such person'] },
      { send: 'RCPT TO:<nobody@mx.example.test>\r\n', replies: ['550 5.1.1 <nobody@mx.example.test>: Recipient address rejected: User unknown in local recipient table'] },
      { send: 'RCPT TO:<bob@localhost>\r\n', replies: ['504 5.5.2 <bob@localhost>: Recipient address rejected: need fully-qualified address'] },
      { send: 'RCPT TO:<bob@mx.example.test>\r\n', replies: ['250 2.1.5 Ok'] },
      { send: 'RSET\r\n', replies: ['250 2.0.0 Ok'] },
      { send: 'MAIL FROM:<spammer@client.example.test>\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'RCPT TO:<bob@mx.example.test>\r\n', replies: ['554 5.7.1 <spammer@client.example.test>: Sender address rejected: go away'] },
      { send: 'RSET\r\n', replies: ['250 2.0.0 Ok'] },
      { send: 'MAIL FROM:<alice>\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'RCPT TO:<bob@mx.example.test>\r\n', replies: ['504 5.5.2 <alice>: Sender address rejected: need fully-qualified address'] },
      quit,
    ],
  },
  {
    name: 'address classes: virtual mailbox, virtual alias and relay domains with their recipient tables',
    global: true,
    mainCf: [
      'mynetworks = 192.0.2.0/24',
      'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
      'virtual_mailbox_domains = virt.example',
      'virtual_mailbox_maps = inline:{ box@virt.example=box/ }',
      'virtual_alias_domains = alias.example',
      'virtual_alias_maps = inline:{ known@alias.example=box@virt.example }',
      'relay_domains = relay.example',
      'relay_recipient_maps = inline:{ r@relay.example=ok }',
    ].join('\n'),
    steps: [
      ehlo,
      { send: 'MAIL FROM:<alice@client.example.test>\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'RCPT TO:<box@virt.example>\r\n', replies: ['250 2.1.5 Ok'] },
      { send: 'RCPT TO:<nobox@virt.example>\r\n', replies: ['550 5.1.1 <nobox@virt.example>: Recipient address rejected: User unknown in virtual mailbox table'] },
      { send: 'RCPT TO:<known@alias.example>\r\n', replies: ['250 2.1.5 Ok'] },
      { send: 'RCPT TO:<unknown@alias.example>\r\n', replies: ['550 5.1.1 <unknown@alias.example>: Recipient address rejected: User unknown in virtual alias table'] },
      { send: 'RCPT TO:<r@relay.example>\r\n', replies: ['250 2.1.5 Ok'] },
      { send: 'RCPT TO:<x@relay.example>\r\n', replies: ['550 5.1.1 <x@relay.example>: Recipient address rejected: User unknown in relay recipient table'] },
      { send: 'RCPT TO:<x@sub.relay.example>\r\n', replies: ['550 5.1.1 <x@sub.relay.example>: Recipient address rejected: User unknown in relay recipient table'] },
      { send: 'RCPT TO:<x@other.example>\r\n', replies: ['554 5.7.1 <x@other.example>: Relay access denied'] },
      { send: 'RCPT TO:<postmaster>\r\n', replies: ['250 2.1.5 Ok'] },
      quit,
    ],
  },
  {
    name: 'access actions: HOLD, DISCARD, REDIRECT, BCC and PREPEND accept; HANGUP closes without a reply',
    mainCf: [
      'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
      'smtpd_recipient_restrictions = check_recipient_access inline:{ hold@mx.example.test=HOLD, discard@mx.example.test=DISCARD, { redir@mx.example.test = REDIRECT bob@mx.example.test }, { copy@mx.example.test = BCC archive@mx.example.test }, { tag@mx.example.test = PREPEND X-Tag: yes }, hangup@mx.example.test=HANGUP }',
      'local_recipient_maps = inline:{ bob=1, hold=1, discard=1, redir=1, copy=1, tag=1, hangup=1, archive=1 }',
    ].join('\n'),
    steps: [
      ehlo,
      ...['hold', 'discard', 'redir', 'copy', 'tag'].flatMap((r): Step[] => [
        { send: `MAIL FROM:<a@client.example.test>\r\nRCPT TO:<${r}@mx.example.test>\r\nDATA\r\n`, replies: ['250 2.1.0 Ok', '250 2.1.5 Ok', '354 End data with <CR><LF>.<CR><LF>'] },
        { send: `Subject: ${r}\r\n\r\nbody\r\n.\r\n`, replies: ['250 2.0.0 Ok: queued as QID'] },
      ]),
      { send: 'MAIL FROM:<a@client.example.test>\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'RCPT TO:<hangup@mx.example.test>\r\n', replies: [], closes: true },
    ],
  },
  {
    name: 'restriction lists: client, helo and sender access, warn_if_reject, restriction classes',
    mainCf: [
      'smtpd_restriction_classes = strict',
      'strict = reject_non_fqdn_recipient, check_recipient_access inline:{ { vip@mx.example.test = OK } }, reject',
      'smtpd_client_restrictions = check_client_access inline:{ { 127.0.0.2 = REJECT } }',
      'smtpd_helo_restrictions = reject_invalid_helo_hostname, warn_if_reject reject_non_fqdn_helo_hostname',
      'smtpd_sender_restrictions = check_sender_access inline:{ { strict.example = strict } }',
      'smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination',
    ].join('\n'),
    steps: [
      { send: 'EHLO bad_host!\r\n', replies: [EHLO_REPLY] },
      { send: 'MAIL FROM:<a@client.example.test>\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'RCPT TO:<bob@mx.example.test>\r\n', replies: ['501 5.5.2 <bad_host!>: Helo command rejected: Invalid name'] },
      { send: 'EHLO nodots\r\n', replies: [EHLO_REPLY] },
      { send: 'MAIL FROM:<a@strict.example>\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'RCPT TO:<vip@mx.example.test>\r\n', replies: ['250 2.1.5 Ok'] },
      { send: 'RCPT TO:<bob@mx.example.test>\r\n', replies: ['554 5.7.1 <a@strict.example>: Sender address rejected: Access denied'] },
      quit,
    ],
  },
  {
    name: 'client and HELO access tables',
    mainCf: [
      'smtpd_client_restrictions = check_client_access inline:{ { 192.0.2.1 = REJECT } }',
      'smtpd_helo_restrictions = check_helo_access inline:{ { bad.example = 450 4.7.1 go away }, { worse.example = REJECT } }',
    ].join('\n'),
    steps: [
      { send: 'EHLO bad.example\r\n', replies: [EHLO_REPLY] },
      { send: 'MAIL FROM:<a@client.example.test>\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'RCPT TO:<bob@mx.example.test>\r\n', replies: ['450 4.7.1 <bad.example>: Helo command rejected: go away'] },
      { send: 'EHLO worse.example\r\n', replies: [EHLO_REPLY] },
      { send: 'MAIL FROM:<a@client.example.test>\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'RCPT TO:<bob@mx.example.test>\r\n', replies: ['554 5.7.1 <worse.example>: Helo command rejected: Access denied'] },
      quit,
    ],
  },
  {
    name: 'smtpd_delay_reject = no: a rejected client gets no greeting',
    mainCf: 'smtpd_delay_reject = no\nsmtpd_client_restrictions = check_client_access inline:{ { 127.0.0.1 = REJECT no thanks } }',
    greeting: '554 5.7.1 <unknown[127.0.0.1]>: Client host rejected: no thanks',
    steps: [
      { send: 'EHLO client.example.test\r\n', replies: ['503 5.7.0 Error: access denied for unknown[127.0.0.1]'] },
      quit,
    ],
  },
  {
    name: 'VRFY and ETRN',
    steps: [
      ehlo,
      { send: 'VRFY\r\n', replies: ['501 5.5.4 Syntax: VRFY address [SMTPUTF8]'] },
      { send: 'VRFY bob\r\n', replies: ['252 2.0.0 bob'] },
      { send: 'ETRN\r\n', replies: ['500 Syntax: ETRN domain'] },
      { send: 'ETRN example.com\r\n', replies: ['459 <example.com>: service unavailable'] },
      { send: 'ETRN bad..domain!\r\n', replies: ['501 Error: invalid parameter syntax'] },
      { send: 'MAIL FROM:<a@client.example.test>\r\n', replies: ['250 2.1.0 Ok'] },
      { send: 'ETRN example.com\r\n', replies: ['503 Error: MAIL transaction in progress'] },
      quit,
    ],
  },
  {
    name: 'disable_vrfy_command',
    mainCf: 'disable_vrfy_command = yes',
    steps: [
      { send: 'EHLO client.example.test\r\n', replies: [EHLO_REPLY.replace('250-VRFY\n', '')] },
      { send: 'VRFY bob\r\n', replies: ['502 5.5.1 VRFY command is disabled'] },
      quit,
    ],
  },
  {
    name: 'an HTTP request on the SMTP port is dropped',
    steps: [{ send: 'GET / HTTP/1.1\r\nHost: mx.example.test\r\n\r\n', replies: ['221 2.7.0 Error: I can break rules, too. Goodbye.'], closes: true }],
  },
  {
    name: 'a message header sent as a command is dropped',
    steps: [ehlo, { send: 'Subject: hello\r\n', replies: ['221 2.7.0 Error: I can break rules, too. Goodbye.'], closes: true }],
  },
  {
    name: 'too many errors (smtpd_hard_error_limit)',
    mainCf: 'smtpd_hard_error_limit = 3',
    steps: [
      ehlo,
      { send: 'FOO\r\n', replies: ['500 5.5.2 Error: command not recognized'] },
      { send: 'FOO\r\n', replies: ['500 5.5.2 Error: command not recognized'] },
      { send: 'FOO\r\n', replies: ['500 5.5.2 Error: command not recognized', '421 4.7.0 mx.example.test Error: too many errors'], closes: true },
    ],
  },
  {
    name: 'smtpd_junk_command_limit',
    mainCf: 'smtpd_junk_command_limit = 2\nsmtpd_hard_error_limit = 2',
    steps: [
      ehlo,
      { send: 'NOOP\r\n', replies: ['250 2.0.0 Ok'] },
      { send: 'NOOP\r\n', replies: ['250 2.0.0 Ok'] },
      { send: 'NOOP\r\n', replies: ['250 2.0.0 Ok'] },
      { send: 'RSET\r\n', replies: ['250 2.0.0 Ok', '421 4.7.0 mx.example.test Error: too many errors'], closes: true },
    ],
  },
  {
    name: 'improper pipelining with smtpd_forbid_unauth_pipelining = yes',
    mainCf: 'smtpd_forbid_unauth_pipelining = yes',
    steps: [
      { send: 'HELO client.example.test\r\nMAIL FROM:<a@client.example.test>\r\n', replies: ['554 5.5.0 Error: SMTP protocol synchronization'], closes: true },
    ],
  },
  {
    name: 'pipelining after EHLO is allowed for MAIL/RCPT, not after NOOP',
    mainCf: 'smtpd_forbid_unauth_pipelining = yes',
    steps: [
      ehlo,
      { send: 'MAIL FROM:<a@client.example.test>\r\nRCPT TO:<bob@mx.example.test>\r\nRSET\r\n', replies: ['250 2.1.0 Ok', '250 2.1.5 Ok', '250 2.0.0 Ok'] },
      { send: 'NOOP\r\nNOOP\r\n', replies: ['554 5.5.0 Error: SMTP protocol synchronization'], closes: true },
    ],
  },
  {
    name: 'over-long command line',
    steps: [ehlo, { send: `NOOP ${'a'.repeat(3000)}\r\n`, replies: ['250 2.0.0 Ok'] }, { send: `MAIL FROM:<${'b'.repeat(3000)}@client.example.test>\r\n`, replies: ['501 5.1.7 Bad sender address syntax'] }, quit],
  },
  {
    name: 'NUL and 8-bit data without BODY=8BITMIME are accepted',
    steps: [
      ehlo,
      { send: 'MAIL FROM:<a@client.example.test>\r\nRCPT TO:<bob@mx.example.test>\r\nDATA\r\n', replies: ['250 2.1.0 Ok', '250 2.1.5 Ok', '354 End data with <CR><LF>.<CR><LF>'] },
      { send: 'Subject: bytes\r\n\r\nnul:\x00 latin1:\xe9\xff\r\n.\r\n', replies: ['250 2.0.0 Ok: queued as QID'] },
      quit,
    ],
  },
  {
    // smtpd_check_eod(): after the final "." and after BDAT LAST; no recipient named when there are
    // several; a table that cannot be opened answers 451 4.3.5 with the reply name and class.
    name: 'smtpd_end_of_data_restrictions',
    mainCf: 'smtpd_end_of_data_restrictions = check_sender_access inline:{ { late@client.example.test = REJECT too late } }, check_client_access inline:{ broken }',
    steps: [
      ehlo,
      { send: 'MAIL FROM:<late@client.example.test>\r\nRCPT TO:<bob@mx.example.test>\r\nRCPT TO:<carol@mx.example.test>\r\nDATA\r\n', replies: ['250 2.1.0 Ok', '250 2.1.5 Ok', '250 2.1.5 Ok', '354 End data with <CR><LF>.<CR><LF>'] },
      { send: 'Subject: x\r\n\r\nhello\r\n.\r\n', replies: ['554 5.7.1 <late@client.example.test>: Sender address rejected: too late'] },
      { send: 'RSET\r\nMAIL FROM:<a@client.example.test>\r\nRCPT TO:<bob@mx.example.test>\r\nDATA\r\n', replies: ['250 2.0.0 Ok', '250 2.1.0 Ok', '250 2.1.5 Ok', '354 End data with <CR><LF>.<CR><LF>'] },
      { send: 'Subject: x\r\n\r\nhello\r\n.\r\n', replies: ['451 4.3.5 <unknown[127.0.0.1]>: Client host rejected: Server configuration error'] },
      { send: 'RSET\r\nMAIL FROM:<late@client.example.test>\r\nRCPT TO:<bob@mx.example.test>\r\n', replies: ['250 2.0.0 Ok', '250 2.1.0 Ok', '250 2.1.5 Ok'] },
      { send: 'BDAT 21 LAST\r\nSubject: y\r\n\r\nhello\r\n', replies: ['554 5.7.1 <late@client.example.test>: Sender address rejected: too late'] },
      quit,
    ],
  },
  {
    name: 'MAIL right after an end-of-data rejection',
    postern_only: 'Postfix 3.7 keeps the sender after smtpd_end_of_data_restrictions rejects, so its next MAIL gets 503 5.5.1 Error: nested MAIL command; Postern ends the transaction as RFC 5321 4.1.1.4 does after any end-of-data reply',
    mainCf: 'smtpd_end_of_data_restrictions = check_sender_access inline:{ { late@client.example.test = REJECT too late } }',
    steps: [
      ehlo,
      { send: 'MAIL FROM:<late@client.example.test>\r\nRCPT TO:<bob@mx.example.test>\r\nDATA\r\n', replies: ['250 2.1.0 Ok', '250 2.1.5 Ok', '354 End data with <CR><LF>.<CR><LF>'] },
      { send: 'Subject: x\r\n\r\nhello\r\n.\r\n', replies: ['554 5.7.1 <late@client.example.test>: Sender address rejected: too late'] },
      { send: 'MAIL FROM:<a@client.example.test>\r\nRCPT TO:<bob@mx.example.test>\r\nDATA\r\n', replies: ['250 2.1.0 Ok', '250 2.1.5 Ok', '354 End data with <CR><LF>.<CR><LF>'] },
      { send: 'Subject: x\r\n\r\nhello\r\n.\r\n', replies: ['250 2.0.0 Ok: queued as QID'] },
      quit,
    ],
  },
  {
    name: 'access table that cannot be opened',
    mainCf: 'smtpd_recipient_restrictions = check_recipient_access inline:{ broken }, permit',
    steps: [
      ehlo,
      { send: 'MAIL FROM:<a@client.example.test>\r\nRCPT TO:<bob@mx.example.test>\r\n', replies: ['250 2.1.0 Ok', '451 4.3.5 <bob@mx.example.test>: Recipient address rejected: Server configuration error'] },
      quit,
    ],
  },
  {
    name: 'HELP (Postfix 3.9)',
    postern_only: 'HELP exists in Postfix >= 3.9; 3.7 answers 500 5.5.2',
    steps: [ehlo, { send: 'HELP\r\n', replies: ['214 2.0.0 Commands: AUTH BDAT DATA EHLO ETRN HELO HELP MAIL NOOP QUIT RCPT RSET STARTTLS VRFY XCLIENT XFORWARD'] }, quit],
  },
];

/** Queue ids differ between servers and runs. */
export function normalize(reply: string): string {
  return reply.replace(/queued as [0-9A-Za-z]+/g, 'queued as QID');
}

/** Run one conversation; returns the replies received per step (normalized), and whether the server closed. */
export async function runConversation(port: number, conv: Conversation, host = '127.0.0.1'): Promise<{ greeting: string; steps: { replies: string[]; closed: boolean }[] }> {
  const c = await SmtpClient.connect(port, host, 8000);
  const out: { replies: string[]; closed: boolean }[] = [];
  try {
    const greeting = await c.read();
    for (const step of conv.steps) {
      c.write(step.send);
      const replies: string[] = [];
      for (let i = 0; i < step.replies.length; i++) {
        try {
          replies.push(normalize(await c.read()));
        } catch (e) {
          replies.push(`<${(e as Error).message.slice(0, 60)}>`);
          break;
        }
      }
      let closed = false;
      if (step.closes) {
        try {
          await c.waitClosed(3000);
          closed = true;
        } catch {
          closed = false;
        }
      }
      out.push({ replies, closed });
      if (step.closes) break;
    }
    return { greeting, steps: out };
  } finally {
    c.close();
  }
}
