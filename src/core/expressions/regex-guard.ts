/**
 * Compile-time rejection of regular expression literals that risk catastrophic backtracking: a
 * backtracking run is one native call that no time check can interrupt. Regexes can only be
 * literals in JSONata, so the analysis sees all of them; the check is a heuristic.
 */

/**
 * Why a regular expression literal risks catastrophic backtracking, or undefined. Heuristic:
 * a group repeated by `*`, `+` or `{n,m}` (m > 1) may not contain a quantifier itself (`(a+)+`,
 * `(a?){20}`), nor alternatives that are not distinct plain literals (`(a|a)*`, `(a|ab)+`,
 * `(\s|,)+` — write `[\s,]+`). Polynomial patterns such as `.*a.*a.*a` are not detected.
 */
export function regexRisk(source: string, ignoreCase: boolean): string | undefined {
  interface Group {
    bodyStart: number;
    quantified: boolean;
  }
  const stack: Group[] = [];
  let closed: { quantified: boolean; alternation: 'none' | 'safe' | 'unsafe' } | undefined;
  let i = 0;
  while (i < source.length) {
    const c = source[i];
    if (c === '\\') {
      i += 2;
      closed = undefined;
    } else if (c === '[') {
      i++;
      if (source[i] === '^') i++;
      if (source[i] === ']') i++;
      while (i < source.length && source[i] !== ']') i += source[i] === '\\' ? 2 : 1;
      i++;
      closed = undefined;
    } else if (c === '(') {
      let bodyStart = i + 1;
      if (source[i + 1] === '?') {
        const next = source[i + 2];
        if (next === ':' || next === '=' || next === '!') bodyStart = i + 3;
        else if (next === '<' && (source[i + 3] === '=' || source[i + 3] === '!')) bodyStart = i + 4;
        else if (next === '<') bodyStart = Math.max(source.indexOf('>', i) + 1, i + 3);
      }
      stack.push({ bodyStart, quantified: false });
      i = bodyStart;
      closed = undefined;
    } else if (c === ')') {
      const group = stack.pop();
      if (group !== undefined) {
        closed = { quantified: group.quantified, alternation: alternationRisk(source.slice(group.bodyStart, i), ignoreCase) };
        const parent = stack[stack.length - 1];
        if (parent !== undefined && group.quantified) parent.quantified = true;
      } else {
        closed = undefined;
      }
      i++;
    } else if (c === '*' || c === '+' || c === '?' || c === '{') {
      let repeats = c !== '?';
      if (c === '{') {
        const m = /^\{(\d+)(,(\d*))?\}/.exec(source.slice(i, i + 40));
        if (m === null) {
          i++;
          closed = undefined;
          continue;
        }
        const max = m[2] === undefined ? Number(m[1]) : m[3] === '' ? Infinity : Number(m[3]);
        repeats = max > 1;
        i += m[0].length;
      } else {
        i++;
      }
      if (repeats && closed !== undefined) {
        if (closed.quantified) return 'a repeated group contains another quantifier';
        if (closed.alternation === 'unsafe') return 'a repeated group has alternatives that can match the same text';
      }
      const top = stack[stack.length - 1];
      if (top !== undefined) top.quantified = true;
      if (source[i] === '?') i++; // lazy modifier
      closed = undefined;
    } else {
      i++;
      closed = undefined;
    }
  }
  return undefined;
}

function alternationRisk(body: string, ignoreCase: boolean): 'none' | 'safe' | 'unsafe' {
  if (!body.includes('|')) return 'none';
  if (/[\\^$.?*+()[\]{}]/.test(body)) return 'unsafe';
  const alternatives = body.split('|').map((a) => (ignoreCase ? a.toLowerCase() : a));
  if (new Set(alternatives).size !== alternatives.length) return 'unsafe';
  for (const a of alternatives) {
    if (a === '') return 'unsafe';
    for (const other of alternatives) if (other !== a && other.startsWith(a)) return 'unsafe';
  }
  return 'safe';
}
