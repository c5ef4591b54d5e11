import { expect } from '@jest/globals';
import type { TestApp } from './app.js';
import { parsePrometheusText, sampleValue, type MetricFamily } from './prometheus-text.js';

/** The app's /metrics, parsed (it is served at the root, outside /client/v4). */
export async function scrapeMetrics(t: TestApp): Promise<Map<string, MetricFamily>> {
  const response = await fetch(`${t.baseUrl.replace(/\/client\/v4$/, '')}/metrics`);
  expect(response.status).toBe(200);
  return parsePrometheusText(await response.text());
}

const EVENT_LOOP = 'nodejs_eventloop_max_delay_seconds';

/** Seconds observed so far, and how many of them had an event-loop delay over `le` (one of the histogram's bounds). */
export function eventLoopSeconds(metrics: Map<string, MetricFamily>, le: string): { observed: number; over: number } {
  const observed = sampleValue(metrics, `${EVENT_LOOP}_count`);
  return { observed, over: observed - sampleValue(metrics, `${EVENT_LOOP}_bucket`, { le }) };
}

/**
 * Runs `during`, then waits until the event-loop histogram has observed the seconds it spanned, and returns how
 * many of them had a delay over `le`: 0 means the loop never stalled that long while `during` ran.
 */
export async function eventLoopStalls(t: TestApp, le: string, during: () => Promise<unknown> | unknown): Promise<number> {
  const before = eventLoopSeconds(await scrapeMetrics(t), le);
  await during();
  // The histogram observes once a second: two more observations cover the second `during` ended in.
  const target = eventLoopSeconds(await scrapeMetrics(t), le).observed + 2;
  const deadline = Date.now() + 10_000;
  let after = eventLoopSeconds(await scrapeMetrics(t), le);
  while (after.observed < target && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 100));
    after = eventLoopSeconds(await scrapeMetrics(t), le);
  }
  expect(after.observed).toBeGreaterThanOrEqual(target);
  return after.over - before.over;
}
