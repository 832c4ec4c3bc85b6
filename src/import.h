/*
 * import: the `fluxrelay import` command (SPEC §2, §14). Reads Flux
 * manifests from files or standard input, has import_map turn them into a
 * config, prints its warnings on stderr, writes the secret files (mode 0600)
 * into --secrets-dir and the config to stdout or, atomically, to -o FILE.
 * Nothing is written unless the import succeeds. Called from main's thread.
 */
#ifndef FLUXRELAY_IMPORT_H
#define FLUXRELAY_IMPORT_H

/*
 * argv: the arguments after "import". Returns the exit status: 0 imported,
 * 1 nothing to import or a file could not be read or written, 2 usage,
 * 65 invalid YAML.
 */
int import_main(int argc, char **argv);

#endif
