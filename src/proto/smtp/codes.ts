/**
 * SMTP reply codes (RFC 5321 4.2.2, 4.2.3 and the extensions that add codes) and the RFC 3463
 * enhanced status codes Postfix's smtpd uses. Session code names a code by its meaning here
 * instead of writing a bare number (CONVENTIONS "TypeScript").
 */

// --- Reply codes -------------------------------------------------------------------------------

/** 211 System status, or system help reply. RFC 5321 4.2.2 */
export const SYSTEM_STATUS = 211;
/** 214 Help message. RFC 5321 4.2.2 */
export const HELP_MESSAGE = 214;
/** 220 <domain> Service ready (greeting; also STARTTLS go-ahead, RFC 3207 4). RFC 5321 4.2.2 */
export const SERVICE_READY = 220;
/** 221 <domain> Service closing transmission channel. RFC 5321 4.2.2 */
export const SERVICE_CLOSING = 221;
/** 235 Authentication successful. RFC 4954 6 */
export const AUTH_SUCCEEDED = 235;
/** 250 Requested mail action okay, completed. RFC 5321 4.2.2 */
export const OK = 250;
/** 251 User not local; will forward. RFC 5321 4.2.2 */
export const USER_NOT_LOCAL_WILL_FORWARD = 251;
/** 252 Cannot VRFY user, but will accept message and attempt delivery. RFC 5321 4.2.2 / 3.5.3 */
export const CANNOT_VRFY = 252;
/** 334 Server challenge (AUTH continuation). RFC 4954 4 */
export const AUTH_CONTINUE = 334;
/** 354 Start mail input; end with <CRLF>.<CRLF>. RFC 5321 4.2.2 */
export const START_MAIL_INPUT = 354;
/** 421 <domain> Service not available, closing transmission channel. RFC 5321 4.2.2 */
export const SERVICE_NOT_AVAILABLE = 421;
/** 432 A password transition is needed. RFC 4954 6 */
export const PASSWORD_TRANSITION_NEEDED = 432;
/** 450 Requested mail action not taken: mailbox unavailable (busy, blocked). RFC 5321 4.2.2 */
export const MAILBOX_UNAVAILABLE_TEMP = 450;
/** 451 Requested action aborted: local error in processing. RFC 5321 4.2.2 */
export const LOCAL_ERROR = 451;
/** 452 Requested action not taken: insufficient system storage (also too many recipients, 4.5.3.1.10). RFC 5321 4.2.2 */
export const INSUFFICIENT_STORAGE = 452;
/** 454 TLS not available due to temporary reason (RFC 3207 4); temporary authentication failure (RFC 4954 6). */
export const TEMPORARY_FAILURE = 454;
/** 455 Server unable to accommodate parameters. RFC 5321 4.2.2 */
export const PARAMS_NOT_ACCOMMODATED = 455;
/** 500 Syntax error, command unrecognized (also command line too long). RFC 5321 4.2.2 */
export const SYNTAX_ERROR = 500;
/** 501 Syntax error in parameters or arguments. RFC 5321 4.2.2 */
export const PARAM_SYNTAX_ERROR = 501;
/** 502 Command not implemented. RFC 5321 4.2.2 */
export const NOT_IMPLEMENTED = 502;
/** 503 Bad sequence of commands. RFC 5321 4.2.2 */
export const BAD_SEQUENCE = 503;
/** 504 Command parameter not implemented. RFC 5321 4.2.2 */
export const PARAM_NOT_IMPLEMENTED = 504;
/** 521 Host does not accept mail. RFC 7504 3 */
export const DOES_NOT_ACCEPT_MAIL = 521;
/** 530 Authentication required (RFC 4954 6); Must issue a STARTTLS command first (RFC 3207 4). */
export const AUTH_REQUIRED = 530;
/** 534 Authentication mechanism is too weak. RFC 4954 6 */
export const AUTH_TOO_WEAK = 534;
/** 535 Authentication credentials invalid. RFC 4954 6 */
export const AUTH_INVALID = 535;
/** 538 Encryption required for requested authentication mechanism. RFC 4954 6 */
export const ENCRYPTION_REQUIRED = 538;
/** 550 Requested action not taken: mailbox unavailable / policy rejection. RFC 5321 4.2.2 */
export const MAILBOX_UNAVAILABLE = 550;
/** 551 User not local; please try <forward-path>. RFC 5321 4.2.2 */
export const USER_NOT_LOCAL = 551;
/** 552 Requested mail action aborted: exceeded storage allocation (message size, RFC 1870 6). RFC 5321 4.2.2 */
export const EXCEEDED_STORAGE = 552;
/** 553 Requested action not taken: mailbox name not allowed. RFC 5321 4.2.2 */
export const MAILBOX_NAME_NOT_ALLOWED = 553;
/** 554 Transaction failed (or "No SMTP service here" as a greeting). RFC 5321 4.2.2 */
export const TRANSACTION_FAILED = 554;
/** 555 MAIL FROM/RCPT TO parameters not recognized or not implemented. RFC 5321 4.2.2 */
export const PARAMS_NOT_RECOGNIZED = 555;
/** 556 Domain does not accept mail. RFC 7504 3 */
export const DOMAIN_DOES_NOT_ACCEPT_MAIL = 556;

// --- Enhanced status codes (RFC 3463; registry RFC 5248) ----------------------------------------

/** 2.0.0 Other undefined status (success). RFC 3463 3.1 */
export const E_OK = '2.0.0';
/** 2.1.0 Other address status: sender ok. RFC 3463 3.2 */
export const E_SENDER_OK = '2.1.0';
/** 2.1.5 Destination address valid. RFC 3463 3.2 */
export const E_RECIPIENT_OK = '2.1.5';
/** 2.5.0 Other or undefined protocol status (VRFY/ETRN/NOOP ok). RFC 3463 3.6 */
export const E_PROTOCOL_OK = '2.5.0';
/** 2.7.0 Other security status: authentication/TLS ok. RFC 3463 3.8, RFC 4954 6 */
export const E_SECURITY_OK = '2.7.0';
/** 4.1.1 Bad destination mailbox address (temporary, e.g. unknown user with soft_bounce). RFC 3463 3.2 */
export const E_TEMP_BAD_MAILBOX = '4.1.1';
/** 4.3.0 Other or undefined mail system status (temporary). RFC 3463 3.4 */
export const E_TEMP_SYSTEM = '4.3.0';
/** 4.3.1 Mail system full. RFC 3463 3.4 */
export const E_SYSTEM_FULL = '4.3.1';
/** 4.3.2 System not accepting network messages. RFC 3463 3.4 */
export const E_NOT_ACCEPTING = '4.3.2';
/** 4.4.2 Bad connection (timeout). RFC 3463 3.5 */
export const E_BAD_CONNECTION = '4.4.2';
/** 4.5.3 Too many recipients. RFC 3463 3.6 */
export const E_TOO_MANY_RECIPIENTS = '4.5.3';
/** 4.7.0 Other or undefined security status (temporary). RFC 3463 3.8 */
export const E_TEMP_SECURITY = '4.7.0';
/** 4.7.1 Delivery not authorized (temporary). RFC 3463 3.8 */
export const E_TEMP_NOT_AUTHORIZED = '4.7.1';
/** 5.1.0 Other address status. RFC 3463 3.2 */
export const E_BAD_ADDRESS = '5.1.0';
/** 5.1.1 Bad destination mailbox address (user unknown). RFC 3463 3.2 */
export const E_BAD_MAILBOX = '5.1.1';
/** 5.1.2 Bad destination system address. RFC 3463 3.2 */
export const E_BAD_SYSTEM = '5.1.2';
/** 5.1.3 Bad destination mailbox address syntax. RFC 3463 3.2 */
export const E_BAD_RECIPIENT_SYNTAX = '5.1.3';
/** 5.1.6 Destination mailbox has moved. RFC 3463 3.2 */
export const E_MAILBOX_MOVED = '5.1.6';
/** 5.1.7 Bad sender's mailbox address syntax. RFC 3463 3.2 */
export const E_BAD_SENDER_SYNTAX = '5.1.7';
/** 5.1.8 Bad sender's system address. RFC 3463 3.2 */
export const E_BAD_SENDER_SYSTEM = '5.1.8';
/** 5.3.4 Message too big for system. RFC 3463 3.4 */
export const E_MESSAGE_TOO_BIG = '5.3.4';
/** 5.5.0 Other or undefined protocol status. RFC 3463 3.6 */
export const E_PROTOCOL = '5.5.0';
/** 5.5.1 Invalid command. RFC 3463 3.6 */
export const E_INVALID_COMMAND = '5.5.1';
/** 5.5.2 Syntax error. RFC 3463 3.6 */
export const E_SYNTAX = '5.5.2';
/** 5.5.3 Too many recipients. RFC 3463 3.6 */
export const E_PERM_TOO_MANY_RECIPIENTS = '5.5.3';
/** 5.5.4 Invalid command arguments. RFC 3463 3.6 */
export const E_INVALID_ARGUMENTS = '5.5.4';
/** 5.5.6 Authentication exchange line is too long. RFC 4954 6 */
export const E_AUTH_LINE_TOO_LONG = '5.5.6';
/** 5.6.0 Other or undefined media error. RFC 3463 3.7 */
export const E_MEDIA = '5.6.0';
/** 5.6.7 Non-ASCII addresses not permitted for that sender/recipient. RFC 6531 3.7.4, RFC 5248 */
export const E_NON_ASCII_ADDRESS = '5.6.7';
/** 5.7.0 Other or undefined security status (e.g. Must issue a STARTTLS command first). RFC 3463 3.8 */
export const E_SECURITY = '5.7.0';
/** 5.7.1 Delivery not authorized, message refused (relay access denied). RFC 3463 3.8 */
export const E_NOT_AUTHORIZED = '5.7.1';
/** 5.7.8 Authentication credentials invalid. RFC 4954 6 */
export const E_AUTH_INVALID = '5.7.8';
