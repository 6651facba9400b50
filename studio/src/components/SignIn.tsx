import { useId, useState } from "react";
import { GouacheApi } from "../api/client";
import { messageOf } from "../api/errors";
import type { WhoAmI } from "../api/types";

interface Props {
  onSignedIn: (api: GouacheApi, who: WhoAmI) => void;
  notice?: string | undefined;
}

/** Exchanges an API key for a token (which proves the key) before keeping it. */
export function SignIn({ onSignedIn, notice }: Props) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const inputId = useId();
  const hintId = useId();

  async function submit() {
    const apiKey = key.trim();
    if (!apiKey) {
      setError("enter an API key");
      return;
    }
    setBusy(true);
    setError(null);
    try {
      const api = new GouacheApi(apiKey);
      const who = await api.whoAmI();
      onSignedIn(api, who);
    } catch (caught) {
      setError(messageOf(caught));
    } finally {
      setBusy(false);
    }
  }

  return (
    <main id="main" className="signin">
      <h1>Sign in to gouache studio</h1>
      {notice ? <p className="notice">{notice}</p> : null}
      <form
        onSubmit={(event) => {
          event.preventDefault();
          void submit();
        }}
        noValidate
      >
        <label htmlFor={inputId}>API key</label>
        <input
          id={inputId}
          name="api-key"
          type="password"
          autoComplete="off"
          spellCheck={false}
          value={key}
          onChange={(event) => {
            setKey(event.target.value);
          }}
          aria-describedby={hintId}
          aria-invalid={error !== null}
        />
        <p id={hintId} className="hint">
          <code>gouache up</code> prints the admin's key (also in{" "}
          <code>.gouache/credentials.json</code>). The key stays in this tab only and is
          forgotten when you sign out or close it.
        </p>
        {error ? (
          <p role="alert" className="error">
            {error}
          </p>
        ) : null}
        <button type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
