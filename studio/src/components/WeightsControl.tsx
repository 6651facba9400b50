import { useId } from "react";
import { clampWeight, shares } from "../weights";

export interface WeightedStyle {
  key: string;
  name: string;
  weight: number;
}

interface Props {
  styles: readonly WeightedStyle[];
  onChange: (key: string, weight: number) => void;
  onRemove: (key: string) => void;
}

/** One slider per chosen style; each shows its share of the mix. */
export function WeightsControl({ styles, onChange, onRemove }: Props) {
  const percent = shares(styles.map((style) => style.weight));
  const groupId = useId();
  return (
    <fieldset className="weights" aria-describedby={`${groupId}-hint`}>
      <legend>Chosen styles{styles.length >= 2 ? " and their weights" : ""}</legend>
      <p id={`${groupId}-hint`} className="hint">
        {styles.length >= 2
          ? "Each style paints its share of the mix."
          : "Choose up to four styles; two or more are mixed by weight."}
      </p>
      <ul>
        {styles.map((style, index) => (
          <li key={style.key}>
            {styles.length >= 2 ? (
              <label htmlFor={`${groupId}-${index}`}>{style.name}</label>
            ) : (
              <span>{style.name}</span>
            )}
            {styles.length >= 2 ? (
              <>
                <input
                  id={`${groupId}-${index}`}
                  type="range"
                  min={0}
                  max={100}
                  step={1}
                  value={style.weight}
                  aria-valuetext={`${percent[index] ?? 0} percent of the mix`}
                  onChange={(event) => {
                    onChange(style.key, clampWeight(Number(event.target.value)));
                  }}
                />
                <output htmlFor={`${groupId}-${index}`}>{percent[index] ?? 0}%</output>
              </>
            ) : null}
            <button
              type="button"
              className="link"
              aria-label={`Remove ${style.name}`}
              onClick={() => {
                onRemove(style.key);
              }}
            >
              Remove
            </button>
          </li>
        ))}
      </ul>
    </fieldset>
  );
}
