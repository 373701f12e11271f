// An action that must state why (a break-glass read, a revocation): a button, then
// a dialog with an optional warning, the reason field and the confirming button.
import { useState } from 'react';
import { Alert, Button, Form, Input, Modal, Space } from 'antd';
import { useMutation } from '@tanstack/react-query';

import { validShortText } from '../validation';
import { ProblemAlert } from './ProblemAlert';
import { ruleOf } from './rules';

interface Props<T> {
  /** The form's name: ids of its fields are prefixed with it, so two dialogs never share one. */
  name: string;
  title: string;
  warning?: string;
  reasonLabel: string;
  reasonRule: string;
  confirm: string;
  small?: boolean;
  /** A destructive or exceptional action (the default); `false` for an ordinary one. */
  danger?: boolean;
  act: (reason: string) => Promise<T>;
  onDone: (result: T) => void;
}

export function ReasonDialog<T>({ name, title, warning, reasonLabel, reasonRule, confirm, small, danger = true, act, onDone }: Props<T>) {
  const [open, setOpen] = useState(false);
  const action = useMutation({
    mutationFn: act,
    onSuccess: (result) => {
      setOpen(false);
      onDone(result);
    },
  });
  return (
    <>
      <Button danger={danger} size={small ? 'small' : 'middle'} onClick={() => setOpen(true)}>
        {title}
      </Button>
      <Modal open={open} title={title} onCancel={() => setOpen(false)} footer={null} destroyOnHidden>
        <Space direction="vertical" style={{ width: '100%' }}>
          {warning && <Alert type="warning" showIcon message={warning} />}
          <Form<{ reason: string }> name={name} layout="vertical" onFinish={({ reason }) => action.mutate(reason)}>
            <Form.Item label={reasonLabel} name="reason" rules={[ruleOf(validShortText, reasonRule)]}>
              <Input.TextArea rows={2} />
            </Form.Item>
            <ProblemAlert error={action.error} />
            <Button type="primary" danger={danger} htmlType="submit" loading={action.isPending} style={{ marginTop: 8 }}>
              {confirm}
            </Button>
          </Form>
        </Space>
      </Modal>
    </>
  );
}
