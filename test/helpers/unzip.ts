/**
 * A minimal ZIP reader for tests, written from the format (APPNOTE 6.3) rather than from
 * src/steps/zip.ts, so it checks the writer instead of mirroring it: end record → central
 * directory → each local header, sizes and CRC-32 verified, stored or deflated entries.
 */
import { crc32, inflateRawSync } from 'node:zlib';

export function readZip(zip: Buffer): Map<string, Buffer> {
  let end = -1;
  for (let i = zip.length - 22; i >= Math.max(0, zip.length - 22 - 0xffff); i--) {
    if (zip.readUInt32LE(i) === 0x06054b50) {
      end = i;
      break;
    }
  }
  if (end === -1) throw new Error('zip: no end of central directory record');
  const count = zip.readUInt16LE(end + 10);
  const dirSize = zip.readUInt32LE(end + 12);
  const dirOffset = zip.readUInt32LE(end + 16);
  if (dirOffset + dirSize !== end) throw new Error('zip: central directory does not end at the end record');
  const files = new Map<string, Buffer>();
  let p = dirOffset;
  for (let n = 0; n < count; n++) {
    if (zip.readUInt32LE(p) !== 0x02014b50) throw new Error(`zip: bad central header ${n}`);
    const method = zip.readUInt16LE(p + 10);
    const crc = zip.readUInt32LE(p + 16);
    const compressed = zip.readUInt32LE(p + 20);
    const size = zip.readUInt32LE(p + 24);
    const nameLength = zip.readUInt16LE(p + 28);
    const extra = zip.readUInt16LE(p + 30);
    const comment = zip.readUInt16LE(p + 32);
    const local = zip.readUInt32LE(p + 42);
    const name = zip.subarray(p + 46, p + 46 + nameLength).toString('utf8');
    p += 46 + nameLength + extra + comment;
    if (zip.readUInt32LE(local) !== 0x04034b50) throw new Error(`zip: bad local header for ${name}`);
    if (zip.subarray(local + 30, local + 30 + zip.readUInt16LE(local + 26)).toString('utf8') !== name) throw new Error(`zip: local name differs for ${name}`);
    const start = local + 30 + zip.readUInt16LE(local + 26) + zip.readUInt16LE(local + 28);
    const body = zip.subarray(start, start + compressed);
    const data = method === 8 ? inflateRawSync(body) : method === 0 ? Buffer.from(body) : undefined;
    if (!data) throw new Error(`zip: ${name} uses method ${method}`);
    if (data.length !== size) throw new Error(`zip: ${name} is ${data.length} bytes, the header says ${size}`);
    if (crc32(data) !== crc) throw new Error(`zip: CRC mismatch in ${name}`);
    files.set(name, data);
  }
  return files;
}
