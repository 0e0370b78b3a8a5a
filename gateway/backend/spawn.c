/*
 * spawn.c - fork/exec of a backend process (spawn.h).
 *
 * Between fork() and execve() the child runs in a copy of a multi-threaded process in
 * which other threads may have held locks (malloc's, the log's): it calls only
 * async-signal-safe functions and raw syscalls, and everything it needs (path, argv,
 * envp, fds, the fd limit) is prepared by the parent before fork.
 */
#include "backend/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/alloc.h"

#define HIP_DEFAULT "HIP_VISIBLE_DEVICES=0"
#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"
#define FD_SCAN_MAX 65536 /* fallback close-on-exec sweep when close_range is missing */

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

/* ---------------------------------------------------------------- environment -- */

static size_t name_len(const char *entry)
{
    const char *eq = strchr(entry, '=');

    return eq ? (size_t)(eq - entry) : strlen(entry);
}

static int has_name(char *const *v, size_t n, const char *entry)
{
    size_t i, l = name_len(entry);

    for (i = 0; i < n; i++)
        if (strlen(v[i]) == l && memcmp(v[i], entry, l) == 0)
            return 1;
    return 0;
}

char **gw_spawn_env(char *const *base, char *const *names, char *const *values, size_t n)
{
    size_t nb = 0, k = 0, i;
    char **env;
    int hip = 0;

    while (base && base[nb])
        nb++;
    env = gw_xcalloc(nb + n + 2, sizeof(*env));
    for (i = 0; i < nb; i++) {
        if (has_name(names, n, base[i]))
            continue;
        if (strncmp(base[i], "HIP_VISIBLE_DEVICES=", 20) == 0)
            hip = 1;
        env[k++] = gw_xstrdup(base[i]);
    }
    for (i = 0; i < n; i++) {
        size_t ln = strlen(names[i]), lv = strlen(values[i]);
        char *e = gw_xmalloc(ln + lv + 2);

        memcpy(e, names[i], ln);
        e[ln] = '=';
        memcpy(e + ln + 1, values[i], lv + 1);
        if (strcmp(names[i], "HIP_VISIBLE_DEVICES") == 0)
            hip = 1;
        env[k++] = e;
    }
    if (!hip)
        env[k++] = gw_xstrdup(HIP_DEFAULT);
    env[k] = NULL;
    return env;
}

void gw_spawn_strv_free(char **v)
{
    size_t i;

    if (v == NULL)
        return;
    for (i = 0; v[i]; i++)
        free(v[i]);
    free(v);
}

char *gw_spawn_which(const char *prog, char *const *envp)
{
    const char *path = DEFAULT_PATH, *p, *end;
    int saw_eacces = 0;
    struct stat st;
    size_t i;

    if (strchr(prog, '/'))
        return gw_xstrdup(prog);
    for (i = 0; envp && envp[i]; i++)
        if (strncmp(envp[i], "PATH=", 5) == 0)
            path = envp[i] + 5;
    for (p = path; *p; p = *end ? end + 1 : end) {
        size_t dl;
        char *cand;

        end = p + strcspn(p, ":");
        dl = (size_t)(end - p);
        cand = gw_xmalloc(dl + strlen(prog) + 3);
        if (dl == 0)
            snprintf(cand, dl + strlen(prog) + 3, "./%s", prog); /* "" in PATH = cwd */
        else
            snprintf(cand, dl + strlen(prog) + 3, "%.*s/%s", (int)dl, p, prog);
        if (stat(cand, &st) == 0 && S_ISREG(st.st_mode)) {
            if (access(cand, X_OK) == 0)
                return cand;
            saw_eacces = 1;
        }
        free(cand);
    }
    errno = saw_eacces ? EACCES : ENOENT;
    return NULL;
}

/* ---------------------------------------------------------------- fork/exec ---- */

typedef struct child_args {
    const char *path;
    char *const *argv;
    char *const *envp;
    pid_t parent;
    int in_fd, out_fd, err_fd; /* become 0, 1, 2 */
    int report_fd;             /* close-on-exec: an errno written here means exec failed */
    int fd_max;
} child_args_t;

static void report(int fd, int e) __attribute__((noreturn));

static void report(int fd, int e)
{
    ssize_t n;

    do
        n = write(fd, &e, sizeof(e));
    while (n < 0 && errno == EINTR);
    _exit(127);
}

/* The child side. Async-signal-safe calls only (see the file comment). */
static void run_child(const child_args_t *a) __attribute__((noreturn));

static void run_child(const child_args_t *a)
{
    struct sigaction sa;
    sigset_t none;
    int fds[3], i;

    /* Its own process group, so that a stop reaches whatever it starts. */
    if (setpgid(0, 0) != 0)
        report(a->report_fd, errno);
    /* Die with the supervisor thread; if the gateway is already gone, do not start. */
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0)
        report(a->report_fd, errno);
    if (getppid() != a->parent)
        _exit(127);

    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = SIG_DFL;
    for (i = 1; i < NSIG; i++)
        (void)sigaction(i, &sa, NULL); /* SIGKILL, SIGSTOP and glibc's own just fail */
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);

    /* Move the sources above 2 first, in case one of them is itself 0, 1 or 2. */
    fds[0] = fcntl(a->in_fd, F_DUPFD_CLOEXEC, 3);
    fds[1] = fcntl(a->out_fd, F_DUPFD_CLOEXEC, 3);
    fds[2] = fcntl(a->err_fd, F_DUPFD_CLOEXEC, 3);
    for (i = 0; i < 3; i++)
        if (fds[i] < 0 || dup2(fds[i], i) < 0)
            report(a->report_fd, errno);
    if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) != 0)
        for (i = 3; i < a->fd_max; i++)
            (void)fcntl(i, F_SETFD, FD_CLOEXEC);

    execve(a->path, a->argv, a->envp);
    report(a->report_fd, errno);
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

static int fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY ||
        rl.rlim_cur > FD_SCAN_MAX)
        return FD_SCAN_MAX;
    return (int)rl.rlim_cur;
}

gw_err_t gw_spawn(const char *path, char *const *argv, char *const *envp, gw_child_t *out,
                  gw_errbuf_t *err)
{
    gw_err_t rc = GW_EINTERNAL;
    int rep[2] = {-1, -1}, po[2] = {-1, -1}, pe[2] = {-1, -1}, devnull = -1, child_errno = 0;
    child_args_t a;
    pid_t pid = -1;
    ssize_t n;

    out->pid = -1;
    out->pidfd = out->out_fd = out->err_fd = -1;
    if (pipe2(rep, O_CLOEXEC) != 0 || pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0 ||
        (devnull = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        gw_errf(err, rc, NULL, "cannot start %s: %s", path, strerror(errno));
        goto out;
    }
    memset(&a, 0, sizeof(a));
    a.path = path;
    a.argv = argv;
    a.envp = envp;
    a.parent = getpid();
    a.in_fd = devnull;
    a.out_fd = po[1];
    a.err_fd = pe[1];
    a.report_fd = rep[1];
    a.fd_max = fd_limit();

    pid = fork();
    if (pid < 0) {
        gw_errf(err, rc, NULL, "cannot start %s: fork: %s", path, strerror(errno));
        goto out;
    }
    if (pid == 0)
        run_child(&a);

    /* Both sides set the group, so it is in place whichever runs first (APUE 9.4). */
    (void)setpgid(pid, pid);
    close_fd(&rep[1]);
    close_fd(&po[1]);
    close_fd(&pe[1]);
    do
        n = read(rep[0], &child_errno, sizeof(child_errno));
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof(child_errno)) {
        gw_errf(err, rc, NULL, "cannot execute %s: %s", path, strerror(child_errno));
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        pid = -1;
        goto out;
    }
    if (n != 0) {
        /* the child died before exec without reporting (the gateway's parent check) */
        gw_errf(err, rc, NULL, "cannot start %s: the child exited before exec", path);
        while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
            ;
        pid = -1;
        goto out;
    }

    out->pid = pid;
    out->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (out->pidfd >= 0)
        (void)fcntl(out->pidfd, F_SETFD, FD_CLOEXEC);
    out->out_fd = po[0];
    out->err_fd = pe[0];
    po[0] = pe[0] = -1;
    (void)fcntl(out->out_fd, F_SETFL, fcntl(out->out_fd, F_GETFL) | O_NONBLOCK);
    (void)fcntl(out->err_fd, F_SETFL, fcntl(out->err_fd, F_GETFL) | O_NONBLOCK);
    rc = GW_OK;
out:
    close_fd(&rep[0]);
    close_fd(&rep[1]);
    close_fd(&po[0]);
    close_fd(&po[1]);
    close_fd(&pe[0]);
    close_fd(&pe[1]);
    close_fd(&devnull);
    return rc;
}

void gw_spawn_kill(pid_t pid, int sig)
{
    if (pid <= 0)
        return;
    if (kill(-pid, sig) != 0 && errno == ESRCH)
        (void)kill(pid, sig);
}

int gw_spawn_free_port(unsigned *port)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), rc = -1;

    if (fd < 0)
        return -1;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &sl) == 0) {
        *port = ntohs(sa.sin_port);
        rc = 0;
    }
    close(fd);
    return rc;
}

int gw_spawn_port_free(unsigned port)
{
    struct sockaddr_in sa;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, ok;

    if (fd < 0)
        return 1; /* cannot tell: let the backend try */
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok = bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return ok;
}
