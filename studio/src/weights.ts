// Weights for mixing 2-4 styles (params.weights): each style has a slider from 0 to 100, and
// what it contributes is its share of the sum, which the API normalises the same way.

export const MAX_STYLES = 4;
export const DEFAULT_WEIGHT = 50;

/** Each weight's share of the total in whole percent, summing to exactly 100 (largest
 * remainders), or all zeros when every weight is zero. */
export function shares(weights: readonly number[]): number[] {
  const total = weights.reduce((sum, w) => sum + w, 0);
  if (total <= 0) return weights.map(() => 0);
  const exact = weights.map((w) => (w / total) * 100);
  const floors = exact.map(Math.floor);
  let left = 100 - floors.reduce((sum, w) => sum + w, 0);
  const order = exact
    .map((value, index) => ({ index, remainder: value - Math.floor(value) }))
    .sort((a, b) => b.remainder - a.remainder || a.index - b.index);
  for (const { index } of order) {
    if (left <= 0) break;
    floors[index] = (floors[index] ?? 0) + 1;
    left -= 1;
  }
  return floors;
}

/** A slider's value as a weight: a whole number from 0 to 100. */
export function clampWeight(value: number): number {
  if (!Number.isFinite(value)) return 0;
  return Math.min(100, Math.max(0, Math.round(value)));
}

/** What is wrong with the weights before a job is sent, in the API's terms, or null. */
export function weightsProblem(weights: readonly number[]): string | null {
  if (weights.length > MAX_STYLES) {
    return `at most ${MAX_STYLES} styles can be mixed; remove ${weights.length - MAX_STYLES}`;
  }
  if (weights.length >= 2 && weights.every((w) => w <= 0)) {
    return "give at least one style a weight above 0";
  }
  return null;
}

/** params.weights for the API: none for one style (or equal weights), else fractions
 * summing to one, in the order of style_urls. */
export function apiWeights(weights: readonly number[]): number[] {
  if (weights.length < 2 || weights.every((w) => w === weights[0])) return [];
  const total = weights.reduce((sum, w) => sum + w, 0);
  return weights.map((w) => Math.round((w / total) * 10000) / 10000);
}
