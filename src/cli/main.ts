/**
 * `lora`, the command-line client: a plain HTTP client of the service's REST API (it never starts the service).
 * Exit codes: 0 success, 1 failure (an API error, an unreachable service, a bad adapter folder), 2 usage error.
 */
import { AdapterFormatError } from '../formats/format-error.js';
import type { CliIo, Command } from './command.js';
import { CliError, UsageError } from './errors.js';
import { finetuneCreate, finetuneDelete, finetuneGet, finetuneList } from './finetune.js';
import { modelsList } from './models.js';
import { DEFAULT_URL } from './options.js';
import { run } from './run.js';
import { tokensList, tokensRevoke } from './tokens.js';

const COMMANDS: Record<string, Command> = {
  'finetune create': finetuneCreate,
  'finetune list': finetuneList,
  'finetune get': finetuneGet,
  'finetune delete': finetuneDelete,
  'models list': modelsList,
  run,
  'tokens list': tokensList,
  'tokens revoke': tokensRevoke,
};

const CONNECTION_HELP = [
  'Connection (flags, or else the environment):',
  `  --url url        LORA_URL (default ${DEFAULT_URL})`,
  '  --account id     LORA_ACCOUNT_ID, or CLOUDFLARE_ACCOUNT_ID',
  '  --token token    LORA_API_TOKEN, or CLOUDFLARE_API_TOKEN (tokens commands: --admin-token, LORA_ADMIN_TOKEN)',
];

function overview(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((name) => name.length));
  return [
    'Usage: lora <command> [options]',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([name, command]) => `  ${name.padEnd(width)}  ${command.summary}`),
    '',
    ...CONNECTION_HELP,
    '',
    'Run "lora <command> --help" for its arguments and options.',
    'Exit codes: 0 success, 1 failure, 2 usage error.',
  ].join('\n');
}

function commandHelp(command: Command): string {
  return [`Usage: lora ${command.usage}`, '', command.summary, '', ...command.options.map((line) => `  ${line}`), '', ...CONNECTION_HELP].join('\n');
}

const wantsHelp = (args: string[]) => {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).some((arg) => arg === '--help' || arg === '-h');
};

async function dispatch(argv: string[], io: CliIo): Promise<void> {
  const [first, second] = argv;
  if (first === undefined) throw new UsageError('no command given (see lora --help)');
  if (first === '--help' || first === '-h' || first === 'help') return void io.stdout.write(`${overview()}\n`);
  const name = COMMANDS[first] ? first : `${first} ${second}`;
  const command = COMMANDS[name];
  if (!command) {
    const group = Object.keys(COMMANDS).filter((key) => key.startsWith(`${first} `));
    if (group.length === 0) throw new UsageError(`unknown command "${first}" (see lora --help)`);
    if (second === '--help' || second === '-h') return void io.stdout.write(`${group.map((key) => `lora ${COMMANDS[key].usage}`).join('\n')}\n`);
    const known = `one of: ${group.join(', ')}`;
    throw new UsageError(second === undefined ? `"${first}" needs a subcommand (${known})` : `unknown command "${first} ${second}" (${known})`);
  }
  const args = argv.slice(name.split(' ').length);
  if (wantsHelp(args)) return void io.stdout.write(`${commandHelp(command)}\n`);
  await command.run(args, io);
}

/** Runs one command line (without the "node lora" prefix) and returns the process's exit code. */
export async function main(argv: string[], io: CliIo): Promise<number> {
  try {
    await dispatch(argv, io);
    return 0;
  } catch (error) {
    if (error instanceof CliError) {
      io.stderr.write(`error: ${error.message}\n`);
      if (error.hint) io.stderr.write(`hint: ${error.hint}\n`);
      return error.exitCode;
    }
    if (error instanceof AdapterFormatError) {
      io.stderr.write(`error: ${error.message}\n`);
      return 1;
    }
    // A bug rather than a reportable failure: keep the stack.
    io.stderr.write(`error: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    return 1;
  }
}
