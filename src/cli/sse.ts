/**
 * Incremental server-sent events parser (WHATWG HTML, "event stream interpretation"): feed it text as it
 * arrives, in chunks split anywhere, and it returns the data of each event completed so far.
 */
export class SseParser {
  #pending = '';
  #data: string[] = [];

  push(text: string): string[] {
    this.#pending += text;
    // A trailing "\r" may be the first half of "\r\n": wait for the next chunk before ending the line there.
    const lines = this.#pending.split(/\r\n|\r(?!$)|\n/);
    this.#pending = lines.pop()!;
    const events: string[] = [];
    for (const line of lines) {
      if (line === '') {
        const data = this.#data.join('\n');
        this.#data = [];
        if (data !== '') events.push(data);
      } else if (line.startsWith('data:')) {
        this.#data.push(line.slice(line.startsWith('data: ') ? 6 : 5));
      }
      // Comments (":...") and the other fields (event, id, retry) carry nothing this client uses.
    }
    return events;
  }
}
