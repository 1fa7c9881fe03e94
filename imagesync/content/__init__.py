"""Content: manifests and descriptors over their exact bytes, media types, and what walks an
image's graph and what is attached to it. Below the stores: no module here sends a request."""
