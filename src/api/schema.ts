// A small typed builder for Kubernetes structural OpenAPI v3 schemas.
//
// Why not hand-written YAML plus hand-written interfaces: they drift. Why not a
// general JSON-schema library: the CRD dialect has its own keys
// (x-kubernetes-validations, list-type, map-type) and rules (structural, no
// $ref, no oneOf at the root) that a general library fights. So the CRD schema
// is written once here in TypeScript; `Out<S>` gives the type a controller reads
// back from the API server (defaults applied), `In<S>` the type a user may
// write (defaulted fields optional), and `.openAPI` the wire schema that
// `npm run gen:crds` writes into crds/.

/** One CEL rule as the apiextensions API spells it. */
export interface CelRule {
  rule: string;
  message?: string;
  messageExpression?: string;
  reason?: 'FieldValueInvalid' | 'FieldValueForbidden' | 'FieldValueRequired' | 'FieldValueDuplicate';
  fieldPath?: string;
  /** Transition rules only: also evaluate when there is no old value. */
  optionalOldSelf?: boolean;
}

/** The subset of JSONSchemaProps (wire names) this project emits. */
export interface OpenAPISchema {
  type?: 'object' | 'array' | 'string' | 'integer' | 'boolean' | 'number';
  description?: string;
  properties?: Record<string, OpenAPISchema>;
  required?: string[];
  additionalProperties?: OpenAPISchema;
  items?: OpenAPISchema;
  enum?: readonly (string | number)[];
  default?: unknown;
  format?: string;
  pattern?: string;
  minLength?: number;
  maxLength?: number;
  minimum?: number;
  maximum?: number;
  minItems?: number;
  maxItems?: number;
  nullable?: boolean;
  'x-kubernetes-validations'?: CelRule[];
  'x-kubernetes-list-type'?: 'atomic' | 'set' | 'map';
  'x-kubernetes-list-map-keys'?: string[];
  'x-kubernetes-map-type'?: 'atomic' | 'granular';
}

/** How a property sits in its parent object. */
export type Presence = 'required' | 'optional' | 'defaulted';

/**
 * A schema node. `O` is the value as read from the server, `I` as written by
 * a user. `P` is how the node sits in its parent object; only objects look at
 * it. The phantom fields are never set at runtime.
 */
export interface Schema<O, I = O, P extends Presence = 'required'> {
  readonly openAPI: OpenAPISchema;
  readonly presence: P;
  readonly __out?: O;
  readonly __in?: I;
  /** The property may be absent, with no default. */
  optional(): Schema<O, I, 'optional'>;
  /**
   * The API server fills in `value` when the property is absent, so readers
   * always see it and writers may leave it out.
   */
  default(value: I): Schema<O, I, 'defaulted'>;
  describe(text: string): Schema<O, I, P>;
  validate(...rules: CelRule[]): Schema<O, I, P>;
  with(extra: OpenAPISchema): Schema<O, I, P>;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnySchema = Schema<any, any, Presence>;
export type Out<S> = S extends Schema<infer O, unknown, Presence> ? O : never;
export type In<S> = S extends Schema<unknown, infer I, Presence> ? I : never;

type Simplify<T> = { [K in keyof T]: T[K] } & {};
type Props = Record<string, AnySchema>;
type KeysWhere<T extends Props, P extends Presence> = {
  [K in keyof T]: T[K]['presence'] extends P ? K : never;
}[keyof T];

/** Read shape: only `optional` properties may be missing. */
export type ObjectOut<T extends Props> = Simplify<
  { [K in KeysWhere<T, 'required' | 'defaulted'>]: Out<T[K]> } & {
    [K in KeysWhere<T, 'optional'>]?: Out<T[K]>;
  }
>;
/** Write shape: only `required` properties must be given. */
export type ObjectIn<T extends Props> = Simplify<
  { [K in KeysWhere<T, 'required'>]: In<T[K]> } & {
    [K in KeysWhere<T, 'optional' | 'defaulted'>]?: In<T[K]>;
  }
>;

function node<O, I, P extends Presence>(openAPI: OpenAPISchema, presence: P): Schema<O, I, P> {
  return {
    openAPI,
    presence,
    optional: () => node<O, I, 'optional'>(openAPI, 'optional'),
    default: (value: I) => node<O, I, 'defaulted'>({ ...openAPI, default: value }, 'defaulted'),
    describe: (text: string) => node<O, I, P>({ ...openAPI, description: text }, presence),
    validate: (...rules: CelRule[]) =>
      node<O, I, P>(
        { ...openAPI, 'x-kubernetes-validations': [...(openAPI['x-kubernetes-validations'] ?? []), ...rules] },
        presence,
      ),
    with: (extra: OpenAPISchema) => node<O, I, P>({ ...openAPI, ...extra }, presence),
  };
}

type StringOpts = Pick<OpenAPISchema, 'description' | 'pattern' | 'minLength' | 'maxLength' | 'format'>;
type NumberOpts = Pick<OpenAPISchema, 'description' | 'minimum' | 'maximum'>;
type ArrayOpts = Pick<OpenAPISchema, 'description' | 'minItems' | 'maxItems'>;

export const s = {
  string(opts: StringOpts = {}): Schema<string> {
    return node({ type: 'string', ...opts }, 'required');
  },

  /** A string limited to `values`; the TypeScript type is their union. */
  enum<const V extends readonly string[]>(values: V, opts: Pick<OpenAPISchema, 'description'> = {}): Schema<V[number]> {
    return node({ type: 'string', enum: [...values], ...opts }, 'required');
  },

  /** RFC 3339 timestamp, as metav1.Time serialises. */
  time(description?: string): Schema<string> {
    return node({ type: 'string', format: 'date-time', ...(description ? { description } : {}) }, 'required');
  },

  int64(opts: NumberOpts = {}): Schema<number> {
    return node({ type: 'integer', format: 'int64', ...opts }, 'required');
  },

  int32(opts: NumberOpts = {}): Schema<number> {
    return node({ type: 'integer', format: 'int32', ...opts }, 'required');
  },

  boolean(description?: string): Schema<boolean> {
    return node({ type: 'boolean', ...(description ? { description } : {}) }, 'required');
  },

  object<const T extends Props>(
    properties: T,
    opts: Pick<OpenAPISchema, 'description'> = {},
  ): Schema<ObjectOut<T>, ObjectIn<T>> {
    const props: Record<string, OpenAPISchema> = {};
    const required: string[] = [];
    for (const [name, child] of Object.entries(properties)) {
      props[name] = child.openAPI;
      if (child.presence === 'required') required.push(name);
    }
    return node(
      { type: 'object', ...opts, properties: props, ...(required.length > 0 ? { required } : {}) },
      'required',
    );
  },

  /** A string → string map, e.g. matchLabels. */
  stringMap(opts: Pick<OpenAPISchema, 'description'> = {}): Schema<Record<string, string>> {
    return node({ type: 'object', ...opts, additionalProperties: { type: 'string' } }, 'required');
  },

  array<S extends AnySchema>(items: S, opts: ArrayOpts = {}): Schema<Out<S>[], In<S>[]> {
    return node({ type: 'array', ...opts, items: items.openAPI }, 'required');
  },

  /**
   * A list of objects keyed by one field, merged per key by server-side apply
   * (x-kubernetes-list-type: map). Conditions and per-node entries use it so
   * there is exactly one entry per key.
   */
  listMap<S extends AnySchema>(items: S, key: keyof Out<S> & string, opts: ArrayOpts = {}): Schema<Out<S>[], In<S>[]> {
    return node(
      {
        type: 'array',
        ...opts,
        items: items.openAPI,
        'x-kubernetes-list-type': 'map',
        'x-kubernetes-list-map-keys': [key],
      },
      'required',
    );
  },
};
