/// <reference types="vitest/config" />
// The studio's build: static files in the gouache.edge package (libs/gouache/edge/studio_dist),
// which the edge serves at /; a wheel built after it carries them.
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `npm run dev` proxies the API to a running `gouache up` (GOUACHE_URL, default :8080).
const api = process.env.GOUACHE_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  build: {
    outDir: "../libs/gouache/edge/studio_dist",
    emptyOutDir: true,
    sourcemap: false,
    // One small app: keep it to a handful of files, each one edge route.
    assetsInlineLimit: 0,
  },
  server: { proxy: { "/v1": { target: api, changeOrigin: false } } },
  test: {
    environment: "jsdom",
    include: ["src/**/*.test.{ts,tsx}"],
    restoreMocks: true,
  },
});
