/*
 * spawn.h - starting one backend process with the rails a long-lived parent needs.
 *
 * Owns the fork/exec sequence (libuv process.c): a close-on-exec error pipe so that an
 * exec failure comes back as an errno instead of a child that exits 127; the child in
 * its own process group (so a stop reaches everything it started); PR_SET_PDEATHSIG
 * (SIGKILL) with the getppid() check for a parent that died before the prctl; every
 * signal back to its default disposition and an empty mask (the gateway blocks SIGINT
 * and SIGTERM in all its threads and ignores SIGPIPE, and both would be inherited
 * across exec); stdin from /dev/null, stdout and stderr to pipes; every other fd closed
 * on exec. Also the environment and PATH lookup, done before fork because the child may
 * only call async-signal-safe functions.
 *
 * PR_SET_PDEATHSIG fires when the *thread* that forked the child ends, not the process
 * (prctl(2)). Call gw_spawn only from a thread that lives until its children have been
 * reaped: the supervisor thread (backend/supervisor.c). It covers the direct child only:
 * a command that forks (a shell script without `exec`) leaves grandchildren that only a
 * process-group kill reaches, and the gateway cannot send that after a SIGKILL.
 *
 * Nothing here logs or keeps state; errors come back as a code and a message.
 */
#ifndef GW_BACKEND_SPAWN_H
#define GW_BACKEND_SPAWN_H

#include <stddef.h>
#include <sys/types.h>

#include "core/err.h"

typedef struct gw_child {
    pid_t pid;  /* also its process group id */
    int pidfd;  /* readable once the child has exited; -1 without pidfd_open (Linux < 5.3) */
    int out_fd; /* read ends of the child's stdout and stderr: non-blocking, close-on-exec */
    int err_fd;
} gw_child_t;

/*
 * Builds a child's environment: every entry of base (NULL-terminated "NAME=value")
 * whose NAME is not in names, then names[i]=values[i] for i < n, then
 * HIP_VISIBLE_DEVICES=0 when neither set it (ROCm counts the Ryzen iGPU as a second
 * device and llama-server crashes while loading). Returns a NULL-terminated array, owned
 * by the caller (gw_spawn_strv_free). Pure apart from allocation; any thread.
 */
char **gw_spawn_env(char *const *base, char *const *names, char *const *values, size_t n);
void gw_spawn_strv_free(char **v);

/*
 * The file execve() should run for prog: prog itself if it contains '/', else the first
 * executable regular file named prog in the PATH of envp (default "/usr/local/bin:/usr/
 * bin:/bin"). Returns a malloc'd path, or NULL with errno ENOENT or EACCES.
 */
char *gw_spawn_which(const char *prog, char *const *envp);

/*
 * Forks and execs path with argv and envp (see the file comment). On success fills *out
 * and returns GW_OK once the exec has happened; the caller owns the pid (reap it with
 * waitpid) and the three fds. On failure nothing is left behind (the child, if any, is
 * reaped) and err says why ("cannot execute /x: No such file or directory").
 * Thread: see the file comment.
 */
gw_err_t gw_spawn(const char *path, char *const *argv, char *const *envp, gw_child_t *out,
                  gw_errbuf_t *err);

/* Sends sig to the child's whole process group (to the pid alone if the group is gone). */
void gw_spawn_kill(pid_t pid, int sig);

/*
 * A TCP port on 127.0.0.1 that was free a moment ago (bound to 0, read back, closed).
 * Another process may take it before the backend binds it; the backend then exits at
 * once and the start fails like any early exit. Returns 0 and sets *port, or -1.
 */
int gw_spawn_free_port(unsigned *port);

/* Whether a backend could listen on 127.0.0.1:port now (a bind test with SO_REUSEADDR,
 * as servers set it: only another listener makes it fail). */
int gw_spawn_port_free(unsigned port);

#endif
