import { Alert } from 'antd';

import { ProblemError } from '../api/client';

/** An error as the server told it (problem+json: title, detail, code), never a blank page. */
export function ProblemAlert({ error, title }: { error: unknown; title?: string }) {
  if (!error) return null;
  const problem = error instanceof ProblemError ? error.problem : null;
  const message = title ?? problem?.title ?? 'Error';
  const detail = problem ? `${problem.detail} (${problem.code})` : error instanceof Error ? error.message : 'Unexpected error';
  return <Alert type="error" showIcon message={message} description={detail} />;
}
