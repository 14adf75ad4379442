"""Built-in metric families; each module is an entry point of ``ticklake.metrics``."""
