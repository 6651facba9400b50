import type { GouacheApi } from "../api/client";
import type { Style } from "../api/types";
import { AuthImage } from "./AuthImage";
import { MAX_STYLES } from "../weights";

interface Props {
  api: GouacheApi;
  styles: readonly Style[] | null;
  error: string | null;
  chosen: ReadonlySet<string>;
  onToggle: (style: Style) => void;
}

/** The curated styles the API lists (GET /v1/styles?curated=true), with their provenance. */
export function StylePicker({ api, styles, error, chosen, onToggle }: Props) {
  if (error) {
    return (
      <p role="alert" className="error">
        Curated styles: {error}
      </p>
    );
  }
  if (styles === null) return <p className="hint">Loading the curated styles…</p>;
  if (styles.length === 0) return <p className="hint">No curated styles yet: upload one below.</p>;
  const full = chosen.size >= MAX_STYLES;
  return (
    <ul className="style-grid" aria-label="Curated styles">
      {styles.map((style) => {
        const selected = chosen.has(style.style_id);
        return (
          <li key={style.style_id}>
            <button
              type="button"
              className={`style-card${selected ? " selected" : ""}`}
              aria-pressed={selected}
              disabled={!selected && full}
              onClick={() => {
                onToggle(style);
              }}
            >
              <AuthImage api={api} src={style.file_url} alt="" width={160} height={120} />
              <span className="style-title">{style.title || "Untitled"}</span>
              <span className="style-meta">
                {style.artist || "Unknown artist"}
                {style.year ? `, ${style.year}` : ""}
              </span>
              <span className="style-licence">{style.license || "licence not stated"}</span>
            </button>
          </li>
        );
      })}
    </ul>
  );
}
