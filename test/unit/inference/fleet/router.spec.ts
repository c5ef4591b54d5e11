import { describe, expect, it } from '@jest/globals';
import { Replica } from '../../../../src/inference/fleet/replica.js';
import { place, rendezvous } from '../../../../src/inference/fleet/router.js';

const replicas = (n: number) => Array.from({ length: n }, (_, i) => new Replica(`http://r${i}:8000`));
const none = new Set<Replica>();
const two = () => 2;

describe('place', () => {
  it('prefers a replica that holds the adapter, even a busier one', () => {
    const [a, b, c] = replicas(3);
    b!.held.set('x', 1);
    b!.inFlight = 5;
    expect(place([a!, b!, c!], 'x', two, none, 'k')).toEqual({ replica: b, kind: 'hit' });
  });

  it("counts an adapter the engine reports running as held (another process's request)", () => {
    const [a, b] = replicas(2);
    b!.active = new Set(['x']);
    expect(place([a!, b!], 'x', two, none, 'k')).toEqual({ replica: b, kind: 'hit' });
  });

  it('among holders, takes the least loaded: in-flight requests, then the engine queue, then its running requests', () => {
    const [a, b, c] = replicas(3);
    for (const r of [a!, b!, c!]) r.held.set('x', 1);
    a!.inFlight = 2;
    b!.inFlight = 1;
    c!.inFlight = 1;
    b!.engineWaiting = 3;
    expect(place([a!, b!, c!], 'x', two, none, 'k')!.replica).toBe(c);
    c!.engineWaiting = 3;
    c!.engineRunning = 4;
    expect(place([a!, b!, c!], 'x', two, none, 'k')!.replica).toBe(b);
  });

  it('else a replica with a free slot, else one to evict on, the least loaded', () => {
    const [a, b] = replicas(2);
    a!.held.set('p', 1).set('q', 1);
    b!.held.set('r', 1);
    b!.inFlight = 9;
    expect(place([a!, b!], 'x', two, none, 'k')).toEqual({ replica: b, kind: 'free-slot' });
    b!.held.set('s', 1);
    expect(place([a!, b!], 'x', two, none, 'k')).toEqual({ replica: a, kind: 'evict' });
  });

  it('counts adapters on their way as taking a slot, and sends requests for them to where they arrive', () => {
    const [a, b] = replicas(2);
    a!.arriving.set('x', new Promise(() => undefined));
    expect(place([a!, b!], 'x', two, none, 'k')).toEqual({ replica: a, kind: 'free-slot' });
    a!.arriving.set('y', new Promise(() => undefined));
    expect(place([a!, b!], 'z', two, none, 'k')!.replica).toBe(b);
  });

  it('skips replicas that are down or already tried; with none healthy, tries a down one', () => {
    const [a, b] = replicas(2);
    a!.held.set('x', 1);
    a!.markDown('ECONNREFUSED');
    expect(place([a!, b!], 'x', two, none, 'k')!.replica).toBe(b);
    expect(place([a!, b!], 'x', two, new Set([b!]), 'k')!.replica).toBe(a);
    expect(place([a!, b!], 'x', two, new Set([a!, b!]), 'k')).toBeUndefined();
  });

  it('breaks ties the same way in every process for an adapter, and spreads requests without one', () => {
    const urls = replicas(3).map((r) => r.url);
    const pick = (key: string) => place(urls.map((u) => new Replica(u)), key, two, none, 'k')!.replica.url;
    expect(pick('ft-a')).toBe(pick('ft-a'));
    const spread = new Set(Array.from({ length: 60 }, (_, i) => place(urls.map((u) => new Replica(u)), undefined, two, none, String(i))!.replica.url));
    expect(spread.size).toBe(3);
    expect(new Set(Array.from({ length: 30 }, (_, i) => pick(`ft-${i}`))).size).toBe(3);
  });

  it('hashes keys and URLs apart', () => {
    expect(rendezvous('a', 'http://r0')).not.toBe(rendezvous('a', 'http://r1'));
    expect(rendezvous('a', 'http://r0')).toBe(rendezvous('a', 'http://r0'));
  });
});

describe('Replica', () => {
  it('evicts the least recently used adapter no request uses, idle ones on the engine first', () => {
    const r = new Replica('http://r');
    r.held.set('old', 1).set('mid', 2).set('new', 3);
    expect(r.evictionCandidate()).toBe('old');
    r.enter('old');
    expect(r.evictionCandidate()).toBe('mid');
    r.active = new Set(['mid']);
    expect(r.evictionCandidate()).toBe('new');
    r.enter('new');
    // Busy on the engine (perhaps for another process) but not here: still a candidate.
    expect(r.evictionCandidate()).toBe('mid');
    r.enter('mid');
    expect(r.evictionCandidate()).toBeUndefined();
    r.leave('old');
    expect(r.evictionCandidate()).toBe('old');
  });

  it("takes the replica's own list, keeping what this process loaded after the list was read or has a request on", () => {
    const r = new Replica('http://r');
    r.held.set('gone', 5).set('kept', 6).set('fresh', 20).set('resolving', 7);
    r.enter('resolving');
    r.syncHeld(['kept', 'other'], 10);
    expect([...r.held]).toEqual([
      ['kept', 6],
      ['fresh', 20],
      ['resolving', 7],
      ['other', 0],
    ]);
  });

  it('does not take back from an older list an adapter it dropped or is still unloading', () => {
    const r = new Replica('http://r');
    r.held.set('evicted', 1).set('unloading', 2);
    r.drop('evicted');
    r.drop('unloading');
    r.leaving.set('unloading', new Promise<void>(() => undefined));
    // A list requested before the drops: both still on it.
    r.syncHeld(['evicted', 'unloading'], 0);
    expect([...r.held.keys()]).toEqual([]);
    // A list requested after the drop, with the unload still under way: the unload decides.
    r.syncHeld(['evicted', 'unloading'], Date.now() + 1);
    expect([...r.held.keys()]).toEqual(['evicted']);
    r.leaving.delete('unloading');
    r.syncHeld(['evicted', 'unloading'], Date.now() + 2);
    expect([...r.held.keys()]).toEqual(['evicted', 'unloading']);
  });

  it('comes back from down with its own list only, counting each fall once', () => {
    const r = new Replica('http://r');
    r.held.set('x', 1).set('y', 2);
    r.active = new Set(['x']);
    r.markDown('ECONNRESET');
    r.markDown('ECONNREFUSED');
    expect([r.healthy, r.counters.downs, r.downReason]).toEqual([false, 1, 'ECONNREFUSED']);
    r.markUp(['y', 'z'], 10);
    expect([r.healthy, r.downReason, [...r.held], r.holds('x')]).toEqual([true, undefined, [['y', 2], ['z', 0]], false]);
  });
});
