import { useEffect, useState, type ImgHTMLAttributes } from "react";
import type { GouacheApi } from "../api/client";

/** A URL an <img> can load for an image the API serves: a signed URL (expires, sig) as it is;
 * an unsigned file_url (a curated style's, a job's content) needs the bearer token, which an
 * <img> cannot send, so it is fetched and shown from a blob. url is null while it loads or
 * when it failed. */
export function useImageUrl(api: GouacheApi, src: string): { url: string | null; failed: boolean } {
  const signed = /[?&]sig=/.test(src);
  const [fetched, setFetched] = useState<{ src: string; url: string | null } | null>(null);

  useEffect(() => {
    if (signed) return;
    let live = true;
    let made: string | null = null;
    api.fetchImage(src).then(
      (blob) => {
        if (!live) return;
        made = URL.createObjectURL(blob);
        setFetched({ src, url: made });
      },
      () => {
        if (live) setFetched({ src, url: null });
      },
    );
    return () => {
      live = false;
      if (made !== null) URL.revokeObjectURL(made);
    };
  }, [api, src, signed]);

  if (signed) return { url: src, failed: false };
  if (fetched?.src !== src) return { url: null, failed: false };
  return { url: fetched.url, failed: fetched.url === null };
}

interface Props extends Omit<ImgHTMLAttributes<HTMLImageElement>, "src"> {
  api: GouacheApi;
  src: string;
}

export function AuthImage({ api, src, alt, ...rest }: Props) {
  const { url, failed } = useImageUrl(api, src);
  if (failed) {
    return (
      <span className="image-missing" role="img" aria-label={alt ?? "image not available"}>
        image not available
      </span>
    );
  }
  if (url === null) return <span className="image-loading" aria-hidden="true" />;
  return <img src={url} alt={alt} {...rest} />;
}
