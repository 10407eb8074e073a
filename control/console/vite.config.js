// Builds the console into dist/ for the daemon to serve at /ui (control/console.py).
// No inline script or style ends up in the page: the server's CSP forbids them.
import { defineConfig } from "vite";

export default defineConfig({
  base: "/ui/",
  oxc: { jsx: { runtime: "automatic", importSource: "preact" } },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    assetsInlineLimit: 0,
    modulePreload: { polyfill: false },
    chunkSizeWarningLimit: 400,
    // The console, and the sandboxed document that shows an email (its own, looser policy).
    rollupOptions: { input: { main: "index.html", preview: "preview.html" } },
  },
});
