// The layout is the architecture (see the README): this reads every module's
// imports and fails when a layer reaches where it must not.
//   wire/    pure, shared by both sides: imports nothing of ours outside wire/
//   io/      how datagrams move (dgram, the native module): wire/ only
//   server/  the relay: wire/ and io/, never client/ or cli/
//   client/  wire/ and io/, never server/ or cli/
//   cli/     the only code that touches `process`; nothing imports it
//   index.ts re-exports, implements nothing
import t from 'tap';
import * as ts from 'typescript';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const src = resolve(__dirname, '..', 'src');

function modules(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? modules(p) : p.endsWith('.ts') ? [p] : [];
  });
}

/** Our own modules a file imports or re-exports, as paths relative to src/ ('server/relay-server'). */
export function localImports(file: string, text: string): string[] {
  const out: string[] = [];
  const re = /(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s+'(\.[^']+)'|require\('(\.[^']+)'\)|import\('(\.[^']+)'\)/g;
  for (const m of text.matchAll(re)) {
    const spec = m[1] ?? m[2] ?? m[3]!;
    out.push(relative(src, resolve(dirname(file), spec)));
  }
  return out;
}

const layerOf = (path: string): string => (path.includes('/') ? path.slice(0, path.indexOf('/')) : path);

/** The rule each layer obeys; returns a complaint or undefined. */
export function violation(fromLayer: string, target: string): string | undefined {
  const to = layerOf(target);
  if (to === 'cli' && fromLayer !== 'cli') return 'nothing outside cli/ imports cli/';
  if (fromLayer === 'wire' && to !== 'wire') return 'wire/ imports nothing of ours outside wire/';
  if (fromLayer === 'io' && to !== 'io' && to !== 'wire') return 'io/ imports only wire/';
  if (fromLayer === 'server' && to === 'client') return 'server/ never imports client/';
  if (fromLayer === 'client' && to === 'server') return 'client/ never imports server/';
  return undefined;
}

t.test('the rules themselves catch what they must', async (t) => {
  t.equal(violation('client', 'server/session-table'), 'client/ never imports server/');
  t.equal(violation('server', 'client/relay-client'), 'server/ never imports client/');
  t.equal(violation('wire', 'server/config'), 'wire/ imports nothing of ours outside wire/');
  t.equal(violation('server', 'cli/options'), 'nothing outside cli/ imports cli/');
  t.equal(violation('io', 'server/config'), 'io/ imports only wire/');
  t.equal(violation('server', 'io/native-io'), undefined);
  t.equal(violation('cli', 'server/relay-server'), undefined);
  t.same(localImports(join(src, 'client', 'x.ts'), "import type { A } from '../server/a';\nexport { B } from './b';\nconst c = require('./c');"), [
    'server/a',
    'client/b',
    'client/c',
  ]);
});

t.test('every module keeps to its layer', async (t) => {
  const files = modules(src);
  t.ok(files.length > 20, `${files.length} modules read`);
  for (const file of files) {
    const rel = relative(src, file);
    const layer = layerOf(rel);
    const text = readFileSync(file, 'utf8');
    for (const target of localImports(file, text)) {
      const why = violation(layer, target);
      if (why !== undefined) t.fail(`${rel} imports ${target}: ${why}`);
    }
    // Only cli/ touches the process: argv, env, exit, signals, stdio.
    const code = text.replace(/\/\/.*$/gm, '').replace(/\/\*[\s\S]*?\*\//g, '');
    if (layer !== 'cli' && /\bprocess\s*\./.test(code)) t.fail(`${rel} touches process (only cli/ may)`);
  }
});

t.test('index.ts re-exports and implements nothing', async (t) => {
  const code = readFileSync(join(src, 'index.ts'), 'utf8').replace(/\/\/.*$/gm, '');
  const statements = code
    .split(';')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  for (const s of statements) t.match(s, /^export (type )?(\*|\{[^}]*\}) from '\.\/[a-z/-]+'$/, s.slice(0, 60));
});

/** A class past 250 lines has taken on a second job (issue 17): split it rather than raise this. */
const MAX_CLASS_LINES = 250;

/** Each class of a module with its length in lines, declaration to closing brace. */
export function classLengths(file: string, text: string): Array<{ name: string; lines: number }> {
  const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
  const out: Array<{ name: string; lines: number }> = [];
  const visit = (node: ts.Node): void => {
    if (ts.isClassDeclaration(node)) {
      const line = (pos: number): number => sf.getLineAndCharacterOfPosition(pos).line;
      out.push({ name: node.name?.text ?? '(anonymous)', lines: line(node.getEnd()) - line(node.getStart(sf)) + 1 });
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

t.test(`no class over ${MAX_CLASS_LINES} lines`, async (t) => {
  t.same(classLengths('x.ts', 'export class A {\n  a = 1;\n}\nclass B {}\n'), [
    { name: 'A', lines: 3 },
    { name: 'B', lines: 1 },
  ]);
  let biggest = { name: '', lines: 0 };
  for (const file of modules(src)) {
    for (const c of classLengths(file, readFileSync(file, 'utf8'))) {
      if (c.lines > biggest.lines) biggest = c;
      if (c.lines > MAX_CLASS_LINES) t.fail(`${relative(src, file)}: class ${c.name} is ${c.lines} lines`);
    }
  }
  t.ok(biggest.lines > 100, `the biggest is ${biggest.name}, ${biggest.lines} lines`);
});
