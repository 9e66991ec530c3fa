/**
 * Password hashing with scrypt, which is memory-hard: a guess costs 32 MiB of memory as well as
 * time, which is what makes GPU and ASIC cracking of a stolen table expensive.
 *
 * Stored format, self-describing so parameters can be raised later without breaking old
 * hashes: `scrypt$N$r$p$salt$hash`, salt and hash in base64url. N=2^15, r=8, p=3 is one of
 * OWASP's equivalent scrypt settings; it measured ~160 ms per hash on the 2-core development
 * machine, which bounds login throughput per core (the libuv pool runs four at a time).
 */
import { randomBytes, scrypt, timingSafeEqual, type ScryptOptions } from 'node:crypto';

export interface ScryptParams {
  N: number;
  r: number;
  p: number;
}

/** The parameters new hashes get; `needsRehash` is true for any other. */
export const CURRENT_PARAMS: ScryptParams = { N: 2 ** 15, r: 8, p: 3 };

const SALT_BYTES = 16;
const KEY_BYTES = 32;

/** Password length bounds, in characters (code points). */
export const PASSWORD_MIN_LENGTH = 8;
export const PASSWORD_MAX_LENGTH = 256;

/** Why a new password is not acceptable, or undefined when it is. */
export function passwordPolicyProblem(password: string): string | undefined {
  const length = [...password].length;
  if (length < PASSWORD_MIN_LENGTH) return `a password needs at least ${PASSWORD_MIN_LENGTH} characters`;
  if (length > PASSWORD_MAX_LENGTH) return `a password has at most ${PASSWORD_MAX_LENGTH} characters`;
  return undefined;
}

/**
 * scrypt needs 128·N·r bytes; Node refuses anything over `maxmem` (32 MiB by default, exactly
 * what N=2^15, r=8 needs), so allow twice the need.
 */
function scryptAsync(password: string, salt: Buffer, keyLength: number, params: ScryptParams): Promise<Buffer> {
  const options: ScryptOptions = { N: params.N, r: params.r, p: params.p, maxmem: 256 * params.N * params.r };
  return new Promise((resolve, reject) => {
    scrypt(password.normalize('NFC'), salt, keyLength, options, (error, key) => (error ? reject(error) : resolve(key)));
  });
}

/** Hashes a password with the current parameters and a fresh salt. */
export async function hashPassword(password: string, params: ScryptParams = CURRENT_PARAMS): Promise<string> {
  const salt = randomBytes(SALT_BYTES);
  const key = await scryptAsync(password, salt, KEY_BYTES, params);
  return ['scrypt', params.N, params.r, params.p, salt.toString('base64url'), key.toString('base64url')].join('$');
}

interface ParsedHash {
  params: ScryptParams;
  salt: Buffer;
  key: Buffer;
}

/**
 * Parses a stored hash, refusing parameters outside sane bounds: a corrupted or planted row
 * must not make one login allocate gigabytes.
 */
function parseHash(stored: string): ParsedHash | undefined {
  const parts = stored.split('$');
  if (parts.length !== 6 || parts[0] !== 'scrypt') return undefined;
  const [N, r, p] = parts.slice(1, 4).map((s) => (/^[1-9][0-9]{0,7}$/.test(s!) ? Number(s) : NaN)) as [number, number, number];
  const powerOfTwo = Number.isInteger(Math.log2(N));
  if (!powerOfTwo || N < 2 ** 10 || N > 2 ** 20 || !(r >= 1 && r <= 32) || !(p >= 1 && p <= 16)) return undefined;
  const salt = Buffer.from(parts[4]!, 'base64url');
  const key = Buffer.from(parts[5]!, 'base64url');
  if (salt.length < 8 || key.length < 16 || key.length > 64) return undefined;
  return { params: { N, r, p }, salt, key };
}

/** True when `password` matches `stored`; false for a wrong password or an unreadable hash. */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  const parsed = parseHash(stored);
  if (!parsed) return false;
  const key = await scryptAsync(password, parsed.salt, parsed.key.length, parsed.params);
  return timingSafeEqual(key, parsed.key);
}

/** True when a hash was made with other parameters than the current ones (rehash on login). */
export function needsRehash(stored: string): boolean {
  const parsed = parseHash(stored);
  if (!parsed) return true;
  const { N, r, p } = parsed.params;
  return N !== CURRENT_PARAMS.N || r !== CURRENT_PARAMS.r || p !== CURRENT_PARAMS.p || parsed.key.length !== KEY_BYTES;
}

let dummyHash: Promise<string> | undefined;

/**
 * Spends the time of one real verification and returns false. Login calls it when there is
 * no user with the email (or no password), so the answer time does not tell whether an
 * account exists.
 */
export async function verifyDummy(password: string): Promise<false> {
  await verifyPassword(password, await prepareDummyHash());
  return false;
}

/** Computes the dummy hash ahead of the first failed login (server start), so that one is not slower. */
export function prepareDummyHash(): Promise<string> {
  dummyHash ??= hashPassword(randomBytes(16).toString('base64url'));
  return dummyHash;
}
