/**
 * A safe Markdown subset → HTML, for page copy written by people or models. Safety comes from
 * the order of operations: every piece of source text is HTML-escaped as it is emitted, and
 * markup is only ever produced by this code — raw HTML in the source comes out as text. Links
 * keep only http(s), mailto, fragment and relative targets (never `javascript:` or `data:`).
 *
 * Supported: ATX headings (the largest renders as <h2>: the page title is the <h1>), paragraphs, `-`,
 * `*`, `+` and `1.` lists, `>` quotes, fenced code, `---` rules; inline `code`, **strong**,
 * *emphasis*, [links](https://…). Everything else stays literal text. Every search is bounded
 * (span searches stop at the block, link text and targets have a maximum length), so hostile
 * input costs linear-ish time.
 */

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

/** Escapes text for HTML element content and quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]!);
}

const MAX_LINK_TEXT = 300;
const MAX_LINK_URL = 2000;

/** A link target that cannot run script: http(s), mailto, `#fragment` or a relative path. */
export function safeHref(url: string): string | undefined {
  const u = url.trim();
  // Whitespace, quotes, angle brackets, backslashes and control characters (which browsers
  // strip from URLs: `java\tscript:`) never appear in a target worth keeping.
  if (u === '' || /[\s<>"'`\\]/.test(u) || [...u].some((ch) => ch.charCodeAt(0) < 0x20 || ch.charCodeAt(0) === 0x7f)) return undefined;
  if (/^(https?:\/\/|mailto:)/i.test(u)) return u;
  // No scheme at all: a colon before any '/', '?' or '#' would be one.
  const beforePath = u.split(/[/?#]/, 1)[0] ?? '';
  if (u.startsWith('//') || beforePath.includes(':')) return undefined;
  return u;
}

/** Inline markup of one block's text. */
export function renderInline(text: string, depth = 0): string {
  let out = '';
  let plain = '';
  // Once a closing marker is missing after position p, it is missing after any later one.
  const missing = new Set<string>();
  const flush = (): void => {
    out += escapeHtml(plain);
    plain = '';
  };
  const find = (marker: string, from: number): number => {
    if (missing.has(marker)) return -1;
    const at = text.indexOf(marker, from);
    if (at === -1) missing.add(marker);
    return at;
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === '`') {
      const end = find('`', i + 1);
      if (end > i + 1) {
        flush();
        out += `<code>${escapeHtml(text.slice(i + 1, end))}</code>`;
        i = end + 1;
        continue;
      }
    } else if (c === '*' && text[i + 1] === '*' && depth < 4) {
      const end = find('**', i + 2);
      if (end > i + 2) {
        flush();
        out += `<strong>${renderInline(text.slice(i + 2, end), depth + 1)}</strong>`;
        i = end + 2;
        continue;
      }
    } else if ((c === '*' || (c === '_' && !/[A-Za-z0-9]/.test(text[i - 1] ?? ''))) && depth < 4 && text[i + 1] !== ' ') {
      const end = find(c, i + 1);
      if (end > i + 1 && (c === '*' || !/[A-Za-z0-9]/.test(text[end + 1] ?? ''))) {
        flush();
        out += `<em>${renderInline(text.slice(i + 1, end), depth + 1)}</em>`;
        i = end + 1;
        continue;
      }
    } else if (c === '[' && depth < 4) {
      const link = readLink(text, i);
      if (link) {
        flush();
        const href = safeHref(link.url);
        const label = renderInline(link.text, depth + 1);
        out += href === undefined ? label : `<a href="${escapeHtml(href)}"${/^https?:/i.test(href) ? ' rel="noopener noreferrer"' : ''}>${label}</a>`;
        i = link.end;
        continue;
      }
    }
    plain += c;
    i++;
  }
  flush();
  return out;
}

/** `[text](url)` starting at `start`, searched within bounded windows. */
function readLink(text: string, start: number): { text: string; url: string; end: number } | undefined {
  let close = -1;
  for (let j = start + 1; j < text.length && j <= start + MAX_LINK_TEXT; j++) {
    const ch = text[j];
    if (ch === '[' || ch === '\n') return undefined;
    if (ch === ']') {
      close = j;
      break;
    }
  }
  if (close === -1 || text[close + 1] !== '(') return undefined;
  for (let j = close + 2; j < text.length && j <= close + 2 + MAX_LINK_URL; j++) {
    const ch = text[j];
    if (ch === ' ' || ch === '\n' || ch === '(') return undefined;
    if (ch === ')') return { text: text.slice(start + 1, close), url: text.slice(close + 2, j), end: j + 1 };
  }
  return undefined;
}

type Block =
  | { kind: 'heading'; level: number; text: string }
  | { kind: 'paragraph'; lines: string[] }
  | { kind: 'list'; ordered: boolean; items: string[] }
  | { kind: 'quote'; lines: string[] }
  | { kind: 'code'; lines: string[] }
  | { kind: 'rule' };

const HEADING = /^(#{1,6})[ \t]+(.*?)[ \t#]*$/;
const BULLET = /^[ \t]{0,3}[-*+][ \t]+(.*)$/;
const NUMBERED = /^[ \t]{0,3}\d{1,9}[.)][ \t]+(.*)$/;
const RULE = /^[ \t]{0,3}([-*_])([ \t]*\1){2,}[ \t]*$/;

function parseBlocks(source: string): Block[] {
  const lines = source.replace(/\r\n?/g, '\n').split('\n');
  const blocks: Block[] = [];
  let open: Block | undefined;
  const close = (): void => {
    if (open) blocks.push(open);
    open = undefined;
  };
  for (let n = 0; n < lines.length; n++) {
    const line = lines[n]!;
    if (open?.kind === 'code') {
      if (/^[ \t]{0,3}(```|~~~)/.test(line)) close();
      else open.lines.push(line);
      continue;
    }
    if (/^[ \t]{0,3}(```|~~~)/.test(line)) {
      close();
      open = { kind: 'code', lines: [] };
      continue;
    }
    if (line.trim() === '') {
      close();
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      close();
      blocks.push({ kind: 'heading', level: heading[1]!.length, text: heading[2]! });
      continue;
    }
    if (RULE.test(line)) {
      close();
      blocks.push({ kind: 'rule' });
      continue;
    }
    const bullet = BULLET.exec(line);
    const numbered = bullet ? null : NUMBERED.exec(line);
    if (bullet || numbered) {
      const ordered = numbered !== null;
      if (open?.kind !== 'list' || open.ordered !== ordered) {
        close();
        open = { kind: 'list', ordered, items: [] };
      }
      open.items.push((bullet ?? numbered)![1]!);
      continue;
    }
    const quote = /^[ \t]{0,3}>[ \t]?(.*)$/.exec(line);
    if (quote) {
      if (open?.kind !== 'quote') {
        close();
        open = { kind: 'quote', lines: [] };
      }
      open.lines.push(quote[1]!);
      continue;
    }
    if (open?.kind === 'list') {
      // A continuation line of the last item.
      open.items[open.items.length - 1] += ` ${line.trim()}`;
      continue;
    }
    if (open?.kind !== 'paragraph') {
      close();
      open = { kind: 'paragraph', lines: [] };
    }
    open.lines.push(line.trim());
  }
  close();
  return blocks;
}

/**
 * Markdown (the subset above) → HTML. Headings are shifted so that the largest one used is an
 * <h2> (the page title is the <h1>): `#` and `##` sections alike nest without skipping a level.
 */
export function renderMarkdown(source: string): string {
  const blocks = parseBlocks(source);
  const top = blocks.reduce((min, b) => (b.kind === 'heading' ? Math.min(min, b.level) : min), 6);
  return blocks.map((b) => {
    switch (b.kind) {
      case 'heading': {
        const level = Math.min(6, b.level - top + 2);
        return `<h${level}>${renderInline(b.text)}</h${level}>`;
      }
      case 'paragraph':
        return `<p>${renderInline(b.lines.join('\n'))}</p>`;
      case 'list': {
        const tag = b.ordered ? 'ol' : 'ul';
        return `<${tag}>${b.items.map((item) => `<li>${renderInline(item)}</li>`).join('')}</${tag}>`;
      }
      case 'quote':
        return `<blockquote><p>${renderInline(b.lines.join('\n'))}</p></blockquote>`;
      case 'code':
        return `<pre><code>${escapeHtml(b.lines.join('\n'))}</code></pre>`;
      case 'rule':
        return '<hr>';
    }
  }).join('\n');
}
