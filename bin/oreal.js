#!/usr/bin/env node
// The `oreal` command. This small file is tracked in git with its executable bit, so the bin stays runnable however
// dist/ is rebuilt (`npm test` deletes dist/ and tsc writes every file anew, without that bit); it only loads the
// compiled entry point, src/cli/main.ts.
const entry = new URL('../dist/src/cli/main.js', import.meta.url);
try {
  await import(entry.href);
} catch (err) {
  if (err?.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('dist/src/cli/main.js')) {
    process.stderr.write('oreal: error: the package is not built (dist/src/cli/main.js is missing): run `npm run build`\n');
    process.exitCode = 1;
  } else {
    throw err;
  }
}
