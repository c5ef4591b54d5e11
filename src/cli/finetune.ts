import type { FinetuneResponseDto } from '../finetunes/dto.js';
import { checkAdapterFolder, type LocalFile } from './adapter-folder.js';
import type { Answer, ApiClient } from './client.js';
import type { CliIo, Command } from './command.js';
import { CliError } from './errors.js';
import { formatFields, formatTable, formatTime, printJson } from './format.js';
import { connect, parseCommand, positionals } from './options.js';
import { Progress } from './progress.js';

const JSON_OPTION = { json: { type: 'boolean' } } as const;


function warn(io: CliIo, answer: Answer<unknown>): void {
  for (const message of answer.messages) io.stderr.write(`warning: ${message.message} (code ${message.code})\n`);
}

function printFinetune(io: CliIo, finetune: FinetuneResponseDto): void {
  io.stdout.write(
    formatFields([
      ['id', finetune.id],
      ['name', finetune.name],
      ['model', finetune.model],
      ['description', finetune.description ?? ''],
      ['status', finetune.status],
      ['public', String(finetune.public)],
      ['created_at', finetune.created_at],
      ['modified_at', finetune.modified_at],
    ]),
  );
}

async function uploadFile(client: ApiClient, io: CliIo, finetuneId: string, file: LocalFile, showProgress: boolean): Promise<void> {
  const progress = showProgress ? new Progress(io.stderr, file.name, file.size) : undefined;
  try {
    warn(io, await client.upload(finetuneId, file, (sent) => progress?.update(sent)));
  } catch (error) {
    progress?.abort();
    throw error;
  }
  progress?.done();
}

export const finetuneCreate: Command = {
  usage: 'finetune create <model> <name> <folder> [--description text] [--public] [--json]',
  summary: 'create a finetune from a PEFT LoRA adapter folder and print its id',
  options: [
    '<folder> holds adapter_config.json and adapter_model.safetensors; both are checked before anything is sent.',
    '--description text   shown in listings',
    '--public             visible to (and usable by) every account',
    '--json               print the finetune object instead of its id',
    'If an upload is rejected, the new finetune is deleted again, so the same command can simply be re-run.',
  ],
  async run(args, io) {
    const { values, positionals: rest } = parseCommand(args, {
      ...JSON_OPTION,
      description: { type: 'string' },
      public: { type: 'boolean' },
    });
    const [model, name, folder] = positionals(rest, ['<model>', '<name>', '<folder>'], this.usage);
    const client = connect(values, io.env);
    const files = await checkAdapterFolder(folder);
    const body = { model, name, description: values.description, public: values.public };
    const { result: created } = await client.call<FinetuneResponseDto>('POST', '/finetunes', body);
    try {
      await uploadFile(client, io, created.id, files.config, false);
      await uploadFile(client, io, created.id, files.weights, true);
    } catch (error) {
      if (error instanceof CliError) error.hint = await rollBack(client, created);
      throw error;
    }
    if (values.json) printJson(io, (await client.call<FinetuneResponseDto>('GET', `/finetunes/${created.id}`)).result);
    else io.stdout.write(`${created.id}\n`);
  },
};

/**
 * All or nothing: a finetune whose files were refused is deleted, so the name is free for the corrected adapter
 * (there is no separate upload command to complete a pending one).
 */
async function rollBack(client: ApiClient, finetune: FinetuneResponseDto): Promise<string> {
  try {
    await client.call('DELETE', `/finetunes/${finetune.id}`);
    return `finetune "${finetune.name}" was not kept; fix the adapter folder and run the command again`;
  } catch {
    return `finetune "${finetune.name}" (${finetune.id}) is left pending; remove it with: lora finetune delete ${finetune.id}`;
  }
}

export const finetuneList: Command = {
  usage: 'finetune list [--json]',
  summary: "list the account's finetunes",
  options: ['--json   print the finetune objects as a JSON array'],
  async run(args, io) {
    const { values, positionals: rest } = parseCommand(args, JSON_OPTION);
    positionals(rest, [], this.usage);
    const { result } = await connect(values, io.env).call<FinetuneResponseDto[]>('GET', '/finetunes');
    if (values.json) return void printJson(io, result);
    const rows = result.map((f) => [f.id, f.name, f.model, f.status, f.public ? 'yes' : 'no', formatTime(f.created_at)]);
    io.stdout.write(formatTable(['id', 'name', 'model', 'status', 'public', 'created'], rows));
  },
};

export const finetuneGet: Command = {
  usage: 'finetune get <id_or_name> [--json]',
  summary: 'show a finetune (own, or public)',
  options: ['--json   print the finetune object'],
  async run(args, io) {
    const { values, positionals: rest } = parseCommand(args, JSON_OPTION);
    const [idOrName] = positionals(rest, ['<id_or_name>'], this.usage);
    const { result } = await connect(values, io.env).call<FinetuneResponseDto>('GET', `/finetunes/${encodeURIComponent(idOrName)}`);
    if (values.json) printJson(io, result);
    else printFinetune(io, result);
  },
};

export const finetuneDelete: Command = {
  usage: 'finetune delete <id_or_name> [--json]',
  summary: 'delete a finetune and its stored files',
  options: ['--json   print the deleted finetune object'],
  async run(args, io) {
    const { values, positionals: rest } = parseCommand(args, JSON_OPTION);
    const [idOrName] = positionals(rest, ['<id_or_name>'], this.usage);
    const { result } = await connect(values, io.env).call<FinetuneResponseDto>('DELETE', `/finetunes/${encodeURIComponent(idOrName)}`);
    if (values.json) printJson(io, result);
    else io.stdout.write(`deleted ${result.name} (${result.id})\n`);
  },
};
