// What the API accepts as an image (FR-001; storage's own rules decide, this only spares a
// doomed upload): PNG, JPEG or WebP up to 25 MB.

export const ACCEPTED_TYPES: readonly string[] = ["image/png", "image/jpeg", "image/webp"];
export const MAX_IMAGE_BYTES = 25 * 1024 * 1024;

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(0)} KB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

/** Why file cannot be uploaded, in words a person can act on, or null when it can. */
export function imageProblem(file: { name: string; type: string; size: number }): string | null {
  if (!ACCEPTED_TYPES.includes(file.type)) {
    const kind = file.type || "of an unknown type";
    return `${file.name} is ${kind}; choose a PNG, JPEG or WebP image`;
  }
  if (file.size === 0) return `${file.name} is empty`;
  if (file.size > MAX_IMAGE_BYTES) {
    return `${file.name} is ${formatBytes(file.size)}; images may be at most ${formatBytes(MAX_IMAGE_BYTES)}`;
  }
  return null;
}
