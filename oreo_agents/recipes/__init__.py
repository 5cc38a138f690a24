"""Recipes: whole pipelines written top to bottom from library calls (torchtune's ``recipes/``)."""
