// A Vite app using the package as a user would (`import ... from 'gander-rwkv'`), on the page's
// thread and in the worker; tests/e2e/vite.test.mjs builds and runs it.
import { Gander } from 'gander-rwkv';

const out = document.getElementById('out');
const res = {};
for (const worker of [false, true]) {
  const m = await Gander.load('/model.safetensors', { worker });
  const s = m.session();
  let text = '';
  for await (const ev of s.generate('The ', { temperature: 0, maxTokens: 12 })) text += ev.text;
  res[worker ? 'worker' : 'page'] = { backend: m.info.backend, text };
  await m.dispose();
}
out.textContent = JSON.stringify(res);
document.title = 'done';
