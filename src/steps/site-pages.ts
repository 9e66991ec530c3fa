/**
 * The files of a static site from a checked SiteSpec (see website.ts, which validates what
 * users and models supply before anything reaches here): one HTML page per page, a shared
 * stylesheet, sitemap.xml and robots.txt. All text goes through escapeHtml or renderMarkdown;
 * colours and font stacks are interpolated into CSS only after website.ts has matched them
 * against strict patterns.
 */
import { escapeHtml, renderMarkdown } from './site-markdown.ts';

export interface SitePage {
  /** `index` for the home page; else a lowercase slug (`about`, `our-services`). */
  slug: string;
  title: string;
  /** Markdown (the safe subset of site-markdown.ts) or plain text. */
  content: string;
}

export interface SiteSpec {
  siteName: string;
  description: string;
  colors: { primary: string; secondary: string; accent: string; background: string; text: string };
  fonts: { heading: string; body: string };
  pages: SitePage[];
  contactEmail: string;
  /** Absolute, without a trailing slash (`https://example.com`). */
  baseUrl: string;
  /** `lang` of every page. */
  language: string;
}

export interface SiteFile {
  path: string;
  contentType: string;
  text: string;
}

export const STYLESHEET_PATH = 'assets/site.css';

/** The file a page is written to: `index.html` for the home page, else `<slug>.html`. */
export function pagePath(page: SitePage): string {
  return page.slug === 'index' ? 'index.html' : `${page.slug}.html`;
}

/** The page's public URL: the site root for the home page. */
export function pageUrl(spec: SiteSpec, page: SitePage): string {
  return page.slug === 'index' ? `${spec.baseUrl}/` : `${spec.baseUrl}/${pagePath(page)}`;
}

/** First sentence-ish of the page's text, for its meta description (the site's when empty). */
function describePage(spec: SiteSpec, page: SitePage): string {
  const text = page.content
    .replace(/```[\s\S]*?```/g, ' ')
    .replace(/\[([^\]\n]{0,300})\]\([^)\s]{0,2000}\)/g, '$1') // a link reads as its text
    .replace(/[#>*_`[\]()]+|(^|\s)-(?=\s)/g, ' ')
    .replace(/\s+/g, ' ')
    .replace(/\s+([.,;:!?])/g, '$1')
    .trim();
  if (page.slug === 'index' || text === '') return spec.description;
  return text.length > 155 ? `${text.slice(0, 152).trimEnd()}…` : text;
}

function renderPage(spec: SiteSpec, page: SitePage): string {
  const title = page.slug === 'index' ? spec.siteName : `${page.title} | ${spec.siteName}`;
  const description = describePage(spec, page);
  const url = pageUrl(spec, page);
  const nav = spec.pages.map((p) => {
    const current = p.slug === page.slug ? ' aria-current="page"' : '';
    return `<li><a href="${escapeHtml(pagePath(p))}"${current}>${escapeHtml(p.title)}</a></li>`;
  }).join('');
  const email = escapeHtml(spec.contactEmail);
  return `<!doctype html>
<html lang="${escapeHtml(spec.language)}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<meta name="description" content="${escapeHtml(description)}">
<link rel="canonical" href="${escapeHtml(url)}">
<meta property="og:type" content="website">
<meta property="og:site_name" content="${escapeHtml(spec.siteName)}">
<meta property="og:title" content="${escapeHtml(title)}">
<meta property="og:description" content="${escapeHtml(description)}">
<meta property="og:url" content="${escapeHtml(url)}">
<meta name="twitter:card" content="summary">
<link rel="stylesheet" href="${STYLESHEET_PATH}">
</head>
<body>
<a class="skip" href="#main">Skip to content</a>
<header class="site-header">
<a class="brand" href="index.html">${escapeHtml(spec.siteName)}</a>
<nav aria-label="Main"><ul>${nav}</ul></nav>
</header>
<main id="main">
<h1>${escapeHtml(page.title)}</h1>
${renderMarkdown(page.content)}
</main>
<section class="contact" id="contact" aria-labelledby="contact-title">
<h2 id="contact-title">Contact</h2>
<p>Write to us at <a href="mailto:${email}">${email}</a>.</p>
</section>
<footer class="site-footer">
<p>&copy; ${escapeHtml(spec.siteName)}</p>
</footer>
</body>
</html>
`;
}

function renderStylesheet(spec: SiteSpec): string {
  const c = spec.colors;
  return `:root {
  --primary: ${c.primary};
  --secondary: ${c.secondary};
  --accent: ${c.accent};
  --background: ${c.background};
  --text: ${c.text};
  --font-heading: ${spec.fonts.heading};
  --font-body: ${spec.fonts.body};
}
*, *::before, *::after { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; }
body { margin: 0; font-family: var(--font-body); line-height: 1.6; color: var(--text); background: var(--background); }
h1, h2, h3, h4, h5, h6 { font-family: var(--font-heading); line-height: 1.2; color: var(--primary); }
a { color: var(--primary); }
a:hover, a:focus { color: var(--accent); }
.skip { position: absolute; left: -999px; }
.skip:focus { left: 1rem; top: 1rem; background: var(--background); padding: .5rem; }
.site-header { display: flex; flex-wrap: wrap; align-items: center; justify-content: space-between; gap: 1rem;
  padding: 1rem 1.5rem; background: var(--primary); }
.site-header a { color: var(--secondary); text-decoration: none; }
.site-header a[aria-current="page"] { border-bottom: 2px solid var(--accent); }
.brand { font-family: var(--font-heading); font-size: 1.25rem; font-weight: 700; }
nav ul { display: flex; flex-wrap: wrap; gap: 1rem; list-style: none; margin: 0; padding: 0; }
main, .contact { max-width: 48rem; margin: 0 auto; padding: 1.5rem; }
.contact { border-top: 1px solid var(--secondary); }
pre { overflow-x: auto; padding: 1rem; background: var(--secondary); }
blockquote { margin: 0; padding-left: 1rem; border-left: 4px solid var(--accent); }
.site-footer { padding: 1.5rem; text-align: center; background: var(--secondary); }
@media (min-width: 48rem) { main { padding: 2.5rem 1.5rem; } }
`;
}

function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[ch]!);
}

function renderSitemap(spec: SiteSpec): string {
  const urls = spec.pages.map((p) => `  <url><loc>${escapeXml(pageUrl(spec, p))}</loc></url>`).join('\n');
  return `<?xml version="1.0" encoding="UTF-8"?>
<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">
${urls}
</urlset>
`;
}

/** Every file of the site, pages first (in the order given), then CSS, sitemap and robots. */
export function renderSite(spec: SiteSpec): SiteFile[] {
  return [
    ...spec.pages.map((p) => ({ path: pagePath(p), contentType: 'text/html; charset=utf-8', text: renderPage(spec, p) })),
    { path: STYLESHEET_PATH, contentType: 'text/css; charset=utf-8', text: renderStylesheet(spec) },
    { path: 'sitemap.xml', contentType: 'application/xml', text: renderSitemap(spec) },
    { path: 'robots.txt', contentType: 'text/plain; charset=utf-8', text: `User-agent: *\nAllow: /\n\nSitemap: ${spec.baseUrl}/sitemap.xml\n` },
  ];
}
