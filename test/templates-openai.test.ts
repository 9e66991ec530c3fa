/**
 * The same seeded templates on a real provider protocol: an `openai` credential pointing at
 * the local LLM server (test/helpers/llm-server.ts, OpenAI's wire format), every run launched
 * with `provider: "openai"`. Nothing in the templates changes — only the launch's provider.
 *
 * The server is scripted to answer as it will be asked: structured-output requests get JSON
 * of the asked shape (the review verdict, the website copy), images come back as real PNGs,
 * everything else is echoed. The blog template's `review` step is the one part that needs
 * review.ts to judge with a real provider (JSON against REVIEW_SCHEMA); see the assertions
 * marked REVIEW below.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startTestApi } from './helpers/api.ts';
import { BACKENDS } from './helpers/db.ts';
import { startLlmServer } from './helpers/llm-server.ts';
import { checkAttached, checkSiteBundle, download, INPUTS, runTemplate, SLUGS, templatesBySlug } from './helpers/templates.ts';

const KEY = 'sk-test-templates-0123456789';

const WEBSITE_COPY = {
  pages: [
    { slug: 'home', content: '## Built for small businesses\n\nWe design **fast** sites. <script>alert("copy")</script>' },
    { slug: 'about', content: 'A two-person studio in Lisbon.' },
    { slug: 'services', content: '- Web design\n- Hosting\n- Care plans' },
    { slug: 'contact', content: 'Write to [us](mailto:hello@codexdigital.app) or [run](javascript:alert).' },
  ],
};

for (const backend of BACKENDS) {
  void test(`${backend}: every seeded template runs on provider openai (the local LLM server)`, async (ctx) => {
    const t = await startTestApi(backend, ctx, { seedTemplates: true });
    if (!t) return;
    const llm = await startLlmServer({ openaiKey: KEY });
    ctx.after(() => llm.close());
    llm.handler = (req) => {
      const format = req.body?.response_format?.json_schema;
      if (req.api !== 'openai-chat' || !format) return undefined; // images: a PNG; chat: an echo
      if (format.name === 'review') return { type: 'json', value: { score: 8, feedback: 'Clear and accurate.', suggestions: ['Add a diagram.'] } };
      if (format.schema?.properties?.pages) return { type: 'json', value: WEBSITE_COPY };
      return undefined;
    };
    // The built-in `openai` provider, pointed at loopback (opened for this credential only).
    const credential = await t.request('POST', '/api/credentials', {
      token: t.admin.token,
      body: { name: 'openai', kind: 'openai-compatible', base_url: llm.openaiBaseUrl, api_key: KEY, allow_private: true },
    });
    assert.equal(credential.status, 201, credential.text);
    assert.equal(credential.body.status.available, true, JSON.stringify(credential.body.status));

    const templates = await templatesBySlug(t, t.bob.token);
    const runs = new Map<string, any>(); // eslint-disable-line @typescript-eslint/no-explicit-any
    await Promise.all(SLUGS.map(async (slug) => runs.set(slug, await runTemplate(t, t.bob.token, templates.get(slug).id, INPUTS[slug], 'openai'))));
    for (const [slug, run] of runs) {
      // REVIEW: for the blog template, 'succeeded' needs review.ts to accept a real provider.
      assert.equal(run.status, 'succeeded', `${slug}: ${JSON.stringify(run.error)} ${JSON.stringify(run.steps.filter((s: { status: string }) => s.status === 'failed'))}`);
      assert.equal(run.simulated, false, `${slug} ran on the real protocol`);
      const ai = run.steps.filter((s: { type: string; status: string }) => ['agent', 'image', 'review'].includes(s.type) && s.status === 'succeeded');
      assert.ok(ai.length > 0 && ai.every((s: { provider: string | null }) => s.provider === 'openai'), `${slug}: every AI step that ran used the run's provider: ${JSON.stringify(ai)}`);
    }
    assert.ok(llm.requests.every((r) => r.headers['authorization'] === `Bearer ${KEY}`), 'the stored key is what the provider sends');
    assert.ok(llm.requests.some((r) => r.api === 'openai-images'), 'images were generated through the images API');

    const ad = runs.get('ads.facebook_campaign');
    assert.match(ad.outputs.headline, /^Echo: Write one Facebook ad headline/);
    assert.match(ad.outputs.body, /^Echo: Write the primary text of a Facebook ad/);
    const adImage = checkAttached(ad, /^image\/png$/).primary;
    const png = await download(t, adImage.url, t.bob.token);
    assert.equal(png.status, 200);
    assert.equal(png.headers.get('content-type'), 'image/png');
    assert.match(png.headers.get('content-disposition') ?? '', /^inline; filename="creative.png"/, 'a raster image is shown inline');
    assert.match(png.headers.get('content-security-policy') ?? '', /sandbox/);
    assert.equal(png.bytes.subarray(0, 8).toString('hex'), '89504e470d0a1a0a', 'the PNG the provider returned');
    assert.equal((await download(t, adImage.url, t.alice.token)).status, 404, "bob's run is not alice's");

    checkAttached(runs.get('social.instagram_post'), /^image\/png$/);
    assert.match(runs.get('social.instagram_post').outputs.caption, /^Echo: Write an Instagram caption about morning coffee rituals/);

    const blog = runs.get('blog.article_with_featured_image');
    // REVIEW: the score, feedback and the skipped rewrite come from review.ts judging in JSON.
    assert.equal(blog.outputs.score, 8);
    assert.equal(blog.outputs.feedback, 'Clear and accurate.');
    assert.equal(blog.outputs.rewritten, false);
    assert.equal(blog.steps.find((s: { step_id: string }) => s.step_id === 'rewrite').status, 'skipped');
    assert.match(blog.outputs.article, /^Echo: Write the article on durable execution/);
    checkAttached(blog, /^image\/png$/);

    const site = runs.get('website.create_basic_site');
    const files = await checkSiteBundle(t, t.bob.token, site);
    assert.match(files.get('index.html')!, /<h2>Built for small businesses<\/h2>\n<p>We design <strong>fast<\/strong> sites. &lt;script&gt;alert\(&quot;copy&quot;\)&lt;\/script&gt;<\/p>/);
    assert.match(files.get('services.html')!, /<ul><li>Web design<\/li><li>Hosting<\/li><li>Care plans<\/li><\/ul>/);
    assert.match(files.get('contact.html')!, /<p>Write to <a href="mailto:hello@codexdigital.app">us<\/a> or run\.<\/p>/, 'the javascript: link lost its href');
    assert.match(files.get('contact.html')!, /<meta name="description" content="Write to us or run\.">/);
    const copyRequest = llm.requests.find((r) => r.body?.response_format?.json_schema?.schema?.properties?.pages);
    assert.match(JSON.stringify(copyRequest?.body.messages), /\\"slug\\":\\"services\\"/, 'the model was given the slugs to keep');
  });
}
