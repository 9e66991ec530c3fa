/** /api/users: user management for admins. Users are never deleted, only disabled. */
import { Type } from '@sinclair/typebox';
import { getUser, listUsers, type UserFilter } from '../../store/users.ts';
import { PASSWORD_MAX_LENGTH, PASSWORD_MIN_LENGTH } from '../auth/passwords.ts';
import { notFound } from '../http/problem.ts';
import { callerOf, defineRoute, type AnyRoute } from '../http/route.ts';
import { IdParams, Nullable, page, pageQuery, Timestamp, Uuid } from '../schemas.ts';
import { errors, paging } from './common.ts';

const tags = ['users'];

export const RoleSchema = Type.Union([Type.Literal('admin'), Type.Literal('user')]);
export const EmailSchema = Type.String({ format: 'email', minLength: 3, maxLength: 254 });
export const NewPasswordSchema = Type.String({ minLength: PASSWORD_MIN_LENGTH, maxLength: PASSWORD_MAX_LENGTH, description: `${PASSWORD_MIN_LENGTH}–${PASSWORD_MAX_LENGTH} characters` });
export const UserNameSchema = Type.String({ maxLength: 200 });

/** A user as the API shows it (never a password or its hash). */
export const UserSchema = Type.Object({
  id: Uuid,
  email: Type.String(),
  name: Type.String(),
  role: RoleSchema,
  disabled: Type.Boolean(),
  disabled_at: Nullable(Timestamp),
  created_at: Timestamp,
  updated_at: Timestamp,
});

export const usersRoutes: AnyRoute[] = [
  defineRoute({
    method: 'GET', path: '/api/users', policy: 'admin', operationId: 'listUsers', tags,
    summary: 'List users, filtered by role or by text in the email or name',
    query: pageQuery({
      role: Type.Optional(RoleSchema),
      q: Type.Optional(Type.String({ maxLength: 200, description: 'Text in the email or name' })),
    }, ['created_at', 'email', 'name']),
    responses: { 200: { description: 'A page of users', schema: page(UserSchema) }, ...errors(400, 401, 403) },
    handler: async (ctx) => {
      const p = paging(ctx.query, 'created_at' as UserFilter['sort']);
      const result = await listUsers(ctx.services.db, { role: ctx.query.role, q: ctx.query.q, ...p });
      return { body: { ...result, limit: p.limit, offset: p.offset } };
    },
  }),
  defineRoute({
    method: 'POST', path: '/api/users', policy: 'admin', operationId: 'createUser', tags,
    summary: 'Create a user (without a password, the user can sign in only through the external identity provider)',
    body: Type.Object({
      email: EmailSchema,
      name: Type.Optional(UserNameSchema),
      role: Type.Optional(RoleSchema),
      password: Type.Optional(NewPasswordSchema),
    }, { additionalProperties: false }),
    responses: { 201: { description: 'Created', schema: UserSchema }, ...errors(400, 401, 403, 409) },
    handler: async (ctx) => {
      const user = await ctx.services.auth.createUser({ ...ctx.body, role: ctx.body.role ?? 'user' });
      return { status: 201, body: user, headers: { Location: `/api/users/${user.id}` } };
    },
  }),
  defineRoute({
    method: 'GET', path: '/api/users/:id', policy: 'admin', operationId: 'getUser', tags,
    summary: 'One user',
    params: IdParams,
    responses: { 200: { description: 'The user', schema: UserSchema }, ...errors(400, 401, 403, 404) },
    handler: async (ctx) => {
      const user = await getUser(ctx.services.db, ctx.params.id);
      if (!user) throw notFound('user');
      return { body: user };
    },
  }),
  defineRoute({
    method: 'PATCH', path: '/api/users/:id', policy: 'admin', operationId: 'updateUser', tags,
    summary: 'Change a user\'s name, role, disabled state or password (not your own role or disabled state)',
    params: IdParams,
    body: Type.Object({
      name: Type.Optional(UserNameSchema),
      role: Type.Optional(RoleSchema),
      disabled: Type.Optional(Type.Boolean({ description: 'Disabling ends the user\'s sessions and stops their tokens at once' })),
      password: Type.Optional(NewPasswordSchema),
    }, { additionalProperties: false }),
    responses: { 200: { description: 'The user', schema: UserSchema }, ...errors(400, 401, 403, 404) },
    handler: async (ctx) => ({ body: await ctx.services.auth.updateUser(callerOf(ctx), ctx.params.id, ctx.body) }),
  }),
  defineRoute({
    method: 'DELETE', path: '/api/users/:id', policy: 'admin', operationId: 'disableUser', tags,
    summary: 'Disable a user (soft delete: their workflows and runs stay; PATCH disabled=false undoes it)',
    params: IdParams,
    responses: { 204: { description: 'Disabled' }, ...errors(400, 401, 403, 404) },
    handler: async (ctx) => {
      await ctx.services.auth.updateUser(callerOf(ctx), ctx.params.id, { disabled: true });
      return { status: 204 };
    },
  }),
];
