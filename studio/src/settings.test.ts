import { describe, expect, it } from "vitest";
import { DEFAULT_SETTINGS, parseSettings } from "./settings";

describe("parseSettings", () => {
  it("reads back what was saved", () => {
    const saved = {
      model: "gatys-fast",
      alpha: 0.6,
      luminanceOnly: true,
      histogramMatch: false,
      advanced: { tvWeight: "0.1", format: "webp", quality: 75, maxSide: "512", seed: "3" },
    };

    expect(parseSettings(JSON.stringify(saved))).toEqual(saved);
  });

  it("falls back field by field on anything unusable", () => {
    const settings = parseSettings(
      JSON.stringify({ model: 7, alpha: 3, luminanceOnly: "yes", advanced: { format: "gif", quality: 0 } }),
    );

    expect(settings).toEqual(DEFAULT_SETTINGS);
    expect(parseSettings("{not json")).toEqual(DEFAULT_SETTINGS);
    expect(parseSettings(null)).toEqual(DEFAULT_SETTINGS);
  });
});
