# The salt hook imports Salt's Python library, which salt-minion installs for
# the system Python: let the os-config-agents virtualenv see it.
export OS_CONFIG_AGENTS_SYSTEM_SITE_PACKAGES=1
