"""``python -m oreo_cli`` (and ``accelerate launch -m oreo_cli ...``)."""

from oreo_cli.launch import main

main()
