#!/usr/bin/env bash
# Removes everything a `make test-deploy` run named RUN left behind: the compose project's
# containers, pods, volumes and networks (podman-compose labels them with the project name)
# and the kube-play pods and volumes (named after RUN). Safe to run twice; touches nothing else.
#   deploy/teardown.sh RUN
set -uo pipefail
run="${1:?usage: deploy/teardown.sh RUN}"
podman=(podman)
ids=$("${podman[@]}" ps -aq --filter "label=io.podman.compose.project=$run" 2>/dev/null)
[ -n "$ids" ] && "${podman[@]}" rm -f -t 5 $ids >/dev/null 2>&1
for pod in $("${podman[@]}" pod ps -q --filter "name=$run" 2>/dev/null); do
  "${podman[@]}" pod rm -f -t 5 "$pod" >/dev/null 2>&1
done
ids=$("${podman[@]}" ps -aq --filter "name=$run" 2>/dev/null)
[ -n "$ids" ] && "${podman[@]}" rm -f -t 5 $ids >/dev/null 2>&1
for volume in $("${podman[@]}" volume ls -q --filter "label=io.podman.compose.project=$run" 2>/dev/null) \
    $("${podman[@]}" volume ls -q 2>/dev/null | grep -F -- "$run"); do
  "${podman[@]}" volume rm -f "$volume" >/dev/null 2>&1
done
for net in $("${podman[@]}" network ls -q --filter "label=io.podman.compose.project=$run" 2>/dev/null) \
    $("${podman[@]}" network ls --format '{{.Name}}' 2>/dev/null | grep -F -- "$run"); do
  "${podman[@]}" network rm -f "$net" >/dev/null 2>&1
done
for secret in $("${podman[@]}" secret ls --format '{{.Name}}' 2>/dev/null | grep -F -- "$run"); do
  "${podman[@]}" secret rm "$secret" >/dev/null 2>&1
done
left=$( { "${podman[@]}" ps -aq --filter "name=$run"; "${podman[@]}" volume ls -q | grep -F -- "$run"; \
  "${podman[@]}" network ls --format '{{.Name}}' | grep -F -- "$run"; } 2>/dev/null)
if [ -n "$left" ]; then
  echo "deploy/teardown.sh: still present after teardown of $run: $left" >&2
  exit 1
fi
exit 0
