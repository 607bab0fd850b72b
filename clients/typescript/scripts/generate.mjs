// Generates src/schema.d.ts from ../openapi.json (the document `GET /openapi.json`
// serves), or with --check verifies that src/schema.d.ts is what generation gives now
// and exits 1 on any difference, so CI catches a document the types no longer match.
//
// Why not the bare `openapi-typescript ../openapi.json` CLI: the document repeats some
// operationIds (`show` names seven operations, `list` three, …). openapi-typescript
// then emits one `operations` entry per repeated id, the later ones collide, and
// `paths["/v1/sessions/{id}"]["get"]` ends up typed as some other "show". Dropping the
// repeated ids (in memory only) makes openapi-typescript inline those operations under
// `paths`, each with its own types. Unique ids are kept as they are.
import { readFile, writeFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import openapiTS, { astToString } from "openapi-typescript";

const here = (p) => fileURLToPath(new URL(p, import.meta.url));
const DOC = here("../../openapi.json");
const OUT = here("../src/schema.d.ts");
const METHODS = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

const BANNER = `/**
 * Generated from clients/openapi.json by scripts/generate.mjs (openapi-typescript).
 * Do not edit: run \`npm run generate\`; \`npm run check-types\` fails when this file
 * and the document disagree.
 */

`;

/** Removes operationIds that more than one operation uses; returns the ids removed. */
function dropRepeatedOperationIds(doc) {
  const ops = Object.values(doc.paths ?? {}).flatMap((item) =>
    METHODS.map((m) => item[m]).filter(Boolean),
  );
  const count = new Map();
  for (const op of ops) {
    if (op.operationId) count.set(op.operationId, (count.get(op.operationId) ?? 0) + 1);
  }
  const repeated = [...count].filter(([, n]) => n > 1).map(([id]) => id);
  for (const op of ops) {
    if (repeated.includes(op.operationId)) delete op.operationId;
  }
  return repeated;
}

async function generate() {
  const doc = JSON.parse(await readFile(DOC, "utf8"));
  dropRepeatedOperationIds(doc);
  // emptyObjectsUnknown: `{"type": "object"}` with no properties (tool parameters, tool_calls,
  // required_action, output_json) is any object, not `Record<string, never>`, which
  // would refuse every value.
  const ast = await openapiTS(doc, { silent: true, emptyObjectsUnknown: true });
  return BANNER + astToString(ast);
}

const fresh = await generate();
if (process.argv.includes("--check")) {
  let current = "";
  try {
    current = await readFile(OUT, "utf8");
  } catch {
    // A missing file is a difference like any other.
  }
  if (current !== fresh) {
    const a = current.split("\n");
    const b = fresh.split("\n");
    const line = a.findIndex((l, i) => l !== b[i]);
    console.error(
      `src/schema.d.ts does not match ../openapi.json (first difference at line ${line + 1}):\n` +
        `  file:      ${JSON.stringify(a[line] ?? "<end of file>")}\n` +
        `  generated: ${JSON.stringify(b[line] ?? "<end of file>")}\n` +
        "Run `npm run generate`, then fix the client where the types changed.",
    );
    process.exit(1);
  }
  console.log("src/schema.d.ts matches ../openapi.json");
} else {
  await writeFile(OUT, fresh);
  console.log(`wrote ${OUT}`);
}
