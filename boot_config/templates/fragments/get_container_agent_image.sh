#!/bin/bash
# Make the heat-container-agent image available to the local engine, once.
# usage: get_container_agent_image.sh IMAGE [ARCHIVE_URL]
# An image already present is used as it is: nothing is pulled on every start, so a
# restart never changes what runs (the originals pulled each time: SPEC 11.42). Without
# it, ARCHIVE_URL (a `docker save` tar over http/https) is loaded, else IMAGE is pulled.
set -eu

image=$1
archive_url=${2:-}

if docker image inspect "$image" >/dev/null 2>&1; then
    exit 0
fi
if [ -n "$archive_url" ]; then
    tmp=$(mktemp /tmp/heat-container-agent.XXXXXX)
    trap 'rm -f "$tmp"' EXIT
    curl -fsSL --retry 5 -o "$tmp" "$archive_url"
    docker load -i "$tmp"
else
    docker pull "$image"
fi
docker image inspect "$image" >/dev/null 2>&1 || {
    echo "heat-container-agent: $image is still missing after loading $archive_url" >&2
    exit 1
}
