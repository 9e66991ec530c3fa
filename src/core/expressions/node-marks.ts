/**
 * AST nodes the compile-time analysis marks for the runtime hooks to treat specially. WeakSets
 * keyed by node identity, written only while compiling: JSONata source can neither reach nor
 * alter them.
 */

/** AST nodes in call position (their value gets tagged by JSONata if it is an object). */
export const procedureNodes = new WeakSet<object>();
/** AST nodes that are the pattern of a transform (their values get mutated). */
export const patternNodes = new WeakSet<object>();
/** Object constructors `{…}`: JSONata pushes `undefined` into an empty input array. */
export const objectConstructors = new WeakSet<object>();
/**
 * Items of array constructors and values of group-by / object constructors: JSONata evaluates
 * them concurrently (Promise.all). We run them one after the other (see enterBranch) so that
 * JSONata's per-evaluation `depth` counter measures real nesting rather than nesting × fan-out.
 * Leaves (literals, plain variables) cannot nest, so they are only counted out of the depth.
 */
export const parallelRoots = new WeakSet<object>();
export const parallelLeaves = new WeakSet<object>();
