/* A small test harness of our own.
 *
 *   #include "harness.h"
 *   TEST(sse_splits_at_every_byte) { ASSERT_EQ_INT(3, n); ASSERT_STR_EQ("a", s); }
 *   TEST_MAIN()
 *
 * Each test is a function registered at load time. A failed assertion prints
 * the file, line and values and leaves the test (longjmp); the next test runs.
 * The binary prints "ok NAME" / "FAIL NAME: ..." per test and ends with the
 * line "N passed, N failed"; it exits 1 if anything failed. Give a substring
 * as argv[1] to run only the tests whose names contain it.
 */
#ifndef AC_TEST_HARNESS_H
#define AC_TEST_HARNESS_H

#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <inttypes.h>

typedef void (*th_fn)(void);
struct th_case { const char *name; th_fn fn; };

#define TH_MAX_CASES 1024
extern struct th_case th_cases[TH_MAX_CASES];
extern int th_ncases;
extern jmp_buf th_jmp;
extern int th_failed_now;

static inline void th_register(const char *name, th_fn fn)
{
    if (th_ncases < TH_MAX_CASES) {
        th_cases[th_ncases].name = name;
        th_cases[th_ncases].fn = fn;
        th_ncases++;
    }
}

#define TEST(name)                                                        \
    static void name(void);                                              \
    __attribute__((constructor)) static void th_reg_##name(void)        \
    { th_register(#name, name); }                                        \
    static void name(void)

#define TH_FAIL(...)                                                      \
    do {                                                                  \
        printf("  %s:%d: ", __FILE__, __LINE__);                          \
        printf(__VA_ARGS__);                                              \
        printf("\n");                                                     \
        fflush(stdout);                                                   \
        th_failed_now = 1;                                                \
        longjmp(th_jmp, 1);                                               \
    } while (0)

#define ASSERT(cond)                                                      \
    do { if (!(cond)) TH_FAIL("assertion failed: %s", #cond); } while (0)
#define ASSERT_MSG(cond, ...)                                             \
    do { if (!(cond)) TH_FAIL(__VA_ARGS__); } while (0)
#define ASSERT_EQ_INT(expected, actual)                                   \
    do {                                                                  \
        long long th_e = (long long)(expected), th_a = (long long)(actual); \
        if (th_e != th_a)                                                 \
            TH_FAIL("%s == %s: expected %lld, got %lld", #expected, #actual, th_e, th_a); \
    } while (0)
#define ASSERT_STR_EQ(expected, actual)                                   \
    do {                                                                  \
        const char *th_e = (expected), *th_a = (actual);                  \
        if (th_e == NULL || th_a == NULL || strcmp(th_e, th_a) != 0)      \
            TH_FAIL("%s == %s: expected \"%s\", got \"%s\"", #expected, #actual, \
                    th_e ? th_e : "(null)", th_a ? th_a : "(null)");     \
    } while (0)
#define ASSERT_CONTAINS(haystack, needle)                                 \
    do {                                                                  \
        const char *th_h = (haystack), *th_n = (needle);                  \
        if (th_h == NULL || strstr(th_h, th_n) == NULL)                   \
            TH_FAIL("expected \"%s\" to contain \"%s\"", th_h ? th_h : "(null)", th_n); \
    } while (0)
/* For library calls: ASSERT_OK(ac_core_open(...)) prints ac_errmsg() on failure. */
#define ASSERT_OK(call)                                                   \
    do {                                                                  \
        int th_rc = (call);                                               \
        if (th_rc != 0)                                                   \
            TH_FAIL("%s returned %d (%s)", #call, th_rc, th_errmsg_hook ? th_errmsg_hook() : ""); \
    } while (0)

extern const char *(*th_errmsg_hook)(void);

/* Define once per test binary, at the end of one file. */
#define TEST_MAIN_WITH(setup)                                             \
    struct th_case th_cases[TH_MAX_CASES];                                \
    int th_ncases;                                                        \
    jmp_buf th_jmp;                                                       \
    int th_failed_now;                                                    \
    const char *(*th_errmsg_hook)(void);                                  \
    int main(int argc, char **argv)                                       \
    {                                                                     \
        volatile int passed = 0, failed = 0;                              \
        setvbuf(stdout, NULL, _IOLBF, 0);                                 \
        setup;                                                            \
        for (volatile int i = 0; i < th_ncases; i++) {                    \
            if (argc > 1 && strstr(th_cases[i].name, argv[1]) == NULL)    \
                continue;                                                 \
            th_failed_now = 0;                                            \
            if (setjmp(th_jmp) == 0)                                      \
                th_cases[i].fn();                                         \
            if (th_failed_now) {                                          \
                failed++;                                                 \
                printf("FAIL %s\n", th_cases[i].name);                    \
            } else {                                                      \
                passed++;                                                 \
                printf("ok %s\n", th_cases[i].name);                      \
            }                                                             \
        }                                                                 \
        printf("%d passed, %d failed\n", passed, failed);                 \
        return failed ? 1 : 0;                                            \
    }

#define TEST_MAIN() TEST_MAIN_WITH((void)0)

#endif
