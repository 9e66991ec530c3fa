/**
 * A server-sent events parser (the WHATWG "event stream" grammar) fed with raw network chunks.
 * Chunks may split anything: a multi-byte UTF-8 character, a CRLF pair, a field name, an event.
 */
import { WeftError } from '../core/errors.ts';

/** One dispatched event. `event` is undefined when the stream gave no `event:` field. */
export interface SseEvent {
  event: string | undefined;
  data: string;
  id: string | undefined;
}

/** A line longer than this without a newline is a broken (or hostile) stream, not an event. */
const DEFAULT_MAX_LINE_CHARS = 16 * 1024 * 1024;

/**
 * Incremental SSE parser: `push` chunks as they arrive, `end` when the body ends. Events are
 * delivered synchronously through `onEvent`, in order.
 */
export class SseParser {
  private readonly decoder = new TextDecoder('utf-8');
  private buffer = '';
  /** Where the next newline search starts: everything before it holds no newline. */
  private scanFrom = 0;
  /** The previous chunk ended in CR: a LF at the start of the next one belongs to it. */
  private pendingCR = false;
  private started = false;
  private data: string[] = [];
  private eventType: string | undefined;
  private lastId: string | undefined;

  constructor(
    private readonly onEvent: (event: SseEvent) => void,
    private readonly maxLineChars = DEFAULT_MAX_LINE_CHARS,
  ) {}

  /** Feeds bytes (decoded as UTF-8, characters split across chunks kept whole) or text. */
  push(chunk: Uint8Array | string): void {
    let text = typeof chunk === 'string' ? chunk : this.decoder.decode(chunk, { stream: true });
    if (!this.started && text !== '') {
      this.started = true;
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1); // a leading BOM is not data
    }
    if (this.pendingCR && text !== '') {
      this.pendingCR = false;
      if (text.startsWith('\n')) text = text.slice(1);
    }
    this.buffer += text;
    this.drain();
  }

  /**
   * Ends the stream. The spec discards an event without its closing blank line; servers that
   * forget the last newline exist, so a pending line and event are still delivered.
   */
  end(): void {
    this.push(this.decoder.decode());
    if (this.buffer !== '') {
      this.line(this.buffer);
      this.buffer = '';
    }
    this.dispatch();
  }

  private drain(): void {
    const buffer = this.buffer;
    let start = 0;
    for (let i = this.scanFrom; i < buffer.length; i++) {
      const c = buffer.charCodeAt(i);
      if (c !== 10 && c !== 13) continue;
      const line = buffer.slice(start, i);
      if (c === 13) {
        if (i + 1 < buffer.length) {
          if (buffer.charCodeAt(i + 1) === 10) i++;
        } else {
          this.pendingCR = true;
        }
      }
      start = i + 1;
      this.line(line);
    }
    this.buffer = start === 0 ? buffer : buffer.slice(start);
    this.scanFrom = this.buffer.length;
    if (this.buffer.length > this.maxLineChars) {
      throw new WeftError('WEFT_HTTP_ERROR', `event stream line longer than ${this.maxLineChars} characters`, { retryable: false });
    }
  }

  private line(line: string): void {
    if (line === '') {
      this.dispatch();
      return;
    }
    if (line.startsWith(':')) return; // comment (keep-alive)
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'data') this.data.push(value);
    else if (field === 'event') this.eventType = value;
    else if (field === 'id' && !value.includes('\0')) this.lastId = value;
    // 'retry' and unknown fields are ignored: reconnection is not how providers resume.
  }

  private dispatch(): void {
    const eventType = this.eventType;
    this.eventType = undefined;
    if (this.data.length === 0) return;
    const data = this.data.join('\n');
    this.data = [];
    this.onEvent({ event: eventType, data, id: this.lastId });
  }
}
