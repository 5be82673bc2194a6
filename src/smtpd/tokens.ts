/** The SMTP command tokenizer lives in proto/smtp (sendmail -bs shares it); re-exported for smtpd. */
export { type Token, tokenize } from '../proto/smtp/tokens.js';
