/**
 * Worker logs: the SDK's text lines, or one JSON object per line for log pipelines (`--log-format
 * json`). Every line the SDK writes for a workflow or an activity carries its ids (workflowId,
 * runId, activityId, taskQueue, attempt...), which become fields of the JSON object.
 * @module
 */
import { DefaultLogger, type LogEntry, type LogLevel, type Logger } from '@temporalio/worker';

/** How log lines look. */
export type LogFormat = 'text' | 'json';

/** A JSON-safe copy of a log field: bigints as strings, errors as name, message and stack. */
function jsonSafe(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return { name: value.name, message: value.message, stack: value.stack };
  return value;
}

/** One JSON object per line: `time`, `level`, `message`, then the entry's fields. */
export function formatJsonLine(entry: LogEntry): string {
  const time = new Date(Number(entry.timestampNanos / 1_000_000n)).toISOString();
  try {
    return JSON.stringify({ time, level: entry.level, message: entry.message, ...entry.meta }, jsonSafe);
  } catch (err) {
    // A field that cannot be written as JSON (a cycle) must not cost the line itself.
    return JSON.stringify({ time, level: entry.level, message: entry.message, logError: `fields not written: ${(err as Error).message}` });
  }
}

/** The logger of a worker process, writing to stdout (`json`) or the SDK's default lines (`text`). */
export function createLogger(format: LogFormat, level: LogLevel = 'INFO'): Logger {
  if (format === 'json') return new DefaultLogger(level, (entry) => process.stdout.write(`${formatJsonLine(entry)}\n`));
  return new DefaultLogger(level);
}
