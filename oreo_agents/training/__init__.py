"""Training: the one accelerate loop every algorithm runs in (`loop`), what it builds before the
first step (`build`), its logged metrics (`metrics`) and its checkpoints (`checkpoint`)."""
