# Where the os-config-agents virtualenv lives in the image; every element that
# installs a command or a hook shim points at this one venv.
export OS_CONFIG_AGENTS_VENV_DIR=${OS_CONFIG_AGENTS_VENV_DIR:-/opt/stack/venvs/os-config-agents}
