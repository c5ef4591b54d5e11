import { Inject, Injectable, Logger, type OnApplicationShutdown, type OnModuleInit } from '@nestjs/common';
import pg from 'pg';
import { APP_CONFIG, type AppConfig } from '../config/app-config.js';
import { TokenCache } from './token-cache.js';

/** The PostgreSQL channel a revoked token's hash is announced on (pg_notify, in the deleting transaction). */
export const TOKEN_REVOKED_CHANNEL = 'lora_hub_token_revoked';
/** Where each replica confirms, with the same hash, that it has dropped the token. */
const DROPPED_CHANNEL = 'lora_hub_token_dropped';
/** The listening connection's application_name, as pg_stat_activity shows it. */
export const LISTENER_NAME = 'lora-hub token revocations';

const RECONNECT_MIN_MS = 250;
const RECONNECT_MAX_MS = 5_000;
/** How long a revocation waits for every replica's confirmation before answering anyway. */
const CONFIRM_TIMEOUT_MS = 2_000;
const LISTENERS_SQL = 'SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()';

/** A revocation's wait for the replicas' confirmations. */
export interface RevocationDelivery {
  /** After the delete committed: until every listening replica has confirmed, or the bound. */
  confirmed(): Promise<void>;
  /** The delete did not happen. */
  cancel(): void;
}

/**
 * Makes a revocation take effect at once on every replica: each one LISTENs on a dedicated connection, drops
 * the announced token from its cache and confirms it; the revoking replica answers once every listening replica
 * (counted in pg_stat_activity by the connection's application_name) has confirmed. A connection is re-opened
 * when lost, and every cached token is dropped then, since announcements made meanwhile went unheard; the
 * cache's TTL bounds anything else (a replica that neither hears nor loses its connection).
 *
 * With the embedded database (PGlite) there is only this process, whose revocations drop the entry themselves,
 * so nothing listens.
 */
@Injectable()
export class TokenRevocations implements OnModuleInit, OnApplicationShutdown {
  private readonly logger = new Logger(TokenRevocations.name);
  private client: pg.Client | undefined;
  private reconnectDelay = RECONNECT_MIN_MS;
  private reconnect: NodeJS.Timeout | undefined;
  private closed = false;
  /** Revocations of this replica counting confirmations, by token hash. */
  private readonly waiting = new Map<string, Set<() => void>>();

  constructor(
    @Inject(APP_CONFIG) private readonly config: AppConfig,
    private readonly cache: TokenCache,
  ) {}

  async onModuleInit(): Promise<void> {
    if (this.config.databaseUrl !== undefined) await this.listen();
  }

  async onApplicationShutdown(): Promise<void> {
    this.closed = true;
    clearTimeout(this.reconnect);
    await this.client?.end().catch(() => undefined);
  }

  /** Starts counting confirmations of `hash`; call before the deleting transaction commits, so none is missed. */
  track(hash: string): RevocationDelivery {
    const client = this.client;
    if (client === undefined) return { confirmed: async () => undefined, cancel: () => undefined };
    let confirmations = 0;
    let wake = () => {};
    const onConfirmation = () => {
      confirmations++;
      wake();
    };
    const waiters = this.waiting.get(hash) ?? new Set();
    waiters.add(onConfirmation);
    this.waiting.set(hash, waiters);
    const cancel = () => {
      waiters.delete(onConfirmation);
      if (waiters.size === 0 && this.waiting.get(hash) === waiters) this.waiting.delete(hash);
    };
    const confirmed = async () => {
      try {
        const { rows } = await client.query<{ n: number }>(LISTENERS_SQL, [LISTENER_NAME]);
        const listeners = rows[0]!.n;
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, CONFIRM_TIMEOUT_MS).unref();
          wake = () => {
            if (confirmations < listeners) return;
            clearTimeout(timer);
            resolve();
          };
          wake();
        });
        if (confirmations < listeners) {
          this.logger.warn(`token revocation: ${confirmations} of ${listeners} replicas confirmed; the others drop it within the cache TTL`);
        }
      } catch (error) {
        this.logger.warn(`token revocation: could not count the replicas' confirmations (${(error as Error).message})`);
      } finally {
        cancel();
      }
    };
    return { confirmed, cancel };
  }

  private async listen(): Promise<void> {
    const client = new pg.Client({ connectionString: this.config.databaseUrl, application_name: LISTENER_NAME, connectionTimeoutMillis: 5_000 });
    let lost = false;
    const onLost = (error?: Error) => {
      if (lost) return;
      lost = true;
      if (this.client === client) this.client = undefined;
      void client.end().catch(() => undefined);
      if (this.closed) return;
      this.logger.warn(`token revocations: listening connection lost (${error?.message ?? 'closed'}); reconnecting`);
      this.reconnect = setTimeout(() => void this.listen(), this.reconnectDelay);
      this.reconnectDelay = Math.min(this.reconnectDelay * 2, RECONNECT_MAX_MS);
    };
    client.on('error', onLost);
    client.on('end', () => onLost());
    client.on('notification', ({ channel, payload }) => {
      if (!payload) return;
      if (channel === TOKEN_REVOKED_CHANNEL) this.revoked(client, payload);
      else if (channel === DROPPED_CHANNEL) for (const confirmation of this.waiting.get(payload) ?? []) confirmation();
    });
    try {
      await client.connect();
      await client.query(`LISTEN ${TOKEN_REVOKED_CHANNEL}; LISTEN ${DROPPED_CHANNEL}`);
    } catch (error) {
      onLost(error as Error);
      return;
    }
    if (lost || this.closed) return;
    this.client = client;
    this.reconnectDelay = RECONNECT_MIN_MS;
    // Revocations announced while nothing listened were missed: trust no cached token from before.
    this.cache.clear();
  }

  private revoked(client: pg.Client, hash: string): void {
    this.cache.drop(hash);
    client.query('SELECT pg_notify($1, $2)', [DROPPED_CHANNEL, hash]).catch((error: Error) => {
      this.logger.warn(`token revocations: could not confirm a dropped token (${error.message})`);
    });
  }
}
