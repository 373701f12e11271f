import type { CSSProperties } from 'react';

/** A "good" tag readable at WCAG AA (Ant Design's green preset is 3.3:1 on its background). */
export const GOOD: CSSProperties = { color: '#135200', background: '#f6ffed', borderColor: '#b7eb8f' };

/** Severity tags readable at WCAG AA (the gold and volcano presets are not). */
export const SEVERITY: Record<string, CSSProperties> = {
  critical: { color: '#a8071a', background: '#fff1f0', borderColor: '#ffa39e' },
  high: { color: '#871400', background: '#fff2e8', borderColor: '#ffbb96' },
  medium: { color: '#613400', background: '#fffbe6', borderColor: '#ffe58f' },
  low: { color: 'rgba(0, 0, 0, 0.88)', background: '#fafafa', borderColor: '#d9d9d9' },
};
