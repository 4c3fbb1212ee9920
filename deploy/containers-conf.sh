#!/usr/bin/env bash
# Prints a containers.conf for podman on machines like this project's CI (deploy/README.md):
# runc where it is installed (crun refuses a hybrid cgroup v1/v2 layout), and default ulimits
# within the host's hard limits (podman's defaults, nofile 1048576 and nproc 32768, exceed
# them there and runc fails with "error setting rlimits ... operation not permitted").
# Used through CONTAINERS_CONF=<file> (podman reads only that file then).
set -euo pipefail
hard_nofile=$(ulimit -Hn)
hard_nproc=$(ulimit -Hu)
cap() { if [ "$1" = unlimited ] || [ "$1" -gt "$2" ]; then echo "$2"; else echo "$1"; fi; }
nofile=$(cap "$hard_nofile" 65536)
nproc=$(cap "$hard_nproc" 16384)
echo "# written by deploy/containers-conf.sh"
echo "[containers]"
echo "default_ulimits = [\"nofile=$nofile:$nofile\", \"nproc=$nproc:$nproc\"]"
if command -v runc >/dev/null 2>&1; then
  echo "[engine]"
  echo "runtime = \"runc\""
fi
