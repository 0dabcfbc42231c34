import path from 'node:path';
import { x as extractTar } from 'tar';

/**
 * Unpacks a .tar.gz (the CIFAR-10 archive) into `dest` with the `tar` package, strictly: a damaged or cut-short
 * archive, or an entry whose path would leave `dest` (absolute, or with '..'), is an error rather than a warning.
 * Only regular files and folders are written; links, devices and the like are skipped. Throws an Error whose
 * message says what is wrong in plain words.
 */
export async function unpackArchive(file: string, dest: string): Promise<void> {
  const unsafe: string[] = [];
  try {
    await extractTar({
      file, cwd: dest, strict: true, preservePaths: false,
      filter: (entryPath, entry) => {
        if (path.posix.isAbsolute(entryPath) || entryPath.split(/[\\/]/).includes('..')) {
          unsafe.push(entryPath);
          return false;
        }
        return 'type' in entry && (entry.type === 'File' || entry.type === 'OldFile' || entry.type === 'Directory');
      },
    });
  } catch (error) {
    throw new Error(describeTarError(error as NodeJS.ErrnoException), { cause: error });
  }
  if (unsafe.length > 0) throw new Error(`it holds an entry with an unsafe path (${unsafe[0]}), which would land outside the folder`);
}

function describeTarError(error: NodeJS.ErrnoException): string {
  const message = (error.message ?? String(error)).replace(/^TAR_[A-Z_]+: /, '');
  switch (error.code) {
    case 'TAR_ENTRY_ERROR':
    case 'TAR_ENTRY_INFO':
      return `it holds an entry with an unsafe path (${message}), which would land outside the folder`;
    case 'TAR_ENTRY_INVALID':
      return `a header of the archive is damaged (${message})`;
    case 'TAR_BAD_ARCHIVE':
      return /truncated/i.test(message) ? 'the archive ends early (cut short)' : `it is not a tar archive (${message})`;
    case 'Z_BUF_ERROR':
    case 'Z_DATA_ERROR':
      return `the gzip data is damaged or cut short (${message.replace(/^zlib: /, '')})`;
    default:
      return message;
  }
}
