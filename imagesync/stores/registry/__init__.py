"""The registry store: the distribution API over HTTP, through mirrors for reads."""
