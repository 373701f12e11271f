// Component tests run in jsdom: what it lacks for Ant Design (matchMedia,
// ResizeObserver), and a fetch the tests answer for the server (the real server is
// exercised end to end in Chromium; here only what a form sends and shows matters).
import { cleanup } from '@testing-library/react';
import { afterEach } from 'vitest';

type Answer = (request: Request) => Response | Promise<Response>;

let answer: Answer = (request) => new Response(`no answer for ${request.method} ${request.url}`, { status: 599 });
/** Every request the client sent since the last reset. */
export const sent: Request[] = [];

/** How the "server" answers from now on. */
export function answerWith(next: Answer): void {
  answer = next;
}

/** A JSON (or problem+json) response. */
export function reply(status: number, body: unknown, type = status < 400 ? 'application/json' : 'application/problem+json'): Response {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': type } });
}

globalThis.fetch = (input: RequestInfo | URL, init?: RequestInit) => {
  const request = new Request(input, init);
  sent.push(request.clone());
  return Promise.resolve(answer(request));
};

if (typeof window !== 'undefined') {
  // jsdom has no matchMedia (Ant Design's responsive hooks ask it).
  Object.defineProperty(window, 'matchMedia', {
    configurable: true,
    value: (query: string) =>
      ({
        matches: false,
        media: query,
        onchange: null,
        addListener: () => undefined,
        removeListener: () => undefined,
        addEventListener: () => undefined,
        removeEventListener: () => undefined,
        dispatchEvent: () => false,
      }) as MediaQueryList,
  });
  globalThis.ResizeObserver ??= class {
    observe(): void {}
    unobserve(): void {}
    disconnect(): void {}
  };
  localStorage.setItem('emr.language', 'en');
}

afterEach(() => {
  cleanup();
  sent.length = 0;
  if (typeof window !== 'undefined') sessionStorage.clear();
});
