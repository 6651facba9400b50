import { describe, expect, it } from "vitest";
import { apiWeights, clampWeight, shares, weightsProblem } from "./weights";

describe("weights", () => {
  it("shows shares in whole percent that always add up to 100", () => {
    expect(shares([50, 50, 50])).toEqual([34, 33, 33]);
    expect(shares([1, 1, 1, 1])).toEqual([25, 25, 25, 25]);
    expect(shares([70, 30])).toEqual([70, 30]);
    expect(shares([0, 0])).toEqual([0, 0]);
  });

  it("sends no weights for one style or equal weights, else fractions in order", () => {
    expect(apiWeights([80])).toEqual([]);
    expect(apiWeights([40, 40])).toEqual([]);
    expect(apiWeights([75, 25])).toEqual([0.75, 0.25]);
    expect(apiWeights([0, 100, 100])).toEqual([0, 0.5, 0.5]);
  });

  it("refuses an all-zero mix and more than four styles, as the API does", () => {
    expect(weightsProblem([0, 0])).toBe("give at least one style a weight above 0");
    expect(weightsProblem([10, 10, 10, 10, 10])).toBe("at most 4 styles can be mixed; remove 1");
    expect(weightsProblem([0])).toBeNull();
    expect(weightsProblem([0, 5])).toBeNull();
  });

  it("keeps slider values whole and within 0-100", () => {
    expect(clampWeight(101)).toBe(100);
    expect(clampWeight(-3)).toBe(0);
    expect(clampWeight(33.6)).toBe(34);
    expect(clampWeight(Number.NaN)).toBe(0);
  });
});
