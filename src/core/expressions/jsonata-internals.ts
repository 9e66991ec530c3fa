/**
 * Minimal typings of the JSONata runtime internals we touch (execution frames, focus, built-in
 * function definitions, error objects), the symbols JSONata calls its evaluation hooks under,
 * and the probe that captures built-in definitions. Everything here depends on JSONata 2.x
 * internals; the probe fails loudly at load time if they change.
 */

import jsonata from 'jsonata';

/**
 * JSONata calls (and awaits) the functions bound under these around every AST node. JSONata
 * variables are strings, so an expression can never rebind a symbol key.
 */
export const ENTRY_HOOK = Symbol.for('jsonata.__evaluate_entry');
export const EXIT_HOOK = Symbol.for('jsonata.__evaluate_exit');

export interface JFrame {
  base: JBase;
  lookup(name: string | symbol): unknown;
}

interface JBase extends JFrame {
  depth: number;
  options?: unknown;
}

export interface JFocus {
  environment: JFrame;
  input: unknown;
  createSequence(...items: unknown[]): unknown[];
}

export type JImpl = (this: JFocus, ...args: unknown[]) => unknown;

export interface JFunctionDef {
  _jsonata_function: true;
  implementation: JImpl;
}

/** A JSONata-style error (plain object with a code). */
export interface JError {
  code: string;
  position?: number;
  token?: unknown;
  value?: unknown;
  message?: string;
  index?: number;
}

export function isFunctionLike(v: unknown): boolean {
  if (typeof v === 'function') return true;
  if (typeof v !== 'object' || v === null) return false;
  const o = v as { _jsonata_function?: unknown; _jsonata_lambda?: unknown };
  return o._jsonata_function === true || o._jsonata_lambda === true;
}

/**
 * Capture JSONata's own built-in definitions: the entry hook of a probe expression runs
 * synchronously inside evaluate(), where the static frame is reachable through lookup().
 */
export function captureBuiltins(names: readonly string[], setup?: (e: jsonata.Expression) => void): Map<string, JFunctionDef> {
  const found = new Map<string, JFunctionDef>();
  const probe = jsonata('0');
  setup?.(probe);
  probe.assign(ENTRY_HOOK as unknown as string, (_e: unknown, _i: unknown, frame: JFrame) => {
    for (const name of names) found.set(name, frame.lookup(name) as JFunctionDef);
  });
  probe.evaluate({}).catch(() => undefined);
  for (const name of names) {
    const def = found.get(name);
    if (def === undefined || def._jsonata_function !== true) {
      throw new Error(`weft expressions: cannot capture JSONata built-in $${name} (unsupported jsonata version?)`);
    }
  }
  return found;
}
