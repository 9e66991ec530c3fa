/**
 * Secrets at rest: AES-256-GCM with a server key, for the API keys of stored credentials.
 *
 * The key comes from configuration (`WEFT_SECRET_KEY`: 32 bytes as base64 or hex), else from
 * `<dataDir>/secret.key`, else it is generated there on first start (mode 0600), like the
 * token signing key. Several servers on one database must share it through configuration;
 * a server with another key cannot read what the first stored, and says so.
 *
 * A sealed value is one text: `v1.<key id>.<iv>.<tag>.<ciphertext>` (base64url parts). Each
 * value has its own random 12-byte IV. The caller's `context` (a credential's row id) is the
 * additional authenticated data, so a ciphertext copied onto another row fails to open just as
 * an altered one does. The key id (an HMAC of a fixed label under the key, which reveals
 * nothing about the key) tells "stored under another key" apart from "altered".
 *
 * No message here or in SecretError quotes a key, a plaintext or a ciphertext.
 */
import { createCipheriv, createDecipheriv, createHmac, createSecretKey, randomBytes, type KeyObject } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from '../engine/log.ts';
import type { ApiConfig } from './config.ts';

export const SECRET_KEY_FILE_NAME = 'secret.key';

const FORMAT = 'v1';
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

export type SecretErrorCode =
  /** WEFT_SECRET_KEY or the key file is not 32 bytes of base64 or hex. */
  | 'WEFT_SECRET_KEY_INVALID'
  /** A sealed value failed to open: altered, sealed under another key, or not a sealed value. */
  | 'WEFT_SECRET_UNREADABLE';

/** Why a sealed value did not open. */
export type UnreadableReason = 'altered' | 'other_key' | 'malformed';

/** A secret could not be loaded or opened. Never retryable: the stored bytes will not change by themselves. */
export class SecretError extends Error {
  override readonly name = 'SecretError';
  readonly retryable = false;
  constructor(
    readonly code: SecretErrorCode,
    message: string,
    readonly reason?: UnreadableReason,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * Seals and opens secrets under one key. The key is held as a KeyObject, which neither
 * `JSON.stringify` nor `util.inspect` prints.
 */
export class SecretBox {
  readonly #key: KeyObject;
  /** Identifies the key (16 hex digits) without revealing it. */
  readonly keyId: string;

  constructor(key: Uint8Array) {
    if (key.length !== KEY_BYTES) throw new SecretError('WEFT_SECRET_KEY_INVALID', `the secret key must be ${KEY_BYTES} bytes, not ${key.length}`);
    this.#key = createSecretKey(Buffer.from(key));
    this.keyId = createHmac('sha256', this.#key).update('weft secret key id').digest('hex').slice(0, 16);
  }

  /** Encrypts `plaintext`, bound to `context` (which must be given again to open it). */
  seal(plaintext: string, context: string): string {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv('aes-256-gcm', this.#key, iv, { authTagLength: TAG_BYTES });
    cipher.setAAD(Buffer.from(context, 'utf8'));
    const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
    return [FORMAT, this.keyId, iv.toString('base64url'), cipher.getAuthTag().toString('base64url'), ciphertext.toString('base64url')].join('.');
  }

  /**
   * Decrypts a sealed value after checking its authentication tag. Throws
   * SecretError(WEFT_SECRET_UNREADABLE) with `reason` when it was altered, sealed under
   * another key, or is not a sealed value; `what` names it in the message ("credential 'x'").
   */
  open(sealed: string, context: string, what = 'the secret'): string {
    const parts = sealed.split('.');
    const [format, keyId, ivText, tagText, ciphertextText] = parts;
    const decode = (text: string | undefined): Buffer | undefined => (text !== undefined && /^[A-Za-z0-9_-]*$/.test(text) ? Buffer.from(text, 'base64url') : undefined);
    const iv = decode(ivText);
    const tag = decode(tagText);
    const ciphertext = decode(ciphertextText);
    if (parts.length !== 5 || format !== FORMAT || iv?.length !== IV_BYTES || tag?.length !== TAG_BYTES || ciphertext === undefined) {
      throw new SecretError('WEFT_SECRET_UNREADABLE', `${what} is not a sealed value this server can read (unknown format)`, 'malformed');
    }
    if (keyId !== this.keyId) {
      throw new SecretError(
        'WEFT_SECRET_UNREADABLE',
        `${what} was encrypted with another secret key (key id ${keyId}; this server's is ${this.keyId}): configure that key in WEFT_SECRET_KEY, or store the secret again`,
        'other_key',
      );
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', this.#key, iv, { authTagLength: TAG_BYTES });
      decipher.setAAD(Buffer.from(context, 'utf8'));
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(ciphertext), decipher.final()]).toString('utf8');
    } catch (error) {
      // node's own message ("Unsupported state or unable to authenticate data") is kept as the cause.
      throw new SecretError('WEFT_SECRET_UNREADABLE', `${what} failed its integrity check: the stored value was altered, or belongs to another record`, 'altered', { cause: error });
    }
  }
}

/**
 * 32 bytes from 64 hex digits or from base64 / base64url text (surrounding whitespace
 * ignored). Throws WEFT_SECRET_KEY_INVALID naming `source`, never quoting the text.
 */
export function parseSecretKey(text: string, source: string): Buffer {
  const trimmed = text.trim();
  let key: Buffer | undefined;
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) key = Buffer.from(trimmed, 'hex');
  else if (/^[A-Za-z0-9+/_-]{43}={0,1}$/.test(trimmed)) key = Buffer.from(trimmed.replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, ''), 'base64url');
  if (key?.length !== KEY_BYTES) {
    throw new SecretError('WEFT_SECRET_KEY_INVALID', `the secret key from ${source} must be ${KEY_BYTES} bytes written as 64 hex digits or as base64 (e.g. \`openssl rand -base64 32\`)`);
  }
  return key;
}

/** A new random key as base64 text (what the key file holds). */
export function generateSecretKeyText(): string {
  return randomBytes(KEY_BYTES).toString('base64');
}

/**
 * The server's SecretBox: from `config.secretKey`, else `<dataDir>/secret.key`, else a key
 * generated into that file (mode 0600; 'wx' so two servers starting on one folder cannot
 * overwrite each other's). Throws SecretError for a key that is not 32 bytes.
 */
export async function loadSecretBox(config: Pick<ApiConfig, 'dataDir' | 'secretKey'>, log: Logger): Promise<SecretBox> {
  if (config.secretKey) return new SecretBox(parseSecretKey(config.secretKey, 'WEFT_SECRET_KEY'));
  const path = join(config.dataDir, SECRET_KEY_FILE_NAME);
  const stored = await readKeyFile(path, log);
  if (stored !== undefined) return new SecretBox(parseSecretKey(stored, path));
  const text = generateSecretKeyText();
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  try {
    await writeFile(path, text + '\n', { mode: 0o600, flag: 'wx' });
    log.info('generated a new secret key for stored credentials', { path });
    return new SecretBox(parseSecretKey(text, path));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return new SecretBox(parseSecretKey((await readKeyFile(path, log))!, path));
  }
}

/**
 * The SecretBox of a process that must not make a key of its own (`weft worker`, `weft run`:
 * a key generated here could never open what the server stored): from `config.secretKey`, else
 * `<dataDir>/secret.key` if it exists; undefined when neither is there.
 */
export async function findSecretBox(config: Pick<ApiConfig, 'dataDir' | 'secretKey'>, log: Logger): Promise<SecretBox | undefined> {
  if (config.secretKey) return new SecretBox(parseSecretKey(config.secretKey, 'WEFT_SECRET_KEY'));
  const path = join(config.dataDir, SECRET_KEY_FILE_NAME);
  const stored = await readKeyFile(path, log);
  return stored === undefined ? undefined : new SecretBox(parseSecretKey(stored, path));
}

async function readKeyFile(path: string, log: Logger): Promise<string | undefined> {
  try {
    const text = await readFile(path, 'utf8');
    const { mode } = await stat(path);
    if ((mode & 0o077) !== 0) log.warn('the secret key file is readable by other users; chmod 600 it', { path });
    return text;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}
