// @vitest-environment jsdom
import { screen, waitFor } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { describe, expect, it, vi } from 'vitest';

import { renderScreen } from '../test/render';
import { ReasonDialog } from './ReasonDialog';

function dialog(act: (reason: string) => Promise<string>, onDone: (result: string) => void) {
  return (
    <ReasonDialog
      name="test"
      title="Break the glass"
      warning="The patient will see that you read their record"
      reasonLabel="Emergency reason"
      reasonRule="State the reason"
      confirm="Read in an emergency"
      act={act}
      onDone={onDone}
    />
  );
}

describe('an action that must state why', () => {
  it('warns, refuses a blank reason without acting, then acts with the reason given', async () => {
    const user = userEvent.setup();
    const act = vi.fn((reason: string) => Promise.resolve(`read: ${reason}`));
    const onDone = vi.fn();
    renderScreen(dialog(act, onDone));
    await user.click(screen.getByRole('button', { name: 'Break the glass' }));
    expect(await screen.findByText('The patient will see that you read their record')).toBeTruthy();
    await user.type(screen.getByLabelText('Emergency reason'), '   ');
    await user.click(screen.getByRole('button', { name: 'Read in an emergency' }));
    expect(await screen.findByText('State the reason')).toBeTruthy();
    expect(act).not.toHaveBeenCalled();
    await user.clear(screen.getByLabelText('Emergency reason'));
    await user.type(screen.getByLabelText('Emergency reason'), 'unresponsive on arrival');
    await user.click(screen.getByRole('button', { name: 'Read in an emergency' }));
    await waitFor(() => expect(onDone).toHaveBeenCalledWith('read: unresponsive on arrival'));
    expect(act).toHaveBeenCalledTimes(1);
  });
});
