import { useId } from "react";
import { OUTPUT_FORMATS, type AdvancedInput, type OutputFormat } from "../advanced";

interface Props {
  value: AdvancedInput;
  problem: string | null;
  onChange: (value: AdvancedInput) => void;
}

/** Smoothness, output format and quality, longest side and seed, folded away by default. */
export function AdvancedControls({ value, problem, onChange }: Props) {
  const id = useId();
  const set = (patch: Partial<AdvancedInput>) => {
    onChange({ ...value, ...patch });
  };
  return (
    <details className="advanced">
      <summary>Advanced</summary>
      <div className="field">
        <label htmlFor={`${id}-tv`}>Smoothness (total variation weight)</label>
        <input
          id={`${id}-tv`}
          type="text"
          inputMode="decimal"
          placeholder="model default"
          value={value.tvWeight}
          aria-describedby={`${id}-tv-hint`}
          onChange={(event) => {
            set({ tvWeight: event.target.value });
          }}
        />
        <p id={`${id}-tv-hint`} className="hint">
          Higher values smooth out speckle, e.g. 1e-5 for gatys, 0 for none.
        </p>
      </div>
      <div className="field">
        <label htmlFor={`${id}-format`}>Output format</label>
        <select
          id={`${id}-format`}
          value={value.format}
          onChange={(event) => {
            set({ format: event.target.value as OutputFormat });
          }}
        >
          {OUTPUT_FORMATS.map((format) => (
            <option key={format} value={format}>
              {format.toUpperCase()}
            </option>
          ))}
        </select>
      </div>
      {value.format !== "png" ? (
        <div className="field">
          <label htmlFor={`${id}-quality`}>
            Quality: <output htmlFor={`${id}-quality`}>{value.quality}</output>
          </label>
          <input
            id={`${id}-quality`}
            type="range"
            min={1}
            max={100}
            value={value.quality}
            onChange={(event) => {
              set({ quality: Number(event.target.value) });
            }}
          />
        </div>
      ) : null}
      <div className="field">
        <label htmlFor={`${id}-side`}>Longest side (pixels)</label>
        <input
          id={`${id}-side`}
          type="text"
          inputMode="numeric"
          placeholder="the photo's own"
          value={value.maxSide}
          aria-describedby={`${id}-side-hint`}
          onChange={(event) => {
            set({ maxSide: event.target.value });
          }}
        />
        <p id={`${id}-side-hint`} className="hint">
          16 to 8192: shrinks the photo first, e.g. 1024 for a faster result.
        </p>
      </div>
      <div className="field">
        <label htmlFor={`${id}-seed`}>Seed</label>
        <input
          id={`${id}-seed`}
          type="text"
          inputMode="numeric"
          placeholder="random"
          value={value.seed}
          aria-describedby={`${id}-seed-hint`}
          onChange={(event) => {
            set({ seed: event.target.value });
          }}
        />
        <p id={`${id}-seed-hint`} className="hint">
          The same seed and settings give the same result.
        </p>
      </div>
      {problem ? (
        <p role="alert" className="error">
          {problem}
        </p>
      ) : null}
    </details>
  );
}
