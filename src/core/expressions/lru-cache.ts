/**
 * Least-recently-used helpers for the bounded caches of compiled expressions and parsed
 * templates (a Map iterates in insertion order, so re-inserting a hit makes it the newest).
 */

export function cacheGet<V>(map: Map<string, V>, key: string): V | undefined {
  const hit = map.get(key);
  if (hit !== undefined) {
    map.delete(key);
    map.set(key, hit);
  }
  return hit;
}

export function cacheSet<V>(map: Map<string, V>, key: string, value: V, max: number): void {
  if (map.size >= max) {
    const oldest = map.keys().next();
    if (oldest.done !== true) map.delete(oldest.value);
  }
  map.set(key, value);
}
