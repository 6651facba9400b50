import { useEffect, useState } from "react";
import { GouacheApi } from "./api/client";
import type { WhoAmI } from "./api/types";
import { SignIn } from "./components/SignIn";
import { Admin } from "./pages/Admin";
import { Create } from "./pages/Create";
import { Gallery } from "./pages/Gallery";
import { PATHS, usePage, type Page } from "./router";
import { forgetApiKey, storeApiKey, storedApiKey } from "./session";

interface Session {
  api: GouacheApi;
  who: WhoAmI | null;
}

const TITLES: Record<Page, string> = { create: "Create", gallery: "Gallery", admin: "Admin" };

export function App() {
  const [session, setSession] = useState<Session | null>(() => {
    const key = storedApiKey();
    return key ? { api: new GouacheApi(key), who: null } : null;
  });
  const [notice, setNotice] = useState<string | undefined>(undefined);
  const [page, go] = usePage();

  // A key kept from earlier in this tab: check it again, and sign out if it no longer works.
  useEffect(() => {
    if (session === null || session.who !== null) return;
    let live = true;
    session.api.whoAmI().then(
      (who) => {
        if (live) setSession({ api: session.api, who });
      },
      () => {
        if (!live) return;
        forgetApiKey();
        setSession(null);
        setNotice("Your API key no longer works; sign in again.");
      },
    );
    return () => {
      live = false;
    };
  }, [session]);

  useEffect(() => {
    document.title = `${TITLES[page]} · gouache studio`;
  }, [page]);

  if (session === null) {
    return (
      <SignIn
        notice={notice}
        onSignedIn={(api, who) => {
          storeApiKey(api.apiKey);
          setNotice(undefined);
          setSession({ api, who });
        }}
      />
    );
  }

  const pages: Page[] = session.who?.role === "admin" ? ["create", "gallery", "admin"] : ["create", "gallery"];
  return (
    <>
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="top">
        <span className="brand">gouache studio</span>
        <nav aria-label="Main">
          <ul>
            {pages.map((item) => (
              <li key={item}>
                <a
                  href={PATHS[item]}
                  aria-current={page === item ? "page" : undefined}
                  onClick={(event) => {
                    event.preventDefault();
                    go(item);
                  }}
                >
                  {TITLES[item]}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div className="who">
          <span>{session.who ? `${session.who.email} (${session.who.role})` : "…"}</span>
          <button
            type="button"
            onClick={() => {
              forgetApiKey();
              setSession(null);
              setNotice("Signed out: the key is gone from this tab.");
              go("create");
            }}
          >
            Sign out
          </button>
        </div>
      </header>
      {page === "gallery" ? <Gallery api={session.api} /> : null}
      {page === "admin" ? <Admin api={session.api} /> : null}
      {page === "create" ? <Create api={session.api} /> : null}
    </>
  );
}
