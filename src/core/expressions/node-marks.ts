/**
 * AST nodes the compile-time analysis marks for the runtime hooks to treat specially. One WeakMap
 * from node to a bit set, keyed by node identity and written only while compiling: JSONata
 * source can neither reach nor alter it. (One map rather than one WeakSet per mark: the hooks run
 * on every node, and this makes their lookup one per hook call instead of up to five.)
 */

/** AST nodes in call position (their value gets tagged by JSONata if it is an object). */
export const PROCEDURE = 1;
/** AST nodes that are the pattern of a transform (their values get mutated). */
export const PATTERN = 2;
/** Object constructors `{…}`: JSONata pushes `undefined` into an empty input array. */
export const OBJECT_CONSTRUCTOR = 4;
/**
 * Items of array constructors and values of group-by / object constructors: JSONata evaluates
 * them concurrently (Promise.all). We run them one after the other (see enterBranch) so that
 * JSONata's per-evaluation `depth` counter measures real nesting rather than nesting × fan-out.
 * Leaves (literals, plain variables) cannot nest, so they are only counted out of the depth.
 */
export const PARALLEL_ROOT = 8;
export const PARALLEL_LEAF = 16;
/**
 * Literals, regexes and plain variables (no predicate, stages or group). Between their entry and
 * exit hooks JSONata does O(1) work (returns the literal, looks the name up), so their exit may
 * skip reading the clock when their own entry, which did read it, was the evaluation's last hook
 * call (see Budget.freshLeaf).
 */
export const TRIVIAL_LEAF = 32;

const marks = new WeakMap<object, number>();

/** Add `bit` to the marks of `node`. */
export function mark(node: object, bit: number): void {
  marks.set(node, (marks.get(node) ?? 0) | bit);
}

/** The marks of `node` (0 for a node never marked, including nodes JSONata creates at run time). */
export function marksOf(node: object): number {
  return marks.get(node) ?? 0;
}
