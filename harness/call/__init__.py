"""One call: the synthetic caller, the agent process, the host's load, expectations."""
