"""Online training: iterations of collect -> score -> update (`driver`) and the reward functions
that score samples (`rewards`)."""
