// The advanced controls (FR-004, FR-010): smoothness (tv_weight), output format and quality,
// the longest side and a seed. Empty fields leave the model's defaults; bad values are named
// in the API's own terms before a job is sent.
import type { StylizeParams } from "./api/types";

export const OUTPUT_FORMATS = ["png", "jpeg", "webp"] as const;
export type OutputFormat = (typeof OUTPUT_FORMATS)[number];
const MAX_SEED = 2 ** 32 - 1;
const MIN_SIDE = 16;
const MAX_SIDE = 8192;

export interface AdvancedInput {
  tvWeight: string;
  format: OutputFormat;
  quality: number;
  maxSide: string;
  seed: string;
}

export const ADVANCED_DEFAULTS: AdvancedInput = {
  tvWeight: "",
  format: "png",
  quality: 90,
  maxSide: "",
  seed: "",
};

export type Advanced = { params: StylizeParams; problem: null } | { params: null; problem: string };

function wholeNumber(text: string): number | null {
  return /^\d+$/.test(text.trim()) ? Number(text.trim()) : null;
}

/** The params the inputs ask for, or what is wrong with them. */
export function advancedParams(input: AdvancedInput): Advanced {
  const params: StylizeParams = { output_format: input.format };
  if (input.format !== "png") params.quality = input.quality;
  const tv = input.tvWeight.trim();
  if (tv !== "") {
    const value = Number(tv);
    if (!Number.isFinite(value) || value < 0) {
      return { params: null, problem: `smoothness must be a number, 0 or more, not "${tv}"` };
    }
    params.tv_weight = value;
  }
  if (input.maxSide.trim() !== "") {
    const side = wholeNumber(input.maxSide);
    if (side === null || side < MIN_SIDE || side > MAX_SIDE) {
      return {
        params: null,
        problem: `the longest side must be a whole number of pixels from ${MIN_SIDE} to ${MAX_SIDE}`,
      };
    }
    params.max_side = side;
  }
  if (input.seed.trim() !== "") {
    const seed = wholeNumber(input.seed);
    if (seed === null || seed > MAX_SEED) {
      return { params: null, problem: `the seed must be a whole number from 0 to ${MAX_SEED}` };
    }
    params.seed = seed;
  }
  return { params, problem: null };
}
