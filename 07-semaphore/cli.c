/* cli.c - flags and environment variables, one table for both (see cli.h).
 *
 * tokio counterpart: clap's derive API with `env = "..."` attributes.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* is_verbose: "-v", "-vv", "-vvv" ... */
static bool is_verbose(const char *arg)
{
    return arg[0] == '-' && arg[1] == 'v' && strspn(arg + 1, "v") == strlen(arg + 1);
}

enum cli_result cli_read(int argc, char **argv, const struct cli_setting *settings, size_t n,
                         const char **values, const char **sources, int *verbose)
{
    for (size_t i = 0; i < n; i++)
        values[i] = sources[i] = NULL;
    for (int a = 1; a < argc; a++) { /* the flags, in order; the last one wins */
        const char *arg = argv[a];
        if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0)
            return CLI_HELP;
        if (is_verbose(arg)) {
            *verbose += (int)strlen(arg) - 1;
            continue;
        }
        size_t i = 0, len = 0;
        for (; i < n; i++) { /* "--switch", "--name value" or "--name=value" */
            if (settings[i].flag == NULL)
                continue;
            len = strlen(settings[i].flag);
            if (strncmp(arg, settings[i].flag, len) != 0)
                continue;
            if (settings[i].is_switch ? arg[len] == '\0' : arg[len] == '=' || arg[len] == '\0')
                break;
        }
        if (i == n) { /* "x" or "-" is an argument, not a mistyped option */
            if (arg[0] != '-' || arg[1] == '\0')
                fprintf(stderr, "error: unexpected argument '%s' (see --help)\n", arg);
            else
                fprintf(stderr, "error: unknown option '%s' (see --help)\n", arg);
            return CLI_ERROR;
        }
        sources[i] = settings[i].flag;
        if (settings[i].is_switch) {
            values[i] = "";
        } else if (arg[len] == '=') {
            values[i] = arg + len + 1;
        } else if (a + 1 < argc) {
            values[i] = argv[++a];
        } else {
            fprintf(stderr, "error: option '%s' needs a value (see --help)\n", arg);
            return CLI_ERROR;
        }
    }
    for (size_t i = 0; i < n; i++) { /* then the environment, for what no flag set */
        if (values[i] == NULL && settings[i].env != NULL) {
            values[i] = getenv(settings[i].env);
            if (values[i] != NULL)
                sources[i] = settings[i].env;
        }
    }
    return CLI_OK;
}
