/*
 * check_spawn.c - unit tests for backend/spawn.c: the environment (HIP_VISIBLE_DEVICES
 * default), PATH lookup, and real fork/execs of small system programs: output through
 * the pipes, exec errors as messages, the child's process group, its signal mask and
 * dispositions (the test blocks SIGTERM and ignores SIGPIPE first, as the gateway does),
 * and that no other fd leaks into it.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "backend/spawn.h"

static int has(char **env, const char *entry)
{
    size_t i;

    for (i = 0; env[i]; i++)
        if (strcmp(env[i], entry) == 0)
            return 1;
    return 0;
}

static size_t count(char **env)
{
    size_t n = 0;

    while (env[n])
        n++;
    return n;
}

START_TEST(test_env_default_hip)
{
    char *base[] = {"PATH=/usr/bin", "HOME=/root", NULL};
    char **env = gw_spawn_env(base, NULL, NULL, 0);

    ck_assert_uint_eq(count(env), 3);
    ck_assert(has(env, "PATH=/usr/bin"));
    ck_assert(has(env, "HOME=/root"));
    ck_assert(has(env, "HIP_VISIBLE_DEVICES=0"));
    gw_spawn_strv_free(env);
}
END_TEST

START_TEST(test_env_overrides)
{
    char *base[] = {"PATH=/usr/bin", "HOME=/root", "LLAMA_ARG_CTX=1", NULL};
    char *names[] = {"HOME", "HIP_VISIBLE_DEVICES", "NEW"};
    char *values[] = {"/models", "1", "a=b"};
    char **env = gw_spawn_env(base, names, values, 3);

    ck_assert_uint_eq(count(env), 5);
    ck_assert(has(env, "PATH=/usr/bin"));
    ck_assert(has(env, "LLAMA_ARG_CTX=1"));
    ck_assert(has(env, "HOME=/models"));
    ck_assert(!has(env, "HOME=/root"));
    ck_assert(has(env, "HIP_VISIBLE_DEVICES=1"));
    ck_assert(!has(env, "HIP_VISIBLE_DEVICES=0"));
    ck_assert(has(env, "NEW=a=b"));
    gw_spawn_strv_free(env);
}
END_TEST

/* A value the gateway itself was started with is kept (the operator chose it). */
START_TEST(test_env_inherited_hip)
{
    char *base[] = {"HIP_VISIBLE_DEVICES=2", NULL};
    char **env = gw_spawn_env(base, NULL, NULL, 0);

    ck_assert_uint_eq(count(env), 1);
    ck_assert(has(env, "HIP_VISIBLE_DEVICES=2"));
    gw_spawn_strv_free(env);
    gw_spawn_strv_free(NULL);
}
END_TEST

START_TEST(test_which)
{
    char *env[] = {"PATH=/nonexistent:/bin:/usr/bin", NULL};
    char *noexec[] = {"PATH=/etc", NULL};
    char *p;

    p = gw_spawn_which("sh", env);
    ck_assert_ptr_nonnull(p);
    ck_assert_str_eq(p, "/bin/sh");
    free(p);
    p = gw_spawn_which("./relative/x", env); /* a path is taken as it is */
    ck_assert_str_eq(p, "./relative/x");
    free(p);
    errno = 0;
    ck_assert_ptr_null(gw_spawn_which("no-such-program-xyz", env));
    ck_assert_int_eq(errno, ENOENT);
    errno = 0;
    ck_assert_ptr_null(gw_spawn_which("passwd", noexec)); /* /etc/passwd is not executable */
    ck_assert_int_eq(errno, EACCES);
}
END_TEST

/* Reads fd until EOF (bounded by a poll timeout); returns a malloc'd string. */
static char *slurp(int fd)
{
    char *out = calloc(1, 65536);
    size_t len = 0;
    struct pollfd pfd = {fd, POLLIN, 0};

    for (;;) {
        ssize_t n;

        ck_assert_int_gt(poll(&pfd, 1, 5000), 0);
        n = read(fd, out + len, 65535 - len);
        if (n < 0 && errno == EAGAIN)
            continue;
        ck_assert_int_ge(n, 0);
        if (n == 0)
            break;
        len += (size_t)n;
    }
    return out;
}

static int reap(pid_t pid)
{
    int status = 0;

    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return status;
}

static void close_child(gw_child_t *c)
{
    if (c->pidfd >= 0)
        close(c->pidfd);
    close(c->out_fd);
    close(c->err_fd);
}

START_TEST(test_spawn_output_and_exit)
{
    char *argv[] = {"/bin/sh", "-c", "echo out; echo err >&2; exit 3", NULL};
    char *envp[] = {"PATH=/bin:/usr/bin", NULL};
    gw_child_t c;
    gw_errbuf_t err;
    char *o, *e;
    int st;

    ck_assert_int_eq(gw_spawn("/bin/sh", argv, envp, &c, &err), GW_OK);
    ck_assert_int_gt(c.pid, 0);
    ck_assert_int_ge(c.pidfd, 0);
    o = slurp(c.out_fd);
    e = slurp(c.err_fd);
    ck_assert_str_eq(o, "out\n");
    ck_assert_str_eq(e, "err\n");
    st = reap(c.pid);
    ck_assert(WIFEXITED(st));
    ck_assert_int_eq(WEXITSTATUS(st), 3);
    free(o);
    free(e);
    close_child(&c);
}
END_TEST

START_TEST(test_spawn_exec_error)
{
    char *argv[] = {"/nonexistent/llama-server", NULL};
    char *envp[] = {NULL};
    gw_child_t c;
    gw_errbuf_t err;

    memset(&err, 0, sizeof(err));
    ck_assert_int_eq(gw_spawn("/nonexistent/llama-server", argv, envp, &c, &err), GW_EINTERNAL);
    ck_assert_str_eq(err.msg,
                     "cannot execute /nonexistent/llama-server: No such file or directory");
    ck_assert_int_eq(c.pid, -1);
    ck_assert_int_eq(c.out_fd, -1);
    ck_assert_int_eq(waitpid(-1, NULL, WNOHANG), -1); /* the failed child was reaped */
    ck_assert_int_eq(errno, ECHILD);

    ck_assert_int_eq(gw_spawn("/etc/passwd", argv, envp, &c, &err), GW_EINTERNAL);
    ck_assert_str_eq(err.msg, "cannot execute /etc/passwd: Permission denied");
}
END_TEST

/* What the child inherits: its own group, a clean signal state, stdin /dev/null, 3 fds. */
START_TEST(test_spawn_child_state)
{
    char *argv[] = {"/bin/sh", "-c",
                    "grep -E '^Sig(Blk|Ign)' /proc/self/status; ls /proc/self/fd | wc -l; "
                    "readlink /proc/self/fd/0; ps -o pgid= -p $$ 2>/dev/null || "
                    "cut -d' ' -f5 /proc/self/stat",
                    NULL};
    char *envp[] = {"PATH=/bin:/usr/bin", NULL};
    sigset_t set, old;
    gw_child_t c;
    gw_errbuf_t err;
    int leak = open("/dev/null", O_RDONLY); /* not close-on-exec: must not reach the child */
    char *o, want[256];

    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    signal(SIGPIPE, SIG_IGN);
    ck_assert_int_eq(gw_spawn("/bin/sh", argv, envp, &c, &err), GW_OK);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    signal(SIGPIPE, SIG_DFL);
    close(leak);

    o = slurp(c.out_fd);
    reap(c.pid);
    /* sh's own ls and the pipe to wc take fds too: 0, 1, 2 plus ls's directory fd */
    snprintf(want, sizeof(want),
             "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n4\n/dev/null\n");
    ck_assert_msg(strncmp(o, want, strlen(want)) == 0, "got:\n%s\nwant:\n%s", o, want);
    ck_assert_int_eq(atoi(o + strlen(want)), c.pid); /* a process group of its own */
    free(o);
    close_child(&c);
}
END_TEST

START_TEST(test_spawn_kill_group)
{
    /* the shell starts a grandchild in the same group; a group kill reaches both */
    char *argv[] = {"/bin/sh", "-c", "sleep 30 & echo $!; wait", NULL};
    char *envp[] = {"PATH=/bin:/usr/bin", NULL};
    gw_child_t c;
    gw_errbuf_t err;
    char buf[64] = "";
    struct pollfd pfd;
    pid_t grandchild;
    ssize_t n;
    int st;

    ck_assert_int_eq(gw_spawn("/bin/sh", argv, envp, &c, &err), GW_OK);
    pfd.fd = c.out_fd;
    pfd.events = POLLIN;
    ck_assert_int_gt(poll(&pfd, 1, 5000), 0);
    n = read(c.out_fd, buf, sizeof(buf) - 1);
    ck_assert_int_gt(n, 0);
    grandchild = atoi(buf);
    ck_assert_int_gt(grandchild, 0);
    ck_assert_int_eq(getpgid(grandchild), c.pid);
    gw_spawn_kill(c.pid, SIGKILL);
    st = reap(c.pid);
    ck_assert(WIFSIGNALED(st));
    ck_assert_int_eq(WTERMSIG(st), SIGKILL);
    /* the grandchild is gone too (or a zombie waiting for init) */
    {
        int tries = 0, gone = 0;

        while (!gone && tries++ < 200) {
            char path[64], stat[512] = "";
            FILE *f;

            snprintf(path, sizeof(path), "/proc/%d/stat", (int)grandchild);
            f = fopen(path, "r");
            if (f == NULL) {
                gone = 1;
                break;
            }
            if (fgets(stat, sizeof(stat), f) && strstr(stat, ") Z "))
                gone = 1;
            fclose(f);
            usleep(10000);
        }
        ck_assert(gone);
    }
    close_child(&c);
    gw_spawn_kill(0, SIGKILL); /* no-op */
}
END_TEST

START_TEST(test_free_port)
{
    unsigned a = 0, b = 0;

    ck_assert_int_eq(gw_spawn_free_port(&a), 0);
    ck_assert_int_eq(gw_spawn_free_port(&b), 0);
    ck_assert_uint_gt(a, 0);
    ck_assert_uint_lt(a, 65536);
    ck_assert_uint_gt(b, 0);
}
END_TEST

static Suite *spawn_suite(void)
{
    Suite *s = suite_create("spawn");
    TCase *tc;

    tc = tcase_create("env");
    tcase_add_test(tc, test_env_default_hip);
    tcase_add_test(tc, test_env_overrides);
    tcase_add_test(tc, test_env_inherited_hip);
    tcase_add_test(tc, test_which);
    suite_add_tcase(s, tc);

    tc = tcase_create("process");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_spawn_output_and_exit);
    tcase_add_test(tc, test_spawn_exec_error);
    tcase_add_test(tc, test_spawn_child_state);
    tcase_add_test(tc, test_spawn_kill_group);
    tcase_add_test(tc, test_free_port);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(spawn_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
