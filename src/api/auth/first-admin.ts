/**
 * The first admin of an empty server. There is never a default password: either the operator
 * gives the credentials (WEFT_ADMIN_EMAIL / WEFT_ADMIN_PASSWORD), or the server prints a
 * one-time setup link whose token only the operator sees (only its SHA-256 is stored).
 *
 * Every creation of the first admin runs under one advisory transaction lock and re-counts
 * the users inside it, so two servers starting together, or two setup requests racing, create
 * one admin between them.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Clock } from '../../engine/clock.ts';
import type { Logger } from '../../engine/log.ts';
import type { Db, Queryable } from '../../store/db.ts';
import { deleteSetting, getSetting, putSetting } from '../../store/server-settings.ts';
import { countUsers, insertUser, type UserRecord } from '../../store/users.ts';
import type { ApiConfig } from '../config.ts';
import { HttpProblem } from '../http/problem.ts';
import { hashPassword, passwordPolicyProblem } from './passwords.ts';

const SETUP_KEY = 'setup_token';
/** Arbitrary, fixed: the advisory lock key of "creating the first admin". */
const FIRST_ADMIN_LOCK = '7302611948820140001';
/** A setup link works for a day; a restart on an empty database prints a fresh one. */
const SETUP_TOKEN_TTL_MS = 24 * 3600 * 1000;
const SETUP_TOKEN_FORMAT = /^weft_setup_[A-Za-z0-9_-]{43}$/;

interface StoredSetupToken {
  sha256: string;
  expires_at: string;
}

async function lockFirstAdmin(tx: Queryable): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock($1::bigint)', [FIRST_ADMIN_LOCK]);
}

function sha256(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/** What first start did: the admin it created from configuration, or the setup link to print. */
export interface BootstrapResult {
  createdAdmin?: string;
  setupUrl?: string;
}

/** On an empty users table, creates the configured admin or a fresh one-time setup link. */
export async function bootstrapFirstAdmin(db: Db, config: ApiConfig, clock: Clock, log: Logger): Promise<BootstrapResult> {
  if ((await countUsers(db)) > 0) return {};
  if (config.adminEmail && config.adminPassword) {
    const problem = passwordPolicyProblem(config.adminPassword);
    if (problem) throw new Error(`WEFT_ADMIN_PASSWORD is not acceptable: ${problem}`);
    const passwordHash = await hashPassword(config.adminPassword);
    const created = await db.transaction(async (tx) => {
      await lockFirstAdmin(tx);
      if ((await countUsers(tx)) > 0) return undefined;
      await deleteSetting(tx, SETUP_KEY);
      return insertUser(tx, { email: config.adminEmail!, name: 'Administrator', role: 'admin', passwordHash });
    });
    if (!created) return {};
    log.info('created the first admin from configuration', { user_id: created.id });
    return { createdAdmin: created.email };
  }
  const token = 'weft_setup_' + randomBytes(32).toString('base64url');
  const stored: StoredSetupToken = { sha256: sha256(token).toString('hex'), expires_at: new Date(clock.now() + SETUP_TOKEN_TTL_MS).toISOString() };
  const saved = await db.transaction(async (tx) => {
    await lockFirstAdmin(tx);
    if ((await countUsers(tx)) > 0) return false;
    await putSetting(tx, SETUP_KEY, stored);
    return true;
  });
  if (!saved) return {};
  return { setupUrl: `${config.publicUrl.replace(/\/+$/, '')}/setup?token=${token}` };
}

/** True when `token` is the stored, unexpired setup token (compared in constant time). */
async function setupTokenMatches(q: Queryable, token: string, nowMs: number): Promise<boolean> {
  const stored = await getSetting<StoredSetupToken>(q, SETUP_KEY);
  if (!stored || typeof stored.sha256 !== 'string' || !(Date.parse(stored.expires_at) > nowMs)) return false;
  const expected = Buffer.from(stored.sha256, 'hex');
  const presented = sha256(token);
  return expected.length === presented.length && timingSafeEqual(expected, presented);
}

const alreadyDone = (): HttpProblem => new HttpProblem(409, 'WEFT_CONFLICT', 'setup is already complete: sign in instead');
const badSetupToken = (): HttpProblem => new HttpProblem(403, 'WEFT_FORBIDDEN', 'invalid or expired setup token');

/**
 * Creates the first admin with the one-time setup token, then deletes the token. 409 once any
 * user exists; 403 for a wrong or expired token.
 */
export async function completeFirstAdminSetup(
  db: Db,
  clock: Clock,
  token: string,
  account: { email: string; password: string; name: string },
): Promise<UserRecord> {
  const problem = passwordPolicyProblem(account.password);
  if (problem) throw new HttpProblem(400, 'WEFT_VALIDATION', problem, [{ path: '/body/password', message: problem }]);
  // Checked before hashing too, so unauthenticated calls cannot make the server spend scrypt time.
  if ((await countUsers(db)) > 0) throw alreadyDone();
  if (!SETUP_TOKEN_FORMAT.test(token) || !(await setupTokenMatches(db, token, clock.now()))) throw badSetupToken();
  const passwordHash = await hashPassword(account.password);
  const outcome = await db.transaction(async (tx) => {
    await lockFirstAdmin(tx);
    if ((await countUsers(tx)) > 0) return 'done' as const;
    if (!(await setupTokenMatches(tx, token, clock.now()))) return 'bad-token' as const;
    await deleteSetting(tx, SETUP_KEY);
    return insertUser(tx, { email: account.email, name: account.name, role: 'admin', passwordHash });
  });
  if (outcome === 'done') throw alreadyDone();
  if (outcome === 'bad-token') throw badSetupToken();
  return outcome;
}
