/**
 * The one-time first-admin page that `weft serve` links to when it starts on an empty
 * database without WEFT_ADMIN_EMAIL/WEFT_ADMIN_PASSWORD. It only posts the form to
 * POST /api/auth/setup, which checks the token; the page itself reveals nothing.
 */
import { Type } from '@sinclair/typebox';
import { defineRoute, type AnyRoute } from '../http/route.ts';

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>weft — first admin</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>body{font:16px system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem}label{display:block;margin:.8rem 0 .2rem}
input{width:100%;padding:.5rem;box-sizing:border-box}button{margin-top:1.2rem;padding:.6rem 1.2rem}#msg{margin-top:1rem}</style></head>
<body><h1>Create the first admin</h1>
<p>This link works once. The password needs at least 8 characters.</p>
<form id="f"><label for="email">Email</label><input id="email" name="email" type="email" required autocomplete="username">
<label for="name">Name</label><input id="name" name="name" autocomplete="name">
<label for="password">Password</label><input id="password" name="password" type="password" minlength="8" required autocomplete="new-password">
<button type="submit">Create admin</button></form><p id="msg" role="status"></p>
<script src="/setup/setup.js"></script></body></html>`;

const SCRIPT = `document.getElementById('f').addEventListener('submit', async (e) => {
  e.preventDefault();
  const token = new URLSearchParams(location.search).get('token') || '';
  const v = (id) => document.getElementById(id).value;
  const body = { token, email: v('email'), password: v('password') };
  if (v('name')) body.name = v('name');
  const res = await fetch('/api/auth/setup', { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const msg = document.getElementById('msg');
  if (res.ok) { msg.textContent = 'Admin created. You can sign in now.'; document.getElementById('f').remove(); }
  else { const p = await res.json().catch(() => ({})); msg.textContent = p.detail || ('Failed: ' + res.status); }
});`;

const CSP = "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'";

export const setupPageRoutes: AnyRoute[] = [
  defineRoute({
    method: 'GET', path: '/setup', policy: 'public', operationId: 'getSetupPage', tags: ['auth'],
    summary: 'The one-time first-admin page (its form posts to /api/auth/setup)',
    query: Type.Object({ token: Type.Optional(Type.String({ maxLength: 200 })) }, { additionalProperties: false }),
    responses: { 200: { description: 'HTML page', contentType: 'text/html', schema: Type.String() } },
    handler: (ctx) => {
      ctx.res.writeHead(200, { 'Content-Type': 'text/html; charset=utf-8', 'Content-Security-Policy': CSP, 'Referrer-Policy': 'no-referrer', 'X-Content-Type-Options': 'nosniff', 'Cache-Control': 'no-store' });
      ctx.res.end(PAGE);
      return Promise.resolve({ stream: true });
    },
  }),
  defineRoute({
    method: 'GET', path: '/setup/setup.js', policy: 'public', operationId: 'getSetupScript', tags: ['auth'],
    summary: 'Script of the first-admin page',
    responses: { 200: { description: 'JavaScript', contentType: 'text/javascript', schema: Type.String() } },
    handler: (ctx) => {
      ctx.res.writeHead(200, { 'Content-Type': 'text/javascript; charset=utf-8', 'X-Content-Type-Options': 'nosniff' });
      ctx.res.end(SCRIPT);
      return Promise.resolve({ stream: true });
    },
  }),
];
