// Usage: node validate.mjs FILE [FILE...]
// Prints one JSON line per file: {"file", "errors": [{"code", "message", "path"}], "warnings": n}
// and exits 1 when any file has an error-level diagnostic.
import { readFileSync } from "node:fs";
import { Parser } from "@asyncapi/parser";

const parser = new Parser();
let failed = false;
for (const file of process.argv.slice(2)) {
  const { document, diagnostics } = await parser.parse(readFileSync(file, "utf8"), { source: file });
  const errors = diagnostics
    .filter((d) => d.severity === 0)
    .map((d) => ({ code: d.code, message: d.message, path: d.path.join("/") }));
  const warnings = diagnostics.filter((d) => d.severity === 1).length;
  if (errors.length > 0 || document === undefined) failed = true;
  console.log(JSON.stringify({ file, errors, warnings }));
}
process.exit(failed ? 1 : 0);
