#!/bin/bash
# Run the heat-container-agent (SPEC 10.6) in the foreground, for its systemd unit.
# usage: run_container_agent.sh IMAGE
#
# Compared with the originals (SPEC 11.43-45):
# - heat-config state, os-collect-config's cache and the agent's rendered config live on
#   the host, so a new container neither re-runs deployments nor starts unconfigured;
# - no --privileged and no host binaries: host networking (to reach the metadata service
#   as the host does) and, for the docker-compose hook, the engine's socket only
#   (DOCKER_SOCKET; empty means no socket, for script-only hosts);
# - cloud-init's data is mounted read-only.
# HOST_ROOT (default: none) prefixes every host path, so the run can be tried in a
# scratch directory.
set -eu

image=$1
name=${CONTAINER_NAME:-heat-container-agent}
root=${HOST_ROOT:-}
socket=${DOCKER_SOCKET-/var/run/docker.sock}

for dir in var/lib/heat-config var/lib/os-collect-config var/lib/heat-container-agent; do
    install -d -m 0700 "$root/$dir"
done
for dir in var/lib/cloud var/lib/heat-cfntools; do
    install -d -m 0755 "$root/$dir"
done

args=(--rm --name "$name" --init --net=host
      -v "$root/var/lib/cloud:/var/lib/cloud:ro"
      -v "$root/var/lib/heat-cfntools:/var/lib/heat-cfntools:ro"
      -v "$root/var/lib/heat-config:/var/lib/heat-config"
      -v "$root/var/lib/os-collect-config:/var/lib/os-collect-config"
      -v "$root/var/lib/heat-container-agent:/var/lib/heat-container-agent")
if [ -n "$socket" ]; then
    args+=(-v "$socket:/var/run/docker.sock")
fi
exec docker run "${args[@]}" "$image"
