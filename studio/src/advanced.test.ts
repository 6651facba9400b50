import { describe, expect, it } from "vitest";
import { ADVANCED_DEFAULTS, advancedParams } from "./advanced";

describe("advancedParams", () => {
  it("leaves the model's defaults when nothing is set (PNG has no quality)", () => {
    expect(advancedParams(ADVANCED_DEFAULTS)).toEqual({
      params: { output_format: "png" },
      problem: null,
    });
  });

  it("sends what is set, quality only for lossy formats", () => {
    expect(
      advancedParams({ tvWeight: "0.5", format: "jpeg", quality: 70, maxSide: "1024", seed: "7" }),
    ).toEqual({
      params: { output_format: "jpeg", quality: 70, tv_weight: 0.5, max_side: 1024, seed: 7 },
      problem: null,
    });
  });

  it("names what is wrong before the API has to", () => {
    expect(advancedParams({ ...ADVANCED_DEFAULTS, tvWeight: "-1" }).problem).toBe(
      'smoothness must be a number, 0 or more, not "-1"',
    );
    expect(advancedParams({ ...ADVANCED_DEFAULTS, maxSide: "9000" }).problem).toBe(
      "the longest side must be a whole number of pixels from 16 to 8192",
    );
    expect(advancedParams({ ...ADVANCED_DEFAULTS, maxSide: "12.5" }).problem).not.toBeNull();
    expect(advancedParams({ ...ADVANCED_DEFAULTS, seed: "4294967296" }).problem).toBe(
      "the seed must be a whole number from 0 to 4294967295",
    );
  });
});
