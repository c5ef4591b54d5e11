import type { ApiTokenSummaryResponseDto } from '../accounts/dto.js';
import type { Command } from './command.js';
import { formatTable, formatTime, printJson } from './format.js';
import { ADMIN_OPTION, connectAdmin, parseCommand, positionals } from './options.js';

// The account's API tokens, on the admin surface: these commands take the admin token, not an API token.

const OPTIONS = { ...ADMIN_OPTION, json: { type: 'boolean' } } as const;
const ADMIN_TOKEN_HELP = '--admin-token t  the admin token (default LORA_ADMIN_TOKEN)';


export const tokensList: Command = {
  usage: 'tokens list [--admin-token t] [--json]',
  summary: "list the account's API tokens (admin token): id, name, last four characters, created",
  options: [ADMIN_TOKEN_HELP, '--json           print the tokens as a JSON array'],
  async run(args, io) {
    const { values, positionals: rest } = parseCommand(args, OPTIONS);
    positionals(rest, [], this.usage);
    const { result } = await connectAdmin(values, io.env).call<ApiTokenSummaryResponseDto[]>('GET', '/tokens');
    if (values.json) return void printJson(io, result);
    const rows = result.map((t) => [t.id, t.name, t.last_four === null ? '-' : `…${t.last_four}`, formatTime(t.created_at)]);
    io.stdout.write(formatTable(['id', 'name', 'secret', 'created'], rows));
  },
};

export const tokensRevoke: Command = {
  usage: 'tokens revoke <token_id> [--admin-token t] [--json]',
  summary: 'revoke an API token of the account (admin token); it is refused at once',
  options: [ADMIN_TOKEN_HELP, '--json           print the revoked token'],
  async run(args, io) {
    const { values, positionals: rest } = parseCommand(args, OPTIONS);
    const [tokenId] = positionals(rest, ['<token_id>'], this.usage);
    const { result } = await connectAdmin(values, io.env).call<ApiTokenSummaryResponseDto>('DELETE', `/tokens/${encodeURIComponent(tokenId)}`);
    if (values.json) printJson(io, result);
    else io.stdout.write(`revoked ${result.name} (${result.id})\n`);
  },
};
