/* tests/unit/resp_test.c - table tests and a mutation loop for
 * 03-actor/resp.c, the RESP command parser and reply encoders.
 * Prints each failing case and exits 1 if there is any.
 *
 * tokio counterpart: mini-redis's frame tests and the fuzzing a Frame
 * parser gets; redis's own tests of processMultibulkBuffer's error
 * replies (tests/unit/protocol.tcl).
 *
 * Every parse runs on exact-size heap copies of its input, of argv
 * (max_args entries) and of scratch (max_inline bytes), so that under
 * -fsanitize=address a read past `len` or a write past either is caught
 * instead of landing on a neighbour. */
#include "resp.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A literal and its length, NULs included: RAW("a\0b") is 3 bytes. */
#define RAW(s) s, sizeof(s) - 1

/* The messages, spelled out here so that a change in resp.c shows up. */
#define ERR_MBULK   "Protocol error: invalid multibulk length"
#define ERR_BULK    "Protocol error: invalid bulk length"
#define ERR_DOLLAR  "Protocol error: expected '$'"
#define ERR_CRLF    "Protocol error: bulk string not terminated by CRLF"
#define ERR_COUNT   "Protocol error: too big count string"
#define ERR_LARGE   "Protocol error: command too large"
#define ERR_INLINE  "Protocol error: too big inline request"
#define ERR_QUOTES  "Protocol error: unbalanced quotes in request"
#define ERR_TOOMANY "Protocol error: too many arguments in inline request"

/* The limits of the table: small enough to reach each one by hand; the
 * bulk cap is redis's proto-max-bulk-len default (512 MiB). */
static const struct resp_limits lim_default = {
    .max_args = 8,
    .max_bulk = (size_t)512 * 1024 * 1024,
    .max_inline = 64,
    .max_frame = 1024,
};

static int failures;

/* What one parse said, with the arguments rendered for comparison. */
struct parsed {
    enum resp_status status; /* the answer */
    size_t argc;             /* *argc */
    size_t consumed;         /* *consumed */
    const char *error;       /* *error */
    char args[2048];         /* argv as "[a][b]", see render */
};

/* malloc that cannot fail quietly, and gives a real block for 0 bytes. */
static void *xmalloc(size_t n)
{
    void *p = malloc(n > 0 ? n : 1);
    if (p == NULL) {
        perror("malloc");
        exit(1);
    }
    return p;
}

/* Print bytes as a C literal would show them: "*1\r\n$4\r\nPING\r\n". */
static void print_escaped(const char *text, size_t len)
{
    putchar('"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '\r' || c == '\n')
            printf(c == '\r' ? "\\r" : "\\n");
        else if (c >= ' ' && c < 0x7f && c != '"' && c != '\\')
            putchar(c);
        else
            printf("\\x%02x", c);
    }
    putchar('"');
}

/* argv as "[SET][k][a\x00b]": brackets show empty arguments and the
 * boundaries, and any byte that is not printable ASCII (or is a bracket or
 * a backslash) becomes \xHH. Truncated at out's size. */
static void render(const struct resp_arg *argv, size_t argc, char *out, size_t size)
{
    size_t pos = 0;
    out[0] = '\0';
    for (size_t i = 0; i < argc; i++) {
        pos += (size_t)snprintf(out + pos, size - pos, "[");
        for (size_t k = 0; k < argv[i].len && pos < size; k++) {
            unsigned char c = (unsigned char)argv[i].data[k];
            if (c >= ' ' && c < 0x7f && c != '[' && c != ']' && c != '\\')
                pos += (size_t)snprintf(out + pos, size - pos, "%c", c);
            else
                pos += (size_t)snprintf(out + pos, size - pos, "\\x%02x", c);
        }
        if (pos < size)
            pos += (size_t)snprintf(out + pos, size - pos, "]");
        if (pos >= size)
            return;
    }
}

/* Whether p[0..n) lies within base[0..size). Compared as integers: < on
 * pointers into different objects is undefined. */
static int within(const char *p, size_t n, const char *base, size_t size)
{
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)base;
    return a >= lo && a - lo <= size && n <= size - (a - lo);
}

/* Parse text[0..len) from exact-size heap copies and check the contract
 * that holds for any input: the outputs for each answer, argv inside buf
 * or scratch, "not yet" only while within the limits. */
static enum resp_status parse_copy(const char *text, size_t len, const struct resp_limits *lim,
                                   struct parsed *p)
{
    char *copy = xmalloc(len);
    struct resp_arg *argv = xmalloc(lim->max_args * sizeof *argv);
    char *scratch = xmalloc(lim->max_inline);
    if (len > 0)
        memcpy(copy, text, len);
    p->status = resp_parse(copy, len, lim, argv, scratch, &p->argc, &p->consumed, &p->error);
    p->args[0] = '\0';

    const char *broken = NULL;
    switch (p->status) {
    case RESP_OK:
        if (p->consumed == 0 || p->consumed > len || p->argc > lim->max_args || p->error != NULL)
            broken = "RESP_OK with bad outputs";
        for (size_t i = 0; broken == NULL && i < p->argc; i++)
            if (!within(argv[i].data, argv[i].len, copy, p->consumed) &&
                !within(argv[i].data, argv[i].len, scratch, lim->max_inline))
                broken = "an argument points outside buf and scratch";
        if (broken == NULL)
            render(argv, p->argc, p->args, sizeof p->args);
        break;
    case RESP_INCOMPLETE:
        if (p->consumed != 0 || p->argc != 0 || p->error != NULL)
            broken = "RESP_INCOMPLETE with outputs set";
        else if (len > 0 && (text[0] == '*' ? len > lim->max_frame : len >= lim->max_inline))
            broken = "RESP_INCOMPLETE past a limit";
        break;
    case RESP_ERROR:
        if (p->consumed != 0 || p->argc != 0 || p->error == NULL ||
            strncmp(p->error, "Protocol error: ", 16) != 0 || strpbrk(p->error, "\r\n") != NULL)
            broken = "RESP_ERROR with bad outputs";
        break;
    default:
        broken = "an unknown status";
    }
    if (broken != NULL) {
        printf("parse(");
        print_escaped(text, len);
        printf("): %s\n", broken);
        failures++;
    }
    free(scratch);
    free(argv);
    free(copy);
    return p->status;
}

/* One table row: the input and what must come back. */
struct parse_case {
    const char *text;        /* the input ... */
    size_t len;              /* ... and its length, NULs included (RAW) */
    enum resp_status status; /* the expected answer */
    size_t tail;             /* RESP_OK: bytes after the command (the next one) */
    const char *args;        /* RESP_OK: argv rendered, "" for an empty command */
    const char *error;       /* RESP_ERROR: the message */
};

static const char *const status_names[] = {"RESP_OK", "RESP_INCOMPLETE", "RESP_ERROR"};

static const struct parse_case parse_cases[] = {
    /* Multibulk: the form every client library sends. */
    {RAW("*1\r\n$4\r\nPING\r\n"), RESP_OK, 0, "[PING]", NULL},
    {RAW("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"), RESP_OK, 0, "[SET][key][value]", NULL},
    {RAW("*2\r\n$3\r\nGET\r\n$5\r\na\0\r\nb\r\n"), RESP_OK, 0, "[GET][a\\x00\\x0d\\x0ab]", NULL},
    {RAW("*2\r\n$3\r\nSET\r\n$4\r\n\r\n\r\n\r\n"), RESP_OK, 0, "[SET][\\x0d\\x0a\\x0d\\x0a]", NULL},
    {RAW("*1\r\n$0\r\n\r\n"), RESP_OK, 0, "[]", NULL},
    {RAW("*01\r\n$004\r\nPING\r\n"), RESP_OK, 0, "[PING]", NULL},
    {RAW("*1\r\n$4\r\n* $\r\r\n"), RESP_OK, 0, "[* $\\x0d]", NULL},
    /* Empty commands. */
    {RAW("*0\r\n"), RESP_OK, 0, "", NULL},
    {RAW("*-1\r\n"), RESP_OK, 0, "", NULL},
    {RAW("*00\r\n"), RESP_OK, 0, "", NULL},
    /* Back to back: only the first is consumed. */
    {RAW("*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n"), RESP_OK, 14, "[PING]", NULL},
    {RAW("*0\r\n*1\r\n$4\r\nPING\r\n"), RESP_OK, 14, "", NULL},
    {RAW("*-1\r\nPING\r\n"), RESP_OK, 6, "", NULL},
    {RAW("*1\r\n$1\r\nx\r\n*9"), RESP_OK, 2, "[x]", NULL},
    /* Not yet. */
    {RAW("*"), RESP_INCOMPLETE, 0, NULL, NULL},
    {RAW("*1\r"), RESP_INCOMPLETE, 0, NULL, NULL},
    {RAW("*1\r\n$"), RESP_INCOMPLETE, 0, NULL, NULL},
    {RAW("*1\r\n$4\r\nPI"), RESP_INCOMPLETE, 0, NULL, NULL},
    {RAW("*1\r\n$4\r\nPING\r"), RESP_INCOMPLETE, 0, NULL, NULL},
    {RAW("*2\r\n$4\r\nPING\r\n"), RESP_INCOMPLETE, 0, NULL, NULL},
    {RAW("*1\r\n$100\r\n"), RESP_INCOMPLETE, 0, NULL, NULL},
    /* Bad counts. */
    {RAW("*x\r\n"), RESP_ERROR, 0, NULL, ERR_MBULK},
    {RAW("*\r\n"), RESP_ERROR, 0, NULL, ERR_MBULK},
    {RAW("*+1\r\n"), RESP_ERROR, 0, NULL, ERR_MBULK},
    {RAW("* 1\r\n"), RESP_ERROR, 0, NULL, ERR_MBULK},
    {RAW("*1 \r\n"), RESP_ERROR, 0, NULL, ERR_MBULK},
    {RAW("*1x\r\n"), RESP_ERROR, 0, NULL, ERR_MBULK},
    {RAW("*-2\r\n"), RESP_ERROR, 0, NULL, ERR_MBULK},
    {RAW("*-0\r\n"), RESP_ERROR, 0, NULL, ERR_MBULK},
    {RAW("*--1\r\n"), RESP_ERROR, 0, NULL, ERR_MBULK},
    {RAW("*1\n$4\r\nPING\r\n"), RESP_ERROR, 0, NULL, ERR_MBULK},
    {RAW("*1\r\r\n"), RESP_ERROR, 0, NULL, ERR_MBULK},
    {RAW("*9\r\n"), RESP_ERROR, 0, NULL, ERR_MBULK},
    {RAW("*18446744073709551617\r\n"), RESP_ERROR, 0, NULL, ERR_MBULK},
    {RAW("*99999999999999999999999999999\r\n"), RESP_ERROR, 0, NULL, ERR_MBULK},
    /* Bad elements. */
    {RAW("*1\r\n:4\r\n"), RESP_ERROR, 0, NULL, ERR_DOLLAR},
    {RAW("*1\r\nPING\r\n"), RESP_ERROR, 0, NULL, ERR_DOLLAR},
    {RAW("*2\r\n$4\r\nPING\r\n*1"), RESP_ERROR, 0, NULL, ERR_DOLLAR},
    {RAW("*1\r\n$-1\r\n"), RESP_ERROR, 0, NULL, ERR_BULK},
    {RAW("*1\r\n$x\r\n"), RESP_ERROR, 0, NULL, ERR_BULK},
    {RAW("*1\r\n$\r\n"), RESP_ERROR, 0, NULL, ERR_BULK},
    {RAW("*1\r\n$+4\r\nPING\r\n"), RESP_ERROR, 0, NULL, ERR_BULK},
    {RAW("*1\r\n$4\nPING\r\n"), RESP_ERROR, 0, NULL, ERR_BULK},
    {RAW("*1\r\n$4 \r\nPING\r\n"), RESP_ERROR, 0, NULL, ERR_BULK},
    {RAW("*1\r\n$4\r\nPINGx"), RESP_ERROR, 0, NULL, ERR_CRLF},
    {RAW("*1\r\n$4\r\nPING\rx"), RESP_ERROR, 0, NULL, ERR_CRLF},
    {RAW("*1\r\n$4\r\nPING\n\r"), RESP_ERROR, 0, NULL, ERR_CRLF},
    {RAW("*1\r\n$3\r\nPING\r\n"), RESP_ERROR, 0, NULL, ERR_CRLF},
    /* Sizes refused as soon as they are declared, with no data sent. */
    {RAW("*1\r\n$600000000\r\n"), RESP_ERROR, 0, NULL, ERR_BULK},
    {RAW("*1\r\n$99999999999999999999999\r\n"), RESP_ERROR, 0, NULL, ERR_BULK},
    {RAW("*1\r\n$100000000\r\n"), RESP_ERROR, 0, NULL, ERR_LARGE},
    {RAW("*2\r\n$3\r\nGET\r\n$1011\r\n"), RESP_ERROR, 0, NULL, ERR_LARGE},
    {RAW("*1000000\r\n"), RESP_ERROR, 0, NULL, ERR_MBULK},
    /* A header line that never ends is refused, not waited on (the exact
     * boundary is in check_limits). */
    {RAW("*0000000000000000000000000000000000000000"), RESP_ERROR, 0, NULL, ERR_COUNT},
    {RAW("*1\r\n$0000000000000000000000000000000000000000"), RESP_ERROR, 0, NULL, ERR_COUNT},

    /* Inline: what you type into nc. */
    {RAW("PING\r\n"), RESP_OK, 0, "[PING]", NULL},
    {RAW("PING\n"), RESP_OK, 0, "[PING]", NULL},
    {RAW("SET k v\r\n"), RESP_OK, 0, "[SET][k][v]", NULL},
    {RAW("  SET\t k  v \t\r\n"), RESP_OK, 0, "[SET][k][v]", NULL},
    {RAW("get a\rb\r\n"), RESP_OK, 0, "[get][a\\x0db]", NULL},
    {RAW("get a\r\r\n"), RESP_OK, 0, "[get][a\\x0d]", NULL},
    {RAW("get a\0b\n"), RESP_OK, 0, "[get][a\\x00b]", NULL},
    {RAW("$4\r\n"), RESP_OK, 0, "[$4]", NULL},
    {RAW("+PING\r\n"), RESP_OK, 0, "[+PING]", NULL},
    {RAW("PING\nPING\n"), RESP_OK, 5, "[PING]", NULL},
    {RAW("PING\r\n*1\r\n"), RESP_OK, 4, "[PING]", NULL},
    /* Empty lines are empty commands. */
    {RAW("\r\n"), RESP_OK, 0, "", NULL},
    {RAW("\n"), RESP_OK, 0, "", NULL},
    {RAW(" \t \r\n"), RESP_OK, 0, "", NULL},
    {RAW("\nPING\n"), RESP_OK, 5, "", NULL},
    /* Quotes and escapes. */
    {RAW("SET \"a b\" 'c d'\n"), RESP_OK, 0, "[SET][a b][c d]", NULL},
    {RAW("\"\" ''\n"), RESP_OK, 0, "[][]", NULL},
    {RAW("\"\\n\\r\\t\\b\\a\\\\\\\"\"\n"), RESP_OK, 0, "[\\x0a\\x0d\\x09\\x08\\x07\\x5c\"]", NULL},
    {RAW("\"\\x41\\x7a\\x00\\xfF\"\n"), RESP_OK, 0, "[Az\\x00\\xff]", NULL},
    {RAW("\"\\x4\" \"\\xZZ\" \"\\q\"\n"), RESP_OK, 0, "[x4][xZZ][q]", NULL},
    {RAW("'it\\'s' 'a\\nb' 'x\"y'\n"), RESP_OK, 0, "[it's][a\\x5cnb][x\"y]", NULL},
    {RAW("\"it's\"\r\n"), RESP_OK, 0, "[it's]", NULL},
    {RAW("a\"b c\"\n"), RESP_OK, 0, "[ab c]", NULL},
    {RAW("\"a\"\t'b'\n"), RESP_OK, 0, "[a][b]", NULL},
    /* Unbalanced quotes. */
    {RAW("\"abc\n"), RESP_ERROR, 0, NULL, ERR_QUOTES},
    {RAW("'abc\n"), RESP_ERROR, 0, NULL, ERR_QUOTES},
    {RAW("\"abc\\\"\n"), RESP_ERROR, 0, NULL, ERR_QUOTES},
    {RAW("'abc\\'\n"), RESP_ERROR, 0, NULL, ERR_QUOTES},
    {RAW("\"a\\\n"), RESP_ERROR, 0, NULL, ERR_QUOTES},
    {RAW("\"a\"b\n"), RESP_ERROR, 0, NULL, ERR_QUOTES},
    {RAW("'a'b\n"), RESP_ERROR, 0, NULL, ERR_QUOTES},
    {RAW("\"a\"\"b\"\n"), RESP_ERROR, 0, NULL, ERR_QUOTES},
    {RAW("\"a\r\n"), RESP_ERROR, 0, NULL, ERR_QUOTES},
    /* Not yet. */
    {RAW("PING"), RESP_INCOMPLETE, 0, NULL, NULL},
    {RAW("PING\r"), RESP_INCOMPLETE, 0, NULL, NULL},
    {RAW("\"a b"), RESP_INCOMPLETE, 0, NULL, NULL},
    /* Arguments: max_args (8) is fine, one more is not. */
    {RAW("a b c d e f g h\n"), RESP_OK, 0, "[a][b][c][d][e][f][g][h]", NULL},
    {RAW("a b c d e f g h i\n"), RESP_ERROR, 0, NULL, ERR_TOOMANY},
};

static void check_parse(const struct parse_case *c)
{
    struct parsed p;
    parse_copy(c->text, c->len, &lim_default, &p);
    bool ok = p.status == c->status;
    if (ok && c->status == RESP_OK)
        ok = p.consumed == c->len - c->tail && (c->args == NULL || strcmp(p.args, c->args) == 0);
    if (ok && c->status == RESP_ERROR)
        ok = strcmp(p.error, c->error) == 0;
    if (!ok) {
        printf("parse(");
        print_escaped(c->text, c->len);
        printf("): %s", status_names[p.status]);
        if (p.status == RESP_OK)
            printf(" consumed %zu args '%s'", p.consumed, p.args);
        if (p.status == RESP_ERROR)
            printf(" '%s'", p.error);
        printf(", want %s", status_names[c->status]);
        if (c->status == RESP_OK)
            printf(" consumed %zu args '%s'", c->len - c->tail, c->args ? c->args : "(any)");
        if (c->status == RESP_ERROR)
            printf(" '%s'", c->error);
        printf("\n");
        failures++;
    }
}

/* Every proper prefix of a valid command is "not yet", never an error;
 * the whole is one command. */
static void check_prefixes(const char *text, size_t len)
{
    struct parsed p;
    for (size_t k = 0; k < len; k++) {
        if (parse_copy(text, k, &lim_default, &p) != RESP_INCOMPLETE) {
            printf("prefix %zu of ", k);
            print_escaped(text, len);
            printf(": %s, want RESP_INCOMPLETE\n", status_names[p.status]);
            failures++;
        }
    }
    if (parse_copy(text, len, &lim_default, &p) != RESP_OK || p.consumed != len) {
        print_escaped(text, len);
        printf(": not accepted whole\n");
        failures++;
    }
}

/* Append "$<n>\r\n" and n bytes of 'v' and CRLF (or only the header). */
static size_t put_bulk_arg(char *buf, size_t pos, size_t n, bool with_data)
{
    pos += (size_t)sprintf(buf + pos, "$%zu\r\n", n);
    if (with_data) {
        memset(buf + pos, 'v', n);
        memcpy(buf + pos + n, "\r\n", 2);
        pos += n + 2;
    }
    return pos;
}

/* Report a limits case that did not answer as it should. */
static void expect(const char *what, const struct parsed *p, enum resp_status status,
                   const char *error)
{
    if (p->status != status || (error != NULL && strcmp(p->error, error) != 0)) {
        printf("%s: %s '%s', want %s '%s'\n", what, status_names[p->status],
               p->error ? p->error : "", status_names[status], error ? error : "");
        failures++;
    }
}

/* Each limit exactly reached (fine) and exceeded by one (refused), the
 * refusals with only the declaring header sent. */
static void check_limits(void)
{
    static char buf[4096];
    struct parsed p;
    struct resp_limits lim = {.max_args = 5, .max_bulk = 100, .max_inline = 64, .max_frame = 300};

    /* max_args: 5 arguments are a command, 6 are refused at "*6\r\n". */
    size_t pos = (size_t)sprintf(buf, "*5\r\n");
    for (int i = 0; i < 5; i++)
        pos = put_bulk_arg(buf, pos, 1, true);
    parse_copy(buf, pos, &lim, &p);
    expect("max_args exactly", &p, RESP_OK, NULL);
    if (p.status == RESP_OK && (p.argc != 5 || p.consumed != pos)) {
        printf("max_args exactly: argc %zu consumed %zu\n", p.argc, p.consumed);
        failures++;
    }
    parse_copy(RAW("*6\r\n"), &lim, &p);
    expect("max_args + 1", &p, RESP_ERROR, ERR_MBULK);
    lim.max_args = 0; /* no argument at all: only empty commands pass */
    parse_copy(RAW("*1\r\n"), &lim, &p);
    expect("max_args 0", &p, RESP_ERROR, ERR_MBULK);
    parse_copy(RAW("*0\r\n"), &lim, &p);
    expect("max_args 0, *0", &p, RESP_OK, NULL);
    parse_copy(RAW("PING\r\n"), &lim, &p);
    expect("max_args 0, inline", &p, RESP_ERROR, ERR_TOOMANY);
    lim.max_args = 5;

    /* max_bulk: 100 bytes are fine, "$101" is refused with no data. */
    pos = put_bulk_arg(buf, (size_t)sprintf(buf, "*1\r\n"), 100, true);
    parse_copy(buf, pos, &lim, &p);
    expect("max_bulk exactly", &p, RESP_OK, NULL);
    pos = put_bulk_arg(buf, (size_t)sprintf(buf, "*1\r\n"), 101, false);
    parse_copy(buf, pos, &lim, &p);
    expect("max_bulk + 1", &p, RESP_ERROR, ERR_BULK);

    /* max_frame: a frame of exactly 300 bytes is fine; with a cap of 299
     * it is refused as soon as the third argument's size is declared. */
    pos = (size_t)sprintf(buf, "*3\r\n");
    pos = put_bulk_arg(buf, pos, 90, true);
    pos = put_bulk_arg(buf, pos, 90, true);
    size_t last = 300 - pos - 5 - 2; /* the third's "$NN\r\n" and CRLF */
    size_t third = pos;
    pos = put_bulk_arg(buf, pos, last, true);
    if (pos != 300) {
        printf("max_frame: built %zu bytes, not 300\n", pos);
        failures++;
    }
    parse_copy(buf, pos, &lim, &p);
    expect("max_frame exactly", &p, RESP_OK, NULL);
    lim.max_frame = 299;
    parse_copy(buf, third + 5, &lim, &p);
    expect("max_frame - 1, header only", &p, RESP_ERROR, ERR_LARGE);
    parse_copy(buf, third, &lim, &p); /* before the third header: fine so far */
    expect("max_frame - 1, two arguments", &p, RESP_INCOMPLETE, NULL);
    lim.max_frame = 10; /* an unfinished header line past the cap */
    parse_copy(RAW("*1\r\n$00000"), &lim, &p);
    expect("max_frame 10, 10 bytes", &p, RESP_INCOMPLETE, NULL);
    parse_copy(RAW("*1\r\n$000000"), &lim, &p);
    expect("max_frame 10, 11 bytes", &p, RESP_ERROR, ERR_LARGE);
    lim.max_frame = 300;

    /* max_inline: 64 bytes with the newline are fine, 65 are not; with
     * no newline, 63 bytes wait and 64 are refused. */
    memset(buf, 'a', 64);
    buf[63] = '\n';
    parse_copy(buf, 64, &lim, &p);
    expect("max_inline exactly", &p, RESP_OK, NULL);
    if (p.status == RESP_OK && (p.argc != 1 || p.consumed != 64)) {
        printf("max_inline exactly: argc %zu consumed %zu\n", p.argc, p.consumed);
        failures++;
    }
    buf[63] = 'a';
    parse_copy(buf, 63, &lim, &p);
    expect("max_inline - 1, no newline", &p, RESP_INCOMPLETE, NULL);
    parse_copy(buf, 64, &lim, &p);
    expect("max_inline, no newline", &p, RESP_ERROR, ERR_INLINE);
    buf[64] = '\n';
    parse_copy(buf, 65, &lim, &p);
    expect("max_inline + 1", &p, RESP_ERROR, ERR_INLINE);
    /* The most inline arguments a line can hold, "x x ... x\n": 32 are a
     * command with max_args 32, and too many with 31. */
    for (size_t i = 0; i < 64; i += 2)
        memcpy(buf + i, "x ", 2);
    buf[63] = '\n';
    lim.max_args = 32;
    parse_copy(buf, 64, &lim, &p);
    expect("32 inline arguments", &p, RESP_OK, NULL);
    lim.max_args = 31;
    parse_copy(buf, 64, &lim, &p);
    expect("32 inline arguments, max_args 31", &p, RESP_ERROR, ERR_TOOMANY);
    lim.max_args = 5;

    /* Header lines: RESP_MAX_HEADER bytes are fine; one byte more is
     * refused, whether or not its newline has arrived. */
    const size_t zeros = RESP_MAX_HEADER - 3; /* besides '*' and CRLF */
    buf[0] = '*';
    memset(buf + 1, '0', zeros);
    memcpy(buf + 1 + zeros, "\r\n", 2);
    parse_copy(buf, RESP_MAX_HEADER, &lim, &p);
    expect("a header of RESP_MAX_HEADER", &p, RESP_OK, NULL);
    parse_copy(buf, RESP_MAX_HEADER - 1, &lim, &p);
    expect("a header of RESP_MAX_HEADER, no LF", &p, RESP_INCOMPLETE, NULL);
    memset(buf + 1, '0', zeros + 1);
    memcpy(buf + 2 + zeros, "\r\n", 2);
    for (size_t n = RESP_MAX_HEADER - 1; n <= RESP_MAX_HEADER + 2; n++) {
        parse_copy(buf, n, &lim, &p);
        expect("a header of RESP_MAX_HEADER + 1", &p,
               n < RESP_MAX_HEADER ? RESP_INCOMPLETE : RESP_ERROR,
               n < RESP_MAX_HEADER ? NULL : ERR_COUNT);
    }
    pos = (size_t)sprintf(buf, "*1\r\n$");
    memset(buf + pos, '0', zeros - 1);
    pos += zeros - 1;
    pos += (size_t)sprintf(buf + pos, "4\r\nPING\r\n");
    parse_copy(buf, pos, &lim, &p);
    expect("a $ header of RESP_MAX_HEADER", &p, RESP_OK, NULL);
    memmove(buf + 6, buf + 5, pos - 5); /* one more '0' */
    parse_copy(buf, pos + 1, &lim, &p);
    expect("a $ header of RESP_MAX_HEADER + 1", &p, RESP_ERROR, ERR_COUNT);
}

/* Bytes in the buffer must be exactly want[0..want_len). */
static void check_buf(const char *what, const struct resp_buf *b, const char *want, size_t want_len)
{
    if (b->len != want_len || b->cap < b->len ||
        (want_len > 0 && memcmp(b->data, want, want_len) != 0)) {
        printf("%s: got %zu bytes ", what, b->len);
        print_escaped(b->data ? b->data : "", b->len);
        printf(", want ");
        print_escaped(want, want_len);
        printf("\n");
        failures++;
    }
}

static void check_encoders(void)
{
    struct resp_buf b = {0};
    int rc = resp_put_simple(&b, "OK");
    check_buf("simple", &b, RAW("+OK\r\n"));
    if (rc != 0 || b.cap != 256) {
        printf("simple: rc %d cap %zu, want 0 and the 256-byte minimum\n", rc, b.cap);
        failures++;
    }
    resp_buf_free(&b);

    rc = resp_put_error(&b, "ERR bad\r\nthing\n") | resp_put_simple(&b, "a\rb") |
         resp_put_error(&b, "") | resp_put_int(&b, 0) | resp_put_int(&b, -1) |
         resp_put_int(&b, INT64_MAX) | resp_put_int(&b, INT64_MIN);
    check_buf("errors and integers", &b,
              RAW("-ERR bad  thing \r\n+a b\r\n-\r\n:0\r\n:-1\r\n:9223372036854775807\r\n"
                  ":-9223372036854775808\r\n"));
    resp_buf_free(&b);

    rc |= resp_put_array(&b, 3) | resp_put_bulk(&b, "GET", 3) | resp_put_bulk(&b, RAW("a\0\r\nb")) |
          resp_put_bulk(&b, NULL, 0) | resp_put_nil(&b) | resp_put_array(&b, 0);
    check_buf("array of bulks", &b,
              RAW("*3\r\n$3\r\nGET\r\n$5\r\na\0\r\nb\r\n$0\r\n\r\n$-1\r\n*0\r\n"));

    /* consume: a partial write, nothing, then everything and more. */
    resp_buf_consume(&b, 4);
    check_buf("consume 4", &b, RAW("$3\r\nGET\r\n$5\r\na\0\r\nb\r\n$0\r\n\r\n$-1\r\n*0\r\n"));
    resp_buf_consume(&b, 0);
    check_buf("consume 0", &b, RAW("$3\r\nGET\r\n$5\r\na\0\r\nb\r\n$0\r\n\r\n$-1\r\n*0\r\n"));
    size_t cap = b.cap;
    resp_buf_consume(&b, b.len + 5);
    check_buf("consume all", &b, "", 0);
    if (b.cap != cap) {
        printf("consume: the allocation changed\n");
        failures++;
    }
    rc |= resp_put_nil(&b);
    check_buf("after consume", &b, RAW("$-1\r\n"));

    /* Growth by doubling: 10 KB of bulk lands in a power-of-two multiple
     * of 256, and the bytes survive each move. */
    static char big[10000];
    memset(big, 'z', sizeof big);
    resp_buf_free(&b);
    for (int i = 0; i < 10; i++)
        rc |= resp_put_bulk(&b, big, 1000);
    size_t blocks = b.cap / 256;
    bool power_of_two = blocks > 0 && (blocks & (blocks - 1)) == 0;
    if (b.len != 10 * 1009 || b.cap < b.len || b.cap % 256 != 0 || !power_of_two ||
        memcmp(b.data + 5 * 1009, "$1000\r\nzz", 9) != 0) {
        printf("growth: len %zu cap %zu\n", b.len, b.cap);
        failures++;
    }

    /* ENOMEM without asking malloc: a size no buffer can hold. */
    size_t len = b.len;
    char *data = b.data;
    if (resp_put_bulk(&b, big, SIZE_MAX - 2) != ENOMEM ||
        resp_put_bulk(&b, big, (size_t)PTRDIFF_MAX) != ENOMEM || b.len != len || b.data != data) {
        printf("an impossible size: not ENOMEM, or the buffer changed\n");
        failures++;
    }
    resp_buf_free(&b);
    if (b.data != NULL || b.len != 0 || b.cap != 0) {
        printf("resp_buf_free: not zeroed\n");
        failures++;
    }
    if (rc != 0) {
        printf("encoders: an append failed\n");
        failures++;
    }
}

/* resp_arg_is(arg[0..len), name) must be `want`. */
static void check_is(const char *arg, size_t len, const char *name, bool want)
{
    struct resp_arg a = {arg, len};
    if (resp_arg_is(&a, name) != want) {
        printf("resp_arg_is(");
        print_escaped(arg, len);
        printf(", \"%s\"): %s\n", name, want ? "false" : "true");
        failures++;
    }
}

/* xorshift64 (Marsaglia): a fixed, portable sequence, unlike rand(). */
static uint64_t rng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

/* A byte that is likely to matter to the parser, or any byte. */
static char rng_byte(uint64_t *state)
{
    static const char interesting[] = "\r\n\r\n*$ \t\"'\\x0129-AfZ\x7f\x80";
    uint64_t r = rng_next(state);
    if (r % 4 == 0)
        return (char)(r >> 8);
    return interesting[(r >> 8) % sizeof interesting]; /* includes the '\0' */
}

/* A seed of the mutation loop: a valid command, NULs allowed. */
struct seed {
    const char *text; /* the bytes */
    size_t len;       /* how many (RAW) */
};

/* Mutate valid commands at random: the parser must stay within its
 * contract (parse_copy checks it) and agree with itself on the prefix it
 * consumed. */
static void check_mutations(void)
{
    static const struct seed seeds[] = {
        {RAW("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n")},
        {RAW("*2\r\n$3\r\nGET\r\n$5\r\na\0\r\nb\r\n")},
        {RAW("*1\r\n$4\r\nPING\r\n*0\r\n*-1\r\n")},
        {RAW("*1\r\n$10\r\n0123456789\r\n")},
        {RAW("SET k \"a\\x41\\n b\" 'it\\'s'\r\n")},
        {RAW("PING\nPING\r\n")},
        {RAW("  \t\r\n\"\" ''\n")},
    };
    uint64_t state = 0x9e3779b97f4a7c15u;
    char buf[256];
    for (int iter = 0; iter < 200000; iter++) {
        const struct seed *s = &seeds[rng_next(&state) % (sizeof seeds / sizeof seeds[0])];
        size_t len = s->len;
        memcpy(buf, s->text, len);
        int edits = 1 + (int)(rng_next(&state) % 4);
        for (int e = 0; e < edits; e++) {
            size_t at = len > 0 ? (size_t)(rng_next(&state) % len) : 0;
            switch (rng_next(&state) % 4) {
            case 0: /* replace */
                if (len > 0)
                    buf[at] = rng_byte(&state);
                break;
            case 1: /* insert */
                if (len < sizeof buf) {
                    memmove(buf + at + 1, buf + at, len - at);
                    buf[at] = rng_byte(&state);
                    len++;
                }
                break;
            case 2: /* delete */
                if (len > 0) {
                    memmove(buf + at, buf + at + 1, len - at - 1);
                    len--;
                }
                break;
            default: /* truncate */
                len = at;
            }
        }
        /* Sometimes tight limits, to reach every refusal too. */
        struct resp_limits lim = lim_default;
        if (iter % 4 == 0) {
            lim.max_args = (size_t)(rng_next(&state) % 5);
            lim.max_bulk = (size_t)(rng_next(&state) % 12);
            lim.max_inline = (size_t)(rng_next(&state) % (len + 4));
            lim.max_frame = (size_t)(rng_next(&state) % (len + 8));
        }
        struct parsed p, again;
        bool ok = true;
        if (parse_copy(buf, len, &lim, &p) == RESP_OK) {
            /* the command alone parses the same; one byte less is "not yet" */
            ok = parse_copy(buf, p.consumed, &lim, &again) == RESP_OK &&
                 again.consumed == p.consumed && strcmp(again.args, p.args) == 0 &&
                 parse_copy(buf, p.consumed - 1, &lim, &again) == RESP_INCOMPLETE;
        }
        if (!ok) {
            printf("mutation %d: ", iter);
            print_escaped(buf, len);
            printf(" consumed %zu: the prefix parses differently\n", p.consumed);
            failures++;
        }
    }
}

int main(void)
{
    for (size_t i = 0; i < sizeof parse_cases / sizeof parse_cases[0]; i++)
        check_parse(&parse_cases[i]);

    check_prefixes(RAW("*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nvalue\r\n"));
    check_prefixes(RAW("*2\r\n$3\r\nGET\r\n$5\r\na\0\r\nb\r\n"));
    check_prefixes(RAW("*1\r\n$0\r\n\r\n"));
    check_prefixes(RAW("*0\r\n"));
    check_prefixes(RAW("*-1\r\n"));
    check_prefixes(RAW("SET k \"a\\x41\\n b\" 'it\\'s'\r\n"));
    check_prefixes(RAW(" \t\r\n"));
    check_limits();

    check_encoders();

    check_is(RAW("GET"), "get", true);
    check_is(RAW("get"), "GET", true);
    check_is(RAW("gEt"), "GeT", true);
    check_is(RAW("GETX"), "get", false);
    check_is(RAW("GE"), "get", false);
    check_is(RAW("GE\0"), "ge", false);
    check_is(RAW(""), "", true);
    check_is(RAW("["), "{", false); /* 0x5b and 0x7b: a bare |0x20 would match them */
    check_is(RAW("\xc9"), "\xe9", false);

    check_mutations();

    if (failures == 0)
        printf("resp: all cases pass\n");
    return failures == 0 ? 0 : 1;
}
