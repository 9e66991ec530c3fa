/**
 * `website`: a static site from its `with` bindings — site_name, description, brand_colors,
 * typography, pages, contact_email, base_url, language, savings — bundled as `site.zip` (a run
 * file) with one HTML page per page, a stylesheet, sitemap.xml and robots.txt.
 *
 * Everything here may come from users or from a model, so it is checked before use: text is
 * escaped or rendered through the safe Markdown subset (site-markdown.ts), colours and font
 * stacks must match patterns that cannot leave their CSS declaration, the e-mail address and
 * base URL are parsed. Bad input fails the step with every problem listed, and no retry (the
 * same input would fail the same way).
 */
import { WeftError } from '../core/errors.ts';
import { describeFile, makeFile } from './files.ts';
import { pagePath, pageUrl, renderSite, type SitePage, type SiteSpec } from './site-pages.ts';
import type { StepExecutor } from './types.ts';
import { createZip } from './zip.ts';

const MAX_PAGES = 50;
const MAX_PAGE_CHARS = 50_000;
const MAX_TEXT = 1000;
const DEFAULT_BASE_URL = 'https://example.com';

/** Hex (#rgb, #rrggbb, #rrggbbaa) or a CSS colour keyword: nothing that can close a declaration. */
const COLOR = /^(#[0-9a-fA-F]{3}|#[0-9a-fA-F]{6}|#[0-9a-fA-F]{8}|[a-zA-Z]{3,20})$/;
/** Font family names, commas, spaces, hyphens and quotes (balanced, checked apart). */
const FONT_STACK = /^[A-Za-z0-9 ,'"-]{1,200}$/;
const GENERIC_FAMILY = /(^|,)\s*(serif|sans-serif|monospace|cursive|fantasy|system-ui|ui-sans-serif|ui-serif|ui-monospace)\s*$/;
const EMAIL = /^[A-Za-z0-9.!#$%&*+/=?^_{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+$/;
const LANGUAGE = /^[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8}){0,3}$/;

const DEFAULT_COLORS = { primary: '#1a1a1a', secondary: '#f7f1e3', background: '#ffffff', text: '#1a1a1a' };
const DEFAULT_FONTS = { heading: 'system-ui, sans-serif', body: 'system-ui, sans-serif' };

/**
 * The savings estimate's assumptions and their defaults. Stated, so the figure can be checked
 * and changed: hours a person would spend building the same site by hand, times how often it
 * would be built, times what an hour costs. $75/h is the rate the product brief uses.
 */
export const SAVINGS_DEFAULTS = {
  hourly_rate_usd: 75,
  manual_setup_hours: 1,
  manual_hours_per_page: 0.5,
  builds_per_week: 1,
} as const;

type SavingsKey = keyof typeof SAVINGS_DEFAULTS;

const SAVINGS_MEANING: Record<SavingsKey, string> = {
  hourly_rate_usd: 'cost of one hour of the person who would otherwise do this, in USD',
  manual_setup_hours: 'hours to set up a site by hand: stylesheet from the brand colours and typography, navigation, SEO tags, sitemap.xml, robots.txt, contact section',
  manual_hours_per_page: 'hours to lay out one page of given copy as HTML by hand',
  builds_per_week: 'how many such builds (new sites or rebuilds) this workflow replaces per week',
};

export const websiteStep: StepExecutor = async (ctx) => {
  const problems: string[] = [];
  const { spec, warnings } = readSpec(ctx.params, problems);
  const savings = estimateSavings(ctx.params['savings'], spec.pages.length, problems);
  if (problems.length > 0) {
    throw new WeftError('WEFT_STEP_FAILED', `website step '${ctx.stepId}': ${problems.join('; ')}`, { details: { problems } });
  }
  ctx.signal.throwIfAborted();
  const files = renderSite(spec);
  const zip = createZip(files.map((f) => ({ path: f.path, data: f.text })));
  const bundle = makeFile('site.zip', 'application/zip', zip);
  return {
    output: {
      bundle: describeFile(ctx.runId, bundle),
      pages: spec.pages.map(pagePath),
      files: files.map((f) => f.path),
      site: {
        name: spec.siteName, base_url: spec.baseUrl,
        pages: spec.pages.map((p) => ({ slug: p.slug, title: p.title, path: pagePath(p), url: pageUrl(spec, p) })),
      },
      estimated_weekly_savings: savings,
      warnings,
    },
    files: [bundle],
  };
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function text(value: unknown, field: string, problems: string[], opts: { required?: boolean; max?: number } = {}): string {
  if (value === undefined || value === null || value === '') {
    if (opts.required) problems.push(`with.${field} is required`);
    return '';
  }
  if (typeof value !== 'string') {
    problems.push(`with.${field} must be a string`);
    return '';
  }
  const max = opts.max ?? MAX_TEXT;
  if (value.length > max) problems.push(`with.${field} is longer than ${max} characters`);
  return value.trim();
}

function readSpec(params: Record<string, unknown>, problems: string[]): { spec: SiteSpec; warnings: string[] } {
  const warnings: string[] = [];
  const siteName = text(params['site_name'], 'site_name', problems, { required: true, max: 200 });
  const description = text(params['description'], 'description', problems);

  const colorsIn = params['brand_colors'] ?? {};
  if (!isObject(colorsIn)) problems.push('with.brand_colors must be an object like {primary: "#1a1a1a", secondary: "#f7f1e3"}');
  const color = (key: string, fallback: string): string => {
    const v = isObject(colorsIn) ? colorsIn[key] : undefined;
    if (v === undefined || v === null || v === '') return fallback;
    if (typeof v !== 'string' || !COLOR.test(v)) {
      problems.push(`with.brand_colors.${key} must be a hex colour (#1a1a1a) or a CSS colour name`);
      return fallback;
    }
    return v;
  };
  const primary = color('primary', DEFAULT_COLORS.primary);
  const colors = {
    primary, secondary: color('secondary', DEFAULT_COLORS.secondary), accent: color('accent', primary),
    background: color('background', DEFAULT_COLORS.background), text: color('text', DEFAULT_COLORS.text),
  };

  const fontsIn = params['typography'] ?? {};
  if (!isObject(fontsIn)) problems.push('with.typography must be an object like {heading: "Inter, sans-serif", body: "Georgia, serif"}');
  const font = (key: 'heading' | 'body'): string => {
    const v = isObject(fontsIn) ? fontsIn[key] : undefined;
    if (v === undefined || v === null || v === '') return DEFAULT_FONTS[key];
    const balanced = typeof v === 'string' && (v.split('"').length - 1) % 2 === 0 && (v.split("'").length - 1) % 2 === 0;
    if (typeof v !== 'string' || !FONT_STACK.test(v) || !balanced) {
      problems.push(`with.typography.${key} must be a font stack (names, commas, balanced quotes), like "Inter, sans-serif"`);
      return DEFAULT_FONTS[key];
    }
    // Without a generic family a missing font would fall back to the browser's default (often serif).
    return GENERIC_FAMILY.test(v) ? v.trim() : `${v.trim()}, sans-serif`;
  };

  const contactEmail = text(params['contact_email'], 'contact_email', problems, { required: true, max: 254 });
  if (contactEmail !== '' && !EMAIL.test(contactEmail)) problems.push('with.contact_email is not an e-mail address');

  let baseUrl = DEFAULT_BASE_URL;
  const rawBase = params['base_url'];
  if (rawBase === undefined || rawBase === null || rawBase === '') {
    warnings.push(`no base_url given: canonical links, Open Graph URLs and the sitemap use ${DEFAULT_BASE_URL}; set base_url to the site's address`);
  } else {
    const parsed = typeof rawBase === 'string' ? parseUrl(rawBase) : undefined;
    if (!parsed || (parsed.protocol !== 'https:' && parsed.protocol !== 'http:') || parsed.username !== '' || parsed.password !== '' || parsed.search !== '' || parsed.hash !== '') {
      problems.push('with.base_url must be an http(s) URL without credentials, query or fragment, like https://example.com');
    } else {
      baseUrl = `${parsed.origin}${parsed.pathname}`.replace(/\/+$/, '');
    }
  }
  const language = text(params['language'], 'language', problems, { max: 35 }) || 'en';
  if (!LANGUAGE.test(language)) problems.push('with.language must be a language tag like en or pt-BR');

  return { spec: { siteName, description, colors, fonts: { heading: font('heading'), body: font('body') }, pages: readPages(params['pages'], problems), contactEmail, baseUrl, language }, warnings };
}

/** Lowercase letters, digits and hyphens, from a slug or a title. */
function slugify(text: string): string {
  return text.normalize('NFKD').replace(/[\u0300-\u036f]/g, '').toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 60);
}

function titleCase(slug: string): string {
  return slug.split('-').filter(Boolean).map((w) => w[0]!.toUpperCase() + w.slice(1)).join(' ');
}

/**
 * Pages as given: objects `{slug?, title?, content?}` or plain names (`"about"`). The page
 * named home or index — else the first — is the home page (`index.html`); slugs are made
 * unique with a numeric suffix.
 */
function readPages(value: unknown, problems: string[]): SitePage[] {
  if (!Array.isArray(value) || value.length === 0) {
    problems.push('with.pages must be a non-empty array of pages ({title, content} or a page name)');
    return [];
  }
  if (value.length > MAX_PAGES) problems.push(`with.pages has ${value.length} pages; the limit is ${MAX_PAGES}`);
  const pages: SitePage[] = [];
  for (const [i, raw] of value.slice(0, MAX_PAGES).entries()) {
    // A plain name in lowercase (`"about"`) is a slug; its title is made from it.
    const item = typeof raw === 'string' ? (raw === raw.toLowerCase() ? { slug: raw } : { title: raw }) : raw;
    if (!isObject(item)) {
      problems.push(`with.pages[${i}] must be an object {slug?, title, content} or a page name`);
      continue;
    }
    const title = text(item['title'], `pages[${i}].title`, problems, { max: 200 });
    const slugIn = text(item['slug'], `pages[${i}].slug`, problems, { max: 200 });
    const content = text(item['content'], `pages[${i}].content`, problems, { max: MAX_PAGE_CHARS });
    const slug = slugify(slugIn || title);
    if (slug === '') {
      problems.push(`with.pages[${i}] needs a title or a slug with letters or digits`);
      continue;
    }
    pages.push({ slug, title: title || titleCase(slug), content });
  }
  const home = pages.find((p) => p.slug === 'home' || p.slug === 'index') ?? pages[0];
  const used = new Set<string>(['index']);
  for (const page of pages) {
    if (page === home) {
      page.slug = 'index';
      continue;
    }
    let slug = page.slug === 'index' ? 'index-page' : page.slug;
    for (let n = 2; used.has(slug); n++) slug = `${page.slug}-${n}`;
    used.add(slug);
    page.slug = slug;
  }
  return pages;
}

/** The estimate, with its formula and where each assumption came from (input or default). */
function estimateSavings(value: unknown, pageCount: number, problems: string[]): Record<string, unknown> {
  if (value !== undefined && value !== null && !isObject(value)) problems.push('with.savings must be an object');
  const given = isObject(value) ? value : {};
  const assumptions = {} as Record<SavingsKey, { value: number; source: 'input' | 'default'; meaning: string }>;
  for (const key of Object.keys(SAVINGS_DEFAULTS) as SavingsKey[]) {
    const v = given[key];
    const ok = typeof v === 'number' && Number.isFinite(v) && v >= 0 && v <= 10_000;
    if (v !== undefined && v !== null && !ok) problems.push(`with.savings.${key} must be a number from 0 to 10000`);
    assumptions[key] = { value: ok ? v : SAVINGS_DEFAULTS[key], source: ok ? 'input' : 'default', meaning: SAVINGS_MEANING[key] };
  }
  const a = (k: SavingsKey): number => assumptions[k].value;
  const hoursPerBuild = a('manual_setup_hours') + pageCount * a('manual_hours_per_page');
  const hoursPerWeek = round(hoursPerBuild * a('builds_per_week'));
  const weekly = round(hoursPerWeek * a('hourly_rate_usd'));
  return {
    currency: 'USD',
    weekly_usd: weekly,
    annual_usd: round(weekly * 52),
    hours_saved_per_week: hoursPerWeek,
    pages: pageCount,
    formula: `(${a('manual_setup_hours')} h setup + ${pageCount} pages × ${a('manual_hours_per_page')} h) × ${a('builds_per_week')} builds/week × $${a('hourly_rate_usd')}/h = $${weekly.toFixed(2)}/week`,
    assumptions,
    note: 'An estimate from the stated assumptions (change them with with.savings), not a measurement.',
  };
}

/** `new URL` that answers undefined instead of throwing (URL.parse needs Node 22). */
function parseUrl(text: string): URL | undefined {
  try {
    return new URL(text);
  } catch {
    return undefined;
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}
