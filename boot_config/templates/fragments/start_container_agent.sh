#!/bin/bash
# boot-config part for container hosts (SPEC 10.5): run the heat-container-agent under
# systemd, after the engine. The helper scripts were written by the cloud-config part.
set -eux

agent_image='__AGENT_IMAGE__'
agent_image_url='__AGENT_IMAGE_URL__'
docker_socket='__DOCKER_SOCKET__'
helpers=/opt/container_agent
docker=$(command -v docker)

chmod 0755 "$helpers/get_container_agent_image.sh" "$helpers/run_container_agent.sh"

cat > /etc/systemd/system/heat-container-agent.service <<UNIT
[Unit]
Description=Heat container agent (os-collect-config and hooks in a container)
After=docker.service network-online.target
Requires=docker.service
Wants=network-online.target

[Service]
Environment=DOCKER_SOCKET=$docker_socket
ExecStartPre=-$docker rm -f heat-container-agent
ExecStartPre=$helpers/get_container_agent_image.sh $agent_image $agent_image_url
ExecStart=$helpers/run_container_agent.sh $agent_image
ExecStop=$docker stop heat-container-agent
Restart=on-failure
RestartSec=5s

[Install]
WantedBy=multi-user.target
UNIT
chmod 0644 /etc/systemd/system/heat-container-agent.service

if [ -d /run/systemd/system ]; then
    systemctl enable docker.service heat-container-agent.service
    systemctl start --no-block docker.service
    systemctl start --no-block heat-container-agent.service
else
    echo "boot-config: systemd is not running; start heat-container-agent.service once it does" >&2
    exit 1
fi
