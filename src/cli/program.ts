// How every `oreal` command reports problems: one prefix (`oreal: error: ...`) for usage errors and failures alike,
// a usage error followed by one line pointing to the command's --help (not the whole help), required options
// marked "(required)" in the help, and the exit status of a run stopped by Ctrl-C.
import { Help, type Command, type Option } from 'commander';

/** Exit status of a run stopped by Ctrl-C (128 + SIGINT, as shells report it). */
export const INTERRUPTED_EXIT = 130;

/** The prefix of every error line the CLI prints. */
export const ERROR_PREFIX = 'oreal: error: ';

function fullName(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c !== null; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/** Apply the conventions above to `program` and every sub-command registered on it (call after registering). */
export function configureErrors(program: Command): void {
  const visit = (cmd: Command): void => {
    cmd.configureOutput({
      // commander's own messages start with "error: " and so do the ones commands pass to cmd.error().
      outputError: (str, write) => write(`${ERROR_PREFIX}${str.replace(/^error: /, '')}`),
    });
    cmd.showHelpAfterError(`(run '${fullName(cmd)} --help' for usage)`);
    cmd.configureHelp({
      optionDescription(this: Help, option: Option): string {
        const text = Help.prototype.optionDescription.call(this, option);
        return option.mandatory ? `${text} (required)` : text;
      },
    });
    for (const sub of cmd.commands) visit(sub);
  };
  visit(program);
}

/** Report an error that ended a command (not a usage error) and set a failing exit status. */
export function reportFatal(err: unknown): void {
  process.stderr.write(`${ERROR_PREFIX}${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
}
