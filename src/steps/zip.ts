/**
 * A minimal ZIP writer (PKWARE APPNOTE 6.3: local headers, central directory, end record), for
 * the bundles steps produce. No dependency: node:zlib gives raw DEFLATE and CRC-32 (Node ≥
 * 20.15). Deliberately small: no ZIP64 (bundles are far below 4 GiB and 65,535 entries), no
 * encryption, no extra fields. Every entry has the same fixed timestamp, so the same files give
 * the same bytes — and the same SHA-256, which is what run files are addressed by.
 */
import { crc32, deflateRawSync } from 'node:zlib';

export interface ZipEntry {
  /** A relative path with `/` separators (`assets/site.css`). */
  path: string;
  data: Uint8Array | string;
}

/** 1980-01-01 00:00, the earliest DOS date: a fixed time keeps bundles reproducible. */
const DOS_TIME = 0;
const DOS_DATE = (0 << 9) | (1 << 5) | 1;
/** Bit 11: names are UTF-8. */
const FLAG_UTF8 = 0x0800;
const METHOD_STORE = 0;
const METHOD_DEFLATE = 8;
/** 2.0: deflate and directories; the lowest version that covers what is written here. */
const VERSION = 20;
const MAX_ENTRIES = 0xffff;
const MAX_BYTES = 0xffffffff;

/** Refuses paths an extractor could write outside its folder (absolute, `..`, backslashes, drive letters). */
function checkPath(path: string): void {
  const bad = path === '' || path.length > 255 || path.startsWith('/') || path.includes('\\') || path.includes('\0') ||
    /^[A-Za-z]:/.test(path) || path.split('/').some((s) => s === '' || s === '.' || s === '..');
  if (bad) throw new Error(`zip: unsafe entry path ${JSON.stringify(path)}`);
}

/** Builds a ZIP archive; entries are deflated unless that would make them larger. */
export function createZip(entries: readonly ZipEntry[]): Buffer {
  if (entries.length > MAX_ENTRIES) throw new Error(`zip: ${entries.length} entries; the limit without ZIP64 is ${MAX_ENTRIES}`);
  const seen = new Set<string>();
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const entry of entries) {
    checkPath(entry.path);
    if (seen.has(entry.path)) throw new Error(`zip: duplicate entry ${entry.path}`);
    seen.add(entry.path);
    const name = Buffer.from(entry.path, 'utf8');
    const raw = typeof entry.data === 'string' ? Buffer.from(entry.data, 'utf8') : Buffer.from(entry.data.buffer, entry.data.byteOffset, entry.data.byteLength);
    const deflated = deflateRawSync(raw, { level: 9 });
    const method = deflated.length < raw.length ? METHOD_DEFLATE : METHOD_STORE;
    const body = method === METHOD_DEFLATE ? deflated : raw;
    const crc = crc32(raw);
    if (raw.length > MAX_BYTES || offset > MAX_BYTES) throw new Error('zip: archive too large without ZIP64');

    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(VERSION, 4);
    local.writeUInt16LE(FLAG_UTF8, 6);
    local.writeUInt16LE(method, 8);
    local.writeUInt16LE(DOS_TIME, 10);
    local.writeUInt16LE(DOS_DATE, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(body.length, 18);
    local.writeUInt32LE(raw.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(0, 28);
    locals.push(local, name, body);

    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | VERSION, 4); // made by: Unix, so extractors apply the mode below
    central.writeUInt16LE(VERSION, 6);
    central.writeUInt16LE(FLAG_UTF8, 8);
    central.writeUInt16LE(method, 10);
    central.writeUInt16LE(DOS_TIME, 12);
    central.writeUInt16LE(DOS_DATE, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(body.length, 20);
    central.writeUInt32LE(raw.length, 24);
    central.writeUInt16LE(name.length, 28);
    // extra length, comment length, disk number, internal attributes: 0
    central.writeUInt32LE((0o100644 << 16) >>> 0, 38); // a regular file, rw-r--r--
    central.writeUInt32LE(offset, 42);
    centrals.push(central, name);
    offset += local.length + name.length + body.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}
