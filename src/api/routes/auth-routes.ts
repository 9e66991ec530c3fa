/** /api/auth and /api/me: sign in, refresh, sign out, first-admin setup, and the caller's own account. */
import { Type } from '@sinclair/typebox';
import { getUser, updateUser } from '../../store/users.ts';
import { HttpProblem, notFound } from '../http/problem.ts';
import { callerOf, defineRoute, type AnyRoute, type RouteContext } from '../http/route.ts';
import type { RateDecision } from '../rate-limit.ts';
import { errors } from './common.ts';
import { EmailSchema, NewPasswordSchema, UserNameSchema, UserSchema } from './users-routes.ts';

const tags = ['auth'];

export const TokenPairSchema = Type.Object({
  access_token: Type.String({ description: 'Send as Authorization: Bearer <access_token>' }),
  refresh_token: Type.String({ description: 'Single use: each refresh answers a new one' }),
  token_type: Type.Literal('Bearer'),
  expires_in: Type.Integer({ description: 'Seconds until the access token expires' }),
});

/** Any password is accepted at login (old ones may predate the policy); the bound keeps bodies small. */
const LoginPassword = Type.String({ minLength: 1, maxLength: 1024 });
const RefreshBody = Type.Object({ refresh_token: Type.String({ minLength: 1, maxLength: 200 }) }, { additionalProperties: false });

function rateLimited(decisions: RateDecision[], detail: string): HttpProblem | undefined {
  const denied = decisions.filter((d) => !d.allowed);
  if (denied.length === 0) return undefined;
  const wait = Math.max(...denied.map((d) => d.retryAfterSeconds));
  return new HttpProblem(429, 'WEFT_RATE_LIMITED', detail, undefined, { 'Retry-After': String(wait) });
}

/**
 * Login attempts are limited per client IP (spraying many accounts) and per account (guessing
 * one account's password from many IPs). The account bucket is only spent when the IP one
 * allowed the attempt, so one noisy IP cannot lock others out of an account as quickly.
 */
function limitLogin(ctx: Pick<RouteContext<unknown, unknown, unknown>, 'services' | 'ip'>, email: string): void {
  const perIp = ctx.services.limits.loginPerIp.take(ctx.ip);
  const problem = rateLimited(perIp.allowed ? [perIp, ctx.services.limits.loginPerAccount.take(email.trim().toLowerCase())] : [perIp], 'too many sign-in attempts; try again later');
  if (problem) throw problem;
}

export const authRoutes: AnyRoute[] = [
  defineRoute({
    method: 'POST', path: '/api/auth/login', policy: 'public', operationId: 'login', tags,
    summary: 'Sign in with email and password: an access token and a refresh token',
    body: Type.Object({ email: Type.String({ minLength: 1, maxLength: 254 }), password: LoginPassword }, { additionalProperties: false }),
    responses: { 200: { description: 'Signed in', schema: TokenPairSchema }, ...errors(400, 401, 429) },
    handler: async (ctx) => {
      limitLogin(ctx, ctx.body.email);
      return { body: await ctx.services.auth.login(ctx.body.email, ctx.body.password) };
    },
  }),
  defineRoute({
    method: 'POST', path: '/api/auth/refresh', policy: 'public', operationId: 'refreshToken', tags,
    summary: 'Exchange a refresh token for a new pair (the old refresh token is spent; reusing it ends the session)',
    body: RefreshBody,
    responses: { 200: { description: 'A new token pair', schema: TokenPairSchema }, ...errors(400, 401) },
    handler: async (ctx) => ({ body: await ctx.services.auth.refresh(ctx.body.refresh_token) }),
  }),
  defineRoute({
    method: 'POST', path: '/api/auth/logout', policy: 'public', operationId: 'logout', tags,
    summary: 'Sign out: revokes the session the refresh token belongs to',
    body: RefreshBody,
    responses: { 204: { description: 'Signed out (also for an unknown token)' }, ...errors(400) },
    handler: async (ctx) => {
      await ctx.services.auth.logout(ctx.body.refresh_token);
      return { status: 204 };
    },
  }),
  defineRoute({
    method: 'POST', path: '/api/auth/setup', policy: 'public', operationId: 'completeSetup', tags,
    summary: 'Create the first admin with the one-time setup token the server printed on first start',
    body: Type.Object({
      token: Type.String({ minLength: 1, maxLength: 200 }),
      email: EmailSchema,
      password: NewPasswordSchema,
      name: Type.Optional(UserNameSchema),
    }, { additionalProperties: false }),
    responses: {
      201: { description: 'The admin, signed in', schema: Type.Object({ user: UserSchema, tokens: TokenPairSchema }) },
      ...errors(400, 403, 409, 429),
    },
    handler: async (ctx) => {
      const limit = ctx.services.limits.loginPerIp.take(ctx.ip);
      const problem = rateLimited([limit], 'too many setup attempts; try again later');
      if (problem) throw problem;
      const result = await ctx.services.auth.completeSetup(ctx.body.token, ctx.body.email, ctx.body.password, ctx.body.name);
      return { status: 201, body: result };
    },
  }),
  defineRoute({
    method: 'GET', path: '/api/me', policy: 'user', operationId: 'getMe', tags,
    summary: 'Your own account, and how this request was authenticated',
    responses: { 200: { description: 'You', schema: Type.Composite([UserSchema, Type.Object({ auth: Type.Union([Type.Literal('jwt'), Type.Literal('api_token'), Type.Literal('external')]) })]) }, ...errors(401) },
    handler: async (ctx) => {
      const caller = callerOf(ctx);
      const user = await getUser(ctx.services.db, caller.userId);
      if (!user) throw notFound('user');
      return { body: { ...user, auth: caller.via } };
    },
  }),
  defineRoute({
    method: 'PATCH', path: '/api/me', policy: 'user', operationId: 'updateMe', tags,
    summary: 'Change your name, or your password (with current_password; every session ends and you sign in again)',
    body: Type.Object({
      name: Type.Optional(UserNameSchema),
      password: Type.Optional(NewPasswordSchema),
      current_password: Type.Optional(LoginPassword),
    }, { additionalProperties: false }),
    responses: { 200: { description: 'You', schema: UserSchema }, ...errors(400, 401, 403, 429) },
    handler: async (ctx) => {
      const caller = callerOf(ctx);
      if (ctx.body.password !== undefined) {
        if (ctx.body.current_password === undefined) {
          throw new HttpProblem(400, 'WEFT_VALIDATION', 'changing the password needs current_password', [{ path: '/body/current_password', message: 'required with password' }]);
        }
        // A stolen access token must not become a password-guessing oracle.
        const problem = rateLimited([ctx.services.limits.loginPerAccount.take(caller.email.toLowerCase())], 'too many password attempts; try again later');
        if (problem) throw problem;
        await ctx.services.auth.changeOwnPassword(caller.userId, ctx.body.current_password, ctx.body.password);
      }
      const user = ctx.body.name === undefined ? await getUser(ctx.services.db, caller.userId) : await updateUser(ctx.services.db, caller.userId, { name: ctx.body.name });
      if (!user) throw notFound('user');
      return { body: user };
    },
  }),
];
