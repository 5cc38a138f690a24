"""The `oreo` command line (installed as the import package `oreo_cli`)."""
