"""Many calls: the call engine and its schedule, session settings, sweeps, the per-call table."""
