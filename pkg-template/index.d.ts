// Types of gander-rwkv (design.md "JavaScript API").

export type Backend = 'auto' | 'webgpu' | 'cpu';
export type Quant = 'f32' | 'f16' | 'int8' | 'q4';

/** A model source: bytes, a Blob/File, a URL (a `model.safetensors.index.json` URL brings its
 * shards), a model in the ModelStore, or the shards of one checkpoint (URLs, Files or bytes,
 * with at most one index URL). */
export type ModelSource = ArrayBuffer | Uint8Array | Blob | File | string | URL | { store: string; database?: string }
  | Array<ArrayBuffer | Uint8Array | Blob | File | string | URL>;

export interface Progress {
  /** 'download' (a URL; with the cache each chunk is stored as it arrives), 'cache' (a URL read
   * from its cached copy: no weight bytes from the network), 'convert' (ModelStore.put with
   * quant; `loaded`/`total` in bytes of the Gander file), 'store' (writing chunks), 'load'
   * (reading the weights, converting each matrix to `quant` on the way when it is given, and
   * building them on the backend, which for WebGPU is the upload to the GPU; `loaded`: bytes
   * read; `fraction`: parts built, `part` of `parts`). */
  phase: 'download' | 'cache' | 'convert' | 'store' | 'load';
  loaded: number;
  total: number;
  /** 0..1 */
  fraction: number;
  /** A resumed cached download: the bytes that were already stored. */
  resumedFrom?: number;
  /** 'cache' after a failed check of the URL (offline): why the cached copy was used. */
  note?: string;
  part?: number;
  parts?: number;
  chunk?: number;
  chunks?: number;
  /** 'load' with `quant`: the format each matrix is converted to on the way. */
  quant?: string;
  /** 'convert' (ModelStore.put with quant): tensors written so far, of `tensors`. */
  tensor?: number;
  tensors?: number;
}

export interface LoadOptions {
  /** 'auto' (default) uses WebGPU when an adapter runs the model and is not more than twice
   * slower than the wasm CPU path is expected to be (a software adapter is); else the CPU path. */
  backend?: Backend;
  /** Run the engine in a dedicated Web Worker (same API; an ArrayBuffer source is transferred).
   * Default: true where Workers exist. */
  worker?: boolean;
  /** For a URL: download it by range requests into the IndexedDB store (ModelStore, as
   * `url:<absolute URL>`) in chunks, one in memory at a time, and load from there. The next load
   * checks the URL's ETag/Last-Modified/size with a one-byte request and reads only the store;
   * an interrupted download resumes at its first missing chunk; offline, the stored copy is used.
   * Default true (where IndexedDB exists); false downloads into memory and stores nothing. */
  cache?: boolean | { database?: string; chunkSize?: number };
  /** Convert the matrices to this format while loading ('int8' holds about half the bytes of
   * bf16, 'q4' a quarter). A `.pth` or safetensors file is read range by range and each matrix
   * is converted as it arrives, so the wasm heap holds one layer's tensors and the converted
   * weights, never the file; the cache keeps the file as downloaded. Default: as stored. */
  quant?: 'f32' | 'f16' | 'int8' | 'q4';
  /** The conversation cache of `chat.completions.create`. */
  chatCache?: {
    /** Byte budget for kept conversation states (default 64 MiB; 0 turns the cache off). */
    maxBytes?: number;
    /** Also keep answer states in the ModelStore so a chat survives a reload (default off). */
    persist?: boolean | { database?: string; keep?: number };
  };
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
  /** Where gander_bg.wasm is, if not next to gander.js. */
  wasmUrl?: string | URL;
}

export interface ModelInfo {
  backend: 'webgpu' | 'cpu';
  /** Why this backend was chosen (e.g. why WebGPU was not used). */
  reason: string;
  layers: number;
  embd: number;
  heads: number;
  headSize: number;
  vocab: number;
  /** How the matrices are stored: 'f32', 'f16', 'bf16', 'int8', 'q4'. */
  quant: string;
  params: number;
  /** Bytes of one session's state (saveState's blob is 60 bytes more). */
  stateBytes: number;
  /** Bytes of weights read per generated token. */
  weightBytes: number;
  /** SHA-256 (hex) identifying the weights; saved states carry it. */
  fingerprint: string;
  /** 'world' (65536-row RWKV World vocabulary), 'bytes' (256 rows), or null (ids only). */
  tokenizer: 'world' | 'bytes' | null;
  /** The WebGPU adapter's name. */
  adapter?: string;
}

export interface Tokenizer {
  encode(text: string): Uint32Array;
  decode(ids: ArrayLike<number>): string;
}

export interface GenerateOptions {
  /** Default 256. */
  maxTokens?: number;
  /** 0 = greedy. Default 1. */
  temperature?: number;
  /** Nucleus mass in [0, 1]. Default 1. */
  topP?: number;
  /** 0 = no limit. */
  topK?: number;
  presencePenalty?: number;
  frequencyPenalty?: number;
  /** Occurrence counts decay by this after every token (the reference uses 0.996). Default 1. */
  penaltyDecay?: number;
  /** Same seed, same tokens, on every backend and platform. */
  seed?: number;
  /** Stop before any of these strings (the stop string is not yielded). */
  stop?: string | string[];
  /** The output follows this GBNF grammar (llama.cpp's format; `root` starts it). */
  grammar?: string;
  /** The output is compact JSON valid for this JSON schema (an object, JSON text, or `true` for
   * any JSON value). Unsupported keywords are refused by name (BAD_INPUT). */
  jsonSchema?: object | string | boolean;
  /** Allow one space before the constrained text (as models write after `Assistant:`). */
  leadingSpace?: boolean;
  /** Added to these tokens' logits before sampling: `{ "id": bias }` (-100 bans a token). */
  logitBias?: Record<string, number>;
  /** Abort between tokens: the iterator throws an AbortedError; the session stays usable. */
  signal?: AbortSignal;
}

export interface TokenEvent {
  /** The token fed into the state (undefined only for trailing text flushed at the end). */
  token: number | undefined;
  /** The text this token completes (characters are never split; may be ''). */
  text: string;
}

export interface GenerationStats {
  finish: 'length' | 'eos' | 'stop' | 'aborted' | null;
  tokens: number;
  prefillTokens: number;
  prefillMs: number;
  decodeMs: number;
}

export interface Session {
  readonly model: Model;
  /** Stats of the last generate() call. */
  lastGeneration: GenerationStats | null;
  /** Feed ids; resolves to the logits after the last one (vocab floats). */
  forward(ids: ArrayLike<number>): Promise<Float32Array>;
  /** Feed text or ids, no sampling. */
  prefill(textOrIds: string | ArrayLike<number>): Promise<void>;
  /** Stream tokens. An empty prompt continues from the current state and last logits. */
  generate(prompt?: string | ArrayLike<number>, options?: GenerateOptions): AsyncGenerator<TokenEvent, GenerationStats | undefined, void>;
  /** The state as a versioned blob; it loads on either backend of the same model. */
  saveState(): Promise<Uint8Array>;
  /** Replace the state with a blob from saveState, or start from an RWKV state-tuning file
   * (.pth/.safetensors holding blocks.N.att.time_state); StateMismatchError (code
   * STATE_MISMATCH) if it belongs to another model or another shape. */
  loadState(bytes: Uint8Array | ArrayBuffer): Promise<void>;
  /** A new session starting from a copy of this one. */
  fork(): Promise<Session>;
  /** Back to a zero state. */
  reset(): Promise<void>;
  /** Free the state now (otherwise freed with the model). */
  dispose(): Promise<void>;
}

export type ChatRole = 'system' | 'user' | 'assistant';
export interface ChatMessage {
  role: ChatRole;
  /** Text, or OpenAI-style text parts (joined). */
  content: string | { type: 'text'; text: string }[];
}
/** false: the prompt ends `Assistant:`; true: `Assistant: <think`; 'fake': `Assistant: <think>\n</think`. */
export type Think = boolean | 'fake';

export interface ChatCompletionCreateParams {
  messages: ChatMessage[];
  /** A name echoed in responses (default `rwkv7-` + the fingerprint's first 12 hex digits). */
  model?: string;
  stream?: boolean;
  /** Default 1024. */
  max_tokens?: number;
  /** Defaults (CHAT_DEFAULTS, the RWKV authors' G1 chat sampling): temperature 1, top_p 0.3,
   * presence_penalty 0.5, frequency_penalty 0.5, penalty_decay 0.996. */
  temperature?: number;
  top_p?: number;
  top_k?: number;
  presence_penalty?: number;
  frequency_penalty?: number;
  penalty_decay?: number;
  /** Default: a random seed per request. */
  seed?: number;
  /** Extra stop strings (a new turn, `\n\nUser:` / `\n\nSystem:`, always ends the answer). */
  stop?: string | string[];
  think?: Think;
  n?: 1;
  /** false: neither use nor fill the conversation cache. */
  cache?: boolean;
  /** JSON that always parses: any JSON value, or JSON valid for a schema (not with `think`). */
  response_format?: { type: 'text' } | { type: 'json_object' } | { type: 'json_schema'; json_schema: { name?: string; schema: object; strict?: boolean } };
  /** Added to these tokens' logits: `{ "id": bias }` (-100 bans a token). */
  logit_bias?: Record<string, number>;
  signal?: AbortSignal;
}

export type FinishReason = 'stop' | 'length' | 'abort';

export interface ChatUsage {
  /** Every token of the prompt, cached ones included. */
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
  /** Prompt tokens not read again: a kept conversation state already held them. */
  cached_tokens: number;
  prompt_tokens_details: { cached_tokens: number };
  extra: {
    prefill_tokens: number;
    prefill_tokens_per_s: number;
    decode_tokens_per_s: number;
    time_to_first_token_s: number;
    e2e_latency_s: number;
    backend: 'webgpu' | 'cpu';
  };
}

export interface ChatCompletion {
  id: string;
  object: 'chat.completion';
  created: number;
  model: string;
  choices: [{ index: 0; message: { role: 'assistant'; content: string; reasoning?: string }; finish_reason: FinishReason }];
  usage: ChatUsage;
}

export interface ChatCompletionChunk {
  id: string;
  object: 'chat.completion.chunk';
  created: number;
  model: string;
  choices: [{ index: 0; delta: { role?: 'assistant'; content?: string; reasoning?: string }; finish_reason: FinishReason | null }];
  /** On the last chunk. */
  usage?: ChatUsage;
}

/** A conversation's kept state: the text and token ids it has read, and the state blob. */
export interface SavedConversation {
  text: string;
  ids: number[];
  state: Uint8Array;
}

export interface Chat {
  completions: {
    create(params: ChatCompletionCreateParams & { stream: true }): Promise<AsyncIterable<ChatCompletionChunk>>;
    create(params: ChatCompletionCreateParams & { stream?: false }): Promise<ChatCompletion>;
  };
  /** The kept state of `messages` (ending with the assistant's answer), or null if none is kept. */
  saveConversation(messages: ChatMessage[], options?: { think?: Think }): Promise<SavedConversation | null>;
  /** Bring a saved conversation back (after a reload): the next request extending it reads only
   * its new turn. STATE_MISMATCH for another model's state. */
  restoreConversation(saved: SavedConversation): Promise<void>;
}

/** The G1 chat prompt for `messages` (exactly what create() feeds the model). */
export declare function formatChat(messages: ChatMessage[], options?: { think?: Think }): string;
/** Splits a streamed answer into reasoning (<think>…</think>) and content. */
export declare class ReplySplitter {
  constructor(think?: Think);
  push(text: string): { reasoning: string; content: string };
  finish(): { reasoning: string; content: string };
}
export declare const TURN_STOPS: readonly string[];
export declare const CHAT_DEFAULTS: Readonly<{ temperature: number; top_p: number; top_k: number; presence_penalty: number; frequency_penalty: number; penalty_decay: number; max_tokens: number }>;
export declare const CHAT_CACHE_BYTES: number;
/** The SQL grammar (GBNF) of a table `NAME(col TYPE, ...)` and the table as prompts write it
 * (after a model is loaded, or `await Gander.init()`); with a question, its text literals are
 * runs of up to 6 of the question's words. */
export declare function sqlTable(line: string, question?: string): { schema: string; grammar: string };

export interface Model {
  readonly info: Readonly<ModelInfo>;
  readonly tokenizer: Tokenizer;
  /** OpenAI-shaped chat with the G1 template; follow-up turns read only their new tokens. */
  readonly chat: Chat;
  /** One question about a table to one SQL statement (the text-to-SQL demo model): the prompt
   * `Table: NAME(cols)\nQuestion: Q\nSQL:` (with `state`, primed from the table line and solved
   * examples, only `Question: Q\nSQL:`), greedy, one line, under the table's SQL grammar unless
   * `grammar: false`; the grammar's text literals are runs of the question's words unless
   * `anyValue: true`. */
  sql(table: string, question: string, options?: { state?: Uint8Array | ArrayBuffer; grammar?: boolean; anyValue?: boolean; signal?: AbortSignal }): Promise<string>;
  session(): Session;
  /** What the WebGPU device did since the last call (a decoded token after the first few: 0
   * bind groups and buffers created, 1 submit, 4 bytes read back); `null` on the CPU path. */
  deviceCounters(): Promise<DeviceCounters | null>;
  /** Free weights, sessions and (with worker: true) the worker. */
  dispose(): Promise<void>;
}

export interface DeviceCounters {
  dispatches: number;
  bindGroupsCreated: number;
  buffersCreated: number;
  submits: number;
  readbackBytes: number;
}

export interface QuantCost {
  quant: 'f32' | 'f16' | 'int8' | 'q4';
  /** The Gander file's size (ModelStore.put(.., { quant }), `gander convert`). */
  fileBytes: number;
  /** The weights in memory on either backend. */
  memoryBytes: number;
  /** store: fits the storage quota left (null: unknown); cpu: fits wasm memory with room to run;
   * webgpu: an adapter exists and can bind a weight row (null: no WebGPU). */
  fits: { store: boolean | null; cpu: boolean; webgpu: boolean | null };
}

export interface Inspection {
  config: { vocab: number; embd: number; layers: number; heads: number; head_size: number; ffn: number; rank_w: number; rank_a: number; rank_v: number; rank_g: number; layer0_has_v: boolean; /** DeepEmbed (rwkv7a) rank, 0 for a plain RWKV-7 model. */ deep_embed: number };
  params: number;
  /** `official`, `transformers (rwkv7.)`, `flash-linear-attention` or `web-rwkv (.st)`. */
  layout: string;
  /** How the matrices are stored: `bf16`, `f16`, `f32`, or a Gander quantisation. */
  stored: string;
  stateBytes: number;
  fileBytes: number;
  /** Bytes read to inspect (a few hundred KB at most for a .pth or safetensors file). */
  fetchedBytes: number;
  quants: QuantCost[];
  browser: { storageQuota: number | null; storageUsage: number | null; adapter: { name: string; isFallbackAdapter: boolean; maxBufferSize: number; maxStorageBufferBindingSize: number } | null };
}

export declare class Gander {
  static load(source: ModelSource, options?: LoadOptions): Promise<Model>;
  /** A checkpoint's config and costs from its headers alone (range requests for a URL). */
  static inspect(source: string | URL | Blob | ArrayBuffer | Uint8Array, options?: { signal?: AbortSignal; wasmUrl?: string | URL }): Promise<Inspection>;
  /** Load the wasm module ahead of time (optional). */
  static init(wasmUrl?: string | URL | BufferSource): Promise<void>;
}
export default Gander;

/** Use another URL for gander_bg.wasm; call before the first load. */
export declare function setWasmUrl(url: string | URL): void;

export interface StoredModel {
  name: string;
  size: number;
  kind: 'safetensors' | 'pth' | 'gguf';
  quant: string;
  /** `{shard: true, quant: null}` for a cached shard of a model (Gander.load of several files). */
  info: { layers: number; embd: number; heads: number; headSize: number; vocab: number; quant: string; gander: boolean; params: number; stateBytes: number; shard?: boolean };
  chunkSize: number;
  chunks: number;
  createdAt: number;
  writeId: string;
  /** A URL's cached copy (`url:<URL>`): the ETag, Last-Modified and size it was checked against. */
  validator?: string;
}

export interface StoredState {
  name: string;
  size: number;
  createdAt: number;
  fingerprint: string;
}

export interface PutOptions {
  /** Convert to a Gander file with these matrices first (needed to stream a .pth). */
  quant?: Quant;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
  /** Run the conversion in a Web Worker. */
  worker?: boolean;
}

/**
 * Models and saved states in IndexedDB. Between tabs (Web Locks): a load from the store holds the
 * model's reader lock until it has read the model, and `put` (when it swaps the new model in) and
 * `delete` of the same name wait for running loads; two `put`s of one name: the second gets BUSY.
 * Storage failures are `IO` (what failed, and to retry) or `QUOTA` errors.
 */
export declare class ModelStore {
  static open(options?: { database?: string; chunkSize?: number }): Promise<ModelStore>;
  readonly database: string;
  readonly chunkSize: number;
  put(name: string, source: ArrayBuffer | Uint8Array | Blob | File | string | URL, options?: PutOptions): Promise<Omit<StoredModel, never>>;
  list(): Promise<StoredModel[]>;
  /** Waits for loads of the model that are reading it (in any tab) to finish. */
  delete(name: string): Promise<boolean>;
  /** The manifest of a complete model, or null. */
  manifest(name: string): Promise<StoredModel | null>;
  usage(): Promise<{ usage: number | null; quota: number | null; models: number; persisted: boolean }>;
  /** State names are per model: `model`'s "intro" and another model's "intro" are two states. */
  putState(model: Model, name: string, session: Session): Promise<{ name: string; size: number; createdAt: number }>;
  /** null if `model` has no such state; StateMismatchError if only other models have a state of
   * that name. States saved by older versions (one namespace for all models) still load for the
   * model they were saved with. */
  getState(model: Model, name: string): Promise<Uint8Array | null>;
  listStates(model?: Model): Promise<StoredState[]>;
  /** Delete `model`'s state `name`. */
  deleteState(model: Model, name: string): Promise<void>;
  /** @deprecated The older form: deletes the states named `name` of every model. */
  deleteState(name: string): Promise<void>;
  /** Delete leftovers of interrupted writes (done by open()). Resolves to how many writes. */
  cleanup(): Promise<number>;
  close(): void;
}

export declare class GanderError extends Error {
  /** 'NO_WEBGPU' | 'ADAPTER_LIMITS' | 'BAD_MODEL' | 'BAD_INPUT' | 'QUOTA' | 'ABORTED' | 'STATE_MISMATCH' | 'DEVICE_LOST' | 'BUSY' | 'NOT_FOUND' | 'UNSUPPORTED' | 'IO' | 'DISPOSED' | 'WORKER' | 'WASM_LOAD' | 'NO_STORAGE' | 'OUT_OF_MEMORY' | 'INTERNAL' */
  readonly code: string;
}
export declare class AbortedError extends GanderError {}
export declare class QuotaError extends GanderError {
  readonly needed?: number;
  readonly available?: number | null;
  readonly quota?: number | null;
}
export declare class BadModelError extends GanderError {}
export declare class BadInputError extends GanderError {}
export declare class StateMismatchError extends GanderError {}
export declare class NoWebGPUError extends GanderError {}
export declare class DeviceLostError extends GanderError {}
/** OUT_OF_MEMORY: the wasm engine (at most 4 GiB per page or worker) or the browser could not
 * allocate memory. A session whose call ran out lost its state and is disposed (later calls:
 * DISPOSED, create a new session); its model works on. On WebGPU the models on the device are
 * disposed (load them again). */
export declare class OutOfMemoryError extends GanderError {
  /** Bytes of wasm memory in use when it ran out. */
  readonly wasmBytes: number | null;
  /** Bytes the failed call asked for, when known. */
  readonly requested: number | null;
}
