/**
 * Seeded templates through the real HTTP API: listed for every user, launched with
 * `provider: "simulated"` and run to completion with sensible outputs (the site bundle
 * downloaded and unzipped, images attached); the files route's access and headers; seeding
 * idempotent under concurrent starts, and what it does to templates an admin edited or deleted.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { insertRunFiles } from '../src/store/run-files.ts';
import { SYSTEM_OWNER, seedTemplates } from '../src/store/templates.ts';
import { loadTemplates } from '../src/api/template-files.ts';
import { startTestApi, type TestApi } from './helpers/api.ts';
import { BACKENDS, openTestDb } from './helpers/db.ts';
import { checkAttached, checkSiteBundle, download, INPUTS, runTemplate, sha256, SLUGS, templatesBySlug } from './helpers/templates.ts';

async function slugCounts(t: TestApi): Promise<{ slug: string; workflows: number; versions: number }[]> {
  const { rows } = await t.api.services.db.query<{ slug: string; workflows: number; versions: number }>(
    `SELECT w.slug, count(DISTINCT w.id)::int AS workflows, count(v.id)::int AS versions
     FROM workflows w LEFT JOIN workflow_versions v ON v.workflow_id = w.id WHERE w.slug IS NOT NULL GROUP BY w.slug ORDER BY w.slug`,
  );
  return rows;
}

for (const backend of BACKENDS) {
  void test(`${backend}: every seeded template is listed for every user and runs to completion on simulated`, async (ctx) => {
    const t = await startTestApi(backend, ctx, { seedTemplates: true });
    if (!t) return;
    for (const user of [t.alice, t.bob, t.admin]) {
      const seen = await templatesBySlug(t, user.token);
      assert.deepEqual([...seen.keys()].sort(), [...SLUGS], `${user.email} sees every template`);
      for (const wf of seen.values()) {
        assert.equal(wf.visibility, 'public');
        assert.equal(wf.owner_id, SYSTEM_OWNER);
        assert.equal(wf.latest_version, 1);
        assert.ok(wf.category && wf.tags.length > 0, `${wf.slug} has a category and tags`);
      }
    }
    const templates = await templatesBySlug(t, t.alice.token);
    assert.equal(templates.get('website.create_basic_site').name, 'Create Basic Website');
    assert.equal(templates.get('website.create_basic_site').category, 'website_builder');
    const def = (await t.request('GET', `/api/workflows/${templates.get('website.create_basic_site').id}`, { token: t.alice.token })).body.definition;
    assert.equal(def.inputs.required.includes('contact_email'), true, 'templates carry an input schema');
    assert.equal(def.inputs.properties.tone.default, 'clear, friendly and professional', 'YAML flow values with commas are quoted');
    for (const [slug, wf] of templates) {
      const got = await t.request('GET', `/api/workflows/${wf.id}`, { token: t.alice.token });
      const steps = got.body.definition.steps as Record<string, Record<string, unknown>>;
      for (const [id, step] of Object.entries(steps)) {
        assert.equal(step['provider'], undefined, `${slug}/${id} names no provider: the run's is used`);
      }
    }

    const runs = new Map<string, any>(); // eslint-disable-line @typescript-eslint/no-explicit-any
    await Promise.all(SLUGS.map(async (slug) => runs.set(slug, await runTemplate(t, t.alice.token, templates.get(slug).id, INPUTS[slug], 'simulated'))));
    for (const [slug, run] of runs) {
      assert.equal(run.status, 'succeeded', `${slug}: ${JSON.stringify(run.error)} ${JSON.stringify(run.steps.filter((s: { status: string }) => s.status === 'failed'))}`);
      assert.equal(run.simulated, true, `${slug} is marked simulated`);
    }

    const ad = runs.get('ads.facebook_campaign');
    assert.match(ad.outputs.headline, /^\[simulated\]/);
    assert.match(ad.outputs.body, /^\[simulated\]/);
    assert.match(ad.outputs.policy_review, /^\[simulated\]/);
    const adPost = checkAttached(ad, /^image\/svg\+xml$/);
    assert.deepEqual(Object.keys(adPost.document.json).sort(), ['body', 'call_to_action', 'headline']);
    assert.equal(adPost.document.json.call_to_action, 'Learn More');

    const insta = runs.get('social.instagram_post');
    assert.match(insta.outputs.caption, /^\[simulated\]/);
    checkAttached(insta, /^image\/svg\+xml$/);

    const blog = runs.get('blog.article_with_featured_image');
    assert.equal(typeof blog.outputs.score, 'number');
    assert.equal(blog.outputs.rewritten, blog.outputs.score < 7, 'rewritten exactly when the review scored under 7');
    assert.match(blog.outputs.article, /^\[simulated\]/);
    assert.equal(checkAttached(blog, /^image\/svg\+xml$/).document.text, blog.outputs.article);

    const site = runs.get('website.create_basic_site');
    const files = await checkSiteBundle(t, t.alice.token, site);
    // Simulated copy: the first page gets the model's (labelled) text, a page with a brief keeps it.
    assert.match(files.get('index.html')!, /<p>\[simulated\]<\/p>/);
    assert.match(files.get('services.html')!, /<p>Web design, hosting and care plans.<\/p>/);
    assert.deepEqual(site.outputs.warnings, []);

    // ---- the files route: access, headers, SVG sandboxed ----
    const image = ad.outputs.ad.primary;
    const svg = await download(t, image.url, t.alice.token);
    assert.equal(svg.status, 200);
    assert.equal(svg.headers.get('content-type'), 'image/svg+xml');
    assert.match(svg.headers.get('content-security-policy') ?? '', /(^|;\s*)sandbox(;|$)/);
    assert.equal(svg.headers.get('x-content-type-options'), 'nosniff');
    assert.equal(svg.headers.get('etag'), `"${image.sha256}"`);
    assert.match(svg.headers.get('content-disposition') ?? '', /^attachment; filename="creative.svg"/, 'an SVG is never shown inline');
    assert.equal(sha256(svg.bytes), image.sha256);
    assert.match(svg.bytes.toString(), /^<svg /);
    assert.equal((await download(t, image.url, t.alice.token, { 'if-none-match': `"${image.sha256}"` })).status, 304);
    assert.equal((await download(t, image.url, t.admin.token)).status, 200, 'admins see every run');
    const asBob = await download(t, image.url, t.bob.token);
    assert.equal(asBob.status, 404, "another user's run is not found");
    assert.match(asBob.headers.get('content-type') ?? '', /^application\/problem\+json/);
    assert.equal(JSON.parse(asBob.bytes.toString()).code, 'WEFT_NOT_FOUND');
    assert.equal((await download(t, image.url, undefined)).status, 401);
    assert.equal((await download(t, `/api/runs/${ad.id}/files/${'0'.repeat(64)}`, t.alice.token)).status, 404, 'unknown hash');
    assert.equal((await download(t, `/api/runs/${ad.id}/files/${site.outputs.bundle.sha256}`, t.alice.token)).status, 404, "another run's file is not this run's");
    assert.equal((await download(t, `/api/runs/${ad.id}/files/NOT-A-HASH`, t.alice.token)).status, 400);

    // A raster image is inline; a hostile file name is quoted safely (ASCII fallback + RFC 8187).
    const png = Buffer.from('89504e470d0a1a0a', 'hex');
    const name = 'evil"; filename=x.html;\\ é.png';
    await insertRunFiles(t.api.services.db, ad.id, 'creative', [{ sha256: sha256(png), name, contentType: 'image/png', bytes: png }], new Date());
    const raster = await download(t, `/api/runs/${ad.id}/files/${sha256(png)}`, t.alice.token);
    assert.equal(raster.status, 200);
    assert.equal(raster.headers.get('content-disposition'), `inline; filename="evil__ filename_x.html__ _.png"; filename*=UTF-8''evil%22%3B%20filename%3Dx.html%3B%5C%20%C3%A9.png`);
    assert.match(raster.headers.get('content-security-policy') ?? '', /sandbox/);

    const doc = (await t.request('GET', '/api/openapi.json')).body;
    assert.equal(doc.paths['/api/runs/{id}/files/{sha256}'].get.operationId, 'getRunFile');
  });

  void test(`${backend}: seeding is idempotent, concurrent starts seed once, admin edits and deletions are kept`, async (ctx) => {
    // Three servers starting at once on an empty database: each template is seeded by one.
    const empty = await openTestDb(backend, ctx);
    if (!empty) return;
    const all = await loadTemplates();
    const outcomes = await Promise.all([seedTemplates(empty, all), seedTemplates(empty, all), seedTemplates(empty, all)]);
    for (const slug of SLUGS) assert.deepEqual(outcomes.map((o) => o[slug]).sort(), ['seeded', 'unchanged', 'unchanged'], slug);
    const rows = await empty.query<{ n: number }>('SELECT count(*)::int AS n FROM workflows w JOIN workflow_versions v ON v.workflow_id = w.id WHERE w.slug IS NOT NULL');
    assert.equal(rows.rows[0]!.n, SLUGS.length, 'one workflow and one version per template');
    await empty.close();

    const t = await startTestApi(backend, ctx, { seedTemplates: true });
    if (!t) return;
    const db = t.api.services.db;
    const templates = await loadTemplates();
    const once = SLUGS.map((slug) => ({ slug, workflows: 1, versions: 1 }));
    assert.deepEqual(await slugCounts(t), once);
    // A second start, and two more at the same time (on PostgreSQL, truly concurrent connections).
    assert.deepEqual(Object.values(await seedTemplates(db, templates)), SLUGS.map(() => 'unchanged'));
    await Promise.all([seedTemplates(db, templates), seedTemplates(db, templates), seedTemplates(db, templates)]);
    assert.deepEqual(await slugCounts(t), once);

    // Users cannot change a template; an admin edits one (a new version) and deletes another.
    const bySlug = await templatesBySlug(t, t.admin.token);
    const blog = bySlug.get('blog.article_with_featured_image');
    const ig = bySlug.get('social.instagram_post');
    const blogDef = (await t.request('GET', `/api/workflows/${blog.id}`, { token: t.admin.token })).body.definition;
    const edited = { ...blogDef, description: 'Edited by an admin.' };
    assert.equal((await t.request('PUT', `/api/workflows/${blog.id}`, { token: t.alice.token, body: edited })).status, 403);
    assert.equal((await t.request('DELETE', `/api/workflows/${ig.id}`, { token: t.alice.token })).status, 403);
    assert.equal((await t.request('PUT', `/api/workflows/${blog.id}`, { token: t.admin.token, body: edited })).body.latest_version, 2);
    assert.equal((await t.request('DELETE', `/api/workflows/${ig.id}`, { token: t.admin.token })).status, 204);

    // A new release changes every template file: the untouched ones are upgraded, the rest kept.
    const release = templates.map((tpl) => ({ ...tpl, definition: { ...tpl.definition, description: `${tpl.definition.description ?? ''} (v2)` } }));
    assert.deepEqual(await seedTemplates(db, release), {
      'ads.facebook_campaign': 'upgraded',
      'blog.article_with_featured_image': 'kept_edited',
      'social.instagram_post': 'kept_deleted',
      'website.create_basic_site': 'upgraded',
    });
    assert.deepEqual(Object.values(await seedTemplates(db, release)), ['unchanged', 'kept_edited', 'kept_deleted', 'unchanged']);
    const after = await templatesBySlug(t, t.bob.token);
    assert.deepEqual([...after.keys()].sort(), ['ads.facebook_campaign', 'blog.article_with_featured_image', 'website.create_basic_site'], 'a deleted template stays deleted');
    assert.equal(after.get('blog.article_with_featured_image').description, 'Edited by an admin.');
    assert.equal(after.get('blog.article_with_featured_image').latest_version, 2);
    assert.equal(after.get('website.create_basic_site').latest_version, 2);
    assert.match(after.get('website.create_basic_site').description, /\(v2\)$/);
    assert.deepEqual((await slugCounts(t)).map((r) => r.workflows), [1, 1, 1, 1], 'still one row per slug');

    // Cloning a template gives the user a private copy of their own, without the slug.
    const clone = await t.request('POST', `/api/workflows/${after.get('website.create_basic_site').id}/clone`, { token: t.bob.token });
    assert.equal(clone.status, 201);
    assert.equal(clone.body.owner_id, t.bob.id);
    assert.equal(clone.body.slug, null);
  });
}
