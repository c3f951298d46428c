// Fault injection for the package's own tests. Not part of the API: package.json "exports" does
// not expose this file (`import 'gander-rwkv/hooks.js'` fails); the tests import it by path.
// Every hook is null in normal use.

export const hooks = {
  /** Before a ModelStore write stores chunk `index`: `(store, index, count, name)`. May await
   *  (to hold a write open) or throw (a DOMException to simulate a failing disk, or
   *  SIMULATED_CRASH to stop as a closed tab would, leaving its chunks behind). */
  beforeChunk: null,
  /** Before a load from the ModelStore reads stored chunk `index`: `(store, name, index)`.
   *  May await (a slow disk) or throw. */
  beforeRead: null,
};

/** Thrown by `beforeChunk` to stop a write with no cleanup, as a tab closed mid-write would. */
export const SIMULATED_CRASH = Symbol('simulated crash');
