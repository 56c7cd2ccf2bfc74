"""ssl4eo-curate: curate SSL4EO-style pretraining corpora (sample -> fetch -> shard -> catalog)."""

__version__ = "0.1.0"
