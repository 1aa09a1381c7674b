"""A run's durable state: its directory, manifest, journal, chunk files and the only writer of them."""
