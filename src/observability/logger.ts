// pino JSON logs. One root logger per process; a child per reconcile that
// carries the object's identity, so every line of one reconcile can be found
// with one filter. We log references to objects (kind/name/resourceVersion),
// never whole objects: they may hold key material, and they are large.
import { pino, type DestinationStream, type LogFn, type Logger, type LoggerOptions } from 'pino';

export type { Logger } from 'pino';

/**
 * Paths pino censors. Redaction is path-based (a secret under an unlisted
 * path is printed), so this covers the names key material goes by at the
 * top level and up to two levels deep; the real protection is not logging
 * objects at all.
 */
const SENSITIVE = ['key', 'privateKey', 'private_key', 'keyPem', 'token', 'bearerToken', 'password', 'secret', 'authorization', 'Authorization', 'cookie', 'clientKey', 'client-key-data', 'data'];
export const REDACT_PATHS: string[] = SENSITIVE.flatMap((k) => {
  const p = /^[A-Za-z_$][\w$]*$/.test(k) ? k : `["${k}"]`;
  const dot = p.startsWith('[') ? p : `.${p}`;
  return [p, `*${dot}`, `*.*${dot}`];
});

export interface LoggerFactoryOptions {
  /** e.g. `certrotator-controller`; goes into every line as `name`. */
  name: string;
  level?: string;
  /** Extra fields on every line (node name for the agent, replica identity…). */
  base?: Record<string, unknown>;
  /** Where to write; default stdout. Tests pass a stream. */
  destination?: DestinationStream;
}

export function createLogger(opts: LoggerFactoryOptions): Logger {
  const options: LoggerOptions = {
    name: opts.name,
    level: opts.level ?? process.env.LOG_LEVEL ?? 'info',
    base: { pid: process.pid, ...opts.base },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT_PATHS, censor: '[REDACTED]' },
    // Errors as {type, message, stack}; a client-node ApiException's body can
    // be large, so `err` is serialized by pino's standard serializer only.
    serializers: { err: pino.stdSerializers.err },
    formatters: { level: (label) => ({ level: label }) },
  };
  return opts.destination ? pino(options, opts.destination) : pino(options);
}

/** What identifies an object in logs: never the object itself. */
export interface ObjectRef {
  kind?: string;
  name?: string;
  namespace?: string;
  resourceVersion?: string;
  generation?: number;
}

export function objectRef(obj: { kind?: string; metadata?: { name?: string; namespace?: string; resourceVersion?: string; generation?: number } }): ObjectRef {
  const m = obj.metadata ?? {};
  return { kind: obj.kind, name: m.name, namespace: m.namespace, resourceVersion: m.resourceVersion, generation: m.generation };
}

let reconcileSeq = 0;

/** The log levels a reconcile writes at. */
export type ReconcileLog = Pick<Logger, 'debug' | 'info' | 'warn' | 'error'>;

/**
 * Child logger for one reconcile of `key` by `controller` (controller-runtime
 * logs `controller`, the object name and a reconcileID the same way).
 *
 * The pino child is made at the first line written at an enabled level:
 * pino's child() serializes and redacts its bindings at once, about a tenth of
 * a millisecond, and a busy run has hundreds of passes a second that log
 * nothing at info level.
 */
export function reconcileLogger(parent: Logger, controller: string, key: string): ReconcileLog {
  reconcileSeq = (reconcileSeq + 1) % Number.MAX_SAFE_INTEGER;
  const reconcileID = `${Date.now().toString(36)}-${reconcileSeq.toString(36)}`;
  let child: Logger | undefined;
  const at = (level: keyof ReconcileLog): LogFn =>
    ((...args: unknown[]) => {
      if (!parent.isLevelEnabled(level)) return;
      child ??= parent.child({ controller, object: key, reconcileID });
      (child[level] as (...a: unknown[]) => void)(...args);
    }) as LogFn;
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}
