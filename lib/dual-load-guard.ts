/**
 * The package ships two builds, ES modules (dist/) and CommonJS (dist/cjs/). One process that
 * loaded both (or two installed copies) would have two of everything module-level: two runner
 * registries, two lock contexts, two sets of error classes (`instanceof` fails across them), and
 * locks taken through one copy would be invisible to the other. Every entry point imports this
 * module first, so the second copy to load throws at once, naming both files and the fix.
 * Loading the same file again (a test runner's module reset) is fine.
 */
import { fileURLToPath } from 'node:url';

const PACKAGE = 'nestjs-zk-lock';
const LOADED = Symbol.for(`${PACKAGE}:loaded-from`);

interface Copy {
  /** This module's file, as the runtime names it (a file: URL for an ES module, a path for CommonJS). */
  readonly location: string;
  readonly format: 'ESM' | 'CommonJS';
  readonly file: string;
}

/** Where this module was loaded from: the runtime's own name for the file of the current frame. */
function thisCopy(): Copy {
  const prepare = Object.getOwnPropertyDescriptor(Error, 'prepareStackTrace');
  const limit = Error.stackTraceLimit;
  let location = 'unknown';
  try {
    Error.stackTraceLimit = 1;
    Error.prepareStackTrace = (_error, frames) => frames[0]?.getFileName() ?? 'unknown';
    location = String(new Error().stack);
  } finally {
    if (prepare) Object.defineProperty(Error, 'prepareStackTrace', prepare);
    else Reflect.deleteProperty(Error, 'prepareStackTrace');
    Error.stackTraceLimit = limit;
  }
  const isUrl = location.startsWith('file:');
  return { location, format: isUrl ? 'ESM' : 'CommonJS', file: isUrl ? fileURLToPath(location) : location };
}

/** The message for a second copy: both files and what to change. */
function dualLoadMessage(first: Copy, second: Copy): string {
  const both = `${PACKAGE} was loaded twice in one process`;
  if (first.format !== second.format) {
    return (
      `${both}, as ${first.format} (${first.file}) and as ${second.format} (${second.file}): each copy ` +
      `would have its own locks, lock context and error classes. Load it one way everywhere: require() in ` +
      `a CommonJS app (TypeScript "module": "commonjs", Jest), import in an ESM app. An import() of it ` +
      `from CommonJS code, or a createRequire() of it from ESM code, loads the other build.`
    );
  }
  return (
    `${both}, from two installed copies (${first.file} and ${second.file}): each copy would have its ` +
    `own locks, lock context and error classes. Install one copy (\`npm ls ${PACKAGE}\` shows who ` +
    `depends on which; \`npm dedupe\`, or one version range for all of them).`
  );
}

const here = thisCopy();
const registry = globalThis as typeof globalThis & { [LOADED]?: Copy };
const first = registry[LOADED];
if (first === undefined) {
  registry[LOADED] = here;
} else if (first.location !== here.location) {
  throw new Error(dualLoadMessage(first, here));
}
