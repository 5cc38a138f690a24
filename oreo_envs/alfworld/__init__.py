"""ALFWorld as a Gymnasium text env (optional extra: pip install oreo[alfworld])."""
