// 9. The README's examples run as written: each ```js block is saved as an .mjs file
// inside the package (so `@stewrd/client` resolves to this build) and run with node
// against a fresh project, with STEWRD_URL and STEWRD_API_KEY set.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { newProject, SERVER_URL } from "./helpers.js";

const run = promisify(execFile);
const pkg = new URL("../", import.meta.url); // dist-test/ → the package

const readme = await readFile(new URL("README.md", pkg), "utf8");
const blocks = [...readme.matchAll(/^```js\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);

test("the README has runnable examples", () => {
  assert.ok(blocks.length >= 5, `found ${blocks.length} js blocks`);
});

for (const [i, code] of blocks.entries()) {
  const title = code.split("\n")[0]!.replace(/^\/\/\s*/, "");
  test(`README example ${i + 1}: ${title}`, async () => {
    const { apiKey } = await newProject(`readme-${i + 1}`);
    const dir = new URL("dist-test/readme/", pkg);
    await mkdir(dir, { recursive: true });
    const file = fileURLToPath(new URL(`example-${i + 1}.mjs`, dir));
    await writeFile(file, code);
    const { stdout } = await run(process.execPath, [file], {
      env: { ...process.env, STEWRD_URL: SERVER_URL, STEWRD_API_KEY: apiKey },
      timeout: 90_000,
    }).catch((err: { stdout?: string; stderr?: string; message: string }) => {
      assert.fail(`example ${i + 1} failed: ${err.message}\n${err.stdout ?? ""}\n${err.stderr ?? ""}`);
    });
    assert.ok(stdout.trim().length > 0, "the example prints what it did");
  });
}
