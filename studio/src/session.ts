// The API key lives in sessionStorage: it is gone when the tab closes, and signing out
// removes it at once.
const KEY = "gouache.studio.apiKey";

export function storedApiKey(): string | null {
  try {
    return sessionStorage.getItem(KEY);
  } catch {
    return null;
  }
}

export function storeApiKey(apiKey: string): void {
  sessionStorage.setItem(KEY, apiKey);
}

export function forgetApiKey(): void {
  sessionStorage.removeItem(KEY);
}
