import { useEffect, useState, type ImgHTMLAttributes } from "react";
import type { GouacheApi } from "../api/client";

interface Props extends Omit<ImgHTMLAttributes<HTMLImageElement>, "src"> {
  api: GouacheApi;
  src: string;
}

/** An image the API serves: a signed URL (expires, sig) loads as it is; an unsigned file_url
 * (a curated style's) needs the bearer token, which an <img> cannot send, so it is fetched
 * and shown from a blob. */
export function AuthImage({ api, src, alt, ...rest }: Props) {
  const signed = /[?&]sig=/.test(src);
  const [blobUrl, setBlobUrl] = useState<string | null>(null);
  const [failed, setFailed] = useState(false);

  useEffect(() => {
    if (signed) return;
    let live = true;
    let made: string | null = null;
    api.fetchImage(src).then(
      (blob) => {
        if (!live) return;
        made = URL.createObjectURL(blob);
        setBlobUrl(made);
      },
      () => {
        if (live) setFailed(true);
      },
    );
    return () => {
      live = false;
      if (made !== null) URL.revokeObjectURL(made);
    };
  }, [api, src, signed]);

  if (signed) return <img src={src} alt={alt} {...rest} />;
  if (failed) {
    return (
      <span className="image-missing" role="img" aria-label={alt ?? "image not available"}>
        image not available
      </span>
    );
  }
  if (blobUrl === null) return <span className="image-loading" aria-hidden="true" />;
  return <img src={blobUrl} alt={alt} {...rest} />;
}
