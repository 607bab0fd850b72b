// Removes build output folders, so that files of deleted sources do not linger in
// the package or run as tests. (`rm -rf` is not there on every developer's machine.)
import { rmSync } from "node:fs";

for (const dir of process.argv.slice(2)) rmSync(dir, { recursive: true, force: true });
