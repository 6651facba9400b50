import { useEffect, useId, useState } from "react";

interface Props {
  before: string;
  after: string;
  afterLabel: string;
}

/** The content and the result in one frame, split where the slider says: drag it, or use the
 * arrow keys on it; C jumps between all-before and all-after. */
export function Compare({ before, after, afterLabel }: Props) {
  const [split, setSplit] = useState(50);
  const id = useId();

  useEffect(() => {
    const onKey = (event: KeyboardEvent) => {
      const target = event.target as HTMLElement | null;
      const typing = target?.tagName === "INPUT" && (target as HTMLInputElement).type !== "range";
      if (typing || event.ctrlKey || event.metaKey || event.altKey) return;
      if (event.key === "c" || event.key === "C") setSplit((value) => (value > 50 ? 0 : 100));
    };
    window.addEventListener("keydown", onKey);
    return () => {
      window.removeEventListener("keydown", onKey);
    };
  }, []);

  return (
    <figure className="compare">
      <div className="compare-frame">
        <img src={before} alt="Before: your content image" />
        <div className="compare-after" style={{ clipPath: `inset(0 0 0 ${split}%)` }}>
          <img src={after} alt={`After: ${afterLabel}`} />
        </div>
        <div className="compare-line" style={{ left: `${split}%` }} aria-hidden="true" />
      </div>
      <label htmlFor={id} className="visually-hidden">
        Before and after split
      </label>
      <input
        id={id}
        className="compare-slider"
        type="range"
        min={0}
        max={100}
        value={split}
        aria-valuetext={`${100 - split} percent of the result shown`}
        onChange={(event) => {
          setSplit(Number(event.target.value));
        }}
      />
      <figcaption>
        Before ◀ ▶ after ({afterLabel}). Press <kbd>C</kbd> to compare.
      </figcaption>
    </figure>
  );
}
