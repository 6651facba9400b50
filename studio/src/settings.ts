// The last settings used (model, strength, colour, advanced) are the defaults next time, in
// localStorage: they are preferences, not secrets (the API key stays in sessionStorage).
import { ADVANCED_DEFAULTS, OUTPUT_FORMATS, type AdvancedInput } from "./advanced";

const KEY = "gouache.studio.settings";

export interface Settings {
  model: string;
  alpha: number;
  luminanceOnly: boolean;
  histogramMatch: boolean;
  advanced: AdvancedInput;
}

export const DEFAULT_SETTINGS: Settings = {
  model: "default",
  alpha: 1,
  luminanceOnly: false,
  histogramMatch: false,
  advanced: ADVANCED_DEFAULTS,
};

/** Settings from stored JSON, each field checked; anything unusable falls back to its default. */
export function parseSettings(text: string | null): Settings {
  let stored: Record<string, unknown> = {};
  try {
    const value: unknown = text === null ? {} : JSON.parse(text);
    if (typeof value === "object" && value !== null) stored = value as Record<string, unknown>;
  } catch {
    return DEFAULT_SETTINGS;
  }
  const advanced =
    typeof stored.advanced === "object" && stored.advanced !== null
      ? (stored.advanced as Record<string, unknown>)
      : {};
  const text_ = (value: unknown, fallback: string) => (typeof value === "string" ? value : fallback);
  const format = OUTPUT_FORMATS.find((name) => name === advanced.format) ?? ADVANCED_DEFAULTS.format;
  const quality =
    typeof advanced.quality === "number" && advanced.quality >= 1 && advanced.quality <= 100
      ? Math.round(advanced.quality)
      : ADVANCED_DEFAULTS.quality;
  return {
    model: text_(stored.model, DEFAULT_SETTINGS.model) || DEFAULT_SETTINGS.model,
    alpha:
      typeof stored.alpha === "number" && stored.alpha >= 0 && stored.alpha <= 1
        ? stored.alpha
        : DEFAULT_SETTINGS.alpha,
    luminanceOnly: stored.luminanceOnly === true,
    histogramMatch: stored.histogramMatch === true,
    advanced: {
      tvWeight: text_(advanced.tvWeight, ""),
      format,
      quality,
      maxSide: text_(advanced.maxSide, ""),
      seed: text_(advanced.seed, ""),
    },
  };
}

export function loadSettings(): Settings {
  try {
    return parseSettings(localStorage.getItem(KEY));
  } catch {
    return DEFAULT_SETTINGS;
  }
}

export function saveSettings(settings: Settings): void {
  try {
    localStorage.setItem(KEY, JSON.stringify(settings));
  } catch {
    // Storage full or refused (private mode): the settings just are not remembered.
  }
}
