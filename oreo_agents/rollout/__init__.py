"""Running policies in envs: the lock-step episode collector, scripted policies, and the prompts
of agent envs."""
