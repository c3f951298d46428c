// A module worker that imports other modules needs ES output for workers (Vite's default is iife).
export default { worker: { format: 'es' }, build: { target: 'es2022', outDir: 'dist', emptyOutDir: true }, logLevel: 'warn' };
