// Three pages on plain URLs (the edge answers index.html for each): /, /gallery, /admin.
import { useCallback, useEffect, useState } from "react";

export type Page = "create" | "gallery" | "admin";

export const PATHS: Record<Page, string> = { create: "/", gallery: "/gallery", admin: "/admin" };

export function pageOf(pathname: string): Page {
  if (pathname.startsWith("/gallery")) return "gallery";
  if (pathname.startsWith("/admin")) return "admin";
  return "create";
}

export function usePage(): [Page, (page: Page) => void] {
  const [page, setPage] = useState<Page>(() => pageOf(window.location.pathname));
  useEffect(() => {
    const onPop = () => {
      setPage(pageOf(window.location.pathname));
    };
    window.addEventListener("popstate", onPop);
    return () => {
      window.removeEventListener("popstate", onPop);
    };
  }, []);
  const go = useCallback((next: Page) => {
    if (window.location.pathname !== PATHS[next]) window.history.pushState(null, "", PATHS[next]);
    setPage(next);
  }, []);
  return [page, go];
}
