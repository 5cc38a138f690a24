"""``python -m oreo_cli`` (and ``accelerate launch -m oreo_cli ...``)."""

from oreo_cli.main import main

main()
