// egressd-pause: a container that does nothing until it is stopped. Two
// uses, one source:
//  - in the egressd image (scripts/image/egressd.sh, the Containerfile) as
//    /usr/local/bin/egressd-pause: the container that keeps the uninstall
//    DaemonSet's pods Ready (deploy/uninstall), so uninstalling needs no
//    image but egressd's own, which every node already has (offline nodes
//    cannot pull registry.k8s.io/pause);
//  - as the sandbox ("pause") image of the test cluster (tests/k8s/images.sh,
//    localhost/egressd-test/pause:1): it holds a pod's namespaces open.
// Built statically with the C compiler, no library needed.
//
// As PID 1 of a pod that shares its PID namespace it also reaps orphans.
// SIGINT and SIGTERM end it with status 0, as the upstream pause does.
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static void onStop(int sig) {
  (void)sig;
  _exit(0);
}

static void onChild(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(int argc, char **argv) {
  if (argc > 1 && argv[1][0] == '-' && argv[1][1] == 'v') {
    static const char kVersion[] = "egressd-pause 1\n";
    (void)!write(1, kVersion, sizeof kVersion - 1);
    return 0;
  }
  struct sigaction stop = {0};
  stop.sa_handler = onStop;
  sigaction(SIGINT, &stop, NULL);
  sigaction(SIGTERM, &stop, NULL);
  struct sigaction child = {0};
  child.sa_handler = onChild;
  child.sa_flags = SA_NOCLDSTOP;
  sigaction(SIGCHLD, &child, NULL);
  for (;;) pause();
}
