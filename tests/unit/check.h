/* tests/unit/check.h - the one assertion the unit tests share.
 *
 * CHECK(cond) prints the file, line and condition of a check that fails and
 * counts it in `failures`; a test's main prints its summary and exits 1 when
 * failures > 0. Unlike assert(), a failing check does not stop the run, so
 * one run shows every check that fails. Each test is one .c file that
 * includes this header once (found next to it: no -I needed).
 */
#ifndef CHECK_H
#define CHECK_H

#include <stdio.h>

static int failures; /* checks that failed so far */

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            printf("%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                        \
            failures++;                                                                            \
        }                                                                                          \
    } while (0)

#endif /* CHECK_H */
