/**
 * The Ed25519 key that signs access tokens. From configuration (`WEFT_JWT_PRIVATE_KEY`), else
 * from `<dataDir>/jwt-ed25519.pem`, else generated there on first start (mode 0600), so
 * tokens survive a restart without any setup. Several servers behind one balancer must share
 * the key through configuration.
 */
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { calculateJwkThumbprint, exportJWK, exportPKCS8, generateKeyPair, importJWK, importPKCS8, type CryptoKey } from 'jose';
import type { Logger } from '../../engine/log.ts';
import type { ApiConfig } from '../config.ts';

/** The only algorithm our own tokens are signed and verified with. */
export const ACCESS_TOKEN_ALG = 'EdDSA';

export const KEY_FILE_NAME = 'jwt-ed25519.pem';

export interface SigningKey {
  privateKey: CryptoKey;
  publicKey: CryptoKey;
  /** RFC 7638 thumbprint of the public key, sent as `kid` so keys can be rotated later. */
  kid: string;
}

/** Loads or creates the signing key; throws when a configured or stored key is not Ed25519. */
export async function loadSigningKey(config: Pick<ApiConfig, 'dataDir' | 'jwt'>, log: Logger): Promise<SigningKey> {
  if (config.jwt.privateKeyPem) return fromPem(config.jwt.privateKeyPem, 'configuration');
  const path = join(config.dataDir, KEY_FILE_NAME);
  const stored = await readKeyFile(path, log);
  if (stored !== undefined) return fromPem(stored, path);
  const pem = await generatePem();
  await mkdir(config.dataDir, { recursive: true, mode: 0o700 });
  try {
    // 'wx': two servers starting on the same folder must not overwrite each other's key.
    await writeFile(path, pem, { mode: 0o600, flag: 'wx' });
    log.info('generated a new token signing key', { path });
    return fromPem(pem, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return fromPem((await readKeyFile(path, log))!, path);
  }
}

async function readKeyFile(path: string, log: Logger): Promise<string | undefined> {
  try {
    const pem = await readFile(path, 'utf8');
    const { mode } = await stat(path);
    if ((mode & 0o077) !== 0) log.warn('token signing key file is readable by other users; chmod 600 it', { path });
    return pem;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

/** A new Ed25519 private key as PKCS#8 PEM. */
export async function generatePem(): Promise<string> {
  const { privateKey } = await generateKeyPair('Ed25519', { extractable: true });
  return exportPKCS8(privateKey);
}

async function fromPem(pem: string, source: string): Promise<SigningKey> {
  let privateKey: CryptoKey;
  try {
    privateKey = await importPKCS8(pem, ACCESS_TOKEN_ALG, { extractable: true });
  } catch (error) {
    throw new Error(`the token signing key from ${source} is not a PKCS#8 Ed25519 private key`, { cause: error });
  }
  // The public half, from the private JWK without its secret `d`.
  const { kty, crv, x } = await exportJWK(privateKey);
  if (kty !== 'OKP' || crv !== 'Ed25519') throw new Error(`the token signing key from ${source} is not an Ed25519 key`);
  const publicJwk = { kty, crv, x };
  const publicKey = (await importJWK(publicJwk, ACCESS_TOKEN_ALG)) as CryptoKey;
  return { privateKey, publicKey, kid: await calculateJwkThumbprint(publicJwk) };
}
