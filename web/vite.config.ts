import { defineConfig } from 'vitest/config';
import react from '@vitejs/plugin-react';

// `emr serve` serves `dist/` at `/`; in development, Vite proxies the API to it.
export default defineConfig({
  plugins: [react()],
  server: {
    proxy: { '/v1': 'http://127.0.0.1:8080', '/fhir': 'http://127.0.0.1:8080', '/openapi.json': 'http://127.0.0.1:8080' },
  },
  build: {
    // Each route is its own chunk (React.lazy); the vendor libraries their own, so a
    // release of the app does not invalidate them.
    rollupOptions: {
      output: {
        manualChunks: {
          react: ['react', 'react-dom', 'react-router-dom'],
          query: ['@tanstack/react-query', 'openapi-fetch'],
        },
      },
    },
  },
  // Logic tests run in Node; component tests (*.test.tsx) in jsdom.
  test: { include: ['src/**/*.test.ts', 'src/**/*.test.tsx'], setupFiles: ['src/test/setup.ts'], testTimeout: 30_000 },
});
