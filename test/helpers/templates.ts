/**
 * What the template tests share: launch inputs for each seeded template, launching one and
 * waiting for it through the HTTP API, and downloading a run file as bytes.
 */
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import type { TestApi } from './api.ts';
import { eventually } from './engine.ts';
import { readZip } from './unzip.ts';

export const SLUGS = ['ads.facebook_campaign', 'blog.article_with_featured_image', 'social.instagram_post', 'website.create_basic_site'] as const;
export type Slug = (typeof SLUGS)[number];

export const WEBSITE_INPUTS = {
  site_name: 'Codex Digital Studios',
  description: 'Professional web design for small businesses in Lisbon.',
  contact_email: 'hello@codexdigital.app',
  base_url: 'https://codexdigital.app',
  brand_colors: { primary: '#1a1a1a', secondary: '#f7f1e3', accent: '#d4af37' },
  typography: { heading: 'Inter, sans-serif', body: 'Georgia, serif' },
  pages: [{ title: 'Home' }, { title: 'About' }, { title: 'Services', brief: 'Web design, hosting and care plans.' }, { title: 'Contact' }],
  hourly_rate_usd: 80,
};

export const INPUTS: Record<Slug, Record<string, unknown>> = {
  'ads.facebook_campaign': { product: 'a bookkeeping app for freelancers', audience: 'freelance designers', offer: 'one month free' },
  'blog.article_with_featured_image': { topic: 'durable execution', audience: 'backend developers', words: 600 },
  'social.instagram_post': { topic: 'morning coffee rituals', hashtags: 5 },
  'website.create_basic_site': WEBSITE_INPUTS,
};

/** Seeded templates as the caller sees them in GET /api/workflows, by slug. */
export async function templatesBySlug(t: TestApi, token: string): Promise<Map<string, any>> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const list = await t.request('GET', '/api/workflows?limit=200', { token });
  assert.equal(list.status, 200, list.text);
  return new Map(list.body.items.filter((w: { slug: string | null }) => w.slug !== null).map((w: { slug: string }) => [w.slug, w]));
}

/** Launches a template and waits until its run is terminal; returns the run detail. */
export async function runTemplate(t: TestApi, token: string, workflowId: string, inputs: unknown, provider: string): Promise<any> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const launched = await t.request('POST', '/api/runs', { token, body: { workflow_id: workflowId, inputs, provider } });
  assert.equal(launched.status, 201, launched.text);
  return eventually(async () => {
    const r = await t.request('GET', `/api/runs/${launched.body.id}`, { token });
    return ['succeeded', 'failed', 'cancelled'].includes(r.body.status) ? r.body : undefined;
  }, 30_000, `run of ${workflowId} to finish`);
}

export interface Download {
  status: number;
  headers: Headers;
  bytes: Buffer;
}

/** GETs a path as bytes (the shared `request` helper decodes bodies as text). */
export async function download(t: TestApi, path: string, token: string | undefined, headers: Record<string, string> = {}): Promise<Download> {
  const res = await fetch(t.url + path, { headers: { ...headers, ...(token ? { authorization: `Bearer ${token}` } : {}) } });
  return { status: res.status, headers: res.headers, bytes: Buffer.from(await res.arrayBuffer()) };
}

export function sha256(bytes: Buffer): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/**
 * Downloads the website run's bundle and checks what every site must have: its hash, the
 * files route's headers, one page per input page with SEO tags, sitemap and robots. Returns
 * the unzipped files as text.
 */
export async function checkSiteBundle(t: TestApi, token: string, run: any): Promise<Map<string, string>> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const bundle = run.outputs.bundle;
  assert.equal(bundle.content_type, 'application/zip');
  assert.equal(bundle.url, `/api/runs/${run.id}/files/${bundle.sha256}`);
  assert.ok(run.files.some((f: { sha256: string; step_id: string }) => f.sha256 === bundle.sha256 && f.step_id === 'site'), 'run detail lists the bundle');
  const got = await download(t, bundle.url, token);
  assert.equal(got.status, 200);
  assert.equal(got.headers.get('content-type'), 'application/zip');
  assert.equal(got.headers.get('content-length'), String(bundle.size));
  assert.equal(got.headers.get('etag'), `"${bundle.sha256}"`);
  assert.equal(got.headers.get('content-disposition'), `attachment; filename="site.zip"; filename*=UTF-8''site.zip`);
  assert.equal(sha256(got.bytes), bundle.sha256);
  const files = new Map([...readZip(got.bytes)].map(([k, v]) => [k, v.toString('utf8')]));
  assert.deepEqual([...files.keys()].sort(), ['about.html', 'assets/site.css', 'contact.html', 'index.html', 'robots.txt', 'services.html', 'sitemap.xml']);
  assert.deepEqual(run.outputs.pages, ['index.html', 'about.html', 'services.html', 'contact.html']);
  for (const page of ['index.html', 'about.html', 'services.html', 'contact.html']) {
    const html = files.get(page)!;
    assert.match(html, /<meta name="viewport" content="width=device-width, initial-scale=1">/, page);
    assert.match(html, /<meta name="description" content="[^"]+">/, page);
    assert.match(html, /<meta property="og:title" content="[^"]*Codex Digital Studios">/, page);
    assert.match(html, /<link rel="canonical" href="https:\/\/codexdigital\.app\/[a-z.]*">/, page);
    assert.match(html, /<nav aria-label="Main"><ul><li><a href="index.html"/, page);
    assert.match(html, /<a href="mailto:hello@codexdigital.app">/, page);
    assert.doesNotMatch(html, /<script/i, page);
  }
  assert.match(files.get('about.html')!, /<title>About \| Codex Digital Studios<\/title>/);
  assert.match(files.get('assets/site.css')!, /--accent: #d4af37;/);
  assert.match(files.get('sitemap.xml')!, /<loc>https:\/\/codexdigital.app\/services.html<\/loc>/);
  assert.match(files.get('robots.txt')!, /Sitemap: https:\/\/codexdigital.app\/sitemap.xml/);
  // (1 h setup + 4 pages × 0.5 h) × 1 build/week × $80/h (hourly_rate_usd from the inputs)
  const savings = run.outputs.weekly_savings;
  assert.equal(savings.weekly_usd, 240);
  assert.equal(savings.annual_usd, 240 * 52);
  assert.equal(savings.assumptions.hourly_rate_usd.source, 'input');
  assert.match(savings.formula, /× \$80\/h = \$240\.00\/week$/);
  return files;
}

/** The attach output of a template: a document and exactly one primary image, stored in the run. */
export function checkAttached(run: any, contentType: RegExp): any { // eslint-disable-line @typescript-eslint/no-explicit-any
  const post = run.outputs.ad ?? run.outputs.post;
  assert.ok(post, 'the attach step is an output');
  assert.ok(typeof post.document.text === 'string' || post.document.json !== undefined, 'the document has content');
  assert.equal(post.attachments.filter((a: { primary: boolean }) => a.primary).length, 1);
  assert.equal(post.primary.primary, true);
  assert.match(post.primary.content_type, contentType);
  assert.equal(post.primary.url, `/api/runs/${run.id}/files/${post.primary.sha256}`);
  assert.equal(run.outputs.image, post.primary.url);
  assert.ok(run.files.some((f: { sha256: string }) => f.sha256 === post.primary.sha256), 'the image is a file of the run');
  return post;
}
