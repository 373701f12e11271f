// Renders a screen or component as the application does: language, data cache,
// session and router around it.
import type { ReactElement } from 'react';
import { QueryClient, QueryClientProvider } from '@tanstack/react-query';
import { render, type RenderResult } from '@testing-library/react';
import { MemoryRouter, Route, Routes } from 'react-router-dom';

import { I18nProvider } from '../i18n';
import { SessionProvider } from '../session';

export function renderScreen(element: ReactElement, { path = '/', at = '/' }: { path?: string; at?: string } = {}): RenderResult {
  const queries = new QueryClient({ defaultOptions: { queries: { retry: false }, mutations: { retry: false } } });
  return render(
    <QueryClientProvider client={queries}>
      <I18nProvider>
        <SessionProvider>
          <MemoryRouter initialEntries={[at]}>
            <Routes>
              <Route path={path} element={element} />
            </Routes>
          </MemoryRouter>
        </SessionProvider>
      </I18nProvider>
    </QueryClientProvider>,
  );
}
