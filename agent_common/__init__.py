"""What every os-config-agents tool shares, and nothing else."""
