import type { Rule } from 'antd/es/form';

/** A form rule from one of `validation.ts`'s checks, with the message to show. */
export function ruleOf(valid: (value: string) => boolean, message: string): Rule {
  return {
    validator: (_: unknown, value: string | undefined) => (valid(value ?? '') ? Promise.resolve() : Promise.reject(new Error(message))),
  };
}
