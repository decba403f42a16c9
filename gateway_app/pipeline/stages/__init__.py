"""The built-in stages, one module each (the order they run in is declared in `pipeline.pipeline`)."""
