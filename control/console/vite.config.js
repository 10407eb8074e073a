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
    // GrapesJS is ~400 KB gzipped, loaded by the builder page only; the console's own bundle
    // stays under 100 KB gzipped.
    chunkSizeWarningLimit: 1600,
    // The console; the sandboxed document that shows an email; the drag-and-drop builder
    // (each of the last two under its own, looser policy: control/console.py).
    rollupOptions: { input: { main: "index.html", preview: "preview.html", builder: "builder.html" } },
  },
});
