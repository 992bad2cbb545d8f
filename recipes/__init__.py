"""The shipped recipes (TOML files), installed as the package data of enhance.recipes."""
