/* tests/unit/cli_test.c - table tests for 01-runtime/cli.c, the flag and
 * environment reader every chapter carries. Built and run by
 * tests/01-runtime.bats; prints each failing case and exits 1 if there is
 * any; the last line is "cli: all cases pass". */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures;

enum { S_WORKERS, S_LEVEL, S_TASKS, S_BASE, S_ENVONLY, N };

static const struct cli_setting settings[N] = {
    [S_WORKERS] = {"--workers", "T_WORKERS", false},
    [S_LEVEL] = {"--log-level", "T_LEVEL", false},
    [S_TASKS] = {"--tasks", NULL, false},
    [S_BASE] = {"--baseline", NULL, true},
    [S_ENVONLY] = {NULL, "T_ONLY", false},
};

/* check: run cli_read on the NULL-terminated args (argv[0] added) and
 * compare the result, -v count and every value/source against want_*
 * (NULL: unset). */
static void check(const char *name, const char *const *args, enum cli_result want, int want_verbose,
                  const char *const *want_values, const char *const *want_sources)
{
    char *argv[16] = {"prog"};
    int argc = 1;
    while (args[argc - 1] != NULL)
        argv[argc] = (char *)args[argc - 1], argc++;
    const char *values[N], *sources[N];
    int verbose = 0;
    enum cli_result got = cli_read(argc, argv, settings, N, values, sources, &verbose);
    bool ok = got == want && (want != CLI_OK || verbose == want_verbose);
    for (int i = 0; ok && want == CLI_OK && i < N; i++) {
        const char *v = want_values[i], *s = want_sources[i];
        ok = (v == NULL ? values[i] == NULL : values[i] != NULL && strcmp(values[i], v) == 0) &&
             (s == NULL ? sources[i] == NULL : sources[i] != NULL && strcmp(sources[i], s) == 0);
    }
    if (!ok) {
        printf("%s: result %d (want %d), verbose %d (want %d), or a value/source differs\n", name,
               got, want, verbose, want_verbose);
        failures++;
    }
}

#define ARGS(...)           ((const char *const[]){__VA_ARGS__, NULL})
#define NONE                ((const char *const[]){NULL})
#define VALS(a, b, c, d, e) ((const char *const[]){a, b, c, d, e})

int main(void)
{
    setenv("T_WORKERS", "8", 1);
    setenv("T_ONLY", "x", 1);
    unsetenv("T_LEVEL");
    check("env only", NONE, CLI_OK, 0, VALS("8", NULL, NULL, NULL, "x"),
          VALS("T_WORKERS", NULL, NULL, NULL, "T_ONLY"));
    check("flag wins", ARGS("--workers", "2"), CLI_OK, 0, VALS("2", NULL, NULL, NULL, "x"),
          VALS("--workers", NULL, NULL, NULL, "T_ONLY"));
    check("=value, last wins", ARGS("--workers=3", "--workers=4"), CLI_OK, 0,
          VALS("4", NULL, NULL, NULL, "x"), VALS("--workers", NULL, NULL, NULL, "T_ONLY"));
    check("switch, -vv, -v", ARGS("--baseline", "-vv", "--tasks", "5", "-v"), CLI_OK, 3,
          VALS("8", NULL, "5", "", "x"),
          VALS("T_WORKERS", NULL, "--tasks", "--baseline", "T_ONLY"));
    check("empty value", ARGS("--log-level="), CLI_OK, 0, VALS("8", "", NULL, NULL, "x"),
          VALS("T_WORKERS", "--log-level", NULL, NULL, "T_ONLY"));
    check("help first", ARGS("--help", "--nope"), CLI_HELP, 0, NULL, NULL);
    check("-h", ARGS("-h"), CLI_HELP, 0, NULL, NULL);
    check("unknown", ARGS("--nope"), CLI_ERROR, 0, NULL, NULL);
    check("prefix is not a match", ARGS("--workersx", "1"), CLI_ERROR, 0, NULL, NULL);
    check("switch with a value", ARGS("--baseline=1"), CLI_ERROR, 0, NULL, NULL);
    check("missing value", ARGS("--tasks"), CLI_ERROR, 0, NULL, NULL);
    check("-vx is not -v", ARGS("-vx"), CLI_ERROR, 0, NULL, NULL);
    check("env-only has no flag", ARGS("--T_ONLY", "1"), CLI_ERROR, 0, NULL, NULL);
    check("a positional argument", ARGS("--baseline", "bench"), CLI_ERROR, 0, NULL, NULL);
    check("a lone dash", ARGS("-"), CLI_ERROR, 0, NULL, NULL);
    if (failures > 0) {
        printf("cli: %d cases failed\n", failures);
        return 1;
    }
    printf("cli: all cases pass\n");
    return 0;
}
