import type { ModelCardResponseDto as ModelCard } from '../catalog/dto.js';
import type { Command } from './command.js';
import { formatTable, printJson } from './format.js';
import { connect, parseCommand, positionals } from './options.js';

/** Pages are fetched until one comes back short, so catalogs of any size are listed whole. */
const PER_PAGE = 100;

const property = (card: ModelCard, id: string) => card.properties.find((p) => p.property_id === id)?.value;

export const modelsList: Command = {
  usage: 'models list [--lora] [--json]',
  summary: 'list the models of the catalog',
  options: ['--lora   only models that accept LoRA adapters', '--json   print the model cards as a JSON array'],
  async run(args, io) {
    const { values, positionals: rest } = parseCommand(args, { lora: { type: 'boolean' }, json: { type: 'boolean' } });
    positionals(rest, [], this.usage);
    const client = connect(values, io.env);
    const cards: ModelCard[] = [];
    for (let page = 1; ; page++) {
      const query = new URLSearchParams({ page: String(page), per_page: String(PER_PAGE) });
      if (values.lora) query.set('lora', 'true');
      const { result } = await client.call<ModelCard[]>('GET', `/models/search?${query}`);
      cards.push(...result);
      if (result.length < PER_PAGE) break;
    }
    if (values.json) return void printJson(io, cards);
    const rows = cards.map((card) => [card.name, card.task.name, property(card, 'lora') === 'true' ? 'yes' : 'no']);
    io.stdout.write(formatTable(['name', 'task', 'lora'], rows));
  },
};
