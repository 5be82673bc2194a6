/**
 * The text Postfix prints for `%m`: strerror(errno), e.g. "No such file or directory", rather than
 * Node's "ENOENT: no such file or directory, open '/x'". Node ≥ 22.12 has
 * `util.getSystemErrorMessage`; on Node 20 the common codes come from the table below (glibc's
 * wording), anything else falls back to the error's own message.
 */
import * as util from 'node:util';

const GLIBC_TEXT: Readonly<Record<string, string>> = {
  EPERM: 'Operation not permitted',
  ENOENT: 'No such file or directory',
  EIO: 'Input/output error',
  EBADF: 'Bad file descriptor',
  EAGAIN: 'Resource temporarily unavailable',
  ENOMEM: 'Cannot allocate memory',
  EACCES: 'Permission denied',
  EEXIST: 'File exists',
  ENOTDIR: 'Not a directory',
  EISDIR: 'Is a directory',
  EINVAL: 'Invalid argument',
  ENFILE: 'Too many open files in system',
  EMFILE: 'Too many open files',
  EFBIG: 'File too large',
  ENOSPC: 'No space left on device',
  EROFS: 'Read-only file system',
  EPIPE: 'Broken pipe',
  ENAMETOOLONG: 'File name too long',
  ELOOP: 'Too many levels of symbolic links',
  ENXIO: 'No such device or address',
  ECONNREFUSED: 'Connection refused',
  ECONNRESET: 'Connection reset by peer',
  ETIMEDOUT: 'Connection timed out',
  EADDRINUSE: 'Address already in use',
  EADDRNOTAVAIL: 'Cannot assign requested address',
  EAFNOSUPPORT: 'Address family not supported by protocol',
  ENETUNREACH: 'Network is unreachable',
  EHOSTUNREACH: 'No route to host',
};

type GetSystemErrorMessage = (errno: number) => string;

/** strerror() text for a Node system error (or the message of any other error). */
export function strerror(err: unknown): string {
  const e = err as NodeJS.ErrnoException | null;
  const code = typeof e?.code === 'string' ? e.code : undefined;
  if (code !== undefined && Object.hasOwn(GLIBC_TEXT, code)) return GLIBC_TEXT[code]!;
  const getText = (util as unknown as { getSystemErrorMessage?: GetSystemErrorMessage }).getSystemErrorMessage;
  if (typeof e?.errno === 'number' && typeof getText === 'function') {
    try {
      return getText(e.errno);
    } catch {
      // not a system errno
    }
  }
  return err instanceof Error ? err.message : String(err);
}
