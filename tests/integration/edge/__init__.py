"""The real Envoy edge with the real config, in front of small in-process upstreams."""
