"""oreo_agents: episodes, generation, losses, training and search for LLM agents (in progress)."""
