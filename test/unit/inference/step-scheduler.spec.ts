/**
 * StepScheduler on its own: which requests each step of the shared llama.cpp context takes, and when it starts.
 * The engine's tests check the same behaviour on real decodes.
 */
import { describe, expect, it } from '@jest/globals';
import { StepScheduler, type Seat } from '../../../src/inference/engines/step-scheduler.js';

/** Lets pending promise callbacks and I/O callbacks run. */
const tick = () => new Promise((resolve) => setImmediate(resolve));

/** A scheduler whose steps are logged as `step <key>: <requests in start order>`. */
function scheduler(promptBudget = 512) {
  const steps: string[] = [];
  const current: string[] = [];
  const steps$ = new StepScheduler<string>(async (key) => {
    if (current.length) steps.push(current.splice(0).join(' '));
    current.push(`${key}:`);
  }, promptBudget);
  /** One request: `ask` waits for its next step (resolving to whether it got one). */
  const request = (name: string, key: string, order: number) => {
    const seat: Seat = steps$.seat(key, order);
    return {
      ask: (promptTokens = 0, signal = new AbortController().signal) =>
        seat.next(signal, promptTokens).then((started) => {
          if (started) current.push(name);
          return started;
        }),
      leave: () => seat.leave(),
    };
  };
  const log = () => [...steps, current.join(' ')].filter(Boolean);
  return { request, log };
}

describe('StepScheduler', () => {
  it('starts requests seated together in one step, in sequence order, whenever each asks', async () => {
    const { request, log } = scheduler();
    const [a, b, c] = [request('a', 'x', 2), request('b', 'x', 0), request('c', 'x', 1)];
    const asked = [a.ask(5)];
    await tick();
    asked.push(b.ask(7));
    await tick();
    expect(log()).toEqual([]);
    asked.push(c.ask(4));
    expect(await Promise.all(asked)).toEqual([true, true, true]);
    expect(log()).toEqual(['x: b c a']);
  });

  it('does not wait for a seated request that leaves without asking', async () => {
    const { request, log } = scheduler();
    const [a, b] = [request('a', 'x', 0), request('b', 'x', 1)];
    const asked = a.ask(5);
    await tick();
    b.leave();
    expect(await asked).toBe(true);
    expect(log()).toEqual(['x: a']);
  });

  it('admits a request that arrives during a step into the next one, with those already generating', async () => {
    const { request, log } = scheduler();
    const a = request('a', 'x', 0);
    await a.ask(5);
    const b = request('b', 'x', 1);
    const bFirst = b.ask(6);
    await tick();
    expect(log()).toEqual(['x: a']);
    await Promise.all([a.ask(), bFirst]);
    expect(log()).toEqual(['x: a', 'x: a b']);
  });

  it('takes every generating request and prompts up to the budget in arrival order; the rest wait behind other adapters', async () => {
    const { request, log } = scheduler(10);
    const g = request('g', 'x', 0);
    await g.ask(2);
    const [p1, p2, p3, y] = [request('p1', 'x', 1), request('p2', 'x', 2), request('p3', 'x', 3), request('y', 'y', 4)];
    const first = [p1.ask(6), p2.ask(6), p3.ask(3), y.ask(3)];
    await tick();
    await g.ask();
    // p2 does not fit the 4 tokens left, and p3 does not overtake it.
    expect(log()).toEqual(['x: g', 'x: g p1']);
    g.leave();
    p1.leave();
    await first[3];
    y.leave();
    await Promise.all(first);
    expect(log()).toEqual(['x: g', 'x: g p1', 'y: y', 'x: p2 p3']);
  });

  it('gives a prompt larger than the budget a step of its own', async () => {
    const { request, log } = scheduler(10);
    const [a, b] = [request('a', 'x', 0), request('b', 'x', 1)];
    const first = [a.ask(30), b.ask(2)];
    await first[0];
    a.leave();
    await first[1];
    expect(log()).toEqual(['x: a', 'x: b']);
  });

  it('a request aborted while waiting gets no step and holds none back', async () => {
    const { request, log } = scheduler();
    const a = request('a', 'x', 0);
    await a.ask(5);
    const b = request('b', 'y', 1);
    const controller = new AbortController();
    const waiting = b.ask(5, controller.signal);
    controller.abort();
    expect(await waiting).toBe(false);
    expect(await a.ask()).toBe(true);
    expect(log()).toEqual(['x: a', 'x: a']);
  });
});
