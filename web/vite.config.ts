import { defineConfig } from 'vite';
import react from '@vitejs/plugin-react';

// Built files go to web/dist, which build.rs embeds into the bedrud binary. Vite names every
// file under assets/ by its content hash: bedrud serves those with a one-year cache.
export default defineConfig({
  plugins: [react()],
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    sourcemap: false,
    chunkSizeWarningLimit: 2000,
  },
  server: {
    // `npm run dev` against a bedrud on :8090 (scripts/run.sh).
    proxy: {
      '/api': 'http://127.0.0.1:8090',
      '/livekit': { target: 'ws://127.0.0.1:8090', ws: true },
    },
  },
});
