/* tools.c - `blocking hash`, `verify`, `compress` and `decompress`.
 *
 * tokio counterpart: a small clap CLI over bcrypt::hash / bcrypt::verify
 * and zstd::stream::copy_encode / copy_decode. In a tokio program these
 * would sit under spawn_blocking; a one-shot tool has no event loop to
 * protect, so each runs on the main thread, and the signal listener's
 * token is what stops a long compression between two chunks.
 *
 * Read it top to bottom: the usage text, the arguments, stdin's password,
 * then one function per tool.
 */
#include "tools.h"

#include "bcrypt.h"
#include "cancel.h"
#include "cli.h"
#include "clock.h"
#include "log.h"
#include "parse.h"
#include "signals.h"
#include "zstdio.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Exit statuses, the same in every program of the repository. */
enum { EXIT_OK = 0, EXIT_RUNTIME = 1, EXIT_USAGE = 2, EXIT_CONTINUE = -1 };

#define TOOLS_LEVEL_MAX 19 /* zstd's levels above 19 need --ultra in its CLI */
#define TOOLS_WHY_SIZE  1024

enum tool { TOOL_HASH, TOOL_VERIFY, TOOL_COMPRESS, TOOL_DECOMPRESS, TOOL_N };

/* Each tool's name and its positional arguments. */
static const struct {
    const char *name;     /* the command */
    int positionals;      /* how many arguments it takes besides options */
    const char *synopsis; /* for "missing ..." messages */
} tools[TOOL_N] = {
    [TOOL_HASH] = {"hash", 0, "hash [--cost N] < PASSWORD"},
    [TOOL_VERIFY] = {"verify", 1, "verify HASH < PASSWORD"},
    [TOOL_COMPRESS] = {"compress", 2, "compress IN OUT [--level N]"},
    [TOOL_DECOMPRESS] = {"decompress", 2, "decompress IN OUT"},
};

bool tools_is_command(const char *name)
{
    for (size_t i = 0; i < TOOL_N; i++)
        if (strcmp(name, tools[i].name) == 0)
            return true;
    return false;
}

void tools_usage(FILE *out)
{
    fprintf(out,
            "usage: blocking hash [--cost N] < PASSWORD      print a bcrypt hash of the password\n"
            "       blocking verify HASH < PASSWORD          does the password match HASH?\n"
            "       blocking compress IN OUT [--level N]     compress file IN into OUT (zstd)\n"
            "       blocking decompress IN OUT               decompress file IN into OUT\n"
            "\n"
            "hash, verify: the password is read from stdin, never from the command line, and\n"
            "is never logged. It is one line: one trailing newline is dropped (as the shell's\n"
            "`read` drops it) and a second line is refused. bcrypt reads at most 72 bytes of a\n"
            "password, so a longer one is refused (exit 2) rather than silently cut; so is an\n"
            "empty one. A terminal does not hide what you type: pipe it, or use `read -s`.\n"
            "  --cost N           hash: bcrypt's cost, 2^N rounds (default 12, the Rust bcrypt\n"
            "                     crate's DEFAULT_COST; 4 to 31; each step doubles the time)\n"
            "verify prints \"match\" (exit 0) or \"mismatch\" (exit 1) on stdout, and exits 2\n"
            "for a HASH that is not a bcrypt hash ($2b$, $2a$ or $2y$, cost, 53 characters).\n"
            "\n"
            "compress, decompress: streaming zstd in chunks of about 128 KiB, so memory stays\n"
            "bounded whatever the size. OUT is written to a hidden temp file in OUT's\n"
            "directory (.OUT.XXXXXX), flushed, and renamed over OUT only once complete: a\n"
            "failed or interrupted run removes it and leaves an existing OUT as it was. The\n"
            "output is the zstd CLI's format both ways (decompress reads concatenated\n"
            "frames, as `cat a.zst b.zst` makes them). Progress on stderr when it is a\n"
            "terminal. SIGINT or SIGTERM stops the job between two chunks.\n"
            "  --level N          compress: zstd level (default 3; 1 to 19)\n"
            "\n"
            "  --log-level LEVEL  LOG_LEVEL   error, warn, info, debug, trace (default error)\n"
            "  -v, -vv                        more verbose\n"
            "\n"
            "exit status: 0  success; verify: the password matches\n"
            "             1  run-time failure (cannot read IN or write OUT, corrupt or\n"
            "                truncated zstd data, a libcrypt error); verify: no match\n"
            "             2  usage error: bad option or value, missing argument, empty,\n"
            "                too long or several-line password, a malformed HASH\n"
            "             130, 143  interrupted by SIGINT or SIGTERM (compress and decompress\n"
            "                clean up first; hash and verify are ended by the signal)\n");
}

/* ---- arguments ----------------------------------------------------------- */

enum setting { S_COST, S_LEVEL, S_LOG, S_N };

static const struct cli_setting settings[S_N] = {
    [S_COST] = {"--cost", NULL, false},
    [S_LEVEL] = {"--level", NULL, false},
    [S_LOG] = {"--log-level", "LOG_LEVEL", false},
};

/* What a tool was asked to do. */
struct request {
    enum tool tool;     /* which one */
    const char *arg[2]; /* its positional arguments: HASH, or IN and OUT */
    unsigned cost;      /* hash */
    int level;          /* compress */
};

/* take_positionals: move the tool's own arguments out of argv, so that
 * cli_read sees options only. The value after an option that takes one
 * ("--cost 10") stays with it; everything after "--" is positional (a
 * file named "-x"). EXIT_CONTINUE or EXIT_USAGE. */
static int take_positionals(int *argc, char **argv, enum tool t, const char **pos)
{
    int want = tools[t].positionals, got = 0, kept = 1;
    bool options = true;
    for (int a = 1; a < *argc; a++) {
        const char *arg = argv[a];
        if (options && strcmp(arg, "--") == 0) {
            options = false;
            continue;
        }
        if (options && arg[0] == '-' && arg[1] != '\0') {
            argv[kept++] = argv[a];
            for (size_t i = 0; i < S_N; i++)
                if (!settings[i].is_switch && strcmp(arg, settings[i].flag) == 0 && a + 1 < *argc) {
                    argv[kept++] = argv[++a];
                    break;
                }
            continue;
        }
        if (got == want) {
            fprintf(stderr, "error: unexpected argument '%s' (see --help)\n", arg);
            return EXIT_USAGE;
        }
        pos[got++] = arg;
    }
    *argc = kept;
    if (got < want) {
        static const char *names[TOOL_N][2] = {[TOOL_VERIFY] = {"HASH", NULL},
                                               [TOOL_COMPRESS] = {"IN", "OUT"},
                                               [TOOL_DECOMPRESS] = {"IN", "OUT"}};
        fprintf(stderr, "error: missing %s: usage: blocking %s\n", names[t][got],
                tools[t].synopsis);
        return EXIT_USAGE;
    }
    return EXIT_CONTINUE;
}

/* read_number: an unsigned setting in [min, max] into *out (left alone if
 * unset). EXIT_CONTINUE or EXIT_USAGE. */
static int read_number(const char *value, const char *source, unsigned min, unsigned max,
                       unsigned *out)
{
    if (value == NULL)
        return EXIT_CONTINUE;
    uint64_t n;
    if (parse_uint(value, min, max, &n) != 0) {
        fprintf(stderr, "error: invalid %s '%s': expected a whole number from %u to %u\n", source,
                value, min, max);
        return EXIT_USAGE;
    }
    *out = (unsigned)n;
    return EXIT_CONTINUE;
}

/* configure: argv (argv[0] the tool's name) into *r, and log_init.
 * EXIT_CONTINUE or the status to exit with. */
static int configure(struct request *r, int argc, char **argv)
{
    size_t t = 0;
    while (t < TOOL_N && strcmp(argv[0], tools[t].name) != 0)
        t++;
    if (t == TOOL_N) { /* main.c asked tools_is_command first */
        fprintf(stderr, "error: unknown command '%s' (see --help)\n", argv[0]);
        return EXIT_USAGE;
    }
    r->tool = (enum tool)t;
    for (int a = 1; a < argc && strcmp(argv[a], "--") != 0; a++)
        if (strcmp(argv[a], "-h") == 0 || strcmp(argv[a], "--help") == 0) {
            tools_usage(stdout);
            return EXIT_OK;
        }
    if (take_positionals(&argc, argv, r->tool, r->arg) != EXIT_CONTINUE)
        return EXIT_USAGE;
    const char *value[S_N], *source[S_N];
    int verbose = 0;
    enum cli_result cr = cli_read(argc, argv, settings, S_N, value, source, &verbose);
    if (cr == CLI_HELP) { /* not reached: -h was looked for above */
        tools_usage(stdout);
        return EXIT_OK;
    }
    if (cr != CLI_OK)
        return EXIT_USAGE;
    if (value[S_COST] != NULL && r->tool != TOOL_HASH) {
        fprintf(stderr, "error: --cost applies only to hash (see --help)\n");
        return EXIT_USAGE;
    }
    if (value[S_LEVEL] != NULL && r->tool != TOOL_COMPRESS) {
        fprintf(stderr, "error: --level applies only to compress (see --help)\n");
        return EXIT_USAGE;
    }
    r->cost = BCRYPT_COST_DEFAULT;
    unsigned level = ZSTDIO_LEVEL_DEFAULT;
    if (read_number(value[S_COST], source[S_COST], BCRYPT_COST_MIN, BCRYPT_COST_MAX, &r->cost) !=
            EXIT_CONTINUE ||
        read_number(value[S_LEVEL], source[S_LEVEL], 1, TOOLS_LEVEL_MAX, &level) != EXIT_CONTINUE)
        return EXIT_USAGE;
    r->level = (int)level;

    /* Tools are quiet: their one result or error line says it all. */
    enum log_level lv = LOG_ERROR;
    if (value[S_LOG] != NULL && log_level_parse(value[S_LOG], &lv) != 0) {
        fprintf(stderr, "error: invalid %s '%s': expected error, warn, info, debug or trace\n",
                source[S_LOG], value[S_LOG]);
        return EXIT_USAGE;
    }
    lv = lv + verbose > LOG_TRACE ? LOG_TRACE : (enum log_level)(lv + verbose);
    log_init(lv);
    return EXIT_CONTINUE;
}

/* ---- the password, from stdin ---------------------------------------------- */

/* wipe: overwrite a buffer that held a password (volatile, so the
 * compiler keeps the stores). */
static void wipe(void *p, size_t n)
{
    volatile unsigned char *b = p;
    while (n-- > 0)
        *b++ = 0;
}

/* read_password: stdin's one line into buf (BCRYPT_MAX_PASSWORD + 2
 * bytes: 72, a newline, and one more to see that there is more) and its
 * length, without the newline. On a terminal it stops at the newline
 * (Enter), elsewhere at end of input: reading at most 74 bytes either
 * way. EXIT_CONTINUE, EXIT_USAGE (empty, too long, several lines, a NUL)
 * or EXIT_RUNTIME (a read error), with the message printed. */
static int read_password(char *buf, size_t size, size_t *len)
{
    bool tty = isatty(STDIN_FILENO);
    size_t n = 0;
    bool eof = false;
    while (n < size && !eof) {
        ssize_t got = read(STDIN_FILENO, buf + n, size - n);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0) {
            fprintf(stderr, "error: cannot read the password from stdin: %s\n", strerror(errno));
            return EXIT_RUNTIME;
        }
        if (got == 0)
            eof = true;
        n += (size_t)got;
        if (tty && memchr(buf, '\n', n) != NULL)
            eof = true;
    }
    const char *nl = memchr(buf, '\n', n);
    if (nl != NULL && (size_t)(nl - buf) + 1 < n) {
        fprintf(stderr, "error: the password must be one line: stdin has more after a newline\n");
        return EXIT_USAGE;
    }
    *len = nl != NULL ? (size_t)(nl - buf) : n;
    if (*len > BCRYPT_MAX_PASSWORD || (!eof && nl == NULL)) {
        fprintf(stderr, "error: password longer than bcrypt's limit of %d bytes\n",
                BCRYPT_MAX_PASSWORD);
        return EXIT_USAGE;
    }
    if (*len == 0) {
        fprintf(stderr, "error: empty password\n");
        return EXIT_USAGE;
    }
    if (memchr(buf, '\0', *len) != NULL) {
        fprintf(stderr, "error: the password contains a NUL byte\n");
        return EXIT_USAGE;
    }
    return EXIT_CONTINUE;
}

/* default_signals: let SIGINT and SIGTERM end the process. signals_init
 * blocked them (for a listener thread to take); hash and verify start no
 * listener: crypt_rn cannot be stopped midway, and nothing needs cleaning
 * up, so the default action is the honest one, and the shell sees 130/143.
 * Only this thread exists, so this mask is the whole process's. */
static void default_signals(void)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);
}

/* print_line: text and a newline on stdout, flushed. EXIT_OK or
 * EXIT_RUNTIME (a closed pipe, a full disk). */
static int print_line(const char *text)
{
    if (printf("%s\n", text) < 0 || fflush(stdout) != 0) {
        fprintf(stderr, "error: cannot write to stdout: %s\n", strerror(errno));
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

/* ---- hash and verify ---------------------------------------------------------- */

static int hash_main(const struct request *r)
{
    char pw[BCRYPT_MAX_PASSWORD + 2], hash[BCRYPT_HASH_SIZE], why[TOOLS_WHY_SIZE];
    size_t len;
    default_signals();
    int status = read_password(pw, sizeof pw, &len);
    if (status != EXIT_CONTINUE)
        goto out_wipe;
    int err = bcrypt_hash(pw, len, r->cost, hash, why, sizeof why);
    if (err != 0) {
        fprintf(stderr, "error: cannot hash: %s\n", why);
        status = err == EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
        goto out_wipe;
    }
    status = print_line(hash);
out_wipe:
    wipe(pw, sizeof pw);
    return status;
}

static int verify_main(const struct request *r)
{
    char pw[BCRYPT_MAX_PASSWORD + 2], why[TOOLS_WHY_SIZE];
    size_t len;
    bool match = false;
    default_signals();
    int status = read_password(pw, sizeof pw, &len);
    if (status != EXIT_CONTINUE)
        goto out_wipe;
    int err = bcrypt_verify(pw, len, r->arg[0], &match, why, sizeof why);
    if (err != 0) {
        fprintf(stderr, "error: cannot verify: %s\n", why);
        status = err == EINVAL ? EXIT_USAGE : EXIT_RUNTIME;
        goto out_wipe;
    }
    status = print_line(match ? "match" : "mismatch");
    if (status == EXIT_OK && !match)
        status = EXIT_RUNTIME; /* 1, as cmp(1) says "differ" */
out_wipe:
    wipe(pw, sizeof pw);
    return status;
}

/* ---- compress and decompress ---------------------------------------------------- */

/* The progress line's state: shown only when stderr is a terminal. */
struct progress {
    const char *verb; /* "compress" or "decompress" */
    int64_t next_ms;  /* do not redraw before this (clock_now_ms) */
    bool shown;       /* a line is on screen, to be erased at the end */
};

static void progress_show(uint64_t done, uint64_t total, void *arg)
{
    struct progress *p = arg;
    int64_t now = clock_now_ms();
    if (now < p->next_ms)
        return;
    p->next_ms = now + 200; /* five redraws a second are plenty */
    double mib = (double)done / (1024.0 * 1024.0);
    if (total > 0)
        fprintf(stderr, "\r%s: %.1f of %.1f MiB read (%u%%)", p->verb, mib,
                (double)total / (1024.0 * 1024.0), (unsigned)(done * 100 / total));
    else
        fprintf(stderr, "\r%s: %.1f MiB read", p->verb, mib);
    p->shown = true;
}

static int zstd_main(const struct request *r)
{
    bool decompress = r->tool == TOOL_DECOMPRESS;
    const char *in = r->arg[0], *out = r->arg[1];
    char why[TOOLS_WHY_SIZE];
    struct cancel_token *token;
    int err = cancel_token_new(&token);
    if (err != 0) {
        fprintf(stderr, "error: cannot create a token: %s\n", strerror(err));
        return EXIT_RUNTIME;
    }
    /* The listener cancels the token on SIGINT/SIGTERM; zstdio looks at
     * it between chunks. A second signal ends the process at once (130 or
     * 143) and may leave the hidden temp file behind: the one case that
     * does, and only if the first signal's chunk had not finished yet. */
    if ((err = signals_listen(token, NULL, NULL)) != 0) {
        fprintf(stderr, "error: cannot start the signal listener: %s\n", strerror(err));
        cancel_token_release(token);
        return EXIT_RUNTIME;
    }
    struct progress p = {decompress ? "decompress" : "compress", 0, false};
    bool tty = isatty(STDERR_FILENO);
    err = zstdio_file(in, out, decompress, r->level, token, tty ? progress_show : NULL, &p, why,
                      sizeof why);
    signals_stop();
    cancel_token_release(token);
    if (p.shown)
        fputs("\r\033[K", stderr); /* erase the progress line */

    if (err == ECANCELED) {
        int signo = signals_received();
        fprintf(stderr, "error: interrupted by %s: '%s' not written\n",
                signo == SIGTERM ? "SIGTERM" : "SIGINT", out);
        return signo != 0 ? 128 + signo : EXIT_RUNTIME;
    }
    if (err != 0) {
        fprintf(stderr, "error: %s\n", why);
        return EXIT_RUNTIME;
    }
    return EXIT_OK;
}

int tools_main(int argc, char **argv)
{
    struct request r = {0};
    int status = configure(&r, argc, argv);
    if (status != EXIT_CONTINUE)
        return status;
    switch (r.tool) {
    case TOOL_HASH:
        return hash_main(&r);
    case TOOL_VERIFY:
        return verify_main(&r);
    default:
        return zstd_main(&r);
    }
}
