/**
 * The `website` and `attach` executors alone (no server): what the bundle holds, that user and
 * model text cannot inject markup or CSS, that bad input fails once with every problem named,
 * the savings arithmetic, and the ZIP writer checked by an independent reader and by unzip(1).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileDefinition } from '../src/core/compiler.ts';
import { WeftError } from '../src/core/errors.ts';
import { attachStep } from '../src/steps/attach.ts';
import { renderInline, renderMarkdown, safeHref } from '../src/steps/site-markdown.ts';
import type { StepContext, StepResult } from '../src/steps/types.ts';
import { websiteStep } from '../src/steps/website.ts';
import { createZip } from '../src/steps/zip.ts';
import { readZip } from './helpers/unzip.ts';

const SITE = {
  site_name: 'Codex Digital Studios',
  description: 'Professional web design for small businesses.',
  brand_colors: { primary: '#1a1a1a', secondary: '#f7f1e3', accent: '#d4af37' },
  typography: { heading: 'Inter, sans-serif', body: '"Open Sans", Georgia, serif' },
  contact_email: 'hello@codexdigital.app',
  base_url: 'https://codexdigital.app/',
  pages: [
    { title: 'Home', content: '## Welcome\n\nWe build **fast** sites.\n\n- Design\n- Build' },
    { slug: 'about', title: 'About us', content: 'A small team.' },
    { title: 'Contact', content: '' },
  ],
};

function ctx(params: Record<string, unknown>, definition: Record<string, unknown> = { type: 'website' }, scope: Record<string, unknown> = {}): StepContext {
  const step = { id: 'site', type: definition['type'], definition } as unknown as StepContext['step'];
  return {
    runId: '00000000-0000-4000-8000-000000000001', stepId: 'site', attempt: 1, idempotencyKey: 'k', step, scope, params,
    signal: new AbortController().signal, settings: { allowPrivateNetwork: false, defaultProvider: undefined },
    agents: () => Promise.resolve(undefined), streamOutput: () => {},
  };
}

async function build(params: Record<string, unknown>): Promise<{ result: StepResult; files: Map<string, string>; output: any }> { // eslint-disable-line @typescript-eslint/no-explicit-any
  const result = await websiteStep(ctx(params));
  const zip = Buffer.from(result.files![0]!.bytes);
  const files = new Map([...readZip(zip)].map(([k, v]) => [k, v.toString('utf8')]));
  return { result, files, output: result.output };
}

void test('website: a page per page, a stylesheet, sitemap and robots, SEO tags, navigation and a mailto contact, zipped', async () => {
  const { result, files, output } = await build(SITE);
  const file = result.files![0]!;
  assert.equal(file.name, 'site.zip');
  assert.equal(file.contentType, 'application/zip');
  assert.deepEqual(output.bundle, { url: `/api/runs/00000000-0000-4000-8000-000000000001/files/${file.sha256}`, sha256: file.sha256, content_type: 'application/zip', size: file.bytes.length, name: 'site.zip' });
  assert.deepEqual(output.pages, ['index.html', 'about.html', 'contact.html']);
  assert.deepEqual([...files.keys()], ['index.html', 'about.html', 'contact.html', 'assets/site.css', 'sitemap.xml', 'robots.txt']);
  assert.deepEqual(output.files, [...files.keys()]);

  const about = files.get('about.html')!;
  assert.match(about, /^<!doctype html>/);
  assert.match(about, /<meta name="viewport" content="width=device-width, initial-scale=1">/);
  assert.match(about, /<title>About us \| Codex Digital Studios<\/title>/);
  assert.match(about, /<meta name="description" content="A small team.">/);
  assert.match(about, /<link rel="canonical" href="https:\/\/codexdigital.app\/about.html">/);
  assert.match(about, /<meta property="og:title" content="About us \| Codex Digital Studios">/);
  assert.match(about, /<meta property="og:url" content="https:\/\/codexdigital.app\/about.html">/);
  assert.match(about, /<a href="about.html" aria-current="page">About us<\/a>/);
  assert.match(about, /<a href="index.html">Home<\/a>/);
  assert.match(about, /<a href="mailto:hello@codexdigital.app">hello@codexdigital.app<\/a>/);
  const home = files.get('index.html')!;
  assert.match(home, /<link rel="canonical" href="https:\/\/codexdigital.app\/">/);
  assert.match(home, /<meta name="description" content="Professional web design for small businesses.">/);
  assert.match(home, /<h2>Welcome<\/h2>\n<p>We build <strong>fast<\/strong> sites.<\/p>\n<ul><li>Design<\/li><li>Build<\/li><\/ul>/);

  const css = files.get('assets/site.css')!;
  assert.match(css, /--primary: #1a1a1a;/);
  assert.match(css, /--accent: #d4af37;/);
  assert.match(css, /--font-body: "Open Sans", Georgia, serif;/);
  assert.match(css, /--font-heading: Inter, sans-serif;/);
  assert.match(files.get('sitemap.xml')!, /<loc>https:\/\/codexdigital.app\/<\/loc>[\s\S]*<loc>https:\/\/codexdigital.app\/about.html<\/loc>[\s\S]*<loc>https:\/\/codexdigital.app\/contact.html<\/loc>/);
  assert.match(files.get('robots.txt')!, /^User-agent: \*\nAllow: \/\n\nSitemap: https:\/\/codexdigital.app\/sitemap.xml\n$/);
  assert.deepEqual(output.warnings, []);

  // Reproducible: the same input gives the same bytes, hence the same run file.
  assert.equal((await websiteStep(ctx(SITE))).files![0]!.sha256, file.sha256);
});

void test('website: the bundle is a valid zip for unzip(1) too', async (t) => {
  try {
    execFileSync('unzip', ['-v'], { stdio: 'ignore' });
  } catch {
    t.skip('unzip is not installed');
    return;
  }
  const { result } = await build(SITE);
  const dir = mkdtempSync(join(tmpdir(), 'weft-zip-'));
  try {
    writeFileSync(join(dir, 'site.zip'), result.files![0]!.bytes);
    const out = execFileSync('unzip', ['-t', join(dir, 'site.zip')], { encoding: 'utf8' });
    assert.match(out, /No errors detected/);
    assert.match(execFileSync('unzip', ['-l', join(dir, 'site.zip')], { encoding: 'utf8' }), /assets\/site\.css/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

void test('website: titles, names and content with <script> come out escaped; unsafe links lose their href', async () => {
  const evil = '<script>alert("x")</script>';
  const { files } = await build({
    ...SITE,
    site_name: `Acme ${evil}`,
    description: `"><script>alert(1)</script>`,
    pages: [
      { title: `Home ${evil}`, content: `# Hi ${evil}\n\n<img src=x onerror=alert(1)> [click](javascript:alert) [ok](https://example.com/?a=1&b=2) \`<b>\`` },
      { title: evil, content: '> quote <i>\n\n```\n<script>code</script>\n```' },
    ],
  });
  for (const [path, text] of files) {
    if (!path.endsWith('.html')) continue;
    assert.doesNotMatch(text, /<script/i, `${path} has no script element`);
    assert.doesNotMatch(text, /<img|<i>|<b>|javascript:/i, `${path} has no injected markup`);
  }
  const home = files.get('index.html')!;
  assert.match(home, /<h1>Home &lt;script&gt;alert\(&quot;x&quot;\)&lt;\/script&gt;<\/h1>/);
  assert.match(home, /<meta name="description" content="&quot;&gt;&lt;script&gt;alert\(1\)&lt;\/script&gt;">/);
  assert.match(home, /<p>&lt;img src=x onerror=alert\(1\)&gt; click <a href="https:\/\/example.com\/\?a=1&amp;b=2" rel="noopener noreferrer">ok<\/a> <code>&lt;b&gt;<\/code><\/p>/);
  const second = [...files.keys()].find((k) => k.startsWith('script'))!;
  assert.equal(second, 'script-alert-x-script.html', 'the slug is made from the title, letters and digits only');
  assert.match(files.get(second)!, /<pre><code>&lt;script&gt;code&lt;\/script&gt;<\/code><\/pre>/);
  assert.match(files.get(second)!, /<blockquote><p>quote &lt;i&gt;<\/p><\/blockquote>/);
});

void test('markdown subset: links only to safe targets; unmatched markers stay text; hostile input stays fast', () => {
  assert.equal(safeHref('javascript:alert(1)'), undefined);
  assert.equal(safeHref('JaVaScRiPt:alert(1)'), undefined);
  assert.equal(safeHref('data:text/html,<b>'), undefined);
  assert.equal(safeHref('//evil.example/x'), undefined);
  assert.equal(safeHref('about.html#team'), 'about.html#team');
  assert.equal(safeHref('mailto:a@b.c'), 'mailto:a@b.c');
  assert.equal(renderInline('2 * 3 and a_b_c and **open'), '2 * 3 and a_b_c and **open');
  assert.equal(renderInline('*em* and _em_'), '<em>em</em> and <em>em</em>');
  const started = performance.now();
  renderMarkdown('['.repeat(50_000) + '*'.repeat(50_000) + '`'.repeat(1) + '_ '.repeat(20_000));
  assert.ok(performance.now() - started < 2000, 'bounded searches');
});

void test('website: bad input fails once (not retryable) naming every problem', async () => {
  const error = await websiteStep(ctx({
    ...SITE,
    brand_colors: { primary: 'red; } body { background: url(x)', secondary: '#12' },
    typography: { heading: 'Inter; color: red', body: '"Unbalanced' },
    contact_email: 'not-an-email',
    base_url: 'javascript:alert(1)',
    pages: [{ content: 'no title' }, 42],
  })).then(() => undefined, (e: unknown) => e);
  assert.ok(error instanceof WeftError);
  assert.equal(error.code, 'WEFT_STEP_FAILED');
  assert.equal(error.retryable, false);
  for (const part of ['brand_colors.primary', 'brand_colors.secondary', 'typography.heading', 'typography.body', 'contact_email', 'base_url', 'pages[0]', 'pages[1]']) {
    assert.ok(error.message.includes(part), `names ${part}: ${error.message}`);
  }
  await assert.rejects(websiteStep(ctx({ ...SITE, pages: [] })), /with.pages must be a non-empty array/);
  await assert.rejects(websiteStep(ctx({ ...SITE, site_name: undefined })), /with.site_name is required/);
});

void test('website: page names, defaults, duplicate slugs, a missing base_url is a warning', async () => {
  const { output, files } = await build({ site_name: 'X', contact_email: 'a@b.co', pages: ['about', 'Home', 'about', { slug: 'index', title: 'Index page' }] });
  assert.deepEqual(output.pages, ['about.html', 'index.html', 'about-2.html', 'index-page.html']);
  assert.equal(output.site.pages[0].title, 'About');
  assert.match(output.warnings[0], /no base_url given/);
  assert.match(files.get('index.html')!, /<link rel="canonical" href="https:\/\/example.com\/">/);
  assert.match(files.get('assets/site.css')!, /--font-body: system-ui, sans-serif;/);
});

void test('website: the weekly savings are the stated formula over stated assumptions', async () => {
  const defaults = (await build(SITE)).output.estimated_weekly_savings;
  // (1 h setup + 3 pages × 0.5 h) × 1 build/week × $75/h
  assert.equal(defaults.hours_saved_per_week, 2.5);
  assert.equal(defaults.weekly_usd, 187.5);
  assert.equal(defaults.annual_usd, 9750);
  assert.equal(defaults.formula, '(1 h setup + 3 pages × 0.5 h) × 1 builds/week × $75/h = $187.50/week');
  assert.equal(defaults.assumptions.hourly_rate_usd.source, 'default');
  const given = (await build({ ...SITE, savings: { hourly_rate_usd: 100, builds_per_week: 2, manual_hours_per_page: 1 } })).output.estimated_weekly_savings;
  assert.equal(given.weekly_usd, (1 + 3 * 1) * 2 * 100);
  assert.equal(given.assumptions.hourly_rate_usd.source, 'input');
  assert.equal(given.assumptions.manual_setup_hours.source, 'default');
  await assert.rejects(websiteStep(ctx({ ...SITE, savings: { hourly_rate_usd: -1 } })), /savings.hourly_rate_usd must be a number/);
});

void test('zip writer: refuses unsafe paths and duplicates; stores what deflate would not shrink', () => {
  for (const path of ['/etc/passwd', '../x', 'a/../../x', 'a\\b', 'C:/x', '', 'a//b']) {
    assert.throws(() => createZip([{ path, data: 'x' }]), /unsafe entry path/, path);
  }
  assert.throws(() => createZip([{ path: 'a', data: 'x' }, { path: 'a', data: 'y' }]), /duplicate/);
  const random = Buffer.from(Array.from({ length: 64 }, (_, i) => (i * 97 + 13) % 256));
  const files = readZip(createZip([{ path: 'r.bin', data: random }, { path: 'dir/ü.txt', data: 'a'.repeat(10_000) }]));
  assert.deepEqual(files.get('r.bin'), random);
  assert.equal(files.get('dir/ü.txt')!.toString(), 'a'.repeat(10_000));
});

const IMAGE = { url: '/api/runs/r/files/aa', sha256: 'aa', content_type: 'image/png', size: 10, name: 'hero.png', stored: true };
const OTHER = { url: '/api/runs/r/files/bb', sha256: 'bb', content_type: 'image/svg+xml', size: 20, name: 'alt.svg', stored: true };

void test('attach: links images to a document, the first primary by default, or by index or step id', async () => {
  const doc = { text: 'Buy now', model: 'm' };
  const first = await attachStep(ctx({ document: doc, images: [IMAGE, OTHER] }, { type: 'attach' }));
  assert.deepEqual(first.output, {
    document: { text: 'Buy now' },
    attachments: [
      { url: IMAGE.url, sha256: 'aa', content_type: 'image/png', name: 'hero.png', size: 10, primary: true },
      { url: OTHER.url, sha256: 'bb', content_type: 'image/svg+xml', name: 'alt.svg', size: 20, primary: false },
    ],
    primary: { url: IMAGE.url, sha256: 'aa', content_type: 'image/png', name: 'hero.png', size: 10, primary: true },
  });
  const byIndex = await attachStep(ctx({ document: 'plain text', images: [IMAGE, OTHER] }, { type: 'attach', primary: 1 }));
  assert.equal((byIndex.output as any).primary.url, OTHER.url); // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.deepEqual((byIndex.output as any).document, { text: 'plain text' }); // eslint-disable-line @typescript-eslint/no-explicit-any
  const byStep = await attachStep(ctx({ document: { headline: 'H', body: 'B' }, images: [IMAGE, OTHER] }, { type: 'attach', primary: 'alt' }, { alt: OTHER, hero: IMAGE }));
  assert.equal((byStep.output as any).primary.url, OTHER.url); // eslint-disable-line @typescript-eslint/no-explicit-any
  assert.deepEqual((byStep.output as any).document, { json: { headline: 'H', body: 'B' } }); // eslint-disable-line @typescript-eslint/no-explicit-any
  const single = await attachStep(ctx({ document: doc, images: IMAGE }, { type: 'attach' }));
  assert.equal((single.output as any).attachments.length, 1); // eslint-disable-line @typescript-eslint/no-explicit-any
});

void test('attach: what is not an image output fails at once, saying why', async () => {
  const cases: [Record<string, unknown>, Record<string, unknown>, RegExp][] = [
    [{ document: { text: 'x' }, images: [{ text: 'not an image' }] }, {}, /with.images\[0\] is not an image output: it has no url/],
    [{ document: { text: 'x' }, images: [IMAGE, { url: '/f', content_type: 'application/zip' }] }, {}, /with.images\[1\] is not an image output: its content_type is 'application\/zip', not image\/\*/],
    [{ document: { text: 'x' }, images: ['just a string'] }, {}, /with.images\[0\] is not an image output .* it is a string/],
    [{ document: { text: 'x' }, images: [] }, {}, /at least one image/],
    [{ images: [IMAGE] }, {}, /with.document must be a document/],
    [{ document: 'x', images: [IMAGE] }, { primary: 3 }, /primary is 3, but there are only 1 images/],
    [{ document: 'x', images: [IMAGE] }, { primary: 'nope' }, /primary names step 'nope', whose output is not among with.images/],
  ];
  for (const [params, extra, message] of cases) {
    const error = await attachStep(ctx(params, { type: 'attach', ...extra })).then(() => undefined, (e: unknown) => e);
    assert.ok(error instanceof WeftError, String(message));
    assert.equal(error.code, 'WEFT_STEP_FAILED');
    assert.equal(error.retryable, false);
    assert.match(error.message, message);
  }
});

void test('the compiler knows attach and website: bindings are checked, primary is typed', () => {
  const ok = compileDefinition({
    name: 'w', steps: {
      img: { type: 'transform', expr: "{'url': '/x', 'content_type': 'image/png'}" },
      a: { type: 'attach', needs: ['img'], primary: 'img', with: { document: "'hi'", images: ['$img'] } },
      s: { type: 'website', needs: ['a'], with: { site_name: "'x'", pages: "['home']", contact_email: "'a@b.co'" } },
    },
  });
  assert.deepEqual(ok.steps['a']!.refs, ['img']);
  assert.throws(() => compileDefinition({ name: 'w', steps: { a: { type: 'attach', primary: -1, with: { images: ['$nope'] } } } }), /primary|nope/);
  assert.throws(() => compileDefinition({ name: 'w', steps: { s: { type: 'website', pages: [] } } }), /pages/);
});
