// The loader (chat-widget.js) preloads exactly the modules the widget imports.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";

const widgetDir = new URL("../../client_demo/widget/", import.meta.url);
const read = (name) => readFileSync(new URL(name, widgetDir), "utf8");

/** widget.js and what it imports at run time, transitively (JSDoc's import() types are not loaded). */
function importClosure(entry) {
  const seen = new Set();
  const visit = (name) => {
    if (seen.has(name)) return;
    seen.add(name);
    for (const [, imported] of read(name).matchAll(/^import [^;]*? from "\.\/([\w-]+\.js)";$/gm)) visit(imported);
  };
  visit(entry);
  return seen;
}

test("the loader's module list is the widget's import graph", () => {
  const list = read("chat-widget.js").match(/const MODULES = \[([^\]]*)\]/);
  assert.ok(list, "chat-widget.js declares MODULES");
  const preloaded = Array.from(list[1].matchAll(/"([\w-]+\.js)"/g), (match) => match[1]);
  assert.deepEqual(new Set(preloaded), importClosure("widget.js"));
  assert.equal(preloaded.length, new Set(preloaded).size);
});

test("every module is type-checked", () => {
  for (const name of readdirSync(widgetDir).filter((file) => file.endsWith(".js"))) {
    assert.match(read(name), /^\/\/ @ts-check\n/, `${name} starts with // @ts-check`);
  }
});
