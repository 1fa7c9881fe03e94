"""Test harness: real registries and independent tools that imagesync is checked against.

- ``registry``: :class:`~tests.harness.registry.RegistryServer`, the distribution registry
  (Debian ``docker-registry`` 2.8) on a free loopback port; no auth, htpasswd, TLS, token.
- ``images``: generated images pushed with plain ``requests`` (never imagesync's code).
- ``skopeo``: skopeo as the independent reader (inspect, copy out, list tags).
- ``tokenserver``, ``faultproxy``: a token server for ``auth: token`` and a fault-injecting proxy.
- ``mirrorworld``: a network where only mirrors answer (upstream names do not resolve), built
  from an images file: its images generated into one mirror registry per upstream host.
"""
