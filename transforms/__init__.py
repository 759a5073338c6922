"""tweetmill transforms: the canonical schema, readers, stages, engines and publishing."""

__version__ = "0.1.0"
