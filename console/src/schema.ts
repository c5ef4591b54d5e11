import type { JsonSchema } from './api';

/** The sampling fields the Playground offers, in display order, when the model's schema has them. */
export const SAMPLING_FIELDS = [
  'max_tokens',
  'temperature',
  'top_p',
  'top_k',
  'seed',
  'repetition_penalty',
  'frequency_penalty',
  'presence_penalty',
] as const;

export interface FieldSpec {
  name: string;
  type: 'integer' | 'number';
  minimum?: number;
  maximum?: number;
  default?: number;
}

/** The schema's branch (of a text-generation card's `oneOf`) for `prompt` or for `messages`. */
export function branch(input: JsonSchema, key: 'prompt' | 'messages'): JsonSchema | undefined {
  const branches = (input.oneOf as JsonSchema[] | undefined) ?? [input];
  return branches.find((b) => ((b.required as string[] | undefined) ?? []).includes(key));
}

export function properties(schema: JsonSchema | undefined): Record<string, JsonSchema> {
  return (schema?.properties as Record<string, JsonSchema> | undefined) ?? {};
}

export function samplingFields(schema: JsonSchema | undefined): FieldSpec[] {
  const props = properties(schema);
  return SAMPLING_FIELDS.filter((name) => props[name]).map((name) => {
    const p = props[name]!;
    return {
      name,
      type: p.type === 'integer' ? 'integer' : 'number',
      minimum: typeof p.minimum === 'number' ? p.minimum : undefined,
      maximum: typeof p.maximum === 'number' ? p.maximum : undefined,
      default: typeof p.default === 'number' ? p.default : undefined,
    };
  });
}

/** One line per field: `name: type, constraints (default)`, for reading a schema without its JSON. */
export function describeFields(schema: JsonSchema | undefined): { name: string; type: string; notes: string; required: boolean }[] {
  const required = new Set((schema?.required as string[] | undefined) ?? []);
  return Object.entries(properties(schema)).map(([name, p]) => {
    const notes: string[] = [];
    if (typeof p.minimum === 'number' && typeof p.maximum === 'number') notes.push(`${p.minimum} – ${p.maximum}`);
    else if (typeof p.minimum === 'number') notes.push(`≥ ${p.minimum}`);
    else if (typeof p.maximum === 'number') notes.push(`≤ ${p.maximum}`);
    if (typeof p.minLength === 'number') notes.push(`at least ${p.minLength} characters`);
    if (typeof p.maxLength === 'number') notes.push(`at most ${p.maxLength} characters`);
    if (p.default !== undefined) notes.push(`default ${JSON.stringify(p.default)}`);
    let type = String(p.type ?? 'any');
    if (p.type === 'array') {
      const items = p.items as JsonSchema | undefined;
      const itemProps = Object.keys(properties(items));
      type = itemProps.length ? `array of {${itemProps.join(', ')}}` : 'array';
      const content = properties(items).content;
      if (content && typeof content.maxLength === 'number') notes.push(`content at most ${content.maxLength} characters`);
    }
    return { name, type, notes: notes.join(', '), required: required.has(name) };
  });
}
