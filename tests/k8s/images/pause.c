// The sandbox ("pause") container of the test cluster (tests/k8s/cluster.sh):
// it holds a pod's namespaces open and does nothing else. Built statically
// at test time, so no image has to be pulled.
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
    static const char kVersion[] = "egressd-test-pause 1\n";
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
