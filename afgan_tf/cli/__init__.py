"""Console scripts (absl flags); each module has a ``run()`` entry point."""
