// Builds GraphiQL and the operator console into the Python package (app/web/static), so that `pip install`
// ships them and a machine without Node (or without internet) still serves both. Hashed file names are a
// function of the content alone: `npm ci && npm run build` on any machine reproduces the committed files,
// which .ci/run checks.
import { resolve } from 'node:path';
import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

export default defineConfig({
  root: resolve(import.meta.dirname),
  base: '/',
  plugins: [react()],
  build: {
    outDir: resolve(import.meta.dirname, '../app/web/static'),
    emptyOutDir: true,
    assetsDir: 'assets',
    sourcemap: false,
    chunkSizeWarningLimit: 2000,
    rollupOptions: {
      // GraphiQL's react-compiler-runtime starts with a "use no memo" directive, meaningful only to the React
      // compiler (not used here): bundling drops it harmlessly, so the warning would only be noise in CI.
      onwarn(warning, warn) {
        if (warning.code !== 'MODULE_LEVEL_DIRECTIVE') warn(warning);
      },
      // React and the GraphQL client are shared by both pages: one chunk named for what it holds.
      output: {
        manualChunks: (id) => (/node_modules\/(react|react-dom|scheduler|graphql-ws)\//.test(id) ? 'react' : undefined),
      },
      input: {
        graphiql: resolve(import.meta.dirname, 'graphiql.html'),
        console: resolve(import.meta.dirname, 'console.html'),
      },
    },
  },
});
