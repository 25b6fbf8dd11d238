"""What the built-in hooks share, one job per module; none of these is a hook.

result   HookResult, results from a finished tool or a failure, the outcome log line
context  HookContext (environment, timeout, tool runner) and the readers hooks use on it
outputs  the working and outputs directories of a run, outputs files, pruning gone deployments' files
serve    calling a hook safely, and its stdin-JSON → stdout-JSON executable form
hieradata  the hiera data directory the hiera and puppet hooks write
json_text  JSON file content in the originals' layout, for the json-file and hiera hooks
companion  the deployments of one group, for the os-refresh-config companions of container hooks
docker_api the container engine's HTTP API, for the container hooks

The deployment itself (its checks, inputs, secrets and timeout) is agent_common.deployment_contract.
"""
