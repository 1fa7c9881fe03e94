"""The layout store: a tree of OCI image layouts on disk, one per repository (``oci:DIR``)."""
