"""Live sources: posts from social networks as they are written, each a Quix Streams source (see ``base``)."""
