import type { CSSProperties } from 'react';

/** A "good" tag readable at WCAG AA (Ant Design's green preset is 3.3:1 on its background). */
export const GOOD: CSSProperties = { color: '#135200', background: '#f6ffed', borderColor: '#b7eb8f' };
